"""BatchNormalization / LayerNormalization and the fused Normalize op: finite differences, PyTorch, Keras semantics."""

import json

import numpy as np
import pytest

import shendu
from shendu.layers import BatchNormalization, LayerNormalization
from shendu.ops import normalization as norm


def _t64(*shape, seed=0, low=-2.0, high=2.0):
    rng = np.random.default_rng(seed + sum(shape))
    return shendu.tensor(rng.uniform(low, high, shape), dtype=np.float64, requires_grad=True)


GRADCHECK_CASES = [
    ("NormalizeOp", lambda x, g, b: norm.normalize(x, g, b, axes=0, eps=1e-3), lambda: [_t64(5, 3), _t64(3), _t64(3)]),
    ("NormalizeOp", lambda x, g, b: norm.normalize(x, g, b, axes=(1, 2), eps=1e-3),
     lambda: [_t64(2, 3, 4), _t64(3, 4), _t64(3, 4)]),
    ("NormalizeOp", lambda x: norm.normalize(x, axes=(0, 1, 2), eps=1e-5), lambda: [_t64(2, 3, 2, 2)]),
]


@pytest.mark.parametrize("case", range(len(GRADCHECK_CASES)))
def test_normalize_op_double_backward(case):
    _, fn, make_inputs = GRADCHECK_CASES[case]
    assert shendu.gradgradcheck(fn, *make_inputs(), atol=1e-4)


def test_normalize_op_matches_torch_forward_and_backward():
    torch = pytest.importorskip("torch")
    x, g, b = _t64(6, 4), _t64(4), _t64(4)
    y = norm.normalize(x, g, b, axes=0, eps=1e-3)
    gy = np.random.default_rng(1).standard_normal(y.shape)
    y.backward(gy)
    tx, tg, tb = (torch.tensor(t.data, requires_grad=True) for t in (x, g, b))
    ty = torch.nn.functional.batch_norm(tx, None, None, tg, tb, training=True, eps=1e-3)
    ty.backward(torch.tensor(gy))
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    for ours, theirs in ((x, tx), (g, tg), (b, tb)):
        np.testing.assert_allclose(ours.grad.data, theirs.grad.numpy(), rtol=1e-9, atol=1e-11)


def _bn_pair(momentum=0.9, eps=1e-3, features=3):
    torch = pytest.importorskip("torch")
    ours = BatchNormalization(momentum=momentum, epsilon=eps, dtype="float64")
    theirs = torch.nn.BatchNorm1d(features, eps=eps, momentum=1 - momentum, dtype=torch.float64)
    return ours, theirs, torch


def test_batchnorm_training_matches_torch_batchnorm1d():
    ours, theirs, torch = _bn_pair()
    x = np.random.default_rng(0).normal(2.0, 3.0, (8, 3))
    y = ours(x, training=True)
    gy = np.random.default_rng(1).standard_normal(y.shape)
    y.backward(gy)
    tx = torch.tensor(x, requires_grad=True)
    ty = theirs.train()(tx)
    ty.backward(torch.tensor(gy))
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.gamma.grad.data, theirs.weight.grad.numpy(), rtol=1e-9)
    np.testing.assert_allclose(ours.beta.grad.data, theirs.bias.grad.numpy(), rtol=1e-9)
    np.testing.assert_allclose(ours.moving_mean.data, theirs.running_mean.numpy(), rtol=1e-12)
    # Keras updates the moving variance with the biased batch variance, PyTorch with the unbiased one
    n = x.shape[0]
    unbiased = (theirs.running_var.numpy() - 0.9) / 0.1
    np.testing.assert_allclose(ours.moving_variance.data, 0.9 + 0.1 * unbiased * (n - 1) / n, rtol=1e-12)


