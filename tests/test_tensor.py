"""The Tensor API: attributes, conversions, operators, indexing, dtypes, in-place rules."""

import operator

import numpy as np
import pytest

import shendu
from shendu import Tensor
from shendu.layers import Dense
from shendu.models import Sequential


def test_attributes_follow_numpy():
    x = shendu.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    assert isinstance(x.data, np.ndarray)
    assert (x.shape, x.ndim, x.size, len(x), x.dtype) == ((2, 3), 2, 6, 2, np.float32)
    assert (x.numel(), x.dim(), x.device) == (6, 2, "cpu")
    assert x.grad is None and not x.requires_grad and x.is_leaf and x.grad_fn is None
    assert x.T.shape == (3, 2)


def test_numpy_item_tolist_array_and_float():
    x = shendu.tensor([1.5, 2.5])
    np.testing.assert_array_equal(x.numpy(), [1.5, 2.5])
    assert np.asarray(x).dtype == np.float32
    assert np.asarray(x, dtype=np.float64).dtype == np.float64
    assert np.shares_memory(np.asarray(x), x.data) and not np.shares_memory(np.array(x), x.data)
    assert x.tolist() == [1.5, 2.5]
    s = x.sum()
    assert s.item() == 4.0 and isinstance(s.item(), float)
    assert float(s) == 4.0 and int(shendu.tensor(3)) == 3
    assert [1, 2, 3, 4][shendu.tensor(2)] == 3  # __index__
    with pytest.raises(ValueError, match=r"one element.*\(2,\)"):
        x.item()


def test_numpy_of_a_graph_tensor_is_a_read_only_view_and_detach_still_works():
    w = shendu.ones(2, requires_grad=True)
    y = w * w * 3
    a = y.numpy()
    assert type(a) is np.ndarray and a.tolist() == [3.0, 3.0] and np.shares_memory(a, y.data)
    with pytest.raises(ValueError, match="read-only"):
        a[0] = 100.0  # backward still needs y's inputs: the view must not change them
    y.sum().backward()
    np.testing.assert_array_equal(w.grad.data, [6.0, 6.0])
    d = y.detach()  # PyTorch-style: a leaf sharing the data, writable
    assert not d.requires_grad and d.creator is None
    assert np.shares_memory(d.data, y.data) and d.numpy().flags.writeable
    assert w.numpy().flags.writeable  # a leaf (a parameter) stays writable, as before
    assert np.array(y).flags.writeable  # np.array copies


def test_model_output_numpy_works_keras_style():
    model = Sequential([Dense(3, activation="relu"), Dense(2)])
    x = np.random.default_rng(0).standard_normal((4, 5)).astype("float32")
    out = model(x)
    assert out.requires_grad and out.creator is not None  # in a graph, as Keras users never notice
    y = out.numpy()
    assert y.shape == (4, 2) and y.dtype == np.float32
    np.testing.assert_allclose(y, model.predict(x, verbose=0), rtol=1e-6)


def test_bool_refuses_multi_element_and_empty():
    assert bool(shendu.tensor([3.0])) and not bool(shendu.tensor(0.0))
    with pytest.raises(ValueError, match="2 elements is ambiguous"):
        bool(shendu.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="0 elements"):
        bool(shendu.zeros(0))
    with pytest.raises(TypeError, match="0-d"):
        len(shendu.tensor(1.0))


def test_repr_and_format():
    assert repr(shendu.tensor([1.0, 2.0])) == "tensor([1., 2.])"
    assert repr(shendu.tensor([1.0], dtype="float64")) == "tensor([1.], dtype=float64)"
    assert repr(shendu.tensor([1], dtype="int32")) == "tensor([1], dtype=int32)"
    assert repr(shendu.ones(1, requires_grad=True)) == "tensor([1.], requires_grad=True)"
    assert "grad_fn=<MulOp>" in repr(shendu.ones(1, requires_grad=True) * 2)
    assert repr(shendu.Parameter(np.zeros(1, np.float32))).startswith("Parameter(")
    assert f"{shendu.tensor(2.0) / 3:.3f}" == "0.667"


ARITHMETIC = [operator.add, operator.sub, operator.mul, operator.truediv, operator.pow]


@pytest.mark.parametrize("op", ARITHMETIC, ids=lambda f: f.__name__)
def test_operators_match_numpy_both_sides_and_with_scalars(op):
    rng = np.random.default_rng(0)
    a = rng.uniform(0.5, 2.0, (3, 4)).astype(np.float32)
    b = rng.uniform(0.5, 2.0, (4,)).astype(np.float32)
    ta, tb = shendu.tensor(a), shendu.tensor(b)
    for ours, expected in [(op(ta, tb), op(a, b)), (op(ta, b), op(a, b)), (op(a, tb), op(a, b)),
                           (op(ta, 2), op(a, np.float32(2))), (op(2.5, ta), op(np.float32(2.5), a))]:
        assert isinstance(ours, Tensor)
        assert ours.dtype == np.float32
        np.testing.assert_allclose(ours.data, expected, rtol=1e-6)


