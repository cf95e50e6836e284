"""fusedrnn.Conv1d against what users write today (permute, nn.Conv1d, relu, permute back,
.contiguous()), same weights, timed interleaved in one process: a forward under no_grad, a
training step with the input needing a gradient, and one without.

    python benchmarks/conv_speed.py --shape 128 25 512 512 3 2 [--batch-first] [--rounds 12]

Shape: B T C_in C_out K stride; padding 'same' at stride 1, (K - 1) // 2 on both sides otherwise.
Time-major [T, B, C] unless --batch-first (the Conv+GRU bench case is time-major). Prints each
side's median in ms.
"""

import argparse

import torch
from interleaved import add_options, medians  # benchmarks/ is on sys.path when run as a script
from torch import nn

import fusedrnn


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", type=int, nargs=6, required=True,
                        metavar=("B", "T", "C_IN", "C_OUT", "K", "STRIDE"))
    parser.add_argument("--batch-first", action="store_true")
    add_options(parser, rounds=12)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    B, T, c_in, c_out, k, stride = args.shape
    padding = "same" if stride == 1 else (k - 1) // 2
    torch_conv = nn.Conv1d(c_in, c_out, k, stride=stride, padding=padding)
    fused = fusedrnn.Conv1d.from_torch(torch_conv, activation="relu",
                                       batch_first=args.batch_first)
    # to nn.Conv1d's [B, C, T] and back
    to_bct, to_layout = ((0, 2, 1), (0, 2, 1)) if args.batch_first else ((1, 2, 0), (2, 0, 1))
    x = torch.randn((B, T, c_in) if args.batch_first else (T, B, c_in), requires_grad=True)

    def torch_forward(inp):
        return torch.relu(torch_conv(inp.permute(*to_bct))).permute(*to_layout).contiguous()

    def timed(forward, x_grad, train):
        inp = x if x_grad else x.detach()
        if not train:
            with torch.no_grad():
                forward(inp)
            return
        forward(inp).sum().backward()

    def zero_grads():
        torch_conv.zero_grad()
        fused.zero_grad()

    cases = {}
    for side, forward in (("nn.Conv1d", torch_forward), ("fusedrnn", fused)):
        for name, x_grad, train in (("forward", False, False), ("train, dx", True, True),
                                    ("train, no dx", False, True)):
            cases[f"{side} {name}"] = (
                zero_grads, lambda f=forward, g=x_grad, t=train: timed(f, g, t))
    median = medians(cases, args.rounds, args.warmup)
    layout = "batch-first" if args.batch_first else "time-major"
    print(f"Conv1d {tuple(args.shape)} {layout}, relu, medians of {args.rounds} rounds:")
    for name in cases:
        print(f"  {name:24s} {median[name] * 1e3:8.2f} ms")


if __name__ == "__main__":
    main()