def test_batchnorm_inference_uses_moving_statistics_like_torch_eval():
    ours, theirs, torch = _bn_pair(momentum=0.5)
    rng = np.random.default_rng(2)
    for _ in range(3):
        ours(rng.normal(1.0, 2.0, (16, 3)), training=True)
    ours.moving_variance.data[...] = rng.uniform(0.5, 2.0, 3)  # set stats directly, then compare inference
    with torch.no_grad():
        theirs.running_mean.copy_(torch.tensor(ours.moving_mean.data))
        theirs.running_var.copy_(torch.tensor(ours.moving_variance.data))
        theirs.weight.copy_(torch.tensor([0.5, 1.5, -1.0], dtype=torch.float64))
        theirs.bias.copy_(torch.tensor([0.1, 0.0, 0.3], dtype=torch.float64))
    ours.gamma.data[...] = [0.5, 1.5, -1.0]
    ours.beta.data[...] = [0.1, 0.0, 0.3]
    x = rng.normal(size=(4, 3))
    before = ours.moving_mean.data.copy()
    y = ours(x)  # training defaults to False
    np.testing.assert_allclose(y.data, theirs.eval()(torch.tensor(x)).detach().numpy(), rtol=1e-10)
    np.testing.assert_array_equal(ours.moving_mean.data, before)


def test_batchnorm_channels_first_4d_matches_torch_batchnorm2d():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(3).normal(size=(2, 3, 4, 5))
    ours = BatchNormalization(axis=1, momentum=0.8, dtype="float64")
    y = ours(x, training=True)
    gy = np.random.default_rng(4).standard_normal(y.shape)
    y.backward(gy)
    theirs = torch.nn.BatchNorm2d(3, eps=1e-3, momentum=0.2, dtype=torch.float64)
    tx = torch.tensor(x, requires_grad=True)
    ty = theirs(tx)
    ty.backward(torch.tensor(gy))
    assert ours.gamma.shape == (3,)  # Keras's weight shape; reshaped to (3, 1, 1) to broadcast
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.gamma.grad.data, theirs.weight.grad.numpy(), rtol=1e-9)
    np.testing.assert_allclose(ours.moving_mean.data, theirs.running_mean.numpy(), rtol=1e-12)
    with torch.no_grad():  # PyTorch's running var is unbiased; give it ours to compare inference
        theirs.running_var.copy_(torch.tensor(ours.moving_variance.data))
    theirs.eval()
    np.testing.assert_allclose(ours(x).data, theirs(torch.tensor(x)).detach().numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_layer_gradcheck(training):
    layer = BatchNormalization(dtype="float64", momentum=0.0)
    x = _t64(5, 3)
    layer(x.detach(), training=True)  # build, and set moving stats from a batch
    stats = [w.detach() for w in layer.non_trainable_weights]

    def fn(t, gamma, beta):
        return layer.stateless_call([gamma, beta], stats, t, training=training)[0]

    assert shendu.gradcheck(fn, x, _t64(3, seed=1), _t64(3, seed=2))


def test_batchnorm_weights_order_and_trainability():
    layer = BatchNormalization(name="bn")
    layer(np.zeros((2, 4)))
    assert [w.name for w in layer.weights] == ["bn/gamma", "bn/beta", "bn/moving_mean", "bn/moving_variance"]
    assert [w.name for w in layer.trainable_weights] == ["bn/gamma", "bn/beta"]
    assert [w.name for w in layer.non_trainable_weights] == ["bn/moving_mean", "bn/moving_variance"]
    assert not layer.moving_mean.requires_grad and layer.gamma.requires_grad
    assert layer.count_params() == 16


def test_frozen_batchnorm_runs_in_inference_mode():
    layer = BatchNormalization()
    x = np.random.default_rng(0).normal(5.0, 1.0, (8, 2))
    layer(x, training=True)
    layer.trainable = False
    stats = layer.moving_mean.data.copy()
    y = layer(x, training=True)
    np.testing.assert_array_equal(layer.moving_mean.data, stats)
    expected = (x - stats) / np.sqrt(layer.moving_variance.data + 1e-3)
    np.testing.assert_allclose(y.data, expected, rtol=1e-5)
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == 4
    assert not layer.gamma.requires_grad


def test_batchnorm_without_center_and_scale():
    layer = BatchNormalization(center=False, scale=False, epsilon=1e-5, dtype="float64")
    x = np.random.default_rng(1).normal(size=(6, 2))
    y = layer(x, training=True)
    np.testing.assert_allclose(y.data, (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5), rtol=1e-10)
    assert [w.name.split("/")[1] for w in layer.weights] == ["moving_mean", "moving_variance"]


def test_layernorm_matches_torch_layernorm():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(5).normal(size=(2, 3, 4))
    ours = LayerNormalization(axis=(-2, -1), epsilon=1e-5, dtype="float64")
    y = ours(x)
    gy = np.random.default_rng(6).standard_normal(y.shape)
    y.backward(gy)
    theirs = torch.nn.LayerNorm((3, 4), eps=1e-5, dtype=torch.float64)
    tx = torch.tensor(x, requires_grad=True)
    ty = theirs(tx)
    ty.backward(torch.tensor(gy))
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.gamma.grad.data, theirs.weight.grad.numpy(), rtol=1e-9)
    np.testing.assert_allclose(ours.beta.grad.data, theirs.bias.grad.numpy(), rtol=1e-9)


