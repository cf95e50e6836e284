"""The fp32 FMA peak of this machine's cores, from a register-only multiply-add loop
(benchmarks/fma_peak.c, compiled here with the compiler and flags the kernels use).

    python benchmarks/fma_peak.py [--iters N]

Prints the peak on 1 thread and on all of torch's threads: the ceiling that README's roofline
bounds ("out of reach") divide the flops by.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iters", type=int, default=200_000_000, help="loop trips per thread")
    args = parser.parse_args()
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        print("fma_peak: no C compiler found (set CC)", file=sys.stderr)
        return 2
    source = Path(__file__).with_name("fma_peak.c")
    with tempfile.TemporaryDirectory() as tmp:
        exe = Path(tmp) / "fma_peak"
        subprocess.run([cc, "-O2", "-march=native", "-fopenmp", str(source), "-o", str(exe)],
                       check=True)
        for threads in sorted({1, torch.get_num_threads()}):
            env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
            subprocess.run([str(exe), str(args.iters)], check=True, env=env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
