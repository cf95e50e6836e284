"""fusedrnn against torch.nn on configurations outside the speed table's grid, looking for
cliffs: a drop-in replacement must not be slower anywhere a user may take it.

    python benchmarks/config_scan.py [--filter SUBSTRING] [--rounds 9] [--threads 2]

Each case builds a torch.nn module and its fused copy (`from_torch`, same weights) and times them
interleaved in one process (benchmarks/interleaved.py): a forward under torch.no_grad (infer) or
zero_grad, forward and output.sum().backward() (train). Cases: layer options at (32, 100, 64,
128) (time-major, non-contiguous input, hx, bidirectional, two layers with dropout, float64, no
bias, proj_size, inference_mode, eval with autograd on, x.requires_grad); other shapes (inputs
much wider than the state, an unbatched 1000-step input, large batches with small states, long
sequences, widths that are no multiple of 16); a layer called one step at a time as decoders do;
packed batches (a small one, and one long sequence among short ones); and the cells stepped from
Python. Prints torch.nn's median, fusedrnn's, and the speed-up (> 1: fusedrnn is faster).
"""

import argparse
import warnings
from collections.abc import Callable

import torch
from interleaved import add_options, medians  # benchmarks/ is on sys.path when run as a script
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

import fusedrnn

Step = Callable[[nn.Module], Callable[[], None]]


def _pair(kind: str, *args, dtype=torch.float32, **kwargs):
    torch.manual_seed(0)
    ref = getattr(nn, kind)(*args, **kwargs).to(dtype)
    if kind.endswith("Cell"):
        fused = getattr(fusedrnn, kind)(*args, **kwargs).to(dtype)
        fused.load_state_dict(ref.state_dict())
    else:
        fused = getattr(fusedrnn, kind).from_torch(ref)
    return ref, fused


def _step(train: bool, forward: Callable[[nn.Module], torch.Tensor], mode: str = "no_grad") -> Step:
    def make(module):
        def step():
            if train:
                module.train()
                forward(module).sum().backward()
            elif mode == "inference_mode":
                module.eval()
                with torch.inference_mode():
                    forward(module)
            elif mode == "eval_autograd":
                module.eval()
                forward(module)
            else:
                module.eval()
                with torch.no_grad():
                    forward(module)
        return step
    return make


def layer_case(kind, B, T, I, H, train, batch_first=True, dtype=torch.float32, x_grad=False,
               hx=False, non_contiguous=False, mode="no_grad", **kwargs):
    ref, fused = _pair(kind, I, H, batch_first=batch_first, dtype=dtype, **kwargs)
    shape = (T, I) if B == 0 else (B, T, I) if batch_first else (T, B, I)
    if non_contiguous:  # the same shape, strided: a transpose of the other layout
        x = torch.randn(shape[1], shape[0], *shape[2:], dtype=dtype).transpose(0, 1)
    else:
        x = torch.randn(shape, dtype=dtype)
    x.requires_grad_(x_grad)
    state = None
    if hx:
        layers = kwargs.get("num_layers", 1) * (2 if kwargs.get("bidirectional") else 1)
        h0 = torch.randn(layers, B, kwargs.get("proj_size", 0) or H, dtype=dtype)
        state = (h0, torch.randn(layers, B, H, dtype=dtype)) if kind == "LSTM" else h0
    return ref, fused, _step(train, lambda m: m(x, state)[0], mode), x


def decoder_case(kind, B, I, H, steps, train):
    """The layer called on one step at a time, its state carried by the caller."""
    ref, fused = _pair(kind, I, H, batch_first=True)
    xs = torch.randn(B, steps, I)

    def forward(module):
        state, outs = None, []
        for t in range(steps):
            y, state = module(xs[:, t:t + 1], state)
            outs.append(y)
        return torch.cat(outs, 1)
    return ref, fused, _step(train, forward), None