def test_layernorm_layer_gradcheck():
    layer = LayerNormalization(dtype="float64")
    x = _t64(3, 4)
    layer(x.detach())
    assert shendu.gradcheck(lambda t, g, b: layer.stateless_call([g, b], [], t)[0], x, _t64(4, seed=3), _t64(4, seed=4))


def test_layernorm_rms_scaling():
    x = np.random.default_rng(7).normal(size=(3, 5))
    layer = LayerNormalization(rms_scaling=True, epsilon=1e-6, dtype="float64")
    y = layer(x)
    np.testing.assert_allclose(y.data, x / np.sqrt(x.var(-1, keepdims=True) + 1e-6), rtol=1e-10)
    assert [w.name.split("/")[1] for w in layer.weights] == ["gamma"]
    assert shendu.gradcheck(lambda t: layer(t), _t64(3, 5))


@pytest.mark.parametrize("cls,kwargs", [(BatchNormalization, {"momentum": 0.9, "axis": 1, "center": False}),
                                        (LayerNormalization, {"epsilon": 1e-5, "gamma_regularizer": "l2"})])
def test_normalization_config_round_trip(cls, kwargs):
    layer = cls(**kwargs)
    config = json.loads(json.dumps(layer.get_config()))
    clone = cls.from_config(config)
    assert clone.get_config() == layer.get_config()
    x = np.random.default_rng(0).normal(size=(4, 3, 2))
    np.testing.assert_allclose(clone(x).data, layer(x).data)


def test_normalization_errors_name_the_layer():
    with pytest.raises(ValueError, match="axis 0 is the batch"):
        BatchNormalization(axis=0, name="bn0")(np.zeros((2, 3)))
    layer = LayerNormalization(name="ln")
    layer(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"layer 'ln'.*\(2, 4\)"):
        layer(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="momentum"):
        BatchNormalization(momentum=1.5)


def test_layernorm_over_non_adjacent_axes_keeps_keras_weight_shapes():
    x = np.random.default_rng(8).normal(size=(2, 3, 4, 5))
    layer = LayerNormalization(axis=(1, 3), gamma_initializer="random_uniform", dtype="float64")
    y = layer(x)
    assert layer.gamma.shape == (3, 5)
    mean, var = x.mean((1, 3), keepdims=True), x.var((1, 3), keepdims=True)
    expected = (x - mean) / np.sqrt(var + 1e-3) * layer.gamma.data[:, None, :]
    np.testing.assert_allclose(y.data, expected, rtol=1e-10)
    assert shendu.gradcheck(lambda t, g, b: layer.stateless_call([g, b], [], t)[0], _t64(2, 3, 2, 5),
                            _t64(3, 5, seed=5), _t64(3, 5, seed=6))


# ---------------------------------------------------------------------------- shape cases every normalisation runs
# (input shape, layer axis): the size-1 normalised axis is the case that once failed in backward
LAYERNORM_SHAPES = [((4, 3), -1), ((2, 3, 4), (-2, -1)), ((4, 1), -1), ((2, 5, 1), -1), ((2, 1, 3), (1, 2)),
                    ((3, 1, 1), (1, 2))]
BATCHNORM_SHAPES = [((5, 3), -1), ((4, 2, 3), -1), ((6, 1), -1), ((3, 4, 1), -1), ((2, 1, 3, 3), 1)]


