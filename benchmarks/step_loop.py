"""A training (or inference) loop of one fusedrnn layer, timed step by step, in fresh processes.

    python benchmarks/step_loop.py --kind LSTM --shape 16 200 32 64 [--after-torch]
        [--infer] [--steps 40] [--processes 4] [--against FUSEDRNN_KEEP_MB=0]

A cell kind (LSTMCell, GRUCell, RNNCell) is stepped T times from a Python loop, as decoders do.

Each process builds the layer, warms it up, then times --steps steps (zero_grad, forward,
y.sum().backward()) and prints the minimum and median. --after-torch runs torch.nn's step on the
same input before each timed step, as `fusedrnn bench` interleaves them. --against VAR=VALUE runs
every other process with that environment variable set (for example FUSEDRNN_KEEP_MB=0, the
buffer pool off) and reports the ratio of the two sides' medians over processes; processes
alternate so that a change in the host's load falls on both sides. To compare two builds, run it
without --against in alternating processes with PYTHONPATH set to each build's checkout (for
example a `git worktree` of the earlier commit, built in place).
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

_CHILD = """
import sys, time, torch, fusedrnn
kind, mode, after = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
B, T, I, H, steps = map(int, sys.argv[4:9])
torch.set_num_threads(2)
torch.manual_seed(0)
if after:
    ref = getattr(torch.nn, kind)(I, H)
    module = getattr(fusedrnn, kind).from_torch(ref)
else:  # any fusedrnn layer, the LayerNorm ones too
    module = getattr(fusedrnn, kind)(I, H)
x = torch.randn(T, B, I, requires_grad=(mode == "train"))


def output(m):
    if not kind.endswith("Cell"):
        return m(x)[0]
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
print(times[0] * 1e3, times[len(times) // 2] * 1e3)
"""


def run(args, env) -> tuple[float, float]:
    cmd = [sys.executable, "-c", _CHILD, args.kind, "infer" if args.infer else "train",
           "1" if args.after_torch else "0", *map(str, args.shape), str(args.steps)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    low, mid = map(float, out.stdout.split())
    return low, mid


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
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--processes", type=int, default=4, help="processes per side")
    parser.add_argument("--against", metavar="VAR=VALUE",
                        help="an environment setting for every other process")
    args = parser.parse_args()
    if args.after_torch and args.kind.startswith("LayerNorm"):
        parser.error("--after-torch needs a layer that torch.nn has (LSTM, GRU or RNN)")
    sides = {"default": dict(os.environ)}
    if args.against:
        name, _, value = args.against.partition("=")
        sides[args.against] = {**os.environ, name: value}
    results = {side: [] for side in sides}
    for i in range(args.processes):
        order = list(sides) if i % 2 == 0 else list(reversed(sides))
        for side in order:
            results[side].append(run(args, sides[side]))
    print(f"{args.kind} {'inference' if args.infer else 'training'} step at (B, T, I, H) = "
          f"{tuple(args.shape)}{', after a torch.nn step' if args.after_torch else ''}; "
          f"ms over {args.processes} processes of {args.steps} steps, {time.strftime('%H:%M')}")
    medians = {}
    for side, rows in results.items():
        low = statistics.median(r[0] for r in rows)
        mid = statistics.median(r[1] for r in rows)
        medians[side] = (low, mid)
        print(f"  {side:<24} min {low:8.3f}  median {mid:8.3f}")
    if args.against:
        (a_low, a_mid), (b_low, b_mid) = medians["default"], medians[args.against]
        print(f"  default / {args.against}: min {a_low / b_low:.2f}x, median {a_mid / b_mid:.2f}x")


if __name__ == "__main__":
    main()
