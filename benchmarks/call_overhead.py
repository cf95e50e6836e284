"""The fixed cost of one call: fusedrnn's layers and cells at a size where the arithmetic is nil.

    python benchmarks/call_overhead.py            # this checkout (or whatever `import fusedrnn` finds)
    PYTHONPATH=/path/to/other/build python benchmarks/call_overhead.py

Batch 2, I 4, H 8, one step. Each figure is the fastest of 15 loops of 200 calls, in µs: the
layer op called directly with grad enabled and under no_grad, a training step of the module
(forward, y.sum().backward()), and a cell call in inference. Run it from outside the checkout
with PYTHONPATH set to compare two builds.
"""

import time

import torch

import fusedrnn
from fusedrnn import ops


def fastest_us(fn, loops=15, calls=200) -> float:
    best = float("inf")
    for _ in range(loops):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - t0) / calls)
    return best * 1e6


def main() -> None:
    torch.manual_seed(0)
    layer, cell = fusedrnn.LSTM(4, 8), fusedrnn.GRUCell(4, 8)
    x = torch.randn(1, 2, 4, requires_grad=True)
    h0, c0 = torch.zeros(2, 8), torch.zeros(2, 8)
    weights = (layer.weight_ih_l0, layer.weight_hh_l0, layer.bias_ih_l0, layer.bias_hh_l0)

    def op_call():
        ops.lstm_layer(x, h0, c0, *weights)

    def op_call_no_grad():
        with torch.no_grad():
            ops.lstm_layer(x, h0, c0, *weights)

    def train_step():
        layer.zero_grad(set_to_none=True)
        x.grad = None
        layer(x)[0].sum().backward()

    def cell_call():
        with torch.no_grad():
            cell(x[0])

    print(f"fusedrnn from {fusedrnn.__file__}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; fastest µs per call")
    for name, fn in (("lstm_layer op, grad enabled", op_call),
                     ("lstm_layer op, no_grad", op_call_no_grad),
                     ("LSTM training step", train_step),
                     ("GRUCell call, no_grad", cell_call)):
        print(f"  {name:<28} {fastest_us(fn):8.1f}")


if __name__ == "__main__":
    main()
