"""Merge layers and their functional forms: NumPy/PyTorch results, gradients, shapes, errors, configs."""

import json

import numpy as np
import pytest

import shendu
from shendu import layers
from shendu.layers import Add, Average, Concatenate, Dot, Input, Maximum, Minimum, Multiply, Subtract


def _t64(*shape, seed=0):
    rng = np.random.default_rng(seed)
    return shendu.tensor(rng.uniform(-1.0, 1.0, shape), dtype=np.float64, requires_grad=True)


ELEMENTWISE = [
    (Add, layers.add, lambda xs: sum(xs)),
    (Subtract, layers.subtract, lambda xs: xs[0] - xs[1]),
    (Multiply, layers.multiply, lambda xs: np.prod(np.broadcast_arrays(*xs), axis=0)),
    (Average, layers.average, lambda xs: sum(xs) / len(xs)),
    (Maximum, layers.maximum, lambda xs: np.max(np.broadcast_arrays(*xs), axis=0)),
    (Minimum, layers.minimum, lambda xs: np.min(np.broadcast_arrays(*xs), axis=0)),
]


@pytest.mark.parametrize("cls,fn,expected", ELEMENTWISE, ids=[c[0].__name__ for c in ELEMENTWISE])
def test_elementwise_merges_match_numpy_and_gradcheck(cls, fn, expected):
    n = 2 if cls is Subtract else 3
    xs = [_t64(4, 3, seed=i) for i in range(n)]
    layer = cls(dtype="float64")
    np.testing.assert_allclose(layer(xs).data, expected([x.data for x in xs]))
    np.testing.assert_allclose(fn(xs, dtype="float64").data, expected([x.data for x in xs]))
    assert shendu.gradcheck(lambda *ts: layer(list(ts)), *xs)


def test_elementwise_merges_broadcast_like_keras():
    a, b = np.ones((2, 3)), np.arange(2.0).reshape(2, 1)
    np.testing.assert_allclose(layers.add([a, b]).data, a + b)
    assert layers.multiply([Input(shape=(3,)), Input(shape=(1,))]).shape == (None, 3)
    assert layers.average([Input(shape=(4, 1)), Input(shape=(4, 5))]).shape == (None, 4, 5)


def test_concatenate_matches_torch_cat():
    torch = pytest.importorskip("torch")
    xs = [_t64(2, 3, k, seed=k) for k in (1, 2, 4)]
    y = Concatenate(axis=-1, dtype="float64")(xs)
    gy = np.random.default_rng(9).standard_normal(y.shape)
    y.backward(gy)
    txs = [torch.tensor(x.data, requires_grad=True) for x in xs]
    ty = torch.cat(txs, dim=-1)
    ty.backward(torch.tensor(gy))
    np.testing.assert_allclose(y.data, ty.detach().numpy())
    for x, tx in zip(xs, txs):
        np.testing.assert_allclose(x.grad.data, tx.grad.numpy())
    assert layers.concatenate([Input(shape=(3, 2)), Input(shape=(5, 2))], axis=1).shape == (None, 8, 2)


@pytest.mark.parametrize("shapes,axes,torch_expr", [
    (((4, 5), (4, 5)), 1, "bi,bi->b"),
    (((4, 2, 3), (4, 3, 5)), (2, 1), "bij,bjk->bik"),
    (((4, 3, 2), (4, 3, 5)), 1, "bji,bjk->bik"),
], ids=["vectors", "matrices", "first_axes"])
def test_dot_matches_torch_einsum(shapes, axes, torch_expr):
    torch = pytest.importorskip("torch")
    x, y = _t64(*shapes[0], seed=1), _t64(*shapes[1], seed=2)
    layer = Dot(axes=axes, dtype="float64")
    out = layer([x, y])
    gy = np.random.default_rng(3).standard_normal(out.shape)
    out.backward(gy)
    tx, ty = (torch.tensor(t.data, requires_grad=True) for t in (x, y))
    expected = torch.einsum(torch_expr, tx, ty)
    if expected.ndim == 1:
        expected = expected[:, None]
    expected.backward(torch.tensor(gy))
    np.testing.assert_allclose(out.data, expected.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(y.grad.data, ty.grad.numpy(), rtol=1e-10)
    symbolic = layer([Input(shape=shapes[0][1:]), Input(shape=shapes[1][1:])])
    assert symbolic.shape == (None, *out.shape[1:])


def test_dot_normalize_gives_cosine_similarity():
    x, y = _t64(3, 4, seed=4), _t64(3, 4, seed=5)
    layer = Dot(axes=1, normalize=True, dtype="float64")
    cos = (x.data * y.data).sum(1) / np.linalg.norm(x.data, axis=1) / np.linalg.norm(y.data, axis=1)
    np.testing.assert_allclose(layer([x, y]).data.ravel(), cos)
    assert shendu.gradcheck(lambda a, b: layer([a, b]), x, y)


def test_merge_errors_name_the_layer_and_shapes():
    with pytest.raises(ValueError, match=r"layer 'sub' \(Subtract\) needs exactly 2 inputs, received 3"):
        Subtract(name="sub")([np.ones((1, 2))] * 3)
    with pytest.raises(ValueError, match="must be called on a list of inputs"):
        Add()(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"cannot combine inputs of shapes \[\(None, 3\), \(None, 4\)\]"):
        layers.add([Input(shape=(3,)), Input(shape=(4,))])
    with pytest.raises(ValueError, match=r"Concatenate.*axis 2 differs"):
        layers.concatenate([Input(shape=(2, 3)), Input(shape=(2, 4))], axis=1)
    with pytest.raises(ValueError, match=r"Dot.*\(3 != 4\)"):
        layers.dot([Input(shape=(3,)), Input(shape=(4,))], axes=1)


@pytest.mark.parametrize("layer", [Add(), Concatenate(axis=1), Dot(axes=(1, 1), normalize=True), Maximum()],
                         ids=lambda layer: type(layer).__name__)
def test_merge_config_round_trips_through_json(layer):
    clone = layers.deserialize(json.loads(json.dumps(layers.serialize(layer))))
    assert type(clone) is type(layer) and clone.get_config() == layer.get_config()
    xs = [np.random.default_rng(i).normal(size=(2, 3)) for i in range(2)]
    np.testing.assert_allclose(clone(xs).data, layer(xs).data)


def test_operators_on_symbolic_tensors_record_merge_layers():
    a, b = Input(shape=(3,)), Input(shape=(3,))
    total, difference, product = a + b, a - b, a * b
    assert [type(t.node.layer) for t in (total, difference, product)] == [Add, Subtract, Multiply]
    assert difference.node.parents == [a, b] and total.shape == (None, 3)
    shifted = a + 1.0  # with a constant, the op itself is recorded (as Keras 3 does)
    assert type(shifted.node.layer).__name__ == "OpLayer" and shifted.shape == (None, 3)
