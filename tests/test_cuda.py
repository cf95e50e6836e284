"""GPU parity: the fused CUDA kernels against torch.nn (cuDNN) in float32, and float16/bfloat16
against a float32 reference. Skipped where no GPU is present; `pytest tests/test_cuda.py`."""

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

from .cases import layer_case
from .test_modules import KINDS, check_parity, initial_state, make_pair

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

# fp16/bf16 outputs against an fp32 reference: about 3 and 2 significant digits.
REDUCED_TOL = {torch.float16: {"atol": 5e-3, "rtol": 5e-3}, torch.bfloat16: {"atol": 3e-2, "rtol": 3e-2}}


def _cuda(obj):
    if isinstance(obj, tuple):
        return tuple(t.cuda() for t in obj)
    return obj.cuda() if obj is not None else None


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("layers,bidirectional", [(1, False), (2, True)])
@pytest.mark.parametrize("batch_first", [False, True])
def test_cuda_parity_float32(kind, layers, bidirectional, batch_first):
    ref, fused = make_pair(kind, num_layers=layers, bidirectional=bidirectional,
                           batch_first=batch_first)
    ref, fused = ref.cuda(), fused.cuda()
    x = torch.randn(3, 7, 5) if batch_first else torch.randn(7, 3, 5)
    check_parity(ref, fused, x.cuda(), _cuda(initial_state(kind, ref, 3, torch.float32)))


@pytest.mark.parametrize("kind", KINDS)
def test_cuda_packed_parity(kind):
    ref, fused = make_pair(kind, num_layers=2, bidirectional=True)
    ref, fused = ref.cuda(), fused.cuda()
    packed = pack_padded_sequence(torch.randn(6, 4, 5), torch.tensor([6, 2, 5, 1]),
                                  enforce_sorted=False).to("cuda")
    check_parity(ref, fused, packed, None)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh", "rnn_relu"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_reduced_precision_against_float32(cell, dtype):
    case = layer_case(cell, T=6, B=4, I=8, H=16, packed=True, requires_grad=False)
    expected = case.reference()
    case.x = case.x.cuda().to(dtype)
    case.states = [s.cuda().to(dtype) for s in case.states]
    case.weights = {k: (v.cuda().to(dtype) if v is not None else None) for k, v in case.weights.items()}
    case.batch_sizes = case.batch_sizes  # stays on the CPU, as PackedSequence keeps it
    for got, want in zip(case.fused(), expected, strict=True):
        assert got.dtype == dtype
        torch.testing.assert_close(got.float().cpu(), want, **REDUCED_TOL[dtype])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_cuda_gradcheck_float64(cell):
    case = layer_case(cell, T=3, B=2, I=3, H=4, dtype=torch.float64, requires_grad=False)
    inputs = [t.cuda().requires_grad_() for t in case.inputs()]
    n = len(case.states)

    def run(x, *rest):
        case.x, case.states = x, list(rest[:n])
        for key, value in zip(["w_ih", "w_hh", "b_ih", "b_hh"], rest[n:], strict=True):
            case.weights[key] = value
        return case.fused()

    assert torch.autograd.gradcheck(run, inputs)


def test_cuda_opcheck():
    case = layer_case("lstm", T=4, B=3, packed=True, requires_grad=True)
    w = case.weights
    args = (case.x.cuda(), *[s.cuda() for s in case.states], w["w_ih"].cuda(), w["w_hh"].cuda(),
            w["b_ih"].cuda(), w["b_hh"].cuda(), None, case.batch_sizes, False, True)
    torch.library.opcheck(torch.ops.fusedrnn.lstm_layer.default, args)


@pytest.mark.parametrize("padding,stride,dilation,k", [("causal", 1, 2, 3), ("same", 1, 1, 5),
                                                       ("valid", 2, 1, 4), (2, 3, 2, 2)])
@pytest.mark.parametrize("activation", ["identity", "relu", "gelu"])
@pytest.mark.parametrize("batch_first", [True, False])
def test_cuda_conv1d_parity(padding, stride, dilation, k, activation, batch_first):
    from fusedrnn.conv_ops import conv1d

    from .test_conv1d import reference

    shape = (3, 40, 5) if batch_first else (40, 3, 5)
    x = torch.randn(shape, device="cuda", requires_grad=True)
    w = torch.randn(6, 5, k, device="cuda", requires_grad=True)
    b = torch.randn(6, device="cuda", requires_grad=True)
    args = (x, w, b, stride, padding, dilation, activation, batch_first)
    got, want = conv1d(*args), reference(*args)
    torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-4)
    probe = torch.randn_like(want)
    for a, e in zip(torch.autograd.grad((got * probe).sum(), (x, w, b)),
                    torch.autograd.grad((want * probe).sum(), (x, w, b)), strict=True):
        torch.testing.assert_close(a, e, atol=1e-4, rtol=1e-4)



