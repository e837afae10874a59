"""shendu.losses: Keras 3 semantics; values and gradients against PyTorch (built-in losses where torch has
them, otherwise torch transcriptions of Keras 3's formulas), reductions, sample weights and errors."""

import os

import numpy as np
import pytest

import shendu
from shendu import losses

EPS = 1e-7


def _data(shape, seed, low=None, high=None):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape) if low is None else rng.uniform(low, high, shape)


def _one_hot(labels, k):
    return np.eye(k)[labels]


def _references(torch):
    """Per-sample reference losses written with torch (built-ins where torch has the loss)."""
    F = torch.nn.functional

    def sparse(t, p):
        return F.nll_loss(torch.log(p / p.sum(-1, keepdim=True)), t.long(), reduction="none")

    return {
        "mean_squared_error": lambda t, p: F.mse_loss(p, t, reduction="none").mean(-1),
        "mean_absolute_error": lambda t, p: F.l1_loss(p, t, reduction="none").mean(-1),
        "mean_absolute_percentage_error": lambda t, p: 100 * ((t - p) / t.abs().clamp(min=EPS)).abs().mean(-1),
        "mean_squared_logarithmic_error":
            lambda t, p: ((torch.log1p(p.clamp(min=EPS)) - torch.log1p(t.clamp(min=EPS))) ** 2).mean(-1),
        "huber": lambda t, p: F.huber_loss(p, t, reduction="none", delta=1.0).mean(-1),
        "log_cosh": lambda t, p: torch.log(torch.cosh(p - t)).mean(-1),
        "binary_crossentropy": lambda t, p: F.binary_cross_entropy(p, t, reduction="none").mean(-1),
        "categorical_crossentropy": lambda t, p: -(t * torch.log(p / p.sum(-1, keepdim=True))).sum(-1),
        "sparse_categorical_crossentropy": sparse,
        "kl_divergence": lambda t, p: F.kl_div(torch.log(p), t, reduction="none").sum(-1),
        "poisson": lambda t, p: F.poisson_nll_loss(p, t, log_input=False, eps=EPS, reduction="none").mean(-1),
        "hinge": lambda t, p: (1 - (2 * t - 1) * p).clamp(min=0).mean(-1),
        "squared_hinge": lambda t, p: ((1 - (2 * t - 1) * p).clamp(min=0) ** 2).mean(-1),
        "categorical_hinge": lambda t, p: ((1 - t) * p).max(-1).values.sub((t * p).sum(-1)).add(1).clamp(min=0),
        "cosine_similarity": lambda t, p: -F.cosine_similarity(t, p, dim=-1),
    }


def _inputs(name):
    """(y_true, y_pred) float64 arrays in each loss's domain, away from the clipping limits."""
    labels = np.array([0, 2, 1, 2])
    if name in ("binary_crossentropy", "hinge", "squared_hinge"):
        return (_data((4, 3), 1) > 0).astype(float), _data((4, 3), 2, 0.05, 0.95) * (1 if name[0] == "b" else 3)
    if name in ("categorical_crossentropy", "kl_divergence"):
        return _data((4, 3), 3, 0.1, 1.0) / 2 if name[0] == "k" else _one_hot(labels, 3), _data((4, 3), 4, 0.1, 0.6)
    if name == "sparse_categorical_crossentropy":
        return labels, _data((4, 3), 5, 0.1, 1.0)
    if name == "categorical_hinge":
        return _one_hot(labels, 3), _data((4, 3), 6)
    if name in ("mean_squared_logarithmic_error", "poisson", "mean_absolute_percentage_error"):
        return _data((4, 3), 7, 0.2, 2.0), _data((4, 3), 8, 0.2, 2.0)
    return _data((4, 3), 9), _data((4, 3), 10) * 2


