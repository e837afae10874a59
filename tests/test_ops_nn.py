"""The fused ops of shendu.ops.nn: gradient checks, double backward, and forward+backward against PyTorch."""

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

import shendu
from shendu.ops import nn

if "optest" not in sys.modules:  # shared helpers, loaded by path (pytest runs with --import-mode=importlib)
    _spec = importlib.util.spec_from_file_location("optest", Path(__file__).with_name("optest.py"))
    sys.modules["optest"] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules["optest"])
import optest  # noqa: E402


def _t64(*shape, low=None, high=None):
    rng = np.random.default_rng(sum(shape) + len(shape))
    data = rng.standard_normal(shape) if low is None else rng.uniform(low, high, shape)
    return shendu.tensor(data, dtype="float64", requires_grad=True)


def _probs(n, k, seed=1):
    p = np.random.default_rng(seed).uniform(0.1, 1.0, (n, k))
    return shendu.tensor(p / p.sum(axis=1, keepdims=True), dtype="float64", requires_grad=True)


def _labels(n, k, seed=2):
    return np.random.default_rng(seed).integers(0, k, n)


def _seeded_dropout(x):
    shendu.seed(11)  # the same mask on every call, so finite differences see one function
    return nn.dropout(x, 0.4)


GRADCHECK_CASES = [
    ("LinearOp", nn.linear, lambda: [_t64(4, 3), _t64(3, 2), _t64(2)]),
    ("LinearOp", nn.linear, lambda: [_t64(2, 3, 4), _t64(4, 2), _t64(2)]),
    ("LinearReluOp", lambda x, w, b: nn.linear(x, w, b, activation="relu"), lambda: [_t64(5, 3), _t64(3, 4), _t64(4)]),
    ("LinearReluOp", lambda x, w: nn.linear(x, w, activation="relu"), lambda: [_t64(2, 3, 4), _t64(4, 3)]),
    ("SoftmaxCrossEntropyOp", nn.softmax_cross_entropy, lambda: [_t64(5, 4), _labels(5, 4)]),
    ("SoftmaxCrossEntropyOp", nn.softmax_cross_entropy, lambda: [_t64(5, 4), _probs(5, 4)]),
    ("SoftmaxCrossEntropyOp", lambda z, t: nn.softmax_cross_entropy(z, t, 0.2, "none"),
     lambda: [_t64(2, 3, 4), _labels(6, 4).reshape(2, 3)]),
    ("NegativeLogLikelihoodOp", nn.negative_log_likelihood, lambda: [_t64(5, 4), _labels(5, 4)]),
    ("NegativeLogLikelihoodOp", nn.negative_log_likelihood, lambda: [_t64(2, 3, 4), _labels(6, 4).reshape(2, 3)]),
    ("SigmoidBinaryCrossEntropyOp", nn.sigmoid_binary_cross_entropy,
     lambda: [_t64(4, 3), _t64(4, 3, low=0.0, high=1.0)]),
    ("SigmoidBinaryCrossEntropyOp", lambda z, t: nn.sigmoid_binary_cross_entropy(z, t, "none"),
     lambda: [_t64(3, 2), _t64(3, 2, low=0.0, high=1.0)]),
    ("MeanSquaredErrorOp", nn.mean_squared_error, lambda: [_t64(5, 2), _t64(5, 2)]),
    ("MeanSquaredErrorOp", lambda p, t: nn.mean_squared_error(p, t, axis=-1), lambda: [_t64(4, 3), _t64(4, 3)]),
    ("DropoutOp", _seeded_dropout, lambda: [_t64(6, 5)]),
]


@pytest.mark.parametrize("name,fn,make_inputs", GRADCHECK_CASES, ids=[f"{c[0]}-{i}" for i, c in
                                                                      enumerate(GRADCHECK_CASES)])
def test_nn_op_gradcheck(name, fn, make_inputs):
    assert shendu.gradcheck(fn, *make_inputs())


