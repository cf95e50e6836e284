"""float32 gradient error of fusedrnn against torch.nn's own, both measured against float64.

    python benchmarks/gradient_error.py [--kind GRU|LSTM|RNN] [--trials 60] [--seed 0]

Each trial draws a one-layer module (H 4-39, T 5-59, B 1-8, I 8) with its weights scaled by 0.5,
2 or 5, the update / forget gate's bias shifted by N(0, 8²) so that many units saturate, and h0
of scale 1 or 3. It runs torch.nn in float64 for the reference gradients (x, h0 and every
parameter, of sum(y · dy) with random dy), then torch.nn and fusedrnn in float32 on the same
weights. Per gradient: max |float32 − float64| / max |float64|. Prints the trials where
fusedrnn's error exceeds 3× torch.nn's, then the largest ratio and the largest fusedrnn error.
"""

import argparse

import torch

import fusedrnn

GATE = {"GRU": 1, "LSTM": 1, "RNN": None}  # which gate block gets the shifted bias (z; f)


def _grads(module, x, h0, dy, dtype, kind):
    module = module.to(dtype)
    module.zero_grad()
    xs = x.detach().to(dtype).requires_grad_()
    hs = h0.detach().to(dtype).requires_grad_()
    hx = (hs, torch.zeros_like(hs)) if kind == "LSTM" else hs
    y, _ = module(xs, hx)
    (y * dy.to(dtype)).sum().backward()
    return [xs.grad, hs.grad] + [p.grad for p in module.parameters()]


def _errors(got, want):
    return [((a.double() - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()
            for a, b in zip(got, want, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=("GRU", "LSTM", "RNN"), default="GRU")
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    torch_cls = getattr(torch.nn, args.kind)
    worst_ratio = worst_error = 0.0
    for trial in range(args.trials):
        I, H = 8, int(torch.randint(4, 40, ()))
        T, B = int(torch.randint(5, 60, ())), int(torch.randint(1, 9, ()))
        scale = (0.5, 2.0, 5.0)[trial % 3]
        ref = torch_cls(I, H).double()
        with torch.no_grad():
            for p in ref.parameters():
                p.mul_(scale)
            if GATE[args.kind] is not None:
                block = GATE[args.kind]
                ref.bias_hh_l0[block * H:(block + 1) * H] += torch.randn(H, dtype=torch.float64) * 8
        x = torch.randn(T, B, I, dtype=torch.float64)
        h0 = torch.randn(1, B, H, dtype=torch.float64) * (3 if trial % 2 else 1)
        dy = torch.randn(T, B, H, dtype=torch.float64)
        want = _grads(ref, x, h0, dy, torch.float64, args.kind)
        ref32 = torch_cls(I, H)
        ref32.load_state_dict(ref.state_dict())
        fused = getattr(fusedrnn, args.kind).from_torch(ref32)
        torch_err = _errors(_grads(ref32, x, h0, dy, torch.float32, args.kind), want)
        fused_err = _errors(_grads(fused, x, h0, dy, torch.float32, args.kind), want)
        ratio = max(f / max(t, 1e-7) for f, t in zip(fused_err, torch_err, strict=True))
        worst_ratio, worst_error = max(worst_ratio, ratio), max(worst_error, max(fused_err))
        if ratio > 3:
            print(f"trial {trial}: H {H} T {T} B {B} scale {scale}: fusedrnn "
                  f"{' '.join(f'{e:.1e}' for e in fused_err)}; torch.nn "
                  f"{' '.join(f'{e:.1e}' for e in torch_err)}")
    print(f"{args.kind}, {args.trials} trials: largest fusedrnn / torch.nn error ratio {worst_ratio:.2f}, "
          f"largest fusedrnn error {worst_error:.1e} (of the largest gradient)")


if __name__ == "__main__":
    main()
