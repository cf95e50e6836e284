"""`fusedrnn bench`: fusedrnn against torch.nn, timed side by side in one process.

Run as `fusedrnn bench [options]` or `python -m fusedrnn.bench [options]`.

Each case builds a torch.nn module and its fused copy (`from_torch`, same weights) and times
them interleaved -- torch, fused, reference GEMM, torch, fused, GEMM, ... -- so that changes in
clock speed or load hit all three alike. Warm-up rounds are discarded; medians are reported.

Columns:
  torch ms, fused ms  median wall time of one forward (infer, under torch.no_grad) or one
                      training step (forward, output.sum().backward(); grads zeroed untimed)
  torch/fused         speed-up of fusedrnn (> 1: fusedrnn is faster)
  fused GF/s          achieved GFLOP/s of the fused side, counting 2*B*T*gates*H*(in+H) per
                      layer and direction (packed: sum of lengths instead of B*T); a training
                      step counts 3x the forward
  GEMM GF/s           torch.mm on [B*T, I+H] x [I+H, gates*H] (first layer's sizes; packed:
                      sum of lengths rows; cells: B*steps rows), timed in the same rounds
  % GEMM              fused GF/s as a share of GEMM GF/s
  !                   other processes used more than 10% of the CPUs during the case

Variants: "packed" is a PackedSequence of B sequences, lengths uniform in [T/4, T], built with
pack_padded_sequence(enforce_sorted=False) outside the timed region; "bidir2" is a 2-layer
bidirectional stack; LSTMCell/GRUCell are stepped T times from a Python loop.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import fusedrnn
from fusedrnn._loader import build_info

SHAPES = (  # (B, T, I, H)
    (1, 1000, 32, 32),
    (16, 200, 32, 64),
    (32, 100, 64, 128),
    (64, 50, 256, 256),
    (128, 25, 512, 512),
)
QUICK_SHAPES = {(1, 1000, 32, 32), (32, 100, 64, 128), (64, 50, 256, 256)}
PACKED_SHAPE = (64, 100, 64, 128)
VARIANT_SHAPE = (32, 100, 64, 128)  # the bidirectional stack and the cells
LAYERS = ("LSTM", "GRU", "RNN")
CELLS = ("LSTMCell", "GRUCell")
MODES = ("infer", "train")
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1, "LSTMCell": 4, "GRUCell": 3}
NOISE_LIMIT = 0.10  # share of the machine's CPU time other processes may take before we warn
MISMATCH_TOL = 1e-4  # max |y_torch - y_fused| tolerated before a row is flagged


@dataclass(frozen=True)
class Case:
    kind: str  # LSTM, GRU, RNN, LSTMCell or GRUCell
    mode: str  # "infer" or "train"
    batch: int
    seq: int
    input_size: int
    hidden: int
    variant: str = ""  # "", "packed" or "bidir2"

    @property
    def name(self) -> str:
        tag = f" {self.variant}" if self.variant else ""
        return (f"{self.kind} {self.mode}{tag} B={self.batch} T={self.seq} "
                f"I={self.input_size} H={self.hidden}")

    @property
    def slug(self) -> str:
        """The name without spaces or '=', for test ids and file names."""
        return self.name.replace("=", "").replace(" ", "-")

    @property
    def is_cell(self) -> bool:
        return self.kind.endswith("Cell")

    @property
    def layers(self) -> int:
        return 2 if self.variant == "bidir2" else 1

    @property
    def directions(self) -> int:
        return 2 if self.variant == "bidir2" else 1


def all_cases() -> list[Case]:
    cases = [Case(k, m, *shape) for shape in SHAPES for k in LAYERS for m in MODES]
    cases += [Case(k, m, *PACKED_SHAPE, "packed") for k in LAYERS for m in MODES]
    cases += [Case(k, m, *VARIANT_SHAPE, "bidir2") for k in LAYERS for m in MODES]
    cases += [Case(k, m, *VARIANT_SHAPE) for k in CELLS for m in MODES]
    return cases


def quick_cases() -> list[Case]:
    """Every module on three shapes, and each variant for LSTM only."""
    def keep(c: Case) -> bool:
        shape = (c.batch, c.seq, c.input_size, c.hidden)
        if c.variant or c.is_cell:
            return c.kind in ("LSTM", "LSTMCell")
        return shape in QUICK_SHAPES
    return [c for c in all_cases() if keep(c)]


def select_cases(quick: bool, filters: Sequence[str] | None) -> list[Case]:
    cases = quick_cases() if quick else all_cases()
    if filters:
        wanted = [f.lower() for f in filters]
        cases = [c for c in cases if any(f in c.name.lower() for f in wanted)]
    return cases


# ---- workloads ---------------------------------------------------------------------------


def _drive_cell(cell: nn.RNNCellBase, x: Tensor) -> Tensor:
    """Steps the cell over x's first dimension from Python, as a hand-written loop would."""
    state, outputs = None, []
    for x_t in x:
        state = cell(x_t, state)
        outputs.append(state[0] if isinstance(state, tuple) else state)
    return torch.stack(outputs)