@pytest.mark.parametrize("name,fn,make_inputs", GRADCHECK_CASES, ids=[f"{c[0]}-{i}" for i, c in
                                                                      enumerate(GRADCHECK_CASES)])
def test_nn_op_gradgradcheck(name, fn, make_inputs):
    assert shendu.gradgradcheck(fn, *make_inputs())


def test_linear_skips_input_gradient_and_checks_shapes():
    x = shendu.tensor(np.ones((3, 4), np.float32))
    w = shendu.Parameter(np.ones((4, 2), np.float32))
    y = nn.linear(x, w)
    y.sum().backward()
    assert x.grad is None and y.dtype == np.float32
    np.testing.assert_allclose(w.grad.data, np.full((4, 2), 3.0))
    with pytest.raises(ValueError, match=r"kernel of shape \(2, 4\).*\.T"):
        nn.linear(x, shendu.ones(2, 4))


def test_linear_matches_torch():
    torch = pytest.importorskip("torch")
    x, w, b = _t64(2, 5, 3), _t64(3, 4), _t64(4)
    tx, tw, tb = (torch.tensor(t.data, requires_grad=True) for t in (x, w, b))
    y = nn.linear(x, w, b)
    ty = torch.nn.functional.linear(tx, tw.T, tb)
    g = np.random.default_rng(0).standard_normal(y.shape)
    y.backward(g)
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-12)
    for ours, theirs in ((x, tx), (w, tw), (b, tb)):
        np.testing.assert_allclose(ours.grad.data, theirs.grad.numpy(), rtol=1e-10)


@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_relu_matches_torch(with_bias):
    arrays = optest.make_arrays(((2, 5, 3), (3, 4), (4,))[:3 if with_bias else 2])

    def torch_fn(x, w, b=None):
        torch = pytest.importorskip("torch")
        return torch.relu(torch.nn.functional.linear(x, w.T, b))

    optest.compare_with_torch(lambda x, w, b=None: nn.linear(x, w, b, activation="relu"), torch_fn, arrays)
    optest.check_float32(lambda x, w, b=None: nn.linear(x, w, b, activation="relu"), arrays)


def test_linear_relu_is_linear_then_relu_on_the_kernel_path():
    """Large float32 arrays take the parallel bias+ReLU kernel: the same bits as the two ops it replaces."""
    rng = np.random.default_rng(3)
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((128, 64), (64, 512), (512,)))
    g = rng.standard_normal((128, 512)).astype(np.float32)
    results = []
    for fused in (True, False):
        xt, wt, bt = (shendu.tensor(a, requires_grad=True) for a in (x, w, b))
        y = nn.linear(xt, wt, bt, activation="relu") if fused else shendu.relu(nn.linear(xt, wt, bt))
        y.backward(shendu.tensor(g))
        results.append([y.data, xt.grad.data, wt.grad.data, bt.grad.data])
    for got, want in zip(*results):
        np.testing.assert_array_equal(got, want)
    assert optest.graph_op_names(nn.linear(shendu.tensor(x), shendu.tensor(w, requires_grad=True), activation="relu")) \
        >= {"LinearReluOp"}


