import gzip
import os
import subprocess
import sys

import pytest
import torch

import fusedrnn  # noqa: F401  (loads the ops)

# float32 results differ from torch.nn's by rounding: different GEMM blocking and the kernels'
# polynomial exp (about 1 ulp). These bounds hold with margin for the sizes used in the tests.
TOL = {
    torch.float32: {"atol": 2e-5, "rtol": 1e-4},
    torch.float64: {"atol": 1e-10, "rtol": 1e-9},
}


def assert_close(actual, expected, dtype=torch.float32, what=""):
    torch.testing.assert_close(actual, expected, **TOL[dtype], msg=lambda m: f"{what}: {m}")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def num_threads(request):
    """torch's thread count for one test, set from indirect parametrization
    (`@pytest.mark.parametrize("num_threads", [1, 2], indirect=True)`) and restored after it."""
    saved = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(saved)


def assert_child_prints_ok(code: str, **env: str) -> None:
    """Runs `code` in a fresh Python from the repository root with `env` added to the environment
    (settings read once per process, thread limits) and expects it to print "ok" and exit 0."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, **env), cwd=root,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]


def write_text(path, text: str):
    """Writes text to path, gzip-compressed when the name ends in .gz; returns path."""
    if str(path).endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def adam_losses(model, loss_of, steps: int, lr: float) -> list[float]:
    """Trains model for `steps` Adam steps on the loss that loss_of() computes; each step's loss."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        loss = loss_of()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses
