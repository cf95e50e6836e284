"""The CPU buffer pool (csrc/cpu/buffer_pool.h): a forward's workspace and outputs, a backward's
gradient rows and input gradient, of 1 MiB or more, are kept for the next call instead of going
back to malloc, up to FUSEDRNN_KEEP_MB idle megabytes (0: off)."""

import os
import subprocess
import sys
import threading

import pytest
import torch
from torch import nn

import fusedrnn

idle_bytes = torch.ops.fusedrnn.cpu_buffer_pool_idle_bytes


def lstm_step(module, x):
    y, _ = module(x)
    y.sum().backward()
    return y.detach()


def workspace(hidden, steps=40, batch=64):
    """A training forward's workspace from the raw op: [steps·batch, 5·hidden] floats."""
    I, G = 8, 4 * hidden
    torch.manual_seed(0)
    args = (torch.randn(steps, batch, I), torch.zeros(batch, hidden), torch.zeros(batch, hidden),
            torch.randn(G, I) * 0.1, torch.randn(G, hidden) * 0.1, torch.zeros(G), torch.zeros(G))
    return torch.ops.fusedrnn.lstm_layer(*args, None, None, False, True, None, None, None)[3]


def test_a_freed_workspace_is_handed_to_the_next_call():
    ws = workspace(hidden=64)  # 2560 rows × 320 floats: 3.3 MB
    address, size = ws.data_ptr(), ws.nbytes
    del ws
    assert idle_bytes() >= size
    again = workspace(hidden=64)
    assert again.data_ptr() == address
    # a much smaller request does not take the large idle block
    small = workspace(hidden=16)  # 0.8 MB: below the pool's 1 MiB floor, from malloc
    assert small.data_ptr() != address


def test_a_training_step_leaves_its_buffers_idle_and_reuses_them():
    torch.manual_seed(0)
    module, x = fusedrnn.LSTM(32, 64), torch.randn(200, 16, 32)
    lstm_step(module, x)
    idle = idle_bytes()
    assert idle >= (200 * 16 * 5 * 64 + 200 * 16 * 4 * 64) * 4  # workspace and gradient rows
    lstm_step(module, x)
    assert idle_bytes() == idle  # the same blocks went out and came back


def test_reused_blocks_give_the_same_results_as_fresh_ones():
    # the blocks come back holding an earlier call's values: every entry a kernel reads must have
    # been written in the same call
    torch.manual_seed(0)
    ref = nn.GRU(24, 48, num_layers=2)
    fused = fusedrnn.GRU.from_torch(ref)
    x = torch.randn(100, 20, 24, requires_grad=True)
    results = []
    for _ in range(3):
        fused.zero_grad(set_to_none=True)
        x.grad = None
        y = lstm_step(fused, x)
        results.append([y, x.grad.clone()] + [p.grad.clone() for p in fused.parameters()])
        lstm_step(fusedrnn.LSTM(24, 48), torch.randn(100, 20, 24))  # other contents into the pool
    for later in results[1:]:
        for a, b in zip(results[0], later, strict=True):
            assert torch.equal(a, b)
    y_ref, _ = ref(x)
    torch.testing.assert_close(results[0][0], y_ref.detach(), rtol=1e-4, atol=1e-5)


def test_the_output_and_the_input_gradient_come_back_to_the_pool():
    torch.manual_seed(0)
    module, x = fusedrnn.LSTM(64, 64), torch.randn(200, 32, 64, requires_grad=True)
    y = lstm_step(module, x)  # y and x.grad: 200 × 32 × 64 floats, 1.6 MB each
    for name in ("y", "x.grad"):
        idle = idle_bytes()
        if name == "y":
            del y
        else:
            x.grad = None
        assert idle_bytes() >= idle + 200 * 32 * 64 * 4, name


def test_pooled_tensors_resize_like_any_other():
    # a user's y or x.grad may be resized (resize_, an out= argument): the storage takes its new
    # block from the pool's allocator and keeps the old values
    torch.manual_seed(0)
    module, x = fusedrnn.LSTM(64, 64), torch.randn(200, 32, 64, requires_grad=True)
    y = lstm_step(module, x)
    for t in (y, x.grad):
        before = t.clone()
        t.resize_(300, 32, 64)
        assert torch.equal(t[:200], before)
        t[200:] = 1.0
        t.resize_(10, 32, 64)
        assert torch.equal(t, before[:10])


def _step_with_grads(module, x):
    module.zero_grad(set_to_none=True)
    return lstm_step(module, x), [p.grad.clone() for p in module.parameters()]


@pytest.mark.parametrize("make", [lambda: fusedrnn.LSTM(16, 80), lambda: fusedrnn.GRU(16, 80, num_layers=2),
                                  lambda: fusedrnn.LayerNormLSTM(16, 80, bidirectional=True)],
                         ids=["lstm", "gru-2-layers", "ln-lstm-bidirectional"])
def test_threads_share_the_pool(make):
    # Python threads training at once (an inference server, a data pipeline) share the pool
    # behind its lock: outputs and gradients are those of the same calls made alone, bit for bit
    torch.manual_seed(0)
    modules = [make() for _ in range(4)]
    inputs = [torch.randn(120, 24, 16) for _ in range(4)]
    expected = [_step_with_grads(m, x) for m, x in zip(modules, inputs, strict=True)]
    got, errors = [None] * 4, []

    def run(i):
        try:
            for _ in range(5):
                got[i] = _step_with_grads(modules[i], inputs[i])
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for (y, grads), (want_y, want_grads) in zip(got, expected, strict=True):
        assert torch.equal(y, want_y) and all(map(torch.equal, grads, want_grads))


def run_child(code, keep_mb):
    env = dict(os.environ, FUSEDRNN_KEEP_MB=keep_mb)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)


CHILD_STEP = """
import torch, fusedrnn
m, x = fusedrnn.LSTM(32, 64), torch.randn(200, 16, 32)
m(x)[0].sum().backward()
print(torch.ops.fusedrnn.cpu_buffer_pool_idle_bytes())
"""


@pytest.mark.parametrize("keep_mb,most", [("0", 0), ("4", 4 << 20)])
def test_the_idle_bytes_stay_under_the_cap(keep_mb, most):
    child = run_child(CHILD_STEP, keep_mb)
    assert child.returncode == 0, child.stderr
    idle = int(child.stdout.split()[-1])
    assert idle <= most
    if most:
        assert idle > 0  # a 4 MB cap still keeps one of the step's blocks


def test_a_bad_cap_is_a_clear_error():
    child = run_child(CHILD_STEP, "lots")
    assert child.returncode != 0
    assert "FUSEDRNN_KEEP_MB must be a whole number of megabytes" in child.stderr