def test_linear_rejects_an_activation_it_does_not_fuse():
    x, w = shendu.ones(2, 3), shendu.ones(3, 4)
    with pytest.raises(ValueError, match=r"linear: activation must be one of \(None, 'relu'\).*got 'tanh'"):
        nn.linear(x, w, activation="tanh")


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("sparse", [True, False])
def test_softmax_cross_entropy_matches_torch(smoothing, reduction, sparse):
    torch = pytest.importorskip("torch")
    z = _t64(6, 5)
    target = _labels(6, 5) if sparse else _probs(6, 5).data
    tz = torch.tensor(z.data, requires_grad=True)
    y = nn.softmax_cross_entropy(z, target, smoothing, reduction)
    ty = torch.nn.functional.cross_entropy(tz, torch.tensor(target), label_smoothing=smoothing, reduction=reduction)
    g = np.random.default_rng(3).standard_normal(y.shape)
    y.backward(g)
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(z.grad.data, tz.grad.numpy(), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_softmax_cross_entropy_sequence_and_ignore_index_match_torch(smoothing):
    torch = pytest.importorskip("torch")
    z = _t64(2, 4, 3)  # (batch, time, classes): classes last
    labels = _labels(8, 3).reshape(2, 4)
    labels[0, 1] = labels[1, 3] = -100
    tz = torch.tensor(z.data, requires_grad=True)
    y = nn.softmax_cross_entropy(z, labels, smoothing, ignore_index=-100)
    ty = torch.nn.functional.cross_entropy(tz.permute(0, 2, 1), torch.tensor(labels), ignore_index=-100,
                                           label_smoothing=smoothing)
    y.backward()
    ty.backward()
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(z.grad.data, tz.grad.numpy(), rtol=1e-10, atol=1e-14)
    assert shendu.gradcheck(lambda t: nn.softmax_cross_entropy(t, labels, 0.1, ignore_index=-100), z)


def test_softmax_cross_entropy_probability_target_gradient_matches_torch():
    torch = pytest.importorskip("torch")
    z, t = _t64(3, 4), _probs(3, 4)
    tz, tt = torch.tensor(z.data, requires_grad=True), torch.tensor(t.data, requires_grad=True)
    nn.softmax_cross_entropy(z, t, 0.3).backward()
    torch.nn.functional.cross_entropy(tz, tt, label_smoothing=0.3).backward()
    np.testing.assert_allclose(t.grad.data, tt.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(z.grad.data, tz.grad.numpy(), rtol=1e-10)


def test_softmax_cross_entropy_is_stable_and_keeps_float32():
    z = shendu.tensor(np.array([[1000.0, -1000.0, 0.0], [-5e4, 5e4, 0.0]], np.float32), requires_grad=True)
    y = nn.softmax_cross_entropy(z, np.array([0, 0]))
    y.backward()
    assert y.dtype == np.float32 and z.grad.dtype == np.float32
    np.testing.assert_allclose(y.data, 5e4, rtol=1e-6)
    np.testing.assert_allclose(z.grad.data, [[0, 0, 0], [-0.5, 0.5, 0]], atol=1e-6)


def test_softmax_cross_entropy_errors_name_shapes():
    z = shendu.randn(4, 3)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        nn.softmax_cross_entropy(z, np.array([0, 1, 2, 3]))
    with pytest.raises(ValueError, match=r"integer labels of shape \(4,\), got \(4, 1\)"):
        nn.softmax_cross_entropy(z, np.zeros((4, 1), int))
    with pytest.raises(ValueError, match="reduction"):
        nn.softmax_cross_entropy(z, np.zeros(4, int), reduction="avg")


@pytest.mark.parametrize("shape", [(6, 5), (2, 3, 5)])
def test_negative_log_likelihood_matches_torch(shape):
    torch = pytest.importorskip("torch")
    log_p = _t64(*shape)
    labels = _labels(math.prod(shape[:-1]), shape[-1]).reshape(shape[:-1])
    t_log_p = torch.tensor(log_p.data, requires_grad=True)
    y = nn.negative_log_likelihood(log_p, labels)
    # PyTorch takes the classes on axis 1
    ty = torch.nn.functional.nll_loss(t_log_p.movedim(-1, 1), torch.tensor(labels), reduction="none")
    g = np.random.default_rng(3).standard_normal(y.shape)
    y.backward(g)
    ty.backward(torch.tensor(g))
    np.testing.assert_array_equal(y.data, ty.detach().numpy())
    np.testing.assert_array_equal(log_p.grad.data, t_log_p.grad.numpy())


def test_negative_log_likelihood_keeps_float32_and_names_bad_labels():
    log_p = shendu.tensor(np.log(np.full((4, 3), 1 / 3, np.float32)), requires_grad=True)
    y = nn.negative_log_likelihood(log_p, np.array([0, 2, 1, 2]), "my_loss")
    y.sum().backward()
    assert y.dtype == np.float32 and log_p.grad.dtype == np.float32
    np.testing.assert_array_equal(log_p.grad.data, -np.eye(3, dtype=np.float32)[[0, 2, 1, 2]])
    with pytest.raises(ValueError, match=r"my_loss: labels must be in \[0, 3\) for 3 classes, got values from -1 to 2"):
        nn.negative_log_likelihood(log_p, np.array([0, 2, -1, 2]), "my_loss")  # -1 would read the last class
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\).*from 0 to 3"):
        nn.negative_log_likelihood(log_p, np.array([0, 3, 1, 2]))
    with pytest.raises(ValueError, match=r"shape \(4, 3\) need integer labels of shape \(4,\), got float64"):
        nn.negative_log_likelihood(log_p, np.array([0.0, 2.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"got int64 labels of shape \(4, 1\)"):
        nn.negative_log_likelihood(log_p, np.array([[0], [2], [1], [2]]))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_sigmoid_binary_cross_entropy_matches_torch(reduction):
    torch = pytest.importorskip("torch")
    z, t = _t64(4, 3), _t64(4, 3, low=0.0, high=1.0)
    z.data[0, 0], z.data[1, 1] = 800.0, -800.0  # stable at extreme logits
    tz, tt = torch.tensor(z.data, requires_grad=True), torch.tensor(t.data, requires_grad=True)
    y = nn.sigmoid_binary_cross_entropy(z, t, reduction)
    ty = torch.nn.functional.binary_cross_entropy_with_logits(tz, tt, reduction=reduction)
    g = np.random.default_rng(4).standard_normal(y.shape)
    y.backward(g)
    ty.backward(torch.tensor(g))
    assert np.isfinite(y.data).all()
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(z.grad.data, tz.grad.numpy(), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(t.grad.data, tt.grad.numpy(), rtol=1e-10)


def test_mean_squared_error_matches_torch_and_keeps_float32():
    torch = pytest.importorskip("torch")
    p = shendu.tensor(np.random.default_rng(5).standard_normal((8, 2)).astype(np.float32), requires_grad=True)
    t = np.random.default_rng(6).standard_normal((8, 2)).astype(np.float32)
    tp = torch.tensor(p.data, requires_grad=True)
    y = nn.mean_squared_error(p, t)
    ty = torch.nn.functional.mse_loss(tp, torch.tensor(t))
    y.backward()
    ty.backward()
    assert y.dtype == np.float32 and y.shape == () and p.grad.dtype == np.float32
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(p.grad.data, tp.grad.numpy(), rtol=1e-6)


def test_mean_squared_error_per_sample():
    p, t = _t64(4, 3), _t64(4, 3)
    np.testing.assert_allclose(nn.mean_squared_error(p, t, axis=-1).data, ((p.data - t.data) ** 2).mean(axis=-1))


def test_dropout_mask_scale_and_reproducibility():
    x = shendu.ones(200, 100, requires_grad=True)
    shendu.seed(3)
    y = nn.dropout(x, 0.3)
    kept = y.data != 0
    assert abs(kept.mean() - 0.7) < 0.01
    np.testing.assert_allclose(y.data[kept], 1 / 0.7, rtol=1e-6)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.data, y.data)
    shendu.seed(3)
    np.testing.assert_array_equal(nn.dropout(x, 0.3).data, y.data)
    assert nn.dropout(x, 0.3, training=False) is x
    assert not nn.dropout(x, 1.0).data.any()
    with pytest.raises(ValueError, match="rate"):
        nn.dropout(x, 1.5)


def test_dropout_noise_shape_broadcasts():
    x = shendu.ones(4, 3, 5)
    y = nn.dropout(x, 0.5, noise_shape=(None, 1, 5))
    assert (y.data == y.data[:, :1, :]).all()
