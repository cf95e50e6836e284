#!/usr/bin/env bash
# Checks the CUDA build on a machine without a GPU: builds fusedrnn with CUDA forced on against
# the CUDA 13 build of torch 2.14.1 (in .venv-cuda), imports it, asserts that every fusedrnn op
# has a CUDA kernel, and runs the CPU test suite against that build. Skips, saying so, if there
# is no nvcc.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"  # /usr/local/bin/nvcc is a wrapper script
if [ ! -x "$CUDA_HOME/bin/nvcc" ]; then
  echo "check_cuda_build: SKIPPED, no nvcc at $CUDA_HOME/bin/nvcc (set CUDA_HOME)"
  exit 0
fi
venv="$root/.venv-cuda"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q torch==2.14.1 numpy setuptools wheel ninja
# The package's runtime and test dependencies, read from pyproject.toml so that this list cannot
# drift from it (torch is pinned above).
mapfile -t deps < <("$venv/bin/python" - <<'PY'
import re
import tomllib

project = tomllib.load(open("pyproject.toml", "rb"))["project"]
for dep in project["dependencies"] + project["optional-dependencies"]["test"]:
    if re.split(r"[<>=!~ \[]", dep)[0] != "torch":
        print(dep)
PY
)
"$venv/bin/python" -m pip install -q "${deps[@]}"

# Build in a copy of the tracked tree so the checkout's CPU build stays in place.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git ls-files -z | tar --null -cf - -T - | tar -xf - -C "$work"
cd "$work"
FUSEDRNN_CUDA=1 MAX_JOBS="${MAX_JOBS:-2}" "$venv/bin/python" setup.py -q build_ext --inplace
"$venv/bin/python" - <<'PY'
import torch

import fusedrnn
from fusedrnn._loader import build_info, has_kernel

assert build_info().get("cuda"), "the build did not compile CUDA sources"
ops = sorted(n.split("::")[1] for n in torch._C._dispatch_get_all_op_names()
             if n.startswith("fusedrnn::"))
# ops without a tensor argument (cpu_buffer_pool_idle_bytes) have one kernel for every device


def takes_tensors(op):
    schema = getattr(torch.ops.fusedrnn, op).default._schema
    return any("Tensor" in str(a.type) for a in schema.arguments)


missing = [op for op in ops if takes_tensors(op) and not has_kernel(op, "CUDA")]
assert ops and not missing, f"ops without a CUDA kernel: {missing}"
print(f"check_cuda_build: torch {torch.__version__}, {len(ops)} ops, each taking tensors with CUDA and CPU kernels:",
      ", ".join(ops))
PY
"$venv/bin/python" -m pytest tests -q -x -p no:cacheprovider
