"""One layer's step timed in ONE process, alternating calls between values of an environment
switch that the kernels read per call (FUSEDRNN_ONE_PASS_PRODUCTS, FUSEDRNN_SPLIT_GRADIENTS, ...).

    python benchmarks/env_switch.py FUSEDRNN_ONE_PASS_PRODUCTS 0 unset --kind LSTM \\
        --shape 16 200 32 64 [--infer] [--x-grad] [--rounds 40]
    python benchmarks/env_switch.py FUSEDRNN_ONE_PASS_PRODUCTS unset 1 --kind Conv1d \\
        --shape 32 1000 64 32 4 1 [--time-major] [--x-grad]

--kind is a recurrent layer of fusedrnn (LSTM, GRU, RNN, LayerNormLSTM, LayerNormGRU; shape
B T I H, time-major input) or Conv1d (shape B T C_in C_out K stride, relu, 'same' padding at
stride 1, (K - 1) // 2 on both sides otherwise; batch-first unless --time-major). A step is a
forward under torch.no_grad() (--infer) or zero_grad, forward, output.sum().backward(); the input
needs a gradient only with --x-grad. "unset" removes the variable. Each round runs one step per
value, in order; the first rounds are warm-up. Prints each value's median and the first value's
median over it (> 1: faster than the first value). One process, so a change in the host's speed
falls on every value alike, unlike comparisons across processes. --after-torch (LSTM, GRU, RNN)
runs torch.nn's step on the same input, untimed, before every timed call, as `fusedrnn bench`
interleaves them: the fused call then starts with torch.nn's data in the caches.
"""

import argparse
import os

import torch
from interleaved import add_options, medians  # benchmarks/ is on sys.path when run as a script

import fusedrnn

RECURRENT = ("LSTM", "GRU", "RNN", "LayerNormLSTM", "LayerNormGRU")


def build(args):
    if args.kind in RECURRENT:
        B, T, I, H = args.shape
        module = getattr(fusedrnn, args.kind)(I, H)
        x = torch.randn(T, B, I, requires_grad=args.x_grad)
    elif args.kind == "Conv1d":
        B, T, c_in, c_out, k, stride = args.shape
        padding = "same" if stride == 1 else (k - 1) // 2
        module = fusedrnn.Conv1d(c_in, c_out, k, stride=stride, padding=padding,
                                 activation="relu", batch_first=not args.time_major)
        shape = (T, B, c_in) if args.time_major else (B, T, c_in)
        x = torch.randn(shape, requires_grad=args.x_grad)
    else:
        raise SystemExit(f"--kind must be one of {RECURRENT + ('Conv1d',)}, got {args.kind!r}")
    return module, x


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("variable")
    parser.add_argument("values", nargs="+", help='values to alternate; "unset" removes it')
    parser.add_argument("--kind", required=True)
    parser.add_argument("--shape", type=int, nargs="+", required=True)
    parser.add_argument("--infer", action="store_true")
    parser.add_argument("--x-grad", action="store_true")
    parser.add_argument("--time-major", action="store_true")
    parser.add_argument("--after-torch", action="store_true",
                        help="torch.nn's step (untimed) before each timed call")
    add_options(parser, rounds=40)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    module, x = build(args)
    reference = None
    if args.after_torch:
        if args.kind not in ("LSTM", "GRU", "RNN"):
            raise SystemExit(f"--after-torch needs a torch.nn counterpart: LSTM, GRU or RNN, "
                             f"got {args.kind!r}")
        reference = module.to_torch()

    def step(layer=module):
        if args.infer:
            with torch.no_grad():
                layer(x)
            return
        layer.zero_grad()
        out = layer(x)
        (out[0] if isinstance(out, tuple) else out).sum().backward()

    def select(value):
        if value == "unset":
            os.environ.pop(args.variable, None)
        else:
            os.environ[args.variable] = value
        if reference is not None:
            step(reference)

    cases = {v: (lambda v=v: select(v), step) for v in args.values}
    median = medians(cases, args.rounds, args.warmup)
    base = median[args.values[0]]
    mode = "infer" if args.infer else "train"
    cells = [f"{v}: {median[v] * 1e3:.3f} ms ({base / median[v]:.3f}x)" for v in args.values]
    after = " after torch.nn" if args.after_torch else ""
    print(f"{args.kind} {mode}{after} {tuple(args.shape)} x_grad={args.x_grad} "
          f"{args.variable}: " + "  ".join(cells))


if __name__ == "__main__":
    main()
