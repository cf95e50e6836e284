"""The fused Conv1D against permute -> nn.functional.conv1d -> activation -> permute: outputs and
every gradient over paddings, strides, dilations, kernel sizes, activations, bias and layouts;
gradcheck, opcheck, torch.compile, the modules, and bad input."""

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import fusedrnn
from fusedrnn.conv_ops import conv1d, resolve_padding

from .conftest import assert_close

ACTS = {"identity": lambda a: a, "relu": torch.relu, "tanh": torch.tanh,
        "sigmoid": torch.sigmoid, "gelu": F.gelu}


def reference(x, weight, bias, stride, padding, dilation, activation, batch_first):
    """What users write today: to [B, C, T], zero-pad, nn.Conv1d, activation, back."""
    left, right = resolve_padding(padding, weight.shape[-1], dilation, stride)
    xc = x.permute(0, 2, 1) if batch_first else x.permute(1, 2, 0)
    y = F.conv1d(F.pad(xc, (left, right)), weight, bias, stride=stride, dilation=dilation)
    y = ACTS[activation](y)
    return y.permute(0, 2, 1) if batch_first else y.permute(2, 0, 1)


def check(padding, stride, dilation, k, activation, bias, batch_first, c_in=3, c_out=4, T=60,
          B=2, dtype=torch.float32, scaled=False):
    """scaled: gradients summed over thousands of rows, in float32, are compared with an absolute
    bound grown with each tensor's largest value."""
    shape = (B, T, c_in) if batch_first else (T, B, c_in)
    x = torch.randn(shape, dtype=dtype, requires_grad=True)
    w = (torch.randn(c_out, c_in, k, dtype=dtype) / (c_in * k) ** 0.5).requires_grad_()
    b = torch.randn(c_out, dtype=dtype, requires_grad=True) if bias else None
    args = (x, w, b, stride, padding, dilation, activation, batch_first)
    got, want = conv1d(*args), reference(*args)
    assert got.shape == want.shape
    assert_close(got, want, dtype, what="output")
    probe = torch.randn_like(want)
    leaves = [t for t in (x, w, b) if t is not None]
    g_got = torch.autograd.grad((got * probe).sum(), leaves)
    g_want = torch.autograd.grad((want * probe).sum(), leaves)
    for name, a, e in zip(["x", "weight", "bias"], g_got, g_want, strict=False):
        if scaled:
            torch.testing.assert_close(a, e, rtol=1e-4, atol=2e-5 * max(1.0, e.abs().max().item()),
                                       msg=lambda m, name=name: f"grad {name}: {m}")
        else:
            assert_close(a, e, dtype, what=f"grad {name}")


GEOMETRY = list(itertools.product(["valid", "same", "causal", 2], [1, 2, 3], [1, 2, 4, 8],
                                  range(1, 8)))


@pytest.mark.parametrize("padding,stride,dilation,k", GEOMETRY)
def test_geometry_grid(padding, stride, dilation, k):
    if padding == "same" and stride > 1:
        pytest.skip("'same' padding is for stride 1, as in nn.Conv1d")
    # every activation, bias and layout appear across the grid
    i = GEOMETRY.index((padding, stride, dilation, k))
    check(padding, stride, dilation, k, list(ACTS)[i % 5], bias=i % 2 == 0,
          batch_first=i % 3 != 0)


@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batch_first", [True, False])
def test_activations_bias_layouts(activation, bias, batch_first):
    check("causal", 2, 2, 3, activation, bias, batch_first)


@pytest.mark.parametrize("c_in,c_out", [(1, 32), (5, 8), (64, 16)])
def test_channel_counts(c_in, c_out):
    check("same", 1, 1, 5, "relu", True, True, c_in=c_in, c_out=c_out, T=40, B=3)


@pytest.mark.parametrize("c_in,k", [(1, 2), (1, 5), (2, 4), (3, 3)])
@pytest.mark.parametrize("batch_first", [True, False])
def test_weight_grad_across_channels_for_few_taps(c_in, k, batch_first):
    # K·C_in 2, 5 and 8 take the weight gradient across output channels, 9 across taps; 53
    # channels are two 16-channel vectors, one, then 5 single ones; 43 steps end on a partial
    # group of rows. The input has no gradient, as a first layer over raw data.
    torch.manual_seed(0)
    shape = (3, 43, c_in) if batch_first else (43, 3, c_in)
    x = torch.randn(shape)
    w = (torch.randn(53, c_in, k) / (c_in * k) ** 0.5).requires_grad_()
    b = torch.randn(53, requires_grad=True)
    args = (x, w, b, 1, "causal", 1, "relu", batch_first)
    probe = torch.randn_like(reference(*args))
    got = torch.autograd.grad((conv1d(*args) * probe).sum(), (w, b))
    want = torch.autograd.grad((reference(*args) * probe).sum(), (w, b))
    for name, a, e in zip(["weight", "bias"], got, want, strict=True):
        assert_close(a, e, torch.float32, what=f"grad {name}")


