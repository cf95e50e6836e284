"""The sketch and video examples run end to end on tiny settings (offline, shipped data only)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize(("script", "args"), [
    ("sketch_classifier.py", ["--count", "80", "--epochs", "1"]),
    ("video_classifier.py", ["--videos", "40", "--epochs", "1"]),
])
def test_example_runs(script, args):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True,
                          text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "epoch 1: last batch loss" in done.stdout and "test accuracy" in done.stdout
