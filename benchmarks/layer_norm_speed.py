"""Training-step speed of LayerNormLSTM / LayerNormGRU against the per-step loop people write
today (nn.Linear + nn.LayerNorm modules in a Python loop), eager and with its step function
under torch.compile (fullgraph; the Python time loop calls the compiled step).

    python benchmarks/layer_norm_speed.py [--quick] [--no-compile]

One process, interleaved rounds (fused, eager, compiled, torch.mm, fused, ...), median of each
side; every pair first checks that the loop and the fused layer agree on the same weights.

The last columns are a roofline reading. A training step without dX multiplies
2·B·T·G·H·(2I + 3H) flops (G = 4 gates for the LSTM, 3 for the GRU: the forward's two products,
then dh_{t-1}, dW_hh and dW_ih), and `torch.mm` on [B·T, I + H] × [I + H, G·H] (the forward's
products as one matrix, the same reference as `fusedrnn bench`) sets this run's rate. "fused %mm"
is the fused step's rate as a share of it; "eager/ceil" is the eager loop's time over the
products' time at that rate: the most any implementation running its products at `torch.mm`'s
rate could gain over the loop, LayerNorm passes and everything else free.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from torch import nn

import fusedrnn

SHAPES = ((1, 1000, 32, 32), (16, 200, 32, 64), (32, 100, 64, 128), (64, 50, 256, 256),
          (128, 25, 512, 512))


class LoopLayerNormRNN(nn.Module):
    """A layer-normalised LSTM or GRU written step by step with standard modules."""

    def __init__(self, kind: str, input_size: int, hidden_size: int):
        super().__init__()
        gates = {"lstm": 4, "gru": 3}[kind]
        self.kind, self.hidden_size = kind, hidden_size
        self.ih = nn.Linear(input_size, gates * hidden_size, bias=False)
        self.hh = nn.Linear(hidden_size, gates * hidden_size, bias=False)
        self.ln_ih, self.ln_hh = nn.LayerNorm(gates * hidden_size), nn.LayerNorm(gates * hidden_size)
        self.b_ih = nn.Parameter(torch.zeros(gates * hidden_size))
        self.b_hh = nn.Parameter(torch.zeros(gates * hidden_size))
        if kind == "lstm":
            self.ln_c = nn.LayerNorm(hidden_size)

    def load_from(self, fused: nn.Module) -> None:
        with torch.no_grad():
            self.ih.weight.copy_(fused.weight_ih_l0)
            self.hh.weight.copy_(fused.weight_hh_l0)
            self.b_ih.copy_(fused.bias_ih_l0)
            self.b_hh.copy_(fused.bias_hh_l0)
            for block in ("ih", "hh", "c") if self.kind == "lstm" else ("ih", "hh"):
                getattr(self, f"ln_{block}").weight.copy_(getattr(fused, f"ln_{block}_weight_l0"))
                getattr(self, f"ln_{block}").bias.copy_(getattr(fused, f"ln_{block}_bias_l0"))

    def cell(self, x_t, h, c):
        """One step: the input side x_t is already projected and normalised."""
        hs = self.ln_hh(self.hh(h)) + self.b_hh
        if self.kind == "lstm":
            i, f, g, o = (x_t + hs).chunk(4, 1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            return torch.sigmoid(o) * torch.tanh(self.ln_c(c)), c
        a_r, a_z, a_n = x_t.chunk(3, 1)
        b_r, b_z, b_n = hs.chunk(3, 1)
        r, z = torch.sigmoid(a_r + b_r), torch.sigmoid(a_z + b_z)
        n = torch.tanh(a_n + r * b_n)
        return (1 - z) * n + z * h, c

    def compile_cell(self) -> LoopLayerNormRNN:
        """A copy of this loop whose step is torch.compile'd; the time loop stays in Python.

        This is how a per-step RNN is usually compiled: compiling the whole unrolled loop takes
        minutes for a few hundred steps and is specialised to one sequence length."""
        torch._dynamo.reset()  # one compiled cell per shape: start from an empty cache
        compiled = copy.copy(self)
        compiled.cell = torch.compile(self.cell, fullgraph=True, dynamic=False)
        return compiled

    def forward(self, x):  # x: [T, B, I]
        B, H = x.shape[1], self.hidden_size
        h = x.new_zeros(B, H)
        c = x.new_zeros(B, H)
        xs = self.ln_ih(self.ih(x)) + self.b_ih  # input side for all steps at once
        ys = []
        for t in range(x.shape[0]):
            h, c = self.cell(xs[t], h, c)
            ys.append(h)
        return torch.stack(ys)


def _train_step(module, x):
    def step():
        for p in module.parameters():
            p.grad = None
        out = module(x)
        y = out[0] if isinstance(out, tuple) else out
        y.sum().backward()
    return step


def make_pair(kind: str, shape: tuple[int, int, int, int]):
    """The fused layer, the loop with the same weights, and an input; checked to agree."""
    B, T, I, H = shape
    torch.manual_seed(0)
    fused = (fusedrnn.LayerNormLSTM if kind == "lstm" else fusedrnn.LayerNormGRU)(I, H)
    loop = LoopLayerNormRNN(kind, I, H)
    loop.load_from(fused)
    x = torch.randn(T, B, I)
    with torch.no_grad():  # on a 20-step prefix: LN-RNNs at random init amplify rounding over time
        torch.testing.assert_close(loop(x[:20]), fused(x[:20])[0], atol=1e-4, rtol=1e-3)
    return fused, loop, x


def training_flops(kind: str, shape: tuple[int, int, int, int]) -> float:
    """Multiply-add flops of a training step without dX: forward x·W_ihᵀ and h·W_hhᵀ, backward
    dh_{t-1}, dW_hh and dW_ih."""
    B, T, I, H = shape
    gates = {"lstm": 4, "gru": 3}[kind]
    return 2.0 * B * T * gates * H * (2 * I + 3 * H)


def _gemm_step(kind: str, shape: tuple[int, int, int, int]):
    """torch.mm on [B·T, I + H] x [I + H, G·H] into a preallocated output; returns (step, flops)."""
    B, T, I, H = shape
    cols = {"lstm": 4, "gru": 3}[kind] * H
    a, b = torch.randn(B * T, I + H), torch.randn(I + H, cols)
    out = torch.empty(B * T, cols)
    return (lambda: torch.mm(a, b, out=out)), 2.0 * B * T * (I + H) * cols


def measure(kind, shape, rounds, use_compile):
    fused, loop, x = make_pair(kind, shape)
    gemm, gemm_flops = _gemm_step(kind, shape)
    sides = {"fused": _train_step(fused, x), "eager": _train_step(loop, x), "gemm": gemm}
    if use_compile:
        compiled = loop.compile_cell()
        t0 = time.perf_counter()
        _train_step(compiled, x)()
        compile_s = time.perf_counter() - t0
        sides["compiled"] = _train_step(compiled, x)
    for fn in sides.values():
        fn()  # warm-up
    times = {name: [] for name in sides}
    for _ in range(rounds):
        for name, fn in sides.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    medians = {name: statistics.median(v) for name, v in times.items()}
    medians["gemm_gflops"] = gemm_flops / medians.pop("gemm") / 1e9
    if use_compile:
        medians["compile_s"] = compile_s
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="three shapes, fewer rounds")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile'd loop")
    parser.add_argument("--kinds", default="lstm,gru")
    args = parser.parse_args()
    shapes = SHAPES[1:4] if args.quick else SHAPES
    rounds = 5 if args.quick else 9
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; training step "
          "(forward + backward), median ms")
    print(f"{'layer':<6} {'B, T, I, H':<20} {'fused':>8} {'eager':>8} {'compiled':>9} "
          f"{'eager/fused':>12} {'compiled/fused':>15} {'mm GF/s':>8} {'fused %mm':>10} "
          f"{'eager/ceil':>11}")
    for kind in args.kinds.split(","):
        for shape in shapes:
            t = measure(kind, shape, rounds, not args.no_compile)
            comp = t.get("compiled")
            comp_ms = f"{comp * 1e3:9.1f}" if comp else f"{'-':>9}"
            comp_ratio = f"{comp / t['fused']:15.2f}" if comp else f"{'-':>15}"
            compile_note = f"  (compile + first step {t['compile_s']:.0f} s)" if comp else ""
            ceiling_s = training_flops(kind, shape) / (t["gemm_gflops"] * 1e9)
            fused_share = 100 * ceiling_s / t["fused"]
            print(f"{kind:<6} {str(shape):<20} {t['fused'] * 1e3:8.1f} {t['eager'] * 1e3:8.1f} "
                  f"{comp_ms} {t['eager'] / t['fused']:12.2f} {comp_ratio} "
                  f"{t['gemm_gflops']:8.0f} {fused_share:9.0f}% {t['eager'] / ceiling_s:11.2f}"
                  f"{compile_note}", flush=True)


if __name__ == "__main__":
    main()