@pytest.mark.parametrize("c_in,k", [(6, 3), (4, 5), (8, 4), (11, 3)])
def test_window_widths_around_the_direct_backward_limits(c_in, k):
    # K·C_in 18 and 20 (the backward's direct loop with 32-tap windows), 32 (its widest), 33
    # (the GEMMs); 20 output channels leave a partial vector
    check("causal", 2, 1, k, "tanh", True, True, c_in=c_in, c_out=20, T=50, B=3)


@pytest.mark.parametrize("stride", [1, 2])
def test_long_sequences_cross_the_gemm_blocks(stride):
    # the GEMM path (K·C_in 36) takes 512 output steps a block: 1100 steps leave a short last one
    check("same" if stride == 1 else 1, stride, 1, 3, "relu", True, False, c_in=12, c_out=8,
          T=1100, B=2)


@pytest.mark.parametrize("activation", ["identity", "tanh", "gelu"])
def test_gradcheck_float64(activation):
    x = torch.randn(2, 9, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x, w, b: conv1d(x, w, b, stride=2, padding="causal", dilation=2,
                               activation=activation), (x, w, b))


@pytest.mark.parametrize("activation", [0, 4])
@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("batch_first", [True, False])
def test_opcheck(activation, train, batch_first):
    x = torch.randn(2, 11, 3, requires_grad=train)
    w = torch.randn(5, 3, 3, requires_grad=train)
    b = torch.randn(5, requires_grad=train)
    torch.library.opcheck(torch.ops.fusedrnn.conv1d.default,
                          (x, w, b, 2, 1, 2, 0, activation, batch_first, train))


@pytest.mark.parametrize("x_grad", [True, False])
@pytest.mark.parametrize("in_channels", [3, 8])  # direct loop (K·C_in <= 16) and GEMM path
def test_backward_opcheck(x_grad, in_channels):
    x, w, b = torch.randn(2, 11, in_channels), torch.randn(5, in_channels, 3), torch.randn(5)
    y, pre = torch.ops.fusedrnn.conv1d(x, w, b, 1, 2, 4, 0, 4, True, True)
    args = (torch.randn_like(y), x, w, y, pre, 1, 2, 4, 0, 4, True, True, x_grad)
    torch.library.opcheck(torch.ops.fusedrnn.conv1d_backward.default, args)
    dx, dw, db = torch.ops.fusedrnn.conv1d_backward(*args)
    assert dx.shape == (x.shape if x_grad else (0,))


@pytest.mark.parametrize("activation", [1, 4])  # relu reads y, gelu the preactivation
@pytest.mark.parametrize("in_channels", [3, 8])  # direct loop and GEMM path
@pytest.mark.parametrize("batch_first", [True, False])
def test_backward_reads_strided_upstream_gradients_in_place(activation, in_channels, batch_first):
    # the backward reads grad_y through its strides (no copy): expanded gradients (y.sum()'s is
    # one value for all), a permuted one and a slice of a larger one give what their contiguous
    # copies give
    torch.manual_seed(0)
    x, w, b = torch.randn(3, 17, in_channels), torch.randn(6, in_channels, 3), torch.randn(6)
    if not batch_first:
        x = x.transpose(0, 1).contiguous()
    y, pre = torch.ops.fusedrnn.conv1d(x, w, b, 2, 1, 1, 1, activation, batch_first, True)
    a, t, c = y.shape
    grads = {
        "expanded": torch.randn(1, 1, c).expand(a, t, c),
        "scalar": torch.randn(()).expand(a, t, c),  # y.sum()'s
        "permuted": torch.randn(c, t, a).permute(2, 1, 0),
        "sliced": torch.randn(a, 2 * t, c + 3)[:, ::2, 1 : c + 1],
    }
    for name, grad in grads.items():
        assert not grad.is_contiguous(), name
        got = torch.ops.fusedrnn.conv1d_backward(grad, x, w, y, pre, 2, 1, 1, 1, activation,
                                                 batch_first, True, True)
        want = torch.ops.fusedrnn.conv1d_backward(grad.contiguous(), x, w, y, pre, 2, 1, 1, 1,
                                                  activation, batch_first, True, True)
        for g, r in zip(got, want, strict=True):
            torch.testing.assert_close(g, r, rtol=0, atol=0, msg=name)