def forward(module: nn.Module, x: Tensor | PackedSequence) -> Tensor:
    """The output sequence (packed: its data) of a stack, or of a cell driven over x."""
    if isinstance(module, nn.RNNCellBase):
        return _drive_cell(module, x)
    y, _ = module(x)
    return y.data if isinstance(y, PackedSequence) else y


@dataclass
class Step:
    """One timed call, and the untimed reset that must precede it (None when not needed)."""

    call: Callable[[], object]
    reset: Callable[[], object] | None = None


def make_step(case: Case, module: nn.Module, x: Tensor | PackedSequence) -> Step:
    if case.mode == "infer":
        module.eval()

        def infer() -> None:
            with torch.no_grad():
                forward(module, x)

        return Step(infer)
    module.train()
    # Gradients are zeroed (set to None, as optimizers do) outside the timed call.
    return Step(lambda: forward(module, x).sum().backward(), module.zero_grad)


def _modules(case: Case) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    torch_cls, fused_cls = getattr(nn, case.kind), getattr(fusedrnn, case.kind)
    if case.is_cell:
        ref = torch_cls(case.input_size, case.hidden)
    else:
        ref = torch_cls(case.input_size, case.hidden, num_layers=case.layers,
                        bidirectional=case.directions == 2)
    return ref, fused_cls.from_torch(ref)


def _input(case: Case) -> tuple[Tensor | PackedSequence, int]:
    """Time-major input, and the number of (step, sequence) tokens it holds."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(case.seq, case.batch, case.input_size, generator=gen)
    if case.variant != "packed":
        return x, case.batch * case.seq
    lengths = torch.randint(case.seq // 4, case.seq + 1, (case.batch,), generator=gen)
    return pack_padded_sequence(x, lengths, enforce_sorted=False), int(lengths.sum())


def count_flops(case: Case, tokens: int) -> float:
    gates, hidden = GATES[case.kind], case.hidden
    total, width = 0, case.input_size
    for _ in range(case.layers):
        total += case.directions * 2 * tokens * gates * hidden * (width + hidden)
        width = case.directions * hidden
    return float(total * (3 if case.mode == "train" else 1))


@dataclass
class Workload:
    case: Case
    torch_step: Step
    fused_step: Step
    gemm_step: Step
    gemm_shape: tuple[int, int, int]  # (M, K, N) of the reference torch.mm
    flops: float  # of one fused (or torch) call
    max_abs_diff: float  # between the two forward outputs, checked once before timing


def _gemm_step(rows: int, inner: int, cols: int) -> Step:
    a, b = torch.randn(rows, inner), torch.randn(inner, cols)
    out = torch.empty(rows, cols)
    return Step(lambda: torch.mm(a, b, out=out))


def prepare(case: Case) -> Workload:
    ref, fused = _modules(case)
    x, tokens = _input(case)
    with torch.no_grad():
        diff = (forward(ref, x) - forward(fused, x)).abs().max().item()
    gemm_shape = (tokens, case.input_size + case.hidden, GATES[case.kind] * case.hidden)
    return Workload(
        case, make_step(case, ref, x), make_step(case, fused, x), _gemm_step(*gemm_shape),
        gemm_shape, count_flops(case, tokens), diff,
    )


# ---- measurement -------------------------------------------------------------------------


@dataclass(frozen=True)
class Budget:
    warmup: int  # rounds discarded
    seconds: float  # target time of the measured rounds, per case
    min_reps: int
    max_reps: int


FULL = Budget(warmup=2, seconds=3.0, min_reps=5, max_reps=200)
QUICK = Budget(warmup=1, seconds=1.5, min_reps=5, max_reps=100)


def _time_once(step: Step) -> float:
    if step.reset is not None:
        step.reset()
    start = time.perf_counter()
    step.call()
    return time.perf_counter() - start


def interleave(steps: Sequence[Step], budget: Budget) -> list[list[float]]:
    """Times the steps in turn, round after round; returns each step's times after warm-up."""
    round_s = 0.0
    for _ in range(budget.warmup):
        round_s = sum(_time_once(s) for s in steps)
    reps = int(min(budget.max_reps, max(budget.min_reps, budget.seconds / max(round_s, 1e-9))))
    times: list[list[float]] = [[] for _ in steps]
    for _ in range(reps):
        for step, bucket in zip(steps, times, strict=True):
            bucket.append(_time_once(step))
    return times


