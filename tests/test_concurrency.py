"""Fused layers called from several Python threads at once (an inference server, a data
pipeline): every call gives the results of the same call made alone, bit for bit. The kernels
share only the buffer pool, behind a lock, and OpenMP teams per calling thread."""

import copy
import threading

import torch

import fusedrnn


def _step(module, x):
    module.zero_grad(set_to_none=True)
    y = module(x)[0]
    y.square().sum().backward()
    return y.detach().clone(), [p.grad.clone() for p in module.parameters()]


def test_concurrent_calls_match_calls_made_alone():
    torch.manual_seed(0)
    modules = [fusedrnn.GRU(8, 64, num_layers=2), fusedrnn.LSTM(8, 64, bidirectional=True),
               fusedrnn.LayerNormLSTM(8, 64)]
    inputs = [torch.randn(100, 16, 8) for _ in modules]  # workspaces of 1-5 MB: from the pool
    alone = [_step(m, x) for m, x in zip(modules, inputs, strict=True)]
    mismatches, failures = [], []

    def worker(k):
        try:
            module = copy.deepcopy(modules[k % 3])
            for _ in range(10):
                y, grads = _step(module, inputs[k % 3])
                want_y, want_grads = alone[k % 3]
                if not (torch.equal(y, want_y) and all(map(torch.equal, grads, want_grads))):
                    mismatches.append(k)
        except Exception as e:  # a thread's exception would otherwise vanish
            failures.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures and not mismatches
