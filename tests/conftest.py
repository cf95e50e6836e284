import pytest
import torch

import fusedrnn  # noqa: F401  (loads the ops)

# float32 results differ from torch.nn's by rounding: different GEMM blocking and the kernels'
# polynomial exp (about 2 ulp). These bounds hold with margin for the sizes used in the tests.
TOL = {
    torch.float32: {"atol": 2e-5, "rtol": 1e-4},
    torch.float64: {"atol": 1e-10, "rtol": 1e-9},
}


def assert_close(actual, expected, dtype=torch.float32, what=""):
    torch.testing.assert_close(actual, expected, **TOL[dtype], msg=lambda m: f"{what}: {m}")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