_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_sample() -> tuple[float, float, float] | None:
    """(wall s, machine busy CPU s, this process's CPU s); None where /proc/stat is missing."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal: busy is all but idle and iowait.
    busy = (sum(ticks) - ticks[3] - ticks[4]) / _CLK_TCK
    own = os.times()
    return time.perf_counter(), busy, own.user + own.system


def _cpu_count() -> int:
    """CPUs that /proc/stat accounts for, which is the capacity its totals are measured on."""
    try:
        with open("/proc/stat") as f:
            return sum(1 for line in f if line.startswith("cpu") and line[3].isdigit()) or 1
    except OSError:
        return os.cpu_count() or 1


def foreign_share(before, after, cpus: int) -> float | None:
    """Share of the machine's CPU capacity over the window that other processes used."""
    if before is None or after is None:
        return None
    wall = after[0] - before[0]
    foreign = (after[1] - before[1]) - (after[2] - before[2])
    return max(0.0, foreign) / (wall * cpus) if wall > 0 else None


@dataclass
class Result:
    case: str
    kind: str
    mode: str
    variant: str
    batch: int
    seq: int
    input_size: int
    hidden: int
    torch_ms: float
    fused_ms: float
    ratio: float  # torch / fused
    fused_gflops: float
    gemm_gflops: float
    gemm_pct: float
    gemm_shape: tuple[int, int, int]
    reps: int
    foreign_cpu: float | None  # share of CPU capacity other processes took, None if unknown
    max_abs_diff: float

    @property
    def noisy(self) -> bool:
        return self.foreign_cpu is not None and self.foreign_cpu > NOISE_LIMIT

    @property
    def mismatch(self) -> bool:
        return not self.max_abs_diff <= MISMATCH_TOL  # NaN counts as a mismatch


def measure(case: Case, budget: Budget, cpus: int) -> Result:
    work = prepare(case)
    before = _cpu_sample()
    times = interleave([work.torch_step, work.fused_step, work.gemm_step], budget)
    after = _cpu_sample()
    torch_s, fused_s, gemm_s = (statistics.median(t) for t in times)
    m, k, n = work.gemm_shape
    fused_gflops = work.flops / fused_s / 1e9
    gemm_gflops = 2 * m * k * n / gemm_s / 1e9
    return Result(
        case.name, case.kind, case.mode, case.variant, case.batch, case.seq, case.input_size,
        case.hidden, torch_s * 1e3, fused_s * 1e3, torch_s / fused_s, fused_gflops,
        gemm_gflops, 100 * fused_gflops / gemm_gflops, work.gemm_shape, len(times[0]),
        foreign_share(before, after, cpus), work.max_abs_diff,
    )


# ---- report ------------------------------------------------------------------------------

