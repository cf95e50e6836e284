"""Peak memory of one training step, torch.nn against fusedrnn.

    python benchmarks/peak_memory.py

Each measurement runs in a fresh process: the growth of the process's peak resident set
(ru_maxrss) during one forward + backward, after a warm-up on a tiny input has loaded the
libraries and started their threads. Resident memory counts what the C++ kernels allocate
outside torch's allocator too, which torch's own memory profiler would not see.
"""

import subprocess
import sys

SHAPES = ((16, 200, 32, 64), (32, 100, 64, 128), (64, 50, 256, 256), (128, 25, 512, 512))
KINDS = ("LSTM", "GRU", "RNN")

_CHILD = """
import gc, resource, sys, torch, fusedrnn
side, kind, B, T, I, H = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:7])
cls = getattr(torch.nn if side == "torch" else fusedrnn, kind)
warm = cls(I, H)
warm(torch.randn(2, 2, I, requires_grad=True))[0].sum().backward()
module, x = cls(I, H), torch.randn(T, B, I, requires_grad=True)
gc.collect()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
module(x)[0].sum().backward()
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((after - before) / 1024)
"""


def peak_mib(side: str, kind: str, shape: tuple[int, ...]) -> float:
    out = subprocess.run([sys.executable, "-c", _CHILD, side, kind, *map(str, shape)],
                         check=True, capture_output=True, text=True)
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