@pytest.mark.parametrize("name", sorted(losses._FUNCTIONS))
def test_loss_function_matches_torch_reference(name):
    torch = pytest.importorskip("torch")
    y_true, y_pred = _inputs(name)
    p = shendu.tensor(y_pred, dtype="float64", requires_grad=True)
    tp = torch.tensor(y_pred, requires_grad=True)
    ours = losses.get(name)(y_true, p)
    theirs = _references(torch)[name](torch.tensor(y_true), tp)
    g = np.random.default_rng(0).standard_normal(ours.shape)
    ours.backward(g)
    theirs.backward(torch.tensor(g))
    assert ours.shape == (4,)
    np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(p.grad.data, tp.grad.numpy(), rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("name", sorted(losses._FUNCTIONS))
def test_loss_function_gradcheck(name):
    y_true, y_pred = _inputs(name)
    assert shendu.gradcheck(lambda p: losses.get(name)(y_true, p), shendu.tensor(y_pred, requires_grad=True))


def test_from_logits_agrees_with_probabilities():
    z = _data((5, 4), 11)
    soft = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    labels = np.array([0, 3, 1, 1, 2])
    np.testing.assert_allclose(losses.categorical_crossentropy(_one_hot(labels, 4), soft).data,
                               losses.categorical_crossentropy(_one_hot(labels, 4), z, from_logits=True).data)
    np.testing.assert_allclose(losses.sparse_categorical_crossentropy(labels, soft).data,
                               losses.sparse_categorical_crossentropy(labels, z, from_logits=True).data)
    y = (_data((5, 4), 12) > 0).astype(float)
    sig = 1 / (1 + np.exp(-z))
    np.testing.assert_allclose(losses.binary_crossentropy(y, sig, label_smoothing=0.2).data,
                               losses.binary_crossentropy(y, z, from_logits=True, label_smoothing=0.2).data)


@pytest.mark.parametrize("from_logits", [False, True])
def test_label_smoothing_matches_torch(from_logits):
    torch = pytest.importorskip("torch")
    z = _data((5, 4), 13)
    labels = np.array([0, 3, 1, 1, 2])
    pred = z if from_logits else np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    p = shendu.tensor(pred, dtype="float64", requires_grad=True)
    tp = torch.tensor(pred, requires_grad=True)
    loss = losses.CategoricalCrossentropy(from_logits=from_logits, label_smoothing=0.1)(_one_hot(labels, 4), p)
    logits = tp if from_logits else torch.log(tp)
    ref = torch.nn.functional.cross_entropy(logits, torch.tensor(labels), label_smoothing=0.1)
    loss.backward()
    ref.backward()
    np.testing.assert_allclose(loss.data, ref.detach().numpy(), rtol=1e-10)
    np.testing.assert_allclose(p.grad.data, tp.grad.numpy(), rtol=1e-8, atol=1e-12)
    y = (_data((5, 4), 14) > 0).astype(float)
    bce = losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.3)(y, z)
    ref = torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor(z), torch.tensor(y * 0.7 + 0.15))
    np.testing.assert_allclose(bce.data, ref.numpy(), rtol=1e-10)


@pytest.mark.parametrize("cls,kwargs,y_true", [
    (losses.MeanSquaredError, {}, _data((6, 2), 15)),
    (losses.CategoricalCrossentropy, {"from_logits": True}, _one_hot(np.array([0, 1, 1, 0, 1, 0]), 2)),
    (losses.SparseCategoricalCrossentropy, {"from_logits": True}, np.array([0, 1, 1, 0, 1, 0])),
    (losses.BinaryCrossentropy, {"from_logits": True, "label_smoothing": 0.1}, (_data((6, 2), 16) > 0) * 1.0),
])
def test_fused_path_equals_the_weighted_path(cls, kwargs, y_true):
    z = _data((6, 2), 17)
    a, b = shendu.tensor(z, requires_grad=True), shendu.tensor(z, requires_grad=True)
    fused = cls(**kwargs)(y_true, a)
    general = cls(**kwargs)(y_true, b, sample_weight=np.ones(6))
    assert type(fused.creator).__name__ in ("MeanSquaredErrorOp", "SoftmaxCrossEntropyOp",
                                           "SigmoidBinaryCrossEntropyOp")
    fused.backward()
    general.backward()
    np.testing.assert_allclose(fused.data, general.data, rtol=1e-6)
    np.testing.assert_allclose(a.grad.data, b.grad.data, rtol=1e-6, atol=1e-7)


def test_sample_weight_and_reductions_follow_keras():
    y_true, y_pred = _data((4, 3), 18), _data((4, 3), 19)
    per_sample = ((y_true - y_pred) ** 2).mean(-1)
    w = np.array([1.0, 0.0, 2.0, 0.5])
    mse = losses.MeanSquaredError
    np.testing.assert_allclose(mse()(y_true, y_pred, sample_weight=w).data, (per_sample * w).sum() / 4, rtol=1e-6)
    np.testing.assert_allclose(mse(reduction="sum")(y_true, y_pred, w).data, (per_sample * w).sum(), rtol=1e-6)
    np.testing.assert_allclose(mse(reduction="mean_with_sample_weight")(y_true, y_pred, w).data,
                               (per_sample * w).sum() / w.sum(), rtol=1e-6)
    np.testing.assert_allclose(mse(reduction="none")(y_true, y_pred, w).data, per_sample * w, rtol=1e-6)
    # as Keras: (batch,) losses meet (batch, 1) weights by expanding the losses
    np.testing.assert_allclose(mse(reduction="none")(y_true, y_pred, w[:, None]).data, (per_sample * w)[:, None])
    with pytest.raises(ValueError, match=r"sample_weight of shape \(3,\)"):
        mse()(y_true, y_pred, sample_weight=np.ones(3))


