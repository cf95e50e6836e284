"""One cell module call, fusedrnn against torch.nn, interleaved in one process.

    python benchmarks/cell_call.py [--batch 32] [--input 64] [--hidden 128] [--calls 3000] [--threads 2]

A decoder calls its cell once per step from Python, so the fixed cost of one call (module,
dispatch, thread hand-off) weighs as much as its arithmetic. Each round times one inference call
(under torch.no_grad) of each side on the same input and state, then one training call (forward
and backward of the summed output); the medians over the rounds are reported.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

import fusedrnn


def _calls(cell: nn.Module, x: torch.Tensor, state):
    def infer():
        with torch.no_grad():
            cell(x, state)

    def train():
        out = cell(x, state)
        (out[0] if isinstance(out, tuple) else out).sum().backward()

    return infer, train


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--input", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    B, I, H = args.batch, args.input, args.hidden
    x = torch.randn(B, I, requires_grad=True)
    h, c = torch.randn(B, H), torch.randn(B, H)
    print(f"one call, B={B} I={I} H={H}, {args.threads} thread(s), medians of {args.calls} rounds")
    for name in ("LSTMCell", "GRUCell"):
        ref = getattr(nn, name)(I, H)
        fused = getattr(fusedrnn, name)(I, H)
        fused.load_state_dict(ref.state_dict())
        state = (h, c) if name == "LSTMCell" else h
        sides = {"torch": _calls(ref, x, state), "fused": _calls(fused, x, state)}
        for mode in (0, 1):
            times = {side: [] for side in sides}
            for _ in range(100):  # warm-up
                for calls in sides.values():
                    calls[mode]()
            for _ in range(args.calls):
                for side, calls in sides.items():
                    start = time.perf_counter()
                    calls[mode]()
                    times[side].append(time.perf_counter() - start)
            t, f = (statistics.median(times[s]) * 1e6 for s in ("torch", "fused"))
            label = ("inference", "training")[mode]
            print(f"{name:9s} {label:9s} torch.nn {t:7.1f} us  fusedrnn {f:7.1f} us  {t / f:5.2f}x")


if __name__ == "__main__":
    main()