def test_matmul_neg_abs_pos():
    a = np.arange(6.0).reshape(2, 3) - 2
    ta = shendu.tensor(a)
    np.testing.assert_allclose((ta @ ta.T).data, a @ a.T)
    np.testing.assert_allclose((a @ ta.T).data, a @ a.T)
    np.testing.assert_allclose((-ta).data, -a)
    np.testing.assert_allclose(abs(ta).data, np.abs(a))
    assert +ta is ta


@pytest.mark.parametrize("scalar", [2, 2.0, np.float64(2.0), np.int64(2), np.float32(2.0)])
def test_scalars_keep_the_tensor_dtype(scalar):
    x = shendu.ones(3)  # float32
    for y in (x + scalar, scalar * x, x / scalar, scalar - x, x ** scalar):
        assert y.dtype == np.float32
    h = shendu.ones(3, dtype="float16")
    assert (h * scalar).dtype == np.float16


def test_float64_tensors_stay_float64():
    x = shendu.tensor([1.0, 2.0], dtype="float64", requires_grad=True)
    y = (x * 2.0 + 1).exp().sum()
    y.backward()
    assert y.dtype == np.float64 and x.grad.dtype == np.float64


def test_comparisons_are_not_differentiable():
    x = shendu.tensor([1.0, 2.0, 3.0], requires_grad=True)
    for op, expected in [(operator.lt, [True, False, False]), (operator.le, [True, True, False]),
                         (operator.gt, [False, False, True]), (operator.ge, [False, True, True]),
                         (operator.eq, [False, True, False]), (operator.ne, [True, False, True])]:
        result = op(x, 2.0)
        assert result.dtype == np.bool_ and not result.requires_grad and result.creator is None
        np.testing.assert_array_equal(result.data, expected)
    np.testing.assert_array_equal((np.array([2.0, 2.0, 2.0]) < x).data, [False, False, True])
    mask = (x > 1) & (x < 3) | ~(x > 0)
    np.testing.assert_array_equal(mask.data, [False, True, False])
    np.testing.assert_array_equal(((x > 1) ^ (x > 2)).data, [False, True, False])


