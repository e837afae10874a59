"""shendu.functional against torch.nn.functional: values and gradients, same names and arguments."""

import numpy as np
import pytest

import shendu
import shendu.functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def _pair(shape, seed=0, low=None, high=None):
    rng = np.random.default_rng(seed)
    data = rng.standard_normal(shape) if low is None else rng.uniform(low, high, shape)
    return shendu.tensor(data, dtype="float64", requires_grad=True), torch.tensor(data, requires_grad=True)


def _compare(ours, theirs, inputs):
    """Forward values and the gradients of every (shendu, torch) input pair for a random upstream gradient."""
    np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = np.random.default_rng(9).standard_normal(ours.shape)
    ours.backward(g)
    theirs.backward(torch.tensor(g))
    for a, b in inputs:
        np.testing.assert_allclose(a.grad.data, b.grad.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name,kwargs", [
    ("relu", {}), ("sigmoid", {}), ("tanh", {}), ("elu", {}), ("selu", {}), ("silu", {}), ("gelu", {}),
    ("gelu", {"approximate": "tanh"}), ("leaky_relu", {}), ("leaky_relu", {"negative_slope": 0.3}),
    ("softplus", {}), ("softplus", {"beta": 2.0}), ("logsigmoid", {}), ("softsign", {}), ("hardtanh", {}),
    ("relu6", {}), ("softmax", {"dim": -1}), ("log_softmax", {"dim": 0}),
])
def test_activation_matches_torch(name, kwargs):
    x, tx = _pair((4, 5))
    x.data[0, :] *= 4  # reach relu6 / hardtanh limits
    tx.data.copy_(torch.tensor(x.data))
    _compare(getattr(F, name)(x, **kwargs), getattr(TF, name)(tx, **kwargs), [(x, tx)])


def test_linear_takes_an_in_out_kernel():
    (x, tx), (w, tw), (b, tb) = _pair((3, 4), 1), _pair((4, 2), 2), _pair((2,), 3)
    _compare(F.linear(x, w, b), TF.linear(tx, tw.T, tb), [(x, tx), (w, tw), (b, tb)])


@pytest.mark.parametrize("kwargs", [{}, {"reduction": "sum"}, {"reduction": "none"}, {"label_smoothing": 0.2},
                                    {"weight": [1.0, 2.0, 0.5, 1.5]},
                                    {"weight": [1.0, 2.0, 0.5, 1.5], "label_smoothing": 0.1, "reduction": "sum"}])
def test_cross_entropy_with_labels_matches_torch(kwargs):
    x, tx = _pair((5, 4, 3), 4)  # (N, C, d): classes on axis 1, as PyTorch
    labels = np.random.default_rng(5).integers(0, 4, (5, 3))
    labels[1, 2] = -100
    ours_kw = {**kwargs, "weight": np.array(kwargs["weight"])} if "weight" in kwargs else kwargs
    theirs_kw = {**kwargs, "weight": torch.tensor(kwargs["weight"], dtype=torch.float64)} if "weight" in kwargs \
        else kwargs
    _compare(F.cross_entropy(x, labels, **ours_kw), TF.cross_entropy(tx, torch.tensor(labels), **theirs_kw),
             [(x, tx)])


@pytest.mark.parametrize("weight", [None, [0.5, 2.0, 1.0]])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_cross_entropy_with_probabilities_matches_torch(weight, reduction):
    (x, tx), (t, tt) = _pair((4, 3), 6), _pair((4, 3), 7, 0.0, 1.0)
    w, tw = (None, None) if weight is None else (np.array(weight), torch.tensor(weight, dtype=torch.float64))
    _compare(F.cross_entropy(x, t, weight=w, reduction=reduction, label_smoothing=0.1),
             TF.cross_entropy(tx, tt, weight=tw, reduction=reduction, label_smoothing=0.1), [(x, tx), (t, tt)])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_loss_matches_torch(reduction):
    x, tx = _pair((6, 4), 8)
    labels = np.array([0, 3, 1, -100, 2, 2])
    w = np.array([0.5, 1.0, 2.0, 1.0])
    _compare(F.nll_loss(F.log_softmax(x), labels, weight=w, reduction=reduction),
             TF.nll_loss(TF.log_softmax(tx, -1), torch.tensor(labels), weight=torch.tensor(w), reduction=reduction),
             [(x, tx)])


@pytest.mark.parametrize("name,kwargs", [("mse_loss", {}), ("mse_loss", {"reduction": "sum"}),
                                         ("mse_loss", {"reduction": "none"}), ("l1_loss", {}),
                                         ("huber_loss", {"delta": 0.5}), ("smooth_l1_loss", {"beta": 0.7})])
def test_regression_losses_match_torch(name, kwargs):
    (p, tp), (t, tt) = _pair((5, 3), 10), _pair((5, 3), 11)
    _compare(getattr(F, name)(p, t, **kwargs), getattr(TF, name)(tp, tt, **kwargs), [(p, tp), (t, tt)])


@pytest.mark.parametrize("kwargs", [{}, {"reduction": "none"}, {"pos_weight": [2.0, 0.5, 1.0]},
                                    {"weight": [0.3, 1.0, 2.0], "reduction": "sum"}])
def test_binary_cross_entropy_with_logits_matches_torch(kwargs):
    (z, tz), (t, tt) = _pair((4, 3), 12), _pair((4, 3), 13, 0.0, 1.0)
    ours_kw = {k: np.array(v) if isinstance(v, list) else v for k, v in kwargs.items()}
    theirs_kw = {k: torch.tensor(v, dtype=torch.float64) if isinstance(v, list) else v for k, v in kwargs.items()}
    _compare(F.binary_cross_entropy_with_logits(z, t, **ours_kw),
             TF.binary_cross_entropy_with_logits(tz, tt, **theirs_kw), [(z, tz), (t, tt)])


def test_binary_cross_entropy_matches_torch():
    (p, tp), (t, tt) = _pair((4, 3), 14, 0.05, 0.95), _pair((4, 3), 15, 0.0, 1.0)
    _compare(F.binary_cross_entropy(p, t), TF.binary_cross_entropy(tp, tt), [(p, tp), (t, tt)])


def test_binary_cross_entropy_clamps_log_like_torch():
    p = shendu.tensor([0.0, 1.0], dtype="float64")
    np.testing.assert_allclose(F.binary_cross_entropy(p, np.array([1.0, 0.0]), reduction="none").data, [100, 100])


def test_one_hot_and_dropout():
    labels = np.array([[0, 2], [1, 0]])
    np.testing.assert_array_equal(F.one_hot(labels).data, TF.one_hot(torch.tensor(labels)).numpy())
    assert F.one_hot(labels, 5).shape == (2, 2, 5) and F.one_hot(labels).dtype == np.int64
    with pytest.raises(ValueError, match=r"labels must be in \[0, 2\)"):
        F.one_hot(labels, 2)
    x = shendu.ones(50, 40)
    assert F.dropout(x, 0.5, training=False) is x
    assert abs((F.dropout(x, 0.25).data == 0).mean() - 0.25) < 0.03


def test_functional_dtype_stays_float32():
    x = shendu.tensor(np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32), requires_grad=True)
    for loss in (F.cross_entropy(x, np.array([0, 1, 2, 0])), F.mse_loss(x, np.zeros((4, 3), np.float32)),
                 F.binary_cross_entropy_with_logits(x, np.ones((4, 3), np.float32))):
        assert loss.dtype == np.float32

