"""Peak memory of one training step, torch.nn against fusedrnn.

    python benchmarks/peak_memory.py [--upstream sum|dense]

Each measurement runs in a fresh process: one warm-up step at the measured size first (so that
one-time costs of either side, such as oneDNN's JIT kernels and primitive cache, are not
charged to the step), then the growth of the peak resident set over
the resident set before the measured step, with glibc told to return large buffers when freed
(see _CHILD_ENV). The peak is reset through /proc/self/clear_refs
(Linux); without it the script falls back to ru_maxrss after a warm-up on a tiny input. Resident
memory counts what the C++ kernels allocate outside torch's allocator too, which torch's own
memory profiler would not see.

--as-installed measures the process as a user runs it instead: no malloc settings, fusedrnn's
buffer pool at its default, and the peak over the resident set before the warm-up step, so that
memory the warm-up leaves resident (freed pages glibc keeps, the pool's idle blocks) counts.

The step's loss is y.sum() by default, whose gradient reaches the layer as an expanded tensor of
ones that torch.nn's step loop never materialises and fusedrnn's backward copies into one [T, B,
H] buffer. --upstream dense hands the layer a dense gradient made inside the step instead, as any
loss head after the layer does; both sides then hold it.
"""

import argparse
import os
import subprocess
import sys

SHAPES = ((16, 200, 32, 64), (32, 100, 64, 128), (64, 50, 256, 256), (128, 25, 512, 512))
KINDS = ("LSTM", "GRU", "RNN")

_CHILD = """
import gc, resource, sys, torch, fusedrnn
side, kind, B, T, I, H = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:7])
dense = sys.argv[7] == "dense"
as_installed = sys.argv[8] == "installed"
cls = getattr(torch.nn if side == "torch" else fusedrnn, kind)


def step(module, x):
    y = module(x)[0]
    if dense:  # the upstream gradient, allocated within the step as a loss head's would be
        y.backward(torch.randn_like(y))
    else:
        y.sum().backward()


def status_kib(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


module, x = cls(I, H), torch.randn(T, B, I, requires_grad=True)
try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets the peak resident set (VmHWM) to the current one
    resettable = True
except OSError:
    resettable = False
if resettable:
    gc.collect()
    initial = status_kib("VmRSS")
    step(module, x)  # warm-up at the measured size
    module.zero_grad(set_to_none=True)
    x.grad = None
    gc.collect()
    before = status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    step(module, x)
    print((status_kib("VmHWM") - (initial if as_installed else before)) / 1024)
else:
    warm = cls(I, H)
    step(warm, torch.randn(2, 2, I, requires_grad=True))
    gc.collect()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    step(module, x)
    print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""


# glibc keeps freed memory resident (and raises its mmap threshold after large frees), so a
# warm second step would reuse the first step's pages and show little growth on either side.
# A fixed 128 KiB threshold maps every large buffer on its own and unmaps it when freed: the
# resident set then follows the live allocations, and its peak is the step's peak.
# fusedrnn's buffer pool (csrc/cpu/buffer_pool.h) is off for the same reason: its idle blocks
# would sit in the resident set before the step and hide the step's own growth. With the pool on
# (the default) the step's peak is the same, and those blocks stay resident between steps.
_CHILD_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072",
              "FUSEDRNN_KEEP_MB": "0"}


def peak_mib(side: str, kind: str, shape: tuple[int, ...], upstream: str,
             as_installed: bool = False) -> float:
    env = dict(os.environ)
    if as_installed:
        for name in _CHILD_ENV:
            env.pop(name, None)
    else:
        env.update(_CHILD_ENV)
    mode = "installed" if as_installed else "isolated"
    out = subprocess.run([sys.executable, "-c", _CHILD, side, kind, *map(str, shape), upstream,
                          mode], check=True, capture_output=True, text=True, env=env)
    return float(out.stdout.strip())


def ratio(fused: float, ref: float) -> str:
    """fused / ref, or "n/a" where the reference step grew nothing measurable (the ru_maxrss
    fallback can read 0 when an earlier high-water mark covers the step)."""
    return f"{fused / ref:>6.2f}" if ref > 0 else f"{'n/a':>6}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", choices=("sum", "dense"), default="sum",
                        help="the loss y.sum() (default) or a dense upstream gradient")
    parser.add_argument("--as-installed", action="store_true",
                        help="default malloc and buffer pool; peak over the RSS before warm-up")
    args = parser.parse_args()
    print(f"{'module':<6} {'B, T, I, H':<20} {'torch.nn MiB':>12} {'fusedrnn MiB':>12} {'ratio':>6}")
    for shape in SHAPES:
        for kind in KINDS:
            ref = peak_mib("torch", kind, shape, args.upstream, args.as_installed)
            fused = peak_mib("fused", kind, shape, args.upstream, args.as_installed)
            print(f"{kind:<6} {str(shape):<20} {ref:>12.1f} {fused:>12.1f} {ratio(fused, ref)}",
                  flush=True)


if __name__ == "__main__":
    main()
