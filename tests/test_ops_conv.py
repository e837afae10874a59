"""Convolution ops (shendu.ops.convolution): gradient checks incl. double backward, PyTorch forward/backward/double
backward (HWIO -> OIHW kernels, NHWC <-> NCHW), agreement with the loop-level reference, errors."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import shendu
from shendu import kernels, reference
from shendu.kernels import gemm
from shendu.ops import convolution as conv

if "optest" not in sys.modules:  # shared helpers, loaded by path (pytest runs with --import-mode=importlib)
    _spec = importlib.util.spec_from_file_location("optest", Path(__file__).with_name("optest.py"))
    sys.modules["optest"] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules["optest"])
import optest  # noqa: E402


def _t64(*shape, seed=0):
    data = np.random.default_rng(seed + sum(shape)).standard_normal(shape)
    return shendu.tensor(data, dtype="float64", requires_grad=True)


def _filter_grad(x, gy):
    geo = conv.ConvGeometry.make((5, 4), (3, 2), (2, 1), "same", 1, 1)
    return conv.Conv2DFilterGradOp(geo, (3, 2, 2, 3))(x, gy)


GRADCHECK_CASES = [
    ("Conv2DOp", lambda x, w, b: conv.conv2d(x, w, b, strides=2, padding="same"),
     lambda: [_t64(2, 5, 4, 2), _t64(3, 3, 2, 3), _t64(3)]),
    ("Conv2DOp", lambda x, w: conv.conv2d(x, w, padding=1, dilation=2, groups=2),
     lambda: [_t64(1, 5, 5, 4), _t64(2, 2, 2, 4)]),
    ("Conv2DReluOp", lambda x, w, b: conv.conv2d(x, w, b, strides=2, padding="same", activation="relu"),
     lambda: [_t64(2, 5, 4, 2), _t64(3, 3, 2, 3), _t64(3)]),
    ("Conv2DReluOp", lambda x, w: conv.conv2d(x, w, padding=1, groups=2, activation="relu"),
     lambda: [_t64(1, 5, 5, 4), _t64(2, 2, 2, 4)]),
    ("Conv2DTransposeOp", lambda x, w, b: conv.conv2d_transpose(x, w, b, strides=2, padding="same"),
     lambda: [_t64(2, 3, 2, 3), _t64(3, 3, 2, 3), _t64(2)]),
    ("Conv2DTransposeReluOp",
     lambda x, w, b: conv.conv2d_transpose(x, w, b, strides=2, padding="same", activation="relu"),
     lambda: [_t64(2, 3, 2, 3), _t64(3, 3, 2, 3), _t64(2)]),
    ("Conv2DFilterGradOp", _filter_grad, lambda: [_t64(1, 5, 4, 2), _t64(1, 3, 4, 3)]),
]

# (x shape, kernel shape, keyword arguments of conv2d / torch.nn.functional.conv2d)
CONV_CASES = [
    ((2, 6, 5, 3), (3, 3, 3, 4), dict()),
    ((2, 7, 6, 3), (3, 2, 3, 4), dict(strides=2, padding=1)),
    ((1, 8, 7, 2), (2, 3, 2, 3), dict(strides=(2, 3), padding=(1, 0))),
    ((2, 9, 8, 4), (3, 3, 2, 6), dict(strides=(2, 1), padding=(2, 1), dilation=2, groups=2)),
    ((2, 6, 6, 3), (3, 3, 1, 6), dict(padding=1, groups=3)),  # depthwise, multiplier 2
    ((1, 7, 7, 2), (1, 1, 2, 5), dict(strides=2)),
]


def _torch_conv(kw):
    def fn(x, w, b):
        torch = pytest.importorskip("torch")
        args = {"stride": kw.get("strides", 1), "padding": kw.get("padding", 0), "dilation": kw.get("dilation", 1),
                "groups": kw.get("groups", 1)}
        y = torch.nn.functional.conv2d(x.permute(0, 3, 1, 2), w.permute(3, 2, 0, 1), b, **args)
        return y.permute(0, 2, 3, 1)
    return fn


@pytest.mark.parametrize("x_shape, w_shape, kw", CONV_CASES)
def test_conv2d_matches_torch(x_shape, w_shape, kw):
    arrays = optest.make_arrays((x_shape, w_shape, (w_shape[3],)))
    optest.compare_with_torch(lambda x, w, b: conv.conv2d(x, w, b, **kw), _torch_conv(kw), arrays)


@pytest.mark.parametrize("padding", [0, 1, 3])
def test_conv2d_on_winograd_matches_torch(padding):
    """A 3x3 stride-1 convolution with enough channels runs Winograd's F(4x4, 3x3) (forward, both gradients, and
    the double backward through them): against PyTorch in float64, and within float32 rounding of it."""
    if not (kernels.available() and gemm.available()):
        pytest.skip("Winograd's kernels are not available here (no Numba, or a BLAS they cannot call)")
    x_shape, w_shape = (2, 12, 11, 32), (3, 3, 32, 40)
    geo = conv.ConvGeometry.make(x_shape[1:3], (3, 3), 1, padding)
    arrays = optest.make_arrays((x_shape, w_shape, (w_shape[3],)))
    assert conv._winograd(arrays[0], w_shape, geo, arrays[1])
    optest.compare_with_torch(lambda x, w, b: conv.conv2d(x, w, b, padding=padding),
                              _torch_conv(dict(padding=padding)), arrays)
    optest.check_float32(lambda x, w, b: conv.conv2d(x, w, b, padding=padding), arrays)


@pytest.mark.parametrize("x_shape, w_shape, kw", CONV_CASES[:4])
def test_conv2d_relu_matches_torch(x_shape, w_shape, kw):
    arrays = optest.make_arrays((x_shape, w_shape, (w_shape[3],)))
    torch_conv = _torch_conv(kw)
    optest.compare_with_torch(lambda x, w, b: conv.conv2d(x, w, b, activation="relu", **kw),
                              lambda x, w, b: torch_conv(x, w, b).relu(), arrays)
    optest.check_float32(lambda x, w, b: conv.conv2d(x, w, b, activation="relu", **kw), arrays)


def test_conv2d_relu_channels_first_and_errors():
    x, w, b = _t64(2, 3, 6, 5), _t64(3, 3, 3, 4, seed=1), _t64(4, seed=2)
    fused = conv.conv2d(x, w, b, data_format="channels_first", activation="relu")
    np.testing.assert_array_equal(fused.data, shendu.relu(conv.conv2d(x, w, b, data_format="channels_first")).data)
    with pytest.raises(ValueError, match=r"conv2d: activation must be one of \(None, 'relu'\).*got 'gelu'"):
        conv.conv2d(x, w, b, data_format="channels_first", activation="gelu")


@pytest.mark.parametrize("x_shape, w_shape, kw", CONV_CASES[:4])
def test_conv2d_gradcheck_and_double_backward(x_shape, w_shape, kw):
    x, w = _t64(1, *x_shape[1:]), _t64(*w_shape, seed=1)  # batch 1 keeps the finite differences quick
    shendu.gradcheck(lambda x, w: conv.conv2d(x, w, **kw), x, w)
    shendu.gradgradcheck(lambda x, w: conv.conv2d(x, w, **kw), x, w)


@pytest.mark.parametrize("size, k, s, d", [(7, 3, 2, 1), (8, 3, 2, 1), (6, 4, 1, 1), (9, 3, 1, 2), (5, 2, 3, 1)])
def test_same_padding_matches_tensorflow_rule_and_torch(size, k, s, d):
    """'same' pads ceil(size/s) outputs, the odd pixel at the bottom/right: torch with that explicit padding."""
    torch = pytest.importorskip("torch")
    lo, hi = conv.same_padding(size, k, s, d)
    assert -(-size // s) == (size + lo + hi - d * (k - 1) - 1) // s + 1
    assert hi - lo in (0, 1)
    x, w = optest.make_arrays(((1, size, size, 2), (k, k, 2, 3)))
    y = conv.conv2d(x, w, strides=s, padding="same", dilation=d)
    tx = torch.nn.functional.pad(torch.tensor(x).permute(0, 3, 1, 2), (lo, hi, lo, hi))
    ty = torch.nn.functional.conv2d(tx, torch.tensor(w).permute(3, 2, 0, 1), stride=s, dilation=d)
    np.testing.assert_allclose(y, ty.permute(0, 2, 3, 1).numpy(), rtol=1e-10, atol=1e-12)


# (x shape, kernel (KH, KW, C_out/groups, C_in), strides, padding, output_padding, dilation, groups)
TRANSPOSE_CASES = [
    ((2, 3, 4, 3), (3, 3, 2, 3), 2, 1, 1, 1, 1),
    ((1, 4, 3, 2), (2, 3, 3, 2), (2, 1), 0, 0, 1, 1),
    ((1, 3, 3, 4), (3, 2, 1, 4), 1, (1, 0), 0, (2, 1), 2),
]


@pytest.mark.parametrize("x_shape, w_shape, s, p, op, d, g", TRANSPOSE_CASES)
def test_conv2d_transpose_matches_torch(x_shape, w_shape, s, p, op, d, g):
    def torch_fn(x, w, b):
        torch = pytest.importorskip("torch")
        y = torch.nn.functional.conv_transpose2d(x.permute(0, 3, 1, 2), w.permute(3, 2, 0, 1), b, stride=s,
                                                 padding=p, output_padding=op, groups=g, dilation=d)
        return y.permute(0, 2, 3, 1)

    arrays = optest.make_arrays((x_shape, w_shape, (w_shape[2] * g,)))
    optest.compare_with_torch(lambda x, w, b: conv.conv2d_transpose(x, w, b, s, p, op, d, g), torch_fn, arrays)
    fused = lambda x, w, b: conv.conv2d_transpose(x, w, b, s, p, op, d, g, activation="relu")  # noqa: E731
    optest.compare_with_torch(fused, lambda x, w, b: torch_fn(x, w, b).relu(), arrays)
    optest.check_float32(fused, arrays)


@pytest.mark.parametrize("padding, out", [("same", (6, 8)), ("valid", (7, 9))])
def test_conv2d_transpose_keras_sizes_and_reference(padding, out):
    x, w = optest.make_arrays(((2, 3, 4, 3), (3, 3, 2, 3)))
    y = conv.conv2d_transpose(x, w, strides=2, padding=padding)
    assert y.shape == (2, *out, 2)
    np.testing.assert_allclose(y, reference.conv2d_transpose(x, w, out, 2, padding), rtol=1e-10, atol=1e-12)


def test_conv2d_transpose_is_the_input_gradient_of_conv2d():
    x, w, gy = optest.make_arrays(((2, 7, 7, 3), (3, 3, 3, 4), (2, 4, 4, 4)))
    xt = shendu.tensor(x, dtype="float64", requires_grad=True)
    conv.conv2d(xt, w, strides=2, padding="same").backward(gy)
    dx = conv.conv2d_transpose(gy, w, strides=2, padding="same", output_padding=0)  # Keras: 7 = (4-1)*2 + 3 - 2
    np.testing.assert_allclose(dx, xt.grad.data, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("x_shape, w_shape, kw", CONV_CASES)
def test_fast_conv2d_agrees_with_reference(x_shape, w_shape, kw):
    x, w, b, gy = optest.make_arrays((x_shape, w_shape, (w_shape[3],), (1,)))
    y_ref = reference.conv2d(x, w, b, **kw)
    gy = np.random.default_rng(3).standard_normal(y_ref.shape)
    xt, wt, bt = optest.as_tensors([x, w, b])
    y = conv.conv2d(xt, wt, bt, **kw)
    y.backward(gy)
    np.testing.assert_allclose(y.data, y_ref, rtol=1e-10, atol=1e-12)
    for got, want in zip((xt.grad, wt.grad, bt.grad), reference.conv2d_backward(x, w, gy, **kw)):
        np.testing.assert_allclose(got.data, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("padding", ["valid", "same", "causal", 2])
def test_conv1d_matches_torch(padding):
    torch = pytest.importorskip("torch")
    x, w, b = optest.make_arrays(((2, 9, 3), (3, 3, 4), (4,)))
    xt, wt, bt = optest.as_tensors([x, w, b])
    y = conv.conv1d(xt, wt, bt, strides=1, padding=padding, dilation=2)
    lo = {"valid": 0, "same": 2, "causal": 4, 2: 2}[padding]
    hi = {"valid": 0, "same": 2, "causal": 0, 2: 2}[padding]
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = torch.nn.functional.conv1d(torch.nn.functional.pad(tx.permute(0, 2, 1), (lo, hi)), tw.permute(2, 1, 0), tb,
                                    dilation=2).permute(0, 2, 1)
    gy = np.random.default_rng(5).standard_normal(ty.shape)
    y.backward(gy)
    ty.backward(torch.tensor(gy))
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    for ours, theirs in zip((xt, wt, bt), (tx, tw, tb)):
        np.testing.assert_allclose(ours.grad.data, theirs.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_conv1d_causal_output_sees_only_the_past():
    x = _t64(1, 8, 2)
    y = conv.conv1d(x, _t64(3, 2, 1, seed=2), padding="causal")
    y[0, 4, 0].backward()
    assert np.all(x.grad.data[0, 5:] == 0) and np.any(x.grad.data[0, :5] != 0)


def test_channels_first_matches_channels_last():
    x, w, b = optest.make_arrays(((2, 5, 6, 3), (3, 3, 3, 4), (4,)))
    y_last = conv.conv2d(x, w, b, padding="same")
    xt = shendu.tensor(x.transpose(0, 3, 1, 2).copy(), dtype="float64")
    y_first = conv.conv2d(xt, w, b, padding="same", data_format="channels_first")
    np.testing.assert_allclose(y_first.data, y_last.transpose(0, 3, 1, 2), rtol=1e-12)


def test_conv2d_float32_keeps_float32():
    optest.check_float32(lambda x, w, b: conv.conv2d(x, w, b, padding="same"),
                         optest.make_arrays(((1, 4, 4, 2), (3, 3, 2, 2), (2,))))


def test_first_layer_skips_the_input_gradient():
    x = shendu.tensor(np.ones((1, 4, 4, 1)), dtype="float64")
    w = _t64(3, 3, 1, 2)
    conv.conv2d(x, w).sum().backward()
    assert x.grad is None and w.grad.shape == (3, 3, 1, 2)
    np.testing.assert_allclose(w.grad.data, np.full((3, 3, 1, 2), 4.0))


@pytest.mark.parametrize("kernel, message", [((3, 3, 2, 4), "channels"), ((2, 3, 4), "4-D"), ((4, 4, 3, 4), "kernel")])
def test_conv2d_errors_name_the_shapes(kernel, message):
    x = np.zeros((1, 3, 3, 3))
    with pytest.raises(ValueError, match=message):
        conv.conv2d(x, np.zeros(kernel))


def test_conv2d_rejects_bad_padding():
    with pytest.raises(ValueError, match="padding"):
        conv.conv2d(np.zeros((1, 5, 5, 1)), np.zeros((3, 3, 1, 1)), padding="full")


def test_pooled_im2col_buffers_never_alias_live_graphs():
    """Two same-shaped convolutions in one graph, a retained graph run twice, and a second step that reuses
    the pooled buffers all give the gradients of a fresh computation."""
    x, w1, w2 = optest.make_arrays(((2, 6, 6, 3), (3, 3, 3, 3), (3, 3, 3, 3)))

    def grads(retain=False):
        xt, w1t, w2t = optest.as_tensors([x, w1, w2])
        loss = (conv.conv2d(xt, w1t, padding="same") * conv.conv2d(xt, w2t, padding="same")).sum()
        loss.backward(retain_graph=retain)
        first = [t.grad.data.copy() for t in (xt, w1t, w2t)]
        if retain:
            for t in (xt, w1t, w2t):
                t.grad = None
            with shendu.no_grad():  # inference in between takes a pooled buffer and gives it back
                conv.conv2d(x, w1, padding="same")
            loss.backward()
            for a, t in zip(first, (xt, w1t, w2t)):
                np.testing.assert_array_equal(a, t.grad.data)
        return first

    expected = [reference.conv2d_backward(x, w1, reference.conv2d(x, w2, padding="same"), padding="same"),
                reference.conv2d_backward(x, w2, reference.conv2d(x, w1, padding="same"), padding="same")]
    for retain in (False, True):
        dx, dw1, dw2 = grads(retain)
        np.testing.assert_allclose(dx, expected[0][0] + expected[1][0], rtol=1e-10)
        np.testing.assert_allclose(dw1, expected[0][1], rtol=1e-10)
        np.testing.assert_allclose(dw2, expected[1][1], rtol=1e-10)


def test_reference_conv2d_backward_matches_finite_differences():
    """The textbook backward is itself checked: <gy, d conv> against central differences along random directions."""
    x, w, b, dx, dw, db = optest.make_arrays(((1, 5, 4, 4), (3, 2, 2, 4), (4,), (1, 5, 4, 4), (3, 2, 2, 4), (4,)))
    kw = dict(strides=2, padding="same", groups=2)
    gy = np.random.default_rng(7).standard_normal(reference.conv2d(x, w, b, **kw).shape)
    eps = 1e-6
    numeric = (np.sum(reference.conv2d(x + eps * dx, w + eps * dw, b + eps * db, **kw) * gy)
               - np.sum(reference.conv2d(x - eps * dx, w - eps * dw, b - eps * db, **kw) * gy)) / (2 * eps)
    gx, gw, gb = reference.conv2d_backward(x, w, gy, **kw)
    np.testing.assert_allclose(numeric, np.sum(gx * dx) + np.sum(gw * dw) + np.sum(gb * db), rtol=1e-7)