def packed_case(kind, B, T, I, H, train, one_long=False):
    ref, fused = _pair(kind, I, H)
    torch.manual_seed(1)
    if one_long:  # one sequence of T steps among sequences of 5
        lengths = torch.full((B,), 5)
        lengths[0] = T
    else:
        lengths = torch.randint(T // 4, T + 1, (B,))
    packed = pack_padded_sequence(torch.randn(T, B, I), lengths, enforce_sorted=False)
    return ref, fused, _step(train, lambda m: m(packed)[0].data), None


def cell_case(kind, B, I, H, steps, train):
    """The cell stepped from Python; the loss sums every step's h."""
    ref, fused = _pair(kind, I, H)
    xs = torch.randn(steps, B, I)

    def forward(module):
        state, total = None, 0
        for t in range(steps):
            state = module(xs[t], state)
            total = total + (state[0] if isinstance(state, tuple) else state).sum()
        return total
    return ref, fused, _step(train, forward), None


def cases():
    """(name, builder) for every case; builders run only for the selected ones."""
    out = []
    base = (32, 100, 64, 128)
    for kind in ("LSTM", "GRU"):
        for train in (False, True):
            phase = "train" if train else "infer"

            # kwargs go to the builder (mode= among them), so the label's phase has its own name
            def add(label, builder, *args, kind=kind, train=train, phase=phase, **kwargs):
                out.append((f"{kind} {phase} {label}",
                            lambda: builder(kind, *args, train=train, **kwargs)))
            add("base (32, 100, 64, 128)", layer_case, *base)
            add("time-major", layer_case, *base, batch_first=False)
            add("non-contiguous x", layer_case, *base, non_contiguous=True)
            add("hx given", layer_case, *base, hx=True)
            add("bidirectional", layer_case, *base, bidirectional=True)
            add("2 layers, dropout 0.2", layer_case, *base, num_layers=2, dropout=0.2)
            add("float64", layer_case, *base, dtype=torch.float64)
            add("no bias", layer_case, *base, bias=False)
            if kind == "LSTM":
                add("proj_size 64", layer_case, *base, proj_size=64)
            if train:
                add("x.requires_grad", layer_case, *base, x_grad=True)
            else:
                add("inference_mode", layer_case, *base, mode="inference_mode")
                add("eval, autograd on", layer_case, *base, mode="eval_autograd")
            add("unbatched (1000, 64, 128)", layer_case, 0, 1000, 64, 128)
            add("(8, 100, 1024, 32)", layer_case, 8, 100, 1024, 32)
            add("(1, 1000, 256, 32)", layer_case, 1, 1000, 256, 32)
            add("(8, 50, 256, 1024)", layer_case, 8, 50, 256, 1024)
            add("(256, 50, 32, 32)", layer_case, 256, 50, 32, 32)
            add("(64, 2000, 8, 32)", layer_case, 64, 2000, 8, 32)
            add("(32, 100, 50, 100)", layer_case, 32, 100, 50, 100)
            add("(5, 100, 7, 33)", layer_case, 5, 100, 7, 33)
            add("(2, 300, 40, 256)", layer_case, 2, 300, 40, 256)
            add("3 bidirectional layers (4, 200, 64, 64)", layer_case, 4, 200, 64, 64,
                num_layers=3, bidirectional=True)
            add("one step a call, B=32 I=64 H=128 x50", decoder_case, 32, 64, 128, 50)
            add("one step a call, B=1 I=64 H=128 x50", decoder_case, 1, 64, 128, 50)
            add("packed B=4 T=200 I=32 H=64", packed_case, 4, 200, 32, 64)
            add("packed, one long, B=64 T=200 I=32 H=64", packed_case, 64, 200, 32, 64,
                one_long=True)
    for kind in ("LSTMCell", "GRUCell", "RNNCell"):
        for train in (False, True):
            phase = "train" if train else "infer"
            for B, I, H in ((1, 32, 32), (1, 256, 512), (8, 1024, 32), (64, 64, 256),
                            (256, 32, 32), (16, 512, 512)):
                out.append((f"{kind} {phase} B={B} I={I} H={H} x50",
                            lambda k=kind, t=train, b=B, i=I, h=H: cell_case(k, b, i, h, 50, t)))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--filter", default="", help="only cases whose name contains this")
    add_options(parser, rounds=9)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")  # the float64 fallback warnings are not the point here
    print(f"fusedrnn {fusedrnn.__version__}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s); median ms of interleaved rounds")
    for name, build in cases():
        if args.filter.lower() not in name.lower():
            continue
        ref, fused, step, x = build()

        def zero(module, x=x):
            def run():
                module.zero_grad(set_to_none=True)
                if x is not None:
                    x.grad = None
            return run
        med = medians({"torch": (zero(ref), step(ref)), "fused": (zero(fused), step(fused))},
                      args.rounds, args.warmup)
        print(f"{name:58s} torch {med['torch'] * 1e3:8.2f}  fused {med['fused'] * 1e3:8.2f}  "
              f"{med['torch'] / med['fused']:5.2f}x", flush=True)


if __name__ == "__main__":
    main()