_HEADER = (f"{'case':<40} {'torch ms':>9} {'fused ms':>9} {'torch/fused':>11} "
           f"{'fused GF/s':>10} {'GEMM GF/s':>9} {'% GEMM':>6} {'reps':>4}")


def format_row(r: Result) -> str:
    notes = []
    if r.noisy:
        notes.append(f"! busy {100 * r.foreign_cpu:.0f}%")
    if r.mismatch:
        notes.append(f"MISMATCH max|dy|={r.max_abs_diff:.1e}")
    return (f"{r.case:<40} {r.torch_ms:>9.3f} {r.fused_ms:>9.3f} {r.ratio:>10.2f}x "
            f"{r.fused_gflops:>10.2f} {r.gemm_gflops:>9.1f} {r.gemm_pct:>5.1f}% {r.reps:>4}"
            + (("  " + "; ".join(notes)) if notes else ""))


def environment() -> dict:
    return {
        "fusedrnn": fusedrnn.__version__,
        "build": build_info(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpus": _cpu_count(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "python": platform.python_version(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def write_json(path: str, env: dict, results: list[Result]) -> None:
    rows = [asdict(r) | {"noisy": r.noisy, "mismatch": r.mismatch} for r in results]
    with open(path, "w") as f:
        json.dump({"environment": env, "results": rows}, f, indent=2)


def write_plot(path: str, env: dict, results: list[Result]) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 1.5 + 0.28 * len(results)))
    names = [r.case + (" !" if r.noisy else "") for r in results][::-1]
    ratios = [r.ratio for r in results][::-1]
    colors = ["tab:green" if v >= 1 else "tab:red" for v in ratios]
    ax.barh(names, ratios, color=colors)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel("speed-up of fusedrnn over torch.nn (torch time / fused time)")
    ax.set_title(f"fusedrnn {env['fusedrnn']} vs torch {env['torch']}, "
                 f"{env['threads']} thread(s)")
    ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---- command line ------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="a subset of the cases with fewer repetitions (about a minute)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--plot", metavar="FILE.png",
                        help="also draw the speed-ups as a bar chart (needs matplotlib)")
    parser.add_argument("--threads", type=int, metavar="N", help="torch.set_num_threads(N)")
    parser.add_argument("--filter", action="append", metavar="SUBSTRING",
                        help="only cases whose name contains SUBSTRING (case-insensitive; "
                             "repeat to keep cases matching any)")
    parser.add_argument("--list", action="store_true", help="list the selected cases and exit")


def run(args: argparse.Namespace) -> int:
    # Fail before minutes of measuring, not after.
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        print("fusedrnn bench: --plot needs matplotlib, which is not installed "
              "(pip install matplotlib)", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    cases = select_cases(args.quick, args.filter)
    if not cases:
        scope = " in the --quick subset" if args.quick else ""
        print(f"fusedrnn bench: no case matches the filter{scope} (see --list)", file=sys.stderr)
        return 2
    if args.list:
        print("\n".join(c.name for c in cases))
        return 0

    env = environment()
    print(f"fusedrnn {env['fusedrnn']}, torch {env['torch']}, {env['threads']} thread(s), "
          f"{env['cpus']} CPU(s); medians of interleaved runs (see `python -m fusedrnn.bench "
          "--help`)")
    print(_HEADER)
    print("-" * len(_HEADER))
    budget, cpus, results = (QUICK if args.quick else FULL), env["cpus"], []
    for case in cases:
        results.append(measure(case, budget, cpus))
        print(format_row(results[-1]), flush=True)

    noisy = sum(r.noisy for r in results)
    if noisy:
        print(f"! {noisy} row(s) measured while other processes used more than "
              f"{100 * NOISE_LIMIT:.0f}% of the CPUs: rerun them (--filter) on a quieter machine")
    if any(r.mismatch for r in results):
        print(f"MISMATCH: fused output differs from torch.nn by more than {MISMATCH_TOL:g}")
    if args.json:
        write_json(args.json, env, results)
        print(f"wrote {args.json}")
    if args.plot:
        write_plot(args.plot, env, results)
        print(f"wrote {args.plot}")
    return 1 if any(r.mismatch for r in results) else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="fusedrnn bench", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
