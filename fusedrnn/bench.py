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
  !                   other processes used more than 10% of the CPUs during the case, or the
                      GEMM's own times (when 0.5 ms or more) varied by more than 25% (p10-p90
                      over the median): a host shared with other machines slows cases without
                      showing in /proc/stat

Variants: "packed" is a PackedSequence of B sequences, lengths uniform in [T/4, T], built with
pack_padded_sequence(enforce_sorted=False) outside the timed region; "bidir2" is a 2-layer
bidirectional stack; LSTMCell/GRUCell are stepped T times from a Python loop.

Conv1D cases (names start with "Conv"; select them all with --filter conv):
  Conv1d       fusedrnn.Conv1d(activation="relu") on [B, T, C_in] against what users write
               today, relu(nn.Conv1d(x.permute(0, 2, 1))).permute(0, 2, 1).contiguous(), over
               B=32, T=1000, C_in in {1, 5, 64}, C_out in {32, 128}, K in {2, 3, 4, 5},
               stride in {1, 2}. Padding: 'same' at stride 1 (nn.Conv1d's own 'same', the extra
               step on the right for even K), the int (K-1)//2 on both sides at stride 2, where
               nn.Conv1d has no 'same'.
  ConvWaveNet  fusedrnn.WaveNet(32, 32, kernel_size=2, dilations=(1, 2, 4, 8), repeats=2): 8
               causal relu layers with residual and skip sums, against the same stack written
               with nn.Conv1d on [B, C, T] (F.pad on the left, one permute at each end), same
               weights; B=32, T=1000.
  Conv+GRU     conv (C_in=C_out=I, K=3, stride 2, padding 1) + relu + GRU(I, H) on time-major
               [T, B, I], the RNN shapes: fusedrnn.Conv1d(batch_first=False) + fusedrnn.GRU
               against permute + nn.Conv1d + relu + permute(.contiguous()) + nn.GRU.
  Training steps take gradients to the input and every parameter (x.requires_grad). FLOPs count
  2*B*T_out*C_out*C_in*K per conv (plus the GRU's); the GEMM column is torch.mm on the im2col
  shape [B*T_out, C_in*K] x [C_in*K, C_out] (Conv+GRU: the GRU's). "fused GB/s" (Conv1d rows)
  is the compulsory memory traffic -- x and y once (infer); x, y, dy, dx and the relu mask
  (train: 3|x| + 3|y|) -- over the fused time. Before timing, each conv case checks that the
  outputs agree and, for training, the gradients of x and every parameter (float32 in norm,
  and float64 copies entry by entry; see GRAD_TOL).
  A summary per group gives the median and minimum torch/fused ratio, and the run's reference
  torch.mm (1024^3) GF/s and tensor-copy GB/s for a roofline comparison.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import fusedrnn
from fusedrnn._loader import build_info
from fusedrnn.argtypes import positive_int
from fusedrnn.training.checkpoint import write_text_atomically

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
# p10-p90 spread of the reference GEMM's times over their median before we warn: a host shared
# with other machines (another VM on the same cores) slows a case without showing in /proc/stat
SPREAD_LIMIT = 0.25
MISMATCH_TOL = 1e-4  # max |y_torch - y_fused| tolerated before a row is flagged
# Conv training cases also check the gradients of x and every parameter. In float32 a relu
# whose preactivation lies within rounding of 0 can pass the gradient on one side and not the
# other, moving single entries by O(1e-2) and the norm of a bias gradient by up to ~1e-3: so
# the float32 gradients are compared in norm, ||g_fused - g_torch|| / ||g_torch|| (a wrong tap or
# a lost boundary row costs more than 1e-2), and the exact comparison, max |g_fused - g_torch| /
# max(1, max |g_torch|), is made on float64 copies of both modules (same kernels, other type) on
# the first F64_CHECK_BATCH sequences.
GRAD_TOL = 1e-2  # float32, relative in norm
GRAD_TOL_F64 = 1e-9  # float64, relative to the largest entry
F64_CHECK_BATCH = 4

# Conv1D grid (B, T fixed), the WaveNet stack and the conv + GRU pipeline
CONV_BATCH, CONV_STEPS = 32, 1000
CONV_IN, CONV_OUT, CONV_KERNELS, CONV_STRIDES = (1, 5, 64), (32, 128), (2, 3, 4, 5), (1, 2)
QUICK_CONV = {"kernel": 3, "out_channels": 128}  # the --quick grid: every C_in and stride
WAVENET_CHANNELS, WAVENET_KERNEL, WAVENET_DILATIONS, WAVENET_REPEATS = 32, 2, (1, 2, 4, 8), 2
E2E_SHAPES = SHAPES[1:]  # (B, T, I, H) of the RNN cases, B > 1
QUICK_E2E_SHAPES = {(32, 100, 64, 128), (64, 50, 256, 256)}
E2E_KERNEL, E2E_STRIDE = 3, 2
CONV_GROUPS = {"Conv1d": "Conv1d grid", "ConvWaveNet": "WaveNet", "Conv+GRU": "Conv+GRU"}
TARGET_MEDIAN, TARGET_MIN = 1.5, 1.2  # project issue 5's goal for the Conv1d grid


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


@dataclass(frozen=True)
class ConvCase:
    kind: str  # "Conv1d" (one conv + relu), "ConvWaveNet" or "Conv+GRU"
    mode: str  # "infer" or "train"
    batch: int
    seq: int
    in_channels: int
    out_channels: int
    kernel: int
    stride: int = 1
    hidden: int = 0  # Conv+GRU: the GRU's hidden size
    layers: int = 1  # ConvWaveNet: the number of conv layers

    @property
    def name(self) -> str:
        head = f"{self.kind} {self.mode} B={self.batch} T={self.seq}"
        if self.kind == "ConvWaveNet":
            return f"{head} C={self.in_channels} K={self.kernel} L={self.layers}"
        if self.kind == "Conv+GRU":
            return f"{head} I={self.in_channels} H={self.hidden} K={self.kernel} s={self.stride}"
        return f"{head} Ci={self.in_channels} Co={self.out_channels} K={self.kernel} s={self.stride}"

    @property
    def slug(self) -> str:
        return self.name.replace("=", "").replace(" ", "-").replace("+", "")

    @property
    def group(self) -> str:
        return CONV_GROUPS[self.kind]

    @property
    def padding(self) -> str | int:
        """The grid's padding: nn.Conv1d's 'same' at stride 1, else (K-1)//2 on both sides."""
        return "same" if self.stride == 1 else (self.kernel - 1) // 2

    @property
    def out_steps(self) -> int:
        if self.kind == "ConvWaveNet":
            return self.seq
        pad = (self.kernel - 1) if self.padding == "same" else 2 * ((self.kernel - 1) // 2)
        return (self.seq + pad - self.kernel) // self.stride + 1


def conv_grid_cases(batch: int = CONV_BATCH, seq: int = CONV_STEPS) -> list[ConvCase]:
    return [ConvCase("Conv1d", m, batch, seq, ci, co, k, s)
            for ci in CONV_IN for co in CONV_OUT for k in CONV_KERNELS for s in CONV_STRIDES
            for m in MODES]


def conv_cases() -> list[ConvCase]:
    """The Conv1d grid (48 shapes), the 8-layer WaveNet and Conv+GRU, each infer and train."""
    cases = conv_grid_cases()
    layers = len(WAVENET_DILATIONS) * WAVENET_REPEATS
    cases += [ConvCase("ConvWaveNet", m, CONV_BATCH, CONV_STEPS, WAVENET_CHANNELS,
                       WAVENET_CHANNELS, WAVENET_KERNEL, layers=layers) for m in MODES]
    cases += [ConvCase("Conv+GRU", m, b, t, i, i, E2E_KERNEL, E2E_STRIDE, hidden=h)
              for b, t, i, h in E2E_SHAPES for m in MODES]
    return cases


def quick_conv_cases() -> list[ConvCase]:
    def keep(c: ConvCase) -> bool:
        if c.kind == "Conv1d":
            return (c.kernel, c.out_channels) == (QUICK_CONV["kernel"], QUICK_CONV["out_channels"])
        if c.kind == "Conv+GRU":
            return (c.batch, c.seq, c.in_channels, c.hidden) in QUICK_E2E_SHAPES
        return True
    return [c for c in conv_cases() if keep(c)]


def all_cases() -> list[Case]:
    """The RNN cases (benchmarks/test_bench_rnn.py's); conv_cases() holds the Conv1D ones."""
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


def select_cases(quick: bool, filters: Sequence[str] | None) -> list[Case | ConvCase]:
    cases = quick_cases() + quick_conv_cases() if quick else all_cases() + conv_cases()
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
    max_grad_diff: float | None = None  # conv training cases: float32, see GRAD_TOL
    max_grad_diff_f64: float | None = None  # conv training cases: float64, see GRAD_TOL_F64
    traffic: float | None = None  # Conv1d grid: compulsory bytes of one call

    @property
    def mismatch(self) -> bool:
        return disagree(self.max_abs_diff, self.max_grad_diff, self.max_grad_diff_f64)


def disagree(output_diff: float, grad_diff: float | None, grad_diff_f64: float | None) -> bool:
    """Whether the checks made before timing failed (NaN counts as a failure)."""
    grads_ok = ((grad_diff is None or grad_diff <= GRAD_TOL)
                and (grad_diff_f64 is None or grad_diff_f64 <= GRAD_TOL_F64))
    return not (output_diff <= MISMATCH_TOL and grads_ok)


def _gemm_step(rows: int, inner: int, cols: int) -> Step:
    a, b = torch.randn(rows, inner), torch.randn(inner, cols)
    out = torch.empty(rows, cols)
    return Step(lambda: torch.mm(a, b, out=out))


def prepare(case: Case | ConvCase) -> Workload:
    if isinstance(case, ConvCase):
        return prepare_conv(case)
    ref, fused = _modules(case)
    x, tokens = _input(case)
    with torch.no_grad():
        diff = (forward(ref, x) - forward(fused, x)).abs().max().item()
    gemm_shape = (tokens, case.input_size + case.hidden, GATES[case.kind] * case.hidden)
    return Workload(
        case, make_step(case, ref, x), make_step(case, fused, x), _gemm_step(*gemm_shape),
        gemm_shape, count_flops(case, tokens), diff,
    )


# ---- Conv1D workloads --------------------------------------------------------------------


class TorchConvAct(nn.Module):
    """permute -> nn.Conv1d -> activation -> permute(.contiguous()), on channels-last sequences
    ([B, T, C], or [T, B, C] when not batch_first): what users write without fusedrnn."""

    def __init__(self, conv: nn.Conv1d, activation: Callable[[Tensor], Tensor] = torch.relu,
                 batch_first: bool = True):
        super().__init__()
        self.conv, self.activation, self.batch_first = conv, activation, batch_first

    def forward(self, x: Tensor) -> Tensor:
        if self.batch_first:
            return self.activation(self.conv(x.permute(0, 2, 1))).permute(0, 2, 1).contiguous()
        return self.activation(self.conv(x.permute(1, 2, 0))).permute(2, 0, 1).contiguous()


class TorchWaveNet(nn.Module):
    """fusedrnn.WaveNet written with nn.Conv1d: the stack runs on [B, C, T] (one permute at each
    end), each layer left-padded with F.pad for causality; same residual and skip sums."""

    def __init__(self, fused: fusedrnn.WaveNet):
        super().__init__()
        if any(conv.activation != "relu" for conv in fused.layers):
            raise ValueError("TorchWaveNet mirrors relu stacks only")
        self.residual, self.skip = fused.residual, fused.skip
        self.convs = nn.ModuleList()
        for layer in fused.layers:
            conv = nn.Conv1d(layer.in_channels, layer.out_channels, layer.kernel_size,
                             dilation=layer.dilation, bias=layer.bias is not None)
            conv.load_state_dict(layer.state_dict())
            self.convs.append(conv)

    def forward(self, x: Tensor) -> Tensor:  # [B, T, C]
        h, skips = x.permute(0, 2, 1), None
        for conv in self.convs:
            y = torch.relu(conv(F.pad(h, (conv.dilation[0] * (conv.kernel_size[0] - 1), 0))))
            skips = y if skips is None else skips + y
            h = h + y if self.residual and h.shape == y.shape else y
        return (skips if self.skip else h).permute(0, 2, 1).contiguous()


class ConvGRU(nn.Module):
    """conv + relu, then a GRU over the convolved sequence; time-major [T, B, C] throughout."""

    def __init__(self, conv: nn.Module, gru: nn.Module):
        super().__init__()
        self.conv, self.gru = conv, gru

    def forward(self, x: Tensor) -> Tensor:
        return self.gru(self.conv(x))[0]


def conv_modules(case: ConvCase) -> tuple[nn.Module, nn.Module]:
    """(torch.nn version, fused version) of a conv case, with the same weights."""
    torch.manual_seed(0)
    if case.kind == "ConvWaveNet":
        fused = fusedrnn.WaveNet(case.in_channels, case.out_channels, case.kernel,
                                 dilations=WAVENET_DILATIONS,
                                 repeats=case.layers // len(WAVENET_DILATIONS))
        return TorchWaveNet(fused), fused
    conv = nn.Conv1d(case.in_channels, case.out_channels, case.kernel, case.stride,
                     padding=case.padding)
    if case.kind == "Conv1d":
        return TorchConvAct(conv), fusedrnn.Conv1d.from_torch(conv, activation="relu")
    gru = nn.GRU(case.out_channels, case.hidden)
    ref = ConvGRU(TorchConvAct(conv, batch_first=False), gru)
    fused = ConvGRU(fusedrnn.Conv1d.from_torch(conv, activation="relu", batch_first=False),
                    fusedrnn.GRU.from_torch(gru))
    return ref, fused


def conv_input(case: ConvCase) -> Tensor:
    gen = torch.Generator().manual_seed(1)
    if case.kind == "Conv+GRU":
        return torch.randn(case.seq, case.batch, case.in_channels, generator=gen)
    return torch.randn(case.batch, case.seq, case.in_channels, generator=gen)


def conv_flops(case: ConvCase) -> float:
    rows = case.batch * case.out_steps
    total = case.layers * 2 * rows * case.out_channels * case.in_channels * case.kernel
    if case.kind == "Conv+GRU":
        total += 2 * rows * 3 * case.hidden * (case.out_channels + case.hidden)
    return float(total * (3 if case.mode == "train" else 1))


def conv_traffic(case: ConvCase) -> float | None:
    """Bytes a Conv1d case must move at least (float32): see the module docstring."""
    if case.kind != "Conv1d":
        return None
    x = case.batch * case.seq * case.in_channels
    y = case.batch * case.out_steps * case.out_channels
    return 4.0 * (x + y if case.mode == "infer" else 3 * x + 3 * y)


def _gradients(modules: Sequence[nn.Module], x: Tensor) -> tuple[list[Tensor], list[list[Tensor]]]:
    """Each module's output and gradients (x, then every parameter) after backward of the same
    random projection of the output; the modules' gradients are cleared again."""
    outputs, grads = [], []
    for module in modules:
        leaf = x.detach().clone().requires_grad_()
        y = module(leaf)
        probe = torch.randn(y.shape, generator=torch.Generator().manual_seed(2), dtype=y.dtype)
        (y * probe).sum().backward()
        outputs.append(y.detach())
        grads.append([leaf.grad] + [p.grad for p in module.parameters()])
        module.zero_grad()
    return outputs, grads


def conv_check(ref: nn.Module, fused: nn.Module, x: Tensor, train: bool,
               batch_dim: int = 0) -> tuple[float, float | None, float | None]:
    """max |y_torch - y_fused|; with train, the float32 and float64 gradient gaps (GRAD_TOL)."""
    if not train:
        with torch.no_grad():
            return (ref(x) - fused(x)).abs().max().item(), None, None
    (y_ref, y_fused), (g_ref, g_fused) = _gradients((ref, fused), x)
    gap32 = max(((a - b).norm() / b.norm().clamp(min=1e-30)).item()
                for a, b in zip(g_fused, g_ref, strict=True))
    x64 = x.narrow(batch_dim, 0, min(F64_CHECK_BATCH, x.size(batch_dim))).double()
    _, (g_ref, g_fused) = _gradients((copy.deepcopy(ref).double(), copy.deepcopy(fused).double()), x64)
    gap64 = max(((a - b).abs().max() / b.abs().max().clamp(min=1.0)).item()
                for a, b in zip(g_fused, g_ref, strict=True))
    return (y_ref - y_fused).abs().max().item(), gap32, gap64


def make_conv_step(case: ConvCase, module: nn.Module, x: Tensor) -> Step:
    if case.mode == "infer":
        module.eval()

        def infer() -> None:
            with torch.no_grad():
                module(x)

        return Step(infer)
    module.train()

    def reset() -> None:
        module.zero_grad()
        x.grad = None

    return Step(lambda: module(x).sum().backward(), reset)


def prepare_conv(case: ConvCase) -> Workload:
    ref, fused = conv_modules(case)
    x = conv_input(case)
    diff, gap32, gap64 = conv_check(ref, fused, x, case.mode == "train",
                                    batch_dim=1 if case.kind == "Conv+GRU" else 0)
    if case.mode == "train":
        x.requires_grad_()
    rows = case.batch * case.out_steps
    if case.kind == "Conv+GRU":
        gemm_shape = (rows, case.out_channels + case.hidden, 3 * case.hidden)
    else:
        gemm_shape = (rows, case.in_channels * case.kernel, case.out_channels)
    return Workload(
        case, make_conv_step(case, ref, x), make_conv_step(case, fused, x),
        _gemm_step(*gemm_shape), gemm_shape, conv_flops(case), diff, gap32, gap64,
        conv_traffic(case),
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
    """Share of the machine's CPU capacity over the window that other processes used.

    /proc/stat and os.times() count whole clock ticks, so each total may be short by up to a
    tick per CPU at either end of the window; that rounding is not counted as foreign use, or a
    window of a few tens of milliseconds would read as busy on rounding alone."""
    if before is None or after is None:
        return None
    wall = after[0] - before[0]
    foreign = (after[1] - before[1]) - (after[2] - before[2])
    rounding = 2 * (cpus + 1) / _CLK_TCK
    return max(0.0, foreign - rounding) / (wall * cpus) if wall > 0 else None


@dataclass
class Result:
    case: str
    kind: str
    mode: str
    variant: str
    batch: int
    seq: int
    input_size: int  # conv cases: C_in (Conv+GRU: I)
    hidden: int  # conv cases: C_out (Conv+GRU: the GRU's H)
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
    group: str = "RNN"  # "RNN", or a value of CONV_GROUPS
    kernel: int = 0  # conv cases
    stride: int = 0  # conv cases
    max_grad_diff: float | None = None  # conv training cases (see GRAD_TOL)
    max_grad_diff_f64: float | None = None  # conv training cases (see GRAD_TOL_F64)
    fused_gbps: float | None = None  # Conv1d grid: compulsory traffic / fused time
    gemm_spread: float | None = None  # see spread()

    @property
    def busy(self) -> bool:
        return self.foreign_cpu is not None and self.foreign_cpu > NOISE_LIMIT

    @property
    def unsteady(self) -> bool:
        return self.gemm_spread is not None and self.gemm_spread > SPREAD_LIMIT

    @property
    def noisy(self) -> bool:
        return self.busy or self.unsteady

    @property
    def mismatch(self) -> bool:
        return disagree(self.max_abs_diff, self.max_grad_diff, self.max_grad_diff_f64)


def spread(times: Sequence[float]) -> float | None:
    """(p90 - p10) / median of one step's times over a case's rounds: the same torch.mm between
    every pair varies only when the machine does. None under 10 rounds, or for a GEMM under
    0.5 ms, whose own thread hand-offs jitter by that much."""
    median = statistics.median(times) if times else 0.0
    if len(times) < 10 or median < 5e-4:
        return None
    deciles = statistics.quantiles(times, n=10)
    return (deciles[8] - deciles[0]) / median


def measure(case: Case | ConvCase, budget: Budget, cpus: int) -> Result:
    work = prepare(case)
    before = _cpu_sample()
    times = interleave([work.torch_step, work.fused_step, work.gemm_step], budget)
    after = _cpu_sample()
    torch_s, fused_s, gemm_s = (statistics.median(t) for t in times)
    m, k, n = work.gemm_shape
    fused_gflops = work.flops / fused_s / 1e9
    gemm_gflops = 2 * m * k * n / gemm_s / 1e9
    if isinstance(case, ConvCase):
        sizes = (case.in_channels, case.hidden if case.kind == "Conv+GRU" else case.out_channels)
        conv = {"group": case.group, "kernel": case.kernel, "stride": case.stride,
                "max_grad_diff": work.max_grad_diff, "max_grad_diff_f64": work.max_grad_diff_f64,
                "fused_gbps": None if work.traffic is None else work.traffic / fused_s / 1e9}
        variant = ""
    else:
        sizes, conv, variant = (case.input_size, case.hidden), {}, case.variant
    return Result(
        case.name, case.kind, case.mode, variant, case.batch, case.seq, *sizes,
        torch_s * 1e3, fused_s * 1e3, torch_s / fused_s, fused_gflops,
        gemm_gflops, 100 * fused_gflops / gemm_gflops, work.gemm_shape, len(times[0]),
        foreign_share(before, after, cpus), work.max_abs_diff, **conv,
        gemm_spread=spread(times[2]),
    )


def machine_references(budget: Budget) -> dict:
    """This run's yardsticks for a roofline reading: torch.mm on 1024^3 (GF/s) and a copy of a
    [32, 1000, 128] float32 tensor (GB/s counting the read and the write)."""
    a, b, out = torch.randn(1024, 1024), torch.randn(1024, 1024), torch.empty(1024, 1024)
    src = torch.randn(CONV_BATCH, CONV_STEPS, 128)
    dst = torch.empty_like(src)
    mm_t, copy_t = interleave([Step(lambda: torch.mm(a, b, out=out)), Step(lambda: dst.copy_(src))],
                              Budget(warmup=2, seconds=min(budget.seconds, 1.0), min_reps=5,
                                     max_reps=50))
    return {"mm_1024_gflops": 2 * 1024**3 / statistics.median(mm_t) / 1e9,
            "copy_gbps": 2 * src.numel() * 4 / statistics.median(copy_t) / 1e9}


# ---- report ------------------------------------------------------------------------------

_HEADER = (f"{'case':<40} {'torch ms':>9} {'fused ms':>9} {'torch/fused':>11} "
           f"{'fused GF/s':>10} {'GEMM GF/s':>9} {'% GEMM':>6} {'reps':>4}")


_CONV_HEADER = (f"{'case':<52} {'torch ms':>9} {'fused ms':>9} {'torch/fused':>11} "
                f"{'fused GF/s':>10} {'GEMM GF/s':>9} {'% GEMM':>6} {'GB/s':>6} {'reps':>4}")


def format_row(r: Result) -> str:
    notes = []
    if r.busy:
        notes.append(f"! busy {100 * r.foreign_cpu:.0f}%")
    if r.unsteady:
        notes.append(f"! unsteady: reference GEMM p10-p90 {100 * r.gemm_spread:.0f}% of median")
    if r.mismatch:
        grads = ("" if r.max_grad_diff is None
                 else f", grads {r.max_grad_diff:.1e} (float64 {r.max_grad_diff_f64:.1e})")
        notes.append(f"MISMATCH max|dy|={r.max_abs_diff:.1e}{grads}")
    tail = (("  " + "; ".join(notes)) if notes else "")
    if r.group == "RNN":
        return (f"{r.case:<40} {r.torch_ms:>9.3f} {r.fused_ms:>9.3f} {r.ratio:>10.2f}x "
                f"{r.fused_gflops:>10.2f} {r.gemm_gflops:>9.1f} {r.gemm_pct:>5.1f}% {r.reps:>4}"
                + tail)
    gbps = "" if r.fused_gbps is None else f"{r.fused_gbps:.1f}"
    return (f"{r.case:<52} {r.torch_ms:>9.3f} {r.fused_ms:>9.3f} {r.ratio:>10.2f}x "
            f"{r.fused_gflops:>10.2f} {r.gemm_gflops:>9.1f} {r.gemm_pct:>5.1f}% {gbps:>6} "
            f"{r.reps:>4}" + tail)


def summarize(results: Sequence[Result]) -> list[str]:
    """Per conv group and mode: median and minimum torch/fused over its rows."""
    lines = []
    for group in CONV_GROUPS.values():
        for mode in MODES:
            ratios = [r.ratio for r in results if r.group == group and r.mode == mode]
            if not ratios:
                continue
            med, low = statistics.median(ratios), min(ratios)
            line = (f"{group} {mode}: torch/fused median {med:.2f}x, min {low:.2f}x "
                    f"over {len(ratios)} case(s)")
            if group == CONV_GROUPS["Conv1d"]:
                met = med >= TARGET_MEDIAN and low >= TARGET_MIN
                line += (f"  [target median >= {TARGET_MEDIAN}x and min >= {TARGET_MIN}x: "
                         f"{'met' if met else 'MISSED'}]")
            lines.append(line)
    return lines


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


def _finite_or_none(value):
    """Strict JSON has no NaN or infinity: such a figure (e.g. a diff that came out NaN) is null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    return value


def write_json(path: str, env: dict, results: list[Result]) -> None:
    """Written to a temporary file beside `path`, then renamed: an interrupted write leaves any
    earlier file at `path` whole."""
    rows = [asdict(r) | {"noisy": r.noisy, "mismatch": r.mismatch} for r in results]
    data = _finite_or_none({"environment": env, "results": rows})
    write_text_atomically(path, json.dumps(data, indent=2, allow_nan=False))


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


def _unwritable(path: str) -> str | None:
    """Why `path` could not be written at the end of the run, or None."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        return f"{path} is a directory"
    if not os.path.isdir(folder):
        return f"its directory {folder} does not exist"
    if not os.access(folder, os.W_OK):
        return f"its directory {folder} is not writable"
    return None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="a subset of the cases with fewer repetitions (about a minute)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--plot", metavar="FILE.png",
                        help="also draw the speed-ups as a bar chart (needs matplotlib)")
    parser.add_argument("--threads", type=positive_int, metavar="N",
                        help="torch.set_num_threads(N)")
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
    for option, path in (("--json", args.json), ("--plot", args.plot)):
        problem = path and _unwritable(path)
        if problem:
            print(f"fusedrnn bench: cannot write {option} {path}: {problem}", file=sys.stderr)
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
    budget, cpus, results = (QUICK if args.quick else FULL), env["cpus"], []
    header = None
    for case in cases:
        want = _CONV_HEADER if isinstance(case, ConvCase) else _HEADER
        if want is not header:
            header = want
            print(("\n" if results else "") + header + "\n" + "-" * len(header))
        results.append(measure(case, budget, cpus))
        print(format_row(results[-1]), flush=True)

    if any(r.group != "RNN" for r in results):
        env["references"] = machine_references(budget)
        print(f"\nreferences, same run: torch.mm 1024^3 {env['references']['mm_1024_gflops']:.1f} "
              f"GF/s; tensor copy (32x1000x128 float32) {env['references']['copy_gbps']:.1f} GB/s")
        for line in summarize(results):
            print(line)

    noisy = sum(r.noisy for r in results)
    if noisy:
        print(f"! {noisy} row(s) measured while other processes used more than "
              f"{100 * NOISE_LIMIT:.0f}% of the CPUs or the same-size torch.mm between rounds "
              f"varied by more than {100 * SPREAD_LIMIT:.0f}%: rerun them (--filter) on a "
              "quieter machine")
    if any(r.mismatch for r in results):
        print(f"MISMATCH: fused output differs from torch.nn by more than {MISMATCH_TOL:g} "
              f"(conv training gradients: see GRAD_TOL in {__name__})")
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
