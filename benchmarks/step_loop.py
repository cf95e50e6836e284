"""A training (or inference) loop of one fusedrnn layer, timed step by step, in fresh processes.

    python benchmarks/step_loop.py --kind LSTM --shape 16 200 32 64 [--after-torch]
        [--infer] [--packed] [--steps 40] [--processes 4]
        [--against FUSEDRNN_KEEP_MB=0 | --against-build ../other-checkout]

A cell kind (LSTMCell, GRUCell, RNNCell) is stepped T times from a Python loop, as decoders do.

Each process builds the layer, warms it up, then times --steps steps (zero_grad, forward,
y.sum().backward()) and prints the minimum and median. --after-torch runs torch.nn's step on the
same input before each timed step, as `fusedrnn bench` interleaves them. --against VAR=VALUE runs
every other process with that environment variable set (for example FUSEDRNN_KEEP_MB=0, the
buffer pool off) and reports the ratio of the two sides' medians over processes; processes
alternate so that a change in the host's load falls on both sides. --against-build PATH does the
same with every other process importing fusedrnn from PATH, another checkout built in place (for
example `git worktree add ../base <commit>`, then `python setup.py build_ext --inplace` there);
both sides then run from a neutral directory, and each side's fusedrnn location is printed.
--packed feeds a PackedSequence of B sequences, lengths uniform in [T/4, T], as `fusedrnn bench`
does.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

_CHILD = """
import sys, time, torch, fusedrnn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence
kind, mode, after, packed = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[9] == "1"
B, T, I, H, steps = map(int, sys.argv[4:9])
torch.set_num_threads(2)
torch.manual_seed(0)
if after:
    ref = getattr(torch.nn, kind)(I, H)
    module = getattr(fusedrnn, kind).from_torch(ref)
else:  # any fusedrnn layer, the LayerNorm ones too
    module = getattr(fusedrnn, kind)(I, H)
# packed: built once, so its data must not carry a graph that the first backward frees
x = torch.randn(T, B, I, requires_grad=(mode == "train" and not packed))
if packed:
    lengths = torch.randint(T // 4, T + 1, (B,), generator=torch.Generator().manual_seed(1))
    x = pack_padded_sequence(x, lengths, enforce_sorted=False)


def output(m):
    if not kind.endswith("Cell"):
        y = m(x)[0]
        return y.data if isinstance(y, PackedSequence) else y
    state = None  # a cell stepped over x from Python, as a decoder loop does
    for x_t in x:
        state = m(x_t, state)
    return state[0] if isinstance(state, tuple) else state


def step(m):
    if mode == "infer":
        with torch.no_grad():
            output(m)
        return
    m.zero_grad(set_to_none=True)
    if not packed:
        x.grad = None
    output(m).sum().backward()


for _ in range(5):
    step(module)
    if after:
        step(ref)
times = []
for _ in range(steps):
    if after:
        step(ref)
    t = time.perf_counter()
    step(module)
    times.append(time.perf_counter() - t)
times.sort()
print(times[0] * 1e3, times[len(times) // 2] * 1e3, fusedrnn.__file__)
"""


def run(args, env, cwd=None) -> tuple[float, float, str]:
    cmd = [sys.executable, "-c", _CHILD, args.kind, "infer" if args.infer else "train",
           "1" if args.after_torch else "0", *map(str, args.shape), str(args.steps),
           "1" if args.packed else "0"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env, cwd=cwd)
    low, mid, where = out.stdout.split()
    return float(low), float(mid), where


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kind", default="LSTM",
                        choices=("LSTM", "GRU", "RNN", "LayerNormLSTM", "LayerNormGRU", "LSTMCell",
                                 "GRUCell", "RNNCell"))
    parser.add_argument("--shape", type=int, nargs=4, default=(16, 200, 32, 64),
                        metavar=("B", "T", "I", "H"))
    parser.add_argument("--infer", action="store_true", help="time inference steps instead")
    parser.add_argument("--after-torch", action="store_true",
                        help="run torch.nn's step before each timed step")
    parser.add_argument("--packed", action="store_true", help="a PackedSequence input (layers)")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--processes", type=int, default=4, help="processes per side")
    against = parser.add_mutually_exclusive_group()
    against.add_argument("--against", metavar="VAR=VALUE",
                         help="an environment setting for every other process")
    against.add_argument("--against-build", metavar="PATH",
                         help="every other process imports fusedrnn from this checkout")
    args = parser.parse_args()
    if args.after_torch and args.kind.startswith("LayerNorm"):
        parser.error("--after-torch needs a layer that torch.nn has (LSTM, GRU or RNN)")
    if args.packed and args.kind.endswith("Cell"):
        parser.error("--packed needs a layer, not a cell")
    sides = {"default": dict(os.environ)}
    cwd = None
    if args.against:
        name, _, value = args.against.partition("=")
        sides[args.against] = {**os.environ, name: value}
    elif args.against_build:
        # from a neutral directory, so that neither side imports the checkout it runs in
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        sides = {"this checkout": {**os.environ, "PYTHONPATH": here},
                 args.against_build: {**os.environ,
                                      "PYTHONPATH": os.path.abspath(args.against_build)}}
        cwd = os.path.abspath(os.sep)
    results = {side: [] for side in sides}
    for i in range(args.processes):
        order = list(sides) if i % 2 == 0 else list(reversed(sides))
        for side in order:
            results[side].append(run(args, sides[side], cwd))
    print(f"{args.kind} {'inference' if args.infer else 'training'} step at (B, T, I, H) = "
          f"{tuple(args.shape)}{', packed' if args.packed else ''}"
          f"{', after a torch.nn step' if args.after_torch else ''}; "
          f"ms over {args.processes} processes of {args.steps} steps, {time.strftime('%H:%M')}")
    medians = {}
    for side, rows in results.items():
        low = statistics.median(r[0] for r in rows)
        mid = statistics.median(r[1] for r in rows)
        medians[side] = (low, mid)
        print(f"  {side:<24} min {low:8.3f}  median {mid:8.3f}  (fusedrnn from {rows[0][2]})")
    if args.against:
        (a_low, a_mid), (b_low, b_mid) = medians["default"], medians[args.against]
        print(f"  default / {args.against}: min {a_low / b_low:.2f}x, median {a_mid / b_mid:.2f}x")
    elif args.against_build:
        (a_low, a_mid), (b_low, b_mid) = medians["this checkout"], medians[args.against_build]
        print(f"  speed-up of this checkout ({args.against_build} time / this time): "
              f"min {b_low / a_low:.2f}x, median {b_mid / a_mid:.2f}x")


if __name__ == "__main__":
    main()