@pytest.mark.parametrize("in_channels", [1, 8])
def test_input_without_grad_skips_dx_and_keeps_weight_grads(in_channels):
    # a first layer over raw data: the backward computes no dx, and dW, db are as with dx
    torch.manual_seed(0)
    conv = fusedrnn.Conv1d(in_channels, 20, 3, stride=2, padding=1, activation="tanh")
    x = torch.randn(4, 37, in_channels)
    conv(x).pow(2).sum().backward()
    without = [p.grad.clone() for p in conv.parameters()]
    conv.zero_grad()
    x.requires_grad_()
    conv(x).pow(2).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for a, b in zip(without, (p.grad for p in conv.parameters()), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_compile_fullgraph_conv_then_gru():
    model = nn.ModuleDict({"conv": fusedrnn.Conv1d(3, 8, 4, stride=2, activation="relu"),
                           "gru": fusedrnn.GRU(8, 16, batch_first=True)})

    def run(x):
        y, _ = model["gru"](model["conv"](x))
        return y[:, -1]

    compiled = torch.compile(run, fullgraph=True, backend="aot_eager")
    x = torch.randn(2, 30, 3)
    eager = run(x)
    eager.square().sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    out = compiled(x)
    out.square().sum().backward()
    assert_close(out, eager)
    for g, p in zip(grads, model.parameters(), strict=True):
        assert_close(p.grad, g)


def test_module_from_torch_and_state_dict():
    conv = nn.Conv1d(5, 7, 3, stride=2, padding=1, dilation=2)
    fused = fusedrnn.Conv1d.from_torch(conv, activation="tanh")
    x = torch.randn(4, 20, 5)
    want = torch.tanh(conv(x.transpose(1, 2))).transpose(1, 2)
    assert_close(fused(x), want)
    back = nn.Conv1d(5, 7, 3, stride=2, padding=1, dilation=2)
    back.load_state_dict(fused.state_dict())
    assert torch.equal(back.weight, conv.weight)


def test_output_lengths_match_what_the_conv_produces():
    conv = fusedrnn.Conv1d(2, 3, 4, stride=2, padding="causal", dilation=2)
    lengths = torch.tensor([30, 17, 6, 1])
    expected = [conv(torch.randn(1, int(n), 2)).shape[1] for n in lengths]
    assert conv.output_lengths(lengths).tolist() == expected


def test_wavenet_is_causal_and_matches_a_torch_stack():
    net = fusedrnn.WaveNet(1, 8, kernel_size=2, dilations=(1, 2, 4, 8), repeats=2)
    assert net.receptive_field == 31
    x = torch.randn(2, 50, 1, requires_grad=True)
    y = net(x)
    assert y.shape == (2, 50, 8)
    # output step 20 depends on inputs 0..20 only
    (grad,) = torch.autograd.grad(y[:, 20].sum(), x)
    assert grad[:, 21:].abs().max() == 0 and grad[:, :21].abs().max() > 0
    # the same stack written with nn.functional
    skips, h_in = 0, x
    for conv in net.layers:
        h = reference(h_in, conv.weight, conv.bias, 1, "causal", conv.dilation, "relu", True)
        skips = skips + h
        h_in = h_in + h if h_in.shape == h.shape else h
    assert_close(y, skips)


@pytest.mark.parametrize("make,match", [
    (lambda: conv1d(torch.randn(2, 10, 4), torch.randn(5, 3, 3)),
     "x has 4 channels but weight expects in_channels=3"),
    (lambda: conv1d(torch.randn(2, 4, 3), torch.randn(5, 3, 7), padding="valid"),
     "the kernel spans 7 steps .* the padded input has only 4"),
    (lambda: conv1d(torch.randn(2, 10, 3), torch.randn(5, 3, 3), stride=0),
     "stride must be positive, got 0"),
    (lambda: conv1d(torch.randn(10, 3), torch.randn(5, 3, 3)),
     r"x must be \[batch, time, channels\] \(3-D\)"),
    (lambda: conv1d(torch.randn(2, 10, 3), torch.randn(5, 3, 3), torch.randn(4)),
     r"bias must have shape \[5\]"),
    (lambda: conv1d(torch.randn(2, 10, 3), torch.randn(5, 3, 3), activation="swish"),
     "activation must be one of"),
])
def test_bad_input(make, match):
    with pytest.raises((RuntimeError, ValueError), match=match):
        make()


def test_module_rejects_zero_stride():
    with pytest.raises(ValueError, match="stride must be positive"):
        fusedrnn.Conv1d(3, 4, 3, stride=0)


def test_compiled_gelu_training_step_matches_eager():
    # gelu saves its preactivation for backward (the C++ autograd checks it with symbolic sizes)
    conv = fusedrnn.Conv1d(3, 8, 3, dilation=2, padding="causal", activation="gelu")
    x = torch.randn(2, 25, 3, requires_grad=True)

    def step(inp):
        return conv(inp).square().sum()

    step(x).backward()
    expected = [x.grad.clone()] + [p.grad.clone() for p in conv.parameters()]
    x.grad = None
    conv.zero_grad()
    torch.compile(step, fullgraph=True, backend="aot_eager")(x).backward()
    for got, want in zip([x.grad] + [p.grad for p in conv.parameters()], expected, strict=True):
        assert_close(got, want)


def test_backward_after_a_forward_without_train_names_the_fix():
    # gelu's backward needs the preactivation, which only a train=True forward keeps
    x = torch.randn(2, 10, 3)
    w = torch.randn(4, 3, 2, requires_grad=True)
    y, pre = torch.ops.fusedrnn.conv1d(x, w, None, 1, 1, 0, 0, 4, True, False)
    assert pre.numel() == 0
    with pytest.raises(RuntimeError, match="train=False"):
        y.sum().backward()
    # activations that keep nothing are differentiable from a train=False forward as well
    y, _ = torch.ops.fusedrnn.conv1d(x, w, None, 1, 1, 0, 0, 1, True, False)
    y.sum().backward()
    assert w.grad is not None and w.grad.abs().sum() > 0


# The GEMM path (K·C_in above 32) runs the forward over y's rows in memory order and the backward
# over each weight-gradient group's sequences, in blocks that span sequences: many short
# sequences (one block holds several, cut mid-sequence), a few long ones (a block ends inside a
# sequence and the next starts there), and one sequence.
@pytest.mark.parametrize("B,T,stride", [(40, 30, 1), (37, 23, 2), (3, 700, 1), (1, 1300, 2)],
                         ids=["short", "short-strided", "long", "one"])
@pytest.mark.parametrize("batch_first", [True, False], ids=["batch-first", "time-major"])
@pytest.mark.parametrize("activation,bias", [("relu", True), ("gelu", False)])
# C_out 48 takes the weight and bias gradients from the one-pass kernel (a 32-row tile and a
# 16-row one), 24 from the BLAS and a column sum
@pytest.mark.parametrize("c_out", [48, 24], ids=["one-pass", "blas"])
@pytest.mark.parametrize("num_threads", [1, 2], indirect=True, ids=["1-thread", "2-threads"])
def test_gemm_blocks_across_sequences(B, T, stride, batch_first, activation, bias, c_out,
                                      num_threads):
    torch.manual_seed(1)
    padding = 1 if stride > 1 else "same"
    check(padding, stride, 1, 3, activation, bias, batch_first, c_in=16, c_out=c_out, T=T, B=B,
          scaled=True)


@pytest.mark.parametrize("c_in", [5, 17], ids=["direct", "gemm"])  # K·C_in 15 and 51
@pytest.mark.parametrize("batch_first", [True, False], ids=["batch-first", "time-major"])
def test_empty_batch(c_in, batch_first):
    # no rows at all: an empty output and zero weight and bias gradients, as nn.Conv1d gives
    # (the GEMM path's forward once divided by its zero blocks and killed the process)
    conv = fusedrnn.Conv1d(c_in, 32, 3, batch_first=batch_first, activation="relu")
    x = torch.randn((0, 10, c_in) if batch_first else (10, 0, c_in), requires_grad=True)
    y = conv(x)
    assert y.shape == ((0, 8, 32) if batch_first else (8, 0, 32))  # no padding: 10 - 3 + 1 steps
    y.sum().backward()
    assert x.grad.shape == x.shape
    assert torch.equal(conv.weight.grad, torch.zeros_like(conv.weight))
    assert torch.equal(conv.bias.grad, torch.zeros_like(conv.bias))