def _torch_layernorm(tx, axes, tg, tb, eps):
    torch = pytest.importorskip("torch")
    axes = sorted(a % tx.ndim for a in ((axes,) if isinstance(axes, int) else axes))
    rest = [a for a in range(tx.ndim) if a not in axes]
    moved = tx.permute(*rest, *axes)  # torch's layer_norm normalises trailing axes
    y = torch.nn.functional.layer_norm(moved, moved.shape[len(rest):], tg, tb, eps)
    return y.permute(*np.argsort(rest + axes).tolist())


@pytest.mark.parametrize("shape, axis", LAYERNORM_SHAPES)
def test_layernorm_shape_cases_gradcheck_and_torch(shape, axis):
    torch = pytest.importorskip("torch")
    layer = LayerNormalization(axis=axis, epsilon=1e-5, gamma_initializer="random_uniform",
                               beta_initializer="random_uniform", dtype="float64")
    x = _t64(*shape)
    y = layer(x)
    gy = np.random.default_rng(9).standard_normal(y.shape)
    y.backward(gy)
    tx = torch.tensor(x.data, requires_grad=True)
    tg, tb = (torch.tensor(w.data, requires_grad=True) for w in (layer.gamma, layer.beta))
    ty = _torch_layernorm(tx, axis, tg, tb, 1e-5)
    ty.backward(torch.tensor(gy))
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-9, atol=1e-12)
    for ours, theirs in ((x, tx), (layer.gamma, tg), (layer.beta, tb)):
        assert ours.grad.shape == ours.shape
        np.testing.assert_allclose(ours.grad.data, theirs.grad.numpy(), rtol=1e-8, atol=1e-11)
    g, b = _t64(*layer.gamma.shape, seed=1), _t64(*layer.beta.shape, seed=2)
    assert shendu.gradcheck(lambda t, g, b: layer.stateless_call([g, b], [], t)[0], _t64(*shape, seed=3), g, b)


@pytest.mark.parametrize("shape, axis", BATCHNORM_SHAPES)
def test_batchnorm_shape_cases_gradcheck_and_torch(shape, axis):
    torch = pytest.importorskip("torch")
    layer = BatchNormalization(axis=axis, epsilon=1e-5, gamma_initializer="random_uniform",
                               beta_initializer="random_uniform", dtype="float64")
    x = _t64(*shape)
    y = layer(x, training=True)
    gy = np.random.default_rng(10).standard_normal(y.shape)
    y.backward(gy)
    tx = torch.tensor(x.data, requires_grad=True)
    tg, tb = (torch.tensor(w.data, requires_grad=True) for w in (layer.gamma, layer.beta))
    feature = axis % len(shape)
    moved = tx.movedim(feature, 1)  # torch's batch_norm wants the features on axis 1
    ty = torch.nn.functional.batch_norm(moved, None, None, tg, tb, training=True, eps=1e-5).movedim(1, feature)
    ty.backward(torch.tensor(gy))
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-9, atol=1e-12)
    for ours, theirs in ((x, tx), (layer.gamma, tg), (layer.beta, tb)):
        assert ours.grad.shape == ours.shape
        np.testing.assert_allclose(ours.grad.data, theirs.grad.numpy(), rtol=1e-8, atol=1e-11)
    stats = [w.detach() for w in layer.non_trainable_weights]
    g, b = _t64(*layer.gamma.shape, seed=1), _t64(*layer.beta.shape, seed=2)
    assert shendu.gradcheck(lambda t, g, b: layer.stateless_call([g, b], stats, t, training=True)[0],
                            _t64(*shape, seed=3), g, b)


@pytest.mark.parametrize("shape, axes", [((4, 1), (1,)), ((2, 3, 1), (2,)), ((5, 1), (0,))])
def test_normalize_op_size_one_axes_double_backward(shape, axes):
    gshape = shape[1:] if axes == (0,) else shape[axes[0]:]  # batch norm: per feature; layer norm: per element
    fn = lambda x, g, b: norm.normalize(x, g, b, axes=axes, eps=1e-3)  # noqa: E731
    inputs = [_t64(*shape), _t64(*gshape, seed=1), _t64(*gshape, seed=2)]
    assert shendu.gradcheck(fn, *inputs)
    assert shendu.gradgradcheck(fn, *inputs, atol=1e-4)
