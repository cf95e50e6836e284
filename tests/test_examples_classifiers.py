"""The sketch and video examples run end to end on tiny settings (offline, shipped data only)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import fusedrnn

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize(("script", "args"), [
    ("sketch_classifier.py", ["--count", "80", "--epochs", "1"]),
    ("video_classifier.py", ["--videos", "40", "--epochs", "1"]),
])
def test_example_runs(script, args):
    # the script imports the same fusedrnn as this process (an in-place build is not installed)
    package_parent = str(Path(fusedrnn.__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (package_parent, os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    done = subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True,
                          text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "epoch 1: last batch loss" in done.stdout and "test accuracy" in done.stdout
