#!/usr/bin/env bash
# Creates .venv (or $FUSEDRNN_VENV) with torch (FUSEDRNN_TORCH, default torch==2.13.0: the CPU
# build on this project's machines), builds fusedrnn's kernels into it, and installs the test
# tools. Safe to re-run: it reuses the venv and rebuilds what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${FUSEDRNN_VENV:-.venv}"
torch_spec="${FUSEDRNN_TORCH:-torch==2.13.0}"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q "$torch_spec" numpy setuptools wheel ninja
# --no-build-isolation: the kernels must be built against the torch installed above
"$venv/bin/python" -m pip install -q --no-build-isolation -e ".[test]"
"$venv/bin/python" -c "import torch, fusedrnn; print('fusedrnn', fusedrnn.__version__, 'built for torch', torch.__version__)"
