"""The sketch, video and music examples run end to end on tiny settings (offline, shipped data
only)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import fusedrnn

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize(("script", "args", "printed"), [
    ("sketch_classifier.py", ["--count", "80", "--epochs", "1"], "test accuracy"),
    ("video_classifier.py", ["--videos", "40", "--epochs", "1"], "test accuracy"),
    ("music_continuation.py", ["--chorales", "8", "--epochs", "1", "--midi", "{tmp}/c.mid"],
     "nats a frame"),
])
def test_example_runs(script, args, printed, tmp_path):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    # the script imports the same fusedrnn as this process (an in-place build is not installed)
    package_parent = str(Path(fusedrnn.__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (package_parent, os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    done = subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True,
                          text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("epoch 1: ") and printed in done.stdout
    if script.startswith("music"):
        assert (tmp_path / "c.mid").read_bytes().startswith(b"MThd")