def test_floordiv_and_mod_like_numpy():
    x = shendu.tensor([5, 7, -3])
    np.testing.assert_array_equal((x // 2).data, [2, 3, -2])
    np.testing.assert_array_equal((x % 3).data, [2, 1, 0])
    np.testing.assert_array_equal((10 // x).data, 10 // np.array([5, 7, -3]))


def test_tensor_is_hashable_by_identity():
    a, b = shendu.ones(2), shendu.ones(2)
    table = {a: "a", b: "b"}
    assert table[a] == "a" and len(table) == 2


@pytest.mark.parametrize("key", [
    1, -1, slice(1, 3), (slice(None), 0), (Ellipsis, 1), (None, 0), [0, 2, 2], (np.array([0, 1]), np.array([2, 0])),
], ids=str)
def test_indexing_basic_and_advanced_with_gradients(key):
    a = np.arange(12.0).reshape(3, 4)
    x = shendu.tensor(a, requires_grad=True)
    y = x[key]
    np.testing.assert_array_equal(y.data, a[key])
    y.sum().backward()
    expected = np.zeros_like(a)
    np.add.at(expected, key if not isinstance(key, list) else np.array(key), 1.0)
    np.testing.assert_array_equal(x.grad.data, expected)


def test_indexing_with_tensor_and_boolean_mask():
    x = shendu.tensor([1.0, -2.0, 3.0], requires_grad=True)
    np.testing.assert_array_equal(x[shendu.tensor([2, 0])].data, [3.0, 1.0])
    pos = x[x > 0]
    np.testing.assert_array_equal(pos.data, [1.0, 3.0])
    pos.sum().backward()
    np.testing.assert_array_equal(x.grad.data, [1.0, 0.0, 1.0])


def test_iteration_yields_rows():
    rows = list(shendu.tensor([[1.0, 2.0], [3.0, 4.0]]))
    assert [r.tolist() for r in rows] == [[1.0, 2.0], [3.0, 4.0]]


def test_methods_match_numpy_names():
    a = np.random.default_rng(0).standard_normal((2, 3, 4))
    x = shendu.tensor(a)
    np.testing.assert_allclose(x.sum(axis=1, keepdims=True).data, a.sum(axis=1, keepdims=True))
    np.testing.assert_allclose(x.mean(axis=(0, 2)).data, a.mean(axis=(0, 2)))
    np.testing.assert_allclose(x.max(axis=-1).data, a.max(axis=-1))
    np.testing.assert_allclose(x.var(axis=0, ddof=1).data, a.var(axis=0, ddof=1))
    np.testing.assert_array_equal(x.argmax(axis=1).data, a.argmax(axis=1))
    assert x.reshape(6, 4).shape == x.reshape((6, 4)).shape == x.view(-1, 4).shape == (6, 4)
    assert x.transpose().shape == (4, 3, 2) and x.transpose(1, 0, 2).shape == x.permute(1, 0, 2).shape == (3, 2, 4)
    assert x.swapaxes(0, 2).shape == (4, 3, 2)
    assert x.expand_dims(0).shape == x.unsqueeze(0).shape == (1, 2, 3, 4)
    assert x[:, :1].squeeze(1).shape == (2, 4) and x.flatten().shape == (24,)
    assert [p.shape for p in x.split(3, axis=1)] == [(2, 1, 4)] * 3
    np.testing.assert_allclose(x.clamp(-0.5, 0.5).data, np.clip(a, -0.5, 0.5))
    np.testing.assert_allclose(x.pow(2).data, a ** 2)
    np.testing.assert_allclose(x.square().data, a ** 2)
    np.testing.assert_allclose(x.maximum(0.0).data, np.maximum(a, 0))
    np.testing.assert_allclose(x.minimum(shendu.zeros(4, dtype="float64")).data, np.minimum(a, 0))
    assert x.float().dtype == np.float32 and x.float().double().dtype == np.float64
    assert x.astype("float32").dtype == np.float32


def test_clone_copies_and_keeps_gradient_flowing():
    x = shendu.tensor([1.0, 2.0], requires_grad=True)
    c = x.clone()
    assert not np.shares_memory(c.data, x.data)
    (c * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [3.0, 3.0])
    plain = shendu.tensor([1.0])
    copy = plain.clone()
    copy += 1
    assert plain.item() == 1.0


def test_inplace_ops_on_plain_tensors_bump_the_version():
    x = shendu.zeros(3)
    x += 1
    x *= 3
    x -= 1
    x /= 2
    np.testing.assert_array_equal(x.data, [1.0, 1.0, 1.0])
    x[0] = 5
    x.copy_(np.array([1.0, 2.0, 3.0]))
    x.zero_()
    assert x._version == 7 and x.dtype == np.float32


def test_inplace_on_tensors_that_need_grad_is_refused_in_grad_mode():
    w = shendu.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad.*no_grad"):
        w += 1
    with pytest.raises(RuntimeError, match="tensor in a graph"):
        h = w * 2
        h[0] = 1.0
    x = shendu.zeros(3)
    with pytest.raises(RuntimeError, match="gradient would be lost"):
        x[0] = w[0]
    with shendu.no_grad():
        w -= 0.5
        x += w
    np.testing.assert_array_equal(w.data, [0.5, 0.5, 0.5])


def test_inplace_operators_rebind_tensors_in_a_graph_as_keras_code_expects():
    w = shendu.ones(3, requires_grad=True)
    h = w * 2
    alias = h
    h -= w ** 2  # a tensor in a graph is treated as immutable: the name is rebound, the graph stays right
    h *= 3
    h /= 2
    assert h is not alias and h.creator is not None
    np.testing.assert_array_equal(alias.data, [2.0, 2.0, 2.0])
    h.sum().backward()
    np.testing.assert_allclose(w.grad.data, 1.5 * (2 - 2 * w.data))
    x = shendu.zeros(3)
    before = x
    x += w  # a plain tensor meeting one that requires grad: rebound too, so the gradient is kept
    assert x.requires_grad and before.data.sum() == 0


def test_requires_grad_rules():
    with pytest.raises(TypeError, match="floating-point"):
        shendu.tensor([1, 2], requires_grad=True)
    x = shendu.tensor([1.0]).requires_grad_()
    assert x.requires_grad
    with pytest.raises(RuntimeError, match="leaf"):
        (x * 2).requires_grad_(False)
    assert shendu.Parameter(np.zeros(2, np.float32)).requires_grad


def test_pickle_is_refused():
    import pickle

    with pytest.raises(TypeError, match="not pickled"):
        pickle.dumps(shendu.ones(2))


def test_operators_match_torch_forward_and_backward():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    a, b = rng.uniform(0.5, 2.0, (3, 4)), rng.uniform(0.5, 2.0, (4,))
    x, y = shendu.tensor(a, requires_grad=True), shendu.tensor(b, requires_grad=True)
    tx, ty = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)

    def expression(p, q):
        return ((p + q) * (p - q) / q - p ** q + 2 ** (-p) + (p @ q)[:, None] - abs(p))[1:, ::2]

    ours, theirs = expression(x, y), expression(tx, ty)
    np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=1e-12)
    g = rng.standard_normal(ours.shape)
    ours.backward(g)
    theirs.backward(torch.tensor(g))
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(y.grad.data, ty.grad.numpy(), rtol=1e-10)