def _masks_to(masks, device):
    import dataclasses

    return {key: dataclasses.replace(m, **{f.name: getattr(m, f.name).to(device)
                                           for f in dataclasses.fields(m) if getattr(m, f.name) is not None})
            for key, m in masks.items()}


@pytest.mark.parametrize("kind", ["ln_lstm", "ln_gru", "lstm", "gru", "rnn_tanh"])
@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
def test_cuda_layer_norm_and_regularizers_match_cpu(kind, packed, device="cuda"):
    """LayerNorm layers and every regulariser (explicit masks) on CUDA against the same module on
    the CPU, whose kernels the CPU suite checks against the step-by-step reference."""
    import copy

    from .test_regularizers import HAS_C, MODULES, _explicit_masks

    T, B, I, H = 5, 4, 3, 6
    cpu = MODULES[kind](I, H, num_layers=2, bidirectional=True)
    gpu = copy.deepcopy(cpu).to(device)
    x = torch.randn(T, B, I)
    lengths = torch.tensor([5, 4, 2, 1])
    rows = (int(lengths.sum()),) if packed else (T, B)
    masks = _explicit_masks(kind, cpu, rows, B, torch.float32)

    def run(module, x, masks):
        x = x.clone().requires_grad_()
        inp = pack_padded_sequence(x, lengths) if packed else x
        y, state = module(inp, masks=masks)
        y = y.data if packed else y
        outs = [y] + (list(state) if kind in HAS_C else [state])
        loss = sum((o * torch.linspace(-1, 1, o.numel(), device=o.device).view_as(o)).sum() for o in outs)
        grads = torch.autograd.grad(loss, [x, *module.parameters()])
        return [o.detach().cpu() for o in outs], [g.cpu() for g in grads]

    outs_cpu, grads_cpu = run(cpu, x, masks)
    outs_gpu, grads_gpu = run(gpu, x.to(device), _masks_to(masks, device))
    for got, want in zip(outs_gpu + grads_gpu, outs_cpu + grads_cpu, strict=True):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("kind", ["ln_lstm", "ln_gru", "lstm", "gru", "rnn_tanh"])
def test_cuda_batch_of_zero_matches_cpu(kind):
    # no kernel launch at zero threads (a grid of 0 blocks is a launch error): the CPU's results
    import fusedrnn

    make = {"ln_lstm": fusedrnn.LayerNormLSTM, "ln_gru": fusedrnn.LayerNormGRU, "lstm": fusedrnn.LSTM,
            "gru": fusedrnn.GRU, "rnn_tanh": fusedrnn.RNN}[kind]
    torch.manual_seed(0)
    cpu, gpu = make(5, 4), make(5, 4).cuda()
    gpu.load_state_dict(cpu.state_dict())
    x = torch.randn(4, 0, 5, requires_grad=True)
    y_cpu = cpu(x)[0]
    y_gpu = gpu(x.detach().cuda().requires_grad_())[0]
    assert y_gpu.shape == y_cpu.shape == (4, 0, 4)
    y_gpu.sum().backward()
    for p in gpu.parameters():
        assert p.grad is None or not p.grad.any()


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_cuda_layer_norm_layer_of_no_steps(kind):
    from fusedrnn import ln_ops

    G, B, I, H = {"lstm": 4, "gru": 3}[kind], 2, 3, 4
    x, h0 = torch.randn(0, B, I, device="cuda"), torch.randn(B, H, device="cuda")
    w = [torch.randn(G * H, I, device="cuda", requires_grad=True),
         torch.randn(G * H, H, device="cuda", requires_grad=True),
         torch.randn(G * H, device="cuda", requires_grad=True),
         torch.randn(G * H, device="cuda", requires_grad=True),
         torch.randn(ln_ops.ln_params(kind, H), device="cuda", requires_grad=True)]
    if kind == "lstm":
        c0 = torch.randn(B, H, device="cuda")
        out = torch.ops.fusedrnn.ln_lstm_layer(x, h0, c0, *w, None, False, 1e-5, True)
    else:
        out = torch.ops.fusedrnn.ln_gru_layer(x, h0, *w, None, False, 1e-5, True)
    assert out[0].shape[0] == 0 and torch.equal(out[1], h0)
    for g, p in zip(torch.autograd.grad(out[1].sum(), w, allow_unused=True), w, strict=True):
        assert g is not None and torch.equal(g, torch.zeros_like(p))
