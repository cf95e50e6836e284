"""Peak memory of one training step, torch.nn against fusedrnn.

    python benchmarks/peak_memory.py

Each measurement runs in a fresh process: one warm-up step at the measured size first (so that
one-time costs of either side, such as oneDNN's JIT kernels and primitive cache or fusedrnn's
kept scratch buffer, are not charged to the step), then the growth of the peak resident set over
the resident set before the measured step, with glibc told to return large buffers when freed
(see _CHILD_ENV). The peak is reset through /proc/self/clear_refs
(Linux); without it the script falls back to ru_maxrss after a warm-up on a tiny input. Resident
memory counts what the C++ kernels allocate outside torch's allocator too, which torch's own
memory profiler would not see.
"""

import os
import subprocess
import sys

SHAPES = ((16, 200, 32, 64), (32, 100, 64, 128), (64, 50, 256, 256), (128, 25, 512, 512))
KINDS = ("LSTM", "GRU", "RNN")

_CHILD = """
import gc, os, resource, sys, torch, fusedrnn
side, kind, B, T, I, H = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:7])
cls = getattr(torch.nn if side == "torch" else fusedrnn, kind)


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
    module(x)[0].sum().backward()  # warm-up at the measured size
    module.zero_grad(set_to_none=True)
    x.grad = None
    gc.collect()
    before = status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    module(x)[0].sum().backward()
    print((status_kib("VmHWM") - before) / 1024)
else:
    warm = cls(I, H)
    warm(torch.randn(2, 2, I, requires_grad=True))[0].sum().backward()
    gc.collect()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    module(x)[0].sum().backward()
    print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""


# glibc keeps freed memory resident (and raises its mmap threshold after large frees), so a
# warm second step would reuse the first step's pages and show little growth on either side.
# A fixed 128 KiB threshold maps every large buffer on its own and unmaps it when freed: the
# resident set then follows the live allocations, and its peak is the step's peak.
_CHILD_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}


def peak_mib(side: str, kind: str, shape: tuple[int, ...]) -> float:
    out = subprocess.run([sys.executable, "-c", _CHILD, side, kind, *map(str, shape)],
                         check=True, capture_output=True, text=True,
                         env={**os.environ, **_CHILD_ENV})
    return float(out.stdout.strip())


def main() -> None:
    print(f"{'module':<6} {'B, T, I, H':<20} {'torch.nn MiB':>12} {'fusedrnn MiB':>12} {'ratio':>6}")
    for shape in SHAPES:
        for kind in KINDS:
            ref, fused = peak_mib("torch", kind, shape), peak_mib("fused", kind, shape)
            print(f"{kind:<6} {str(shape):<20} {ref:>12.1f} {fused:>12.1f} {fused / ref:>6.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