def test_sparse_ignore_class_is_masked_out_of_the_mean():
    z = _data((5, 3), 20)
    labels = np.array([0, 2, -1, 1, -1])
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    expected = -logp[[0, 1, 3], [0, 2, 1]].mean()
    for from_logits, pred in ((True, z), (False, np.exp(logp))):
        loss = losses.SparseCategoricalCrossentropy(from_logits=from_logits, ignore_class=-1)
        np.testing.assert_allclose(loss(labels, pred).data, expected, rtol=1e-6)
        np.testing.assert_allclose(loss(labels, pred, sample_weight=np.ones(5)).data, expected, rtol=1e-6)


def test_seed_shapes_and_float32():
    y_pred = shendu.tensor(np.random.default_rng(0).random((32, 1)).astype(np.float32), requires_grad=True)
    y_true = np.random.default_rng(1).random(32)  # float64 (n,) meets float32 (n, 1)
    loss = losses.get("mean_squared_error")
    assert loss(y_true, y_pred).shape == (32,)
    value = losses.to_loss("mse")(y_true, y_pred)
    assert value.dtype == np.float32 and value.shape == ()
    np.testing.assert_allclose(value.item(), ((y_true - y_pred.data[:, 0]) ** 2).mean(), rtol=1e-5)


def test_errors_name_the_loss_and_shapes():
    with pytest.raises(ValueError, match=r"categorical_crossentropy.*\(4,\).*\(4, 3\).*sparse_categorical"):
        losses.CategoricalCrossentropy()(np.array([0, 1, 2, 1]), np.full((4, 3), 1 / 3))
    with pytest.raises(ValueError, match=r"sparse_categorical_crossentropy"):
        losses.categorical_crossentropy(np.array([[0], [1]]), np.full((2, 3), 1 / 3))
    with pytest.raises(ValueError, match=r"one-hot encoded: use categorical_crossentropy"):
        losses.sparse_categorical_crossentropy(np.eye(3), np.full((3, 3), 1 / 3))
    with pytest.raises(ValueError, match=r"mean_absolute_error: y_true of shape \(4, 2\) and y_pred of shape \(4, 3\)"):
        losses.mean_absolute_error(np.zeros((4, 2)), np.zeros((4, 3)))
    with pytest.raises(TypeError, match=r"unexpected arguments \['delt'\].*'delta'"):
        losses.Huber(delt=2.0)


def test_get_resolves_like_keras():
    assert losses.get("mse") is losses.mean_squared_error and losses.get("MAE") is losses.mean_absolute_error
    assert losses.get(None) is None
    assert isinstance(losses.get(losses.Huber), losses.Huber)
    instance = losses.Huber(0.5)
    assert losses.get(instance) is instance and instance._fn_kwargs == {"delta": 0.5}
    assert losses.get(np.square) is np.square
    assert isinstance(losses.to_loss("categorical_crossentropy"), losses.CategoricalCrossentropy)
    custom = losses.to_loss(lambda t, p: (p - t) ** 2)
    assert isinstance(custom, losses.LossFunctionWrapper)
    np.testing.assert_allclose(custom(np.zeros(2), np.array([1.0, 3.0])).item(), 5.0)
    with pytest.raises(ValueError, match="Unknown loss 'msee'"):
        losses.get("msee")


def test_config_round_trip():
    loss = losses.BinaryCrossentropy(True, 0.1, reduction="sum", name="bce")
    config = loss.get_config()
    assert config == {"name": "bce", "reduction": "sum", "dtype": None, "from_logits": True,
                      "label_smoothing": 0.1, "axis": -1}
    again = losses.deserialize(losses.serialize(loss))
    assert type(again) is losses.BinaryCrossentropy and again.get_config() == config
    sparse = losses.SparseCategoricalCrossentropy.from_config(losses.SparseCategoricalCrossentropy(True).get_config())
    assert sparse._fn_kwargs["from_logits"] and sparse.name == "sparse_categorical_crossentropy"


_FLOAT32_CASES = [(cls, False) for cls in losses._CLASSES.values()] + [
    (cls, True) for cls in losses._CLASSES.values() if "Crossentropy" in cls.__name__]


