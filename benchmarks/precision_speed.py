"""fusedrnn's CPU layers at float32 matmul precision 'highest' (fp32 GEMMs, the default) against
'medium' (GEMMs in bf16 with fp32 accumulation, through oneDNN, where the CPU has bf16 units),
with torch.nn under the same settings for reference.

    python benchmarks/precision_speed.py [--rounds 20] [--threads 2]

Each round runs every (module, precision) pair once, interleaved; medians are reported, and the
largest output difference between the two precisions shows what bf16 rounding costs. torch.nn's
LSTM follows torch.backends.mkldnn.rnn rather than the matmul setting, so it stays in fp32 here.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import fusedrnn

SHAPES = ((32, 100, 64, 128), (64, 50, 256, 256), (128, 25, 512, 512))
PRECISIONS = ("highest", "medium")


def _training_step(module: torch.nn.Module, x: torch.Tensor):
    def step():
        y, _ = module(x)
        y.sum().backward()
        return y.detach()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    bf16 = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, oneDNN bf16 support: {bf16}; "
          "training step (forward + backward), median ms")
    print(f"{'layer':<10} {'B,T,I,H':<16} {'side':<9} {'highest':>9} {'medium':>9} {'speed-up':>9} "
          f"{'max |dy|':>9}")
    try:
        for kind in ("LSTM", "GRU"):
            for B, T, I, H in SHAPES:
                torch.manual_seed(0)
                ref = getattr(torch.nn, kind)(I, H, batch_first=True)
                fused = getattr(fusedrnn, kind)(I, H, batch_first=True)
                fused.load_state_dict(ref.state_dict())
                x = torch.randn(B, T, I)
                sides = {"torch.nn": _training_step(ref, x), "fusedrnn": _training_step(fused, x)}
                times = {(s, p): [] for s in sides for p in PRECISIONS}
                outputs = {}
                for r in range(args.rounds + 2):  # two warm-up rounds
                    for side, step in sides.items():
                        for precision in PRECISIONS:
                            torch.set_float32_matmul_precision(precision)
                            t0 = time.perf_counter()
                            outputs[side, precision] = step()
                            if r >= 2:
                                times[side, precision].append(time.perf_counter() - t0)
                for side in sides:
                    hi, md = (statistics.median(times[side, p]) * 1e3 for p in PRECISIONS)
                    diff = (outputs[side, "highest"] - outputs[side, "medium"]).abs().max().item()
                    print(f"{kind:<10} {f'{B},{T},{I},{H}':<16} {side:<9} {hi:9.2f} {md:9.2f} "
                          f"{hi / md:8.2f}x {diff:9.1e}", flush=True)
    finally:
        torch.set_float32_matmul_precision("highest")


if __name__ == "__main__":
    main()
