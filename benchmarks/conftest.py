"""Options and report header for the fusedrnn benchmark suite (see test_bench_rnn.py)."""

import pytest
import torch


def pytest_addoption(parser):
    parser.addoption("--torch-threads", type=int, default=None,
                     help="torch.set_num_threads(N) before benchmarking")


def pytest_configure(config):
    threads = config.getoption("--torch-threads")
    if threads is not None and threads < 1:
        raise pytest.UsageError(f"--torch-threads expects a positive whole number, got {threads}")
    if threads:
        torch.set_num_threads(threads)


def pytest_report_header(config):
    import fusedrnn

    return (f"fusedrnn {fusedrnn.__version__}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} torch thread(s)")