@pytest.mark.parametrize("cls,from_logits", _FLOAT32_CASES, ids=[f"{c.__name__}-{f}" for c, f in _FLOAT32_CASES])
def test_every_loss_class_keeps_float32(cls, from_logits):
    rng = np.random.default_rng(1)
    crossentropy = "Crossentropy" in cls.__name__
    y_true = rng.integers(0, 3, 4) if cls is losses.SparseCategoricalCrossentropy else rng.random((4, 3))
    y_pred = shendu.tensor(rng.random((4, 3)).astype(np.float32) + 0.1, requires_grad=True)
    loss = cls(from_logits=from_logits) if crossentropy else cls()
    for sample_weight in (None, np.ones(4)):
        value = loss(y_true, y_pred, sample_weight)
        value.backward()
        assert value.shape == () and value.dtype == np.float32 and y_pred.grad.dtype == np.float32


def _keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")  # Keras 3 on PyTorch, as the issue compares
    return pytest.importorskip("keras")


_KERAS_CASES = [(name, {}) for name in losses._CLASSES] + [
    ("BinaryCrossentropy", {"from_logits": True, "label_smoothing": 0.1}),
    ("BinaryCrossentropy", {"label_smoothing": 0.2}),
    ("CategoricalCrossentropy", {"from_logits": True, "label_smoothing": 0.1}),
    ("SparseCategoricalCrossentropy", {"from_logits": True, "ignore_class": 2}),
    ("SparseCategoricalCrossentropy", {"ignore_class": 1}), ("Huber", {"delta": 0.3})]


def _keras_inputs(name, rng):
    labels = rng.integers(0, 4, 6)
    if name == "SparseCategoricalCrossentropy":
        return labels, rng.random((6, 4)) + 0.05
    if name in ("CategoricalCrossentropy", "CategoricalHinge"):
        return np.eye(4)[labels], rng.random((6, 4)) + 0.05
    if name in ("BinaryCrossentropy", "Hinge", "SquaredHinge"):
        return (rng.random((6, 4)) > 0.5) * 1.0, rng.random((6, 4)) * 0.9 + 0.05
    return rng.random((6, 4)) + 0.1, rng.random((6, 4)) + 0.1


def test_losses_match_keras_itself():
    keras = _keras()
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    for name, kwargs in _KERAS_CASES:
        y_true, y_pred = _keras_inputs(name, rng)
        if kwargs.get("from_logits"):
            y_pred = rng.standard_normal(y_pred.shape)
        for sample_weight in (None, rng.random(6)):
            for reduction in ("sum_over_batch_size", "sum", "none"):
                theirs_pred = torch.tensor(y_pred, requires_grad=True)
                theirs = getattr(keras.losses, name)(reduction=reduction, **kwargs)(
                    torch.tensor(y_true), theirs_pred, None if sample_weight is None else torch.tensor(sample_weight))
                ours_pred = shendu.tensor(y_pred, dtype="float64", requires_grad=True)
                ours = getattr(losses, name)(reduction=reduction, **kwargs)(y_true, ours_pred, sample_weight)
                g = rng.standard_normal(ours.shape)
                theirs.backward(torch.tensor(g))
                ours.backward(g)
                where = f"{name}{kwargs} reduction={reduction} weighted={sample_weight is not None}"
                assert tuple(theirs.shape) == ours.shape, where
                # Keras computes in float32
                np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=2e-6, atol=1e-6, err_msg=where)
                np.testing.assert_allclose(ours_pred.grad.data, theirs_pred.grad.numpy(), rtol=2e-5, atol=1e-6,
                                           err_msg=where)


@pytest.mark.parametrize("loss", ["mse", "categorical_crossentropy"])
def test_convolutional_output_into_dense_suggests_flatten(loss):
    from shendu.layers import Conv2D, Dense
    from shendu.models import Sequential

    model = Sequential([Conv2D(2, 3, input_shape=(8, 8, 1)), Dense(3, activation="softmax")])
    model.compile("sgd", loss)
    with pytest.raises(ValueError, match="add Flatten"):
        model.fit(np.ones((4, 8, 8, 1)), np.eye(3)[[0, 1, 2, 0]], verbose=0)


def test_a_user_loss_named_like_a_built_in_does_not_replace_it():
    # The name tables are closed (built from the built-ins only): defining a class of the same name changes nothing.
    class MeanSquaredError(losses.Loss):
        def call(self, y_true, y_pred):
            return y_pred * 0.0

    assert type(losses.get("MeanSquaredError")) is losses.MeanSquaredError
    assert type(losses.to_loss("mse")) is losses.MeanSquaredError
    restored = losses.deserialize(losses.serialize(losses.MeanSquaredError()))
    assert type(restored) is losses.MeanSquaredError and MeanSquaredError is not losses.MeanSquaredError
