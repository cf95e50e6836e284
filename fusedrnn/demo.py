"""`fusedrnn demo`: fusedrnn next to torch.nn on a few shapes, showing that the results agree
(outputs and every gradient of a training step) and how fast each side is.

The timing is `fusedrnn bench`'s, on a handful of its cases with a short budget; run
`fusedrnn bench` for the full report.
"""

from __future__ import annotations

import sys

import torch

from .bench import _HEADER, QUICK, Case, _cpu_count, _input, _modules, format_row, forward, measure

CASES = (
    Case("LSTM", "infer", 32, 100, 64, 128),
    Case("LSTM", "train", 32, 100, 64, 128),
    Case("GRU", "infer", 32, 100, 64, 128),
    Case("GRU", "train", 32, 100, 64, 128),
    Case("LSTM", "train", 1, 1000, 32, 32),
    Case("LSTM", "train", 64, 100, 64, 128, "packed"),
)


def gradient_gap(case: Case) -> float:
    """Largest relative difference, max|a - b| / max|b| per tensor, between fusedrnn's and
    torch.nn's gradients (input and every parameter) after one training step."""
    ref, fused = _modules(case)
    grads = []
    for module in (ref, fused):
        x, _ = _input(case)
        leaf = x.data if hasattr(x, "batch_sizes") else x
        leaf.requires_grad_()
        forward(module, x).square().sum().backward()
        grads.append([leaf.grad] + [p.grad for p in module.parameters()])
    theirs, ours = grads
    return max(((a - b).abs().max() / b.abs().max()).item() for a, b in zip(ours, theirs, strict=True))


def main() -> int:
    cpus = _cpu_count()
    print(f"fusedrnn demo: torch {torch.__version__}, {torch.get_num_threads()} thread(s)\n")
    print("1. Results agree with torch.nn (same weights, float32):")
    worst = 0.0
    for case in CASES:
        if case.mode != "train":
            continue
        gap = gradient_gap(case)
        worst = max(worst, gap)
        print(f"   {case.name:<44} gradients: max relative difference {gap:.1e}")
    print("\n2. Speed, interleaved in this process (torch/fused > 1: fusedrnn is faster):")
    print("   " + _HEADER)
    ok = worst < 1e-4  # float32 rounding; a wrong formula gives O(1)
    for case in CASES:
        result = measure(case, QUICK, cpus)
        ok = ok and not result.mismatch
        print("   " + format_row(result), flush=True)
    print("\nresults agree" if ok else "\nRESULTS DIFFER beyond float32 rounding")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
