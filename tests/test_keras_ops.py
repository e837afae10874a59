"""``shendu.ops`` as Keras 3's ``keras.ops``: the names, signatures and values of Keras 3 itself (PyTorch backend).

Skipped when Keras is not installed."""

import inspect
import os
import types

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

if keras.backend.backend() != "torch":  # pragma: no cover - another backend was chosen before us
    pytest.skip("these comparisons need Keras on its PyTorch backend", allow_module_level=True)

import shendu  # noqa: E402
from shendu import ops  # noqa: E402

#: the keras.ops functions that the Keras 3 guides use, and that shendu.ops takes with Keras's parameters
KERAS_OPS = [
    "abs", "absolute", "add", "amax", "amin", "arange", "argmax", "argmin", "broadcast_to", "cast", "clip",
    "concatenate", "conv", "convert_to_numpy", "convert_to_tensor", "cos", "cumsum", "divide", "elu", "erf", "exp",
    "eye", "pad", "std", "take_along_axis", "var",
    "expand_dims", "full", "full_like", "is_tensor", "leaky_relu", "log", "log1p", "log_softmax", "logsumexp",
    "matmul", "max", "maximum", "mean", "min", "minimum", "multiply", "negative", "norm", "one_hot", "ones",
    "ones_like", "power", "prod", "relu", "repeat", "reshape", "selu", "shape", "sigmoid", "sign", "silu", "sin",
    "softmax", "softplus", "split", "sqrt", "square", "squeeze", "stack", "stop_gradient", "subtract", "sum",
    "swapaxes", "swish", "take", "tanh", "tile", "transpose", "true_divide", "where", "zeros", "zeros_like",
    "all", "any", "argsort", "average_pool", "binary_crossentropy", "categorical_crossentropy", "ceil", "cond", "dot",
    "dtype", "einsum", "equal", "flip", "floor", "fori_loop", "greater", "greater_equal", "hard_sigmoid", "hard_silu",
    "hard_swish", "isfinite", "isinf", "isnan", "less", "less_equal", "log10", "log2", "log_sigmoid", "logical_and",
    "logical_not", "logical_or", "logical_xor", "max_pool", "moments", "ndim", "normalize", "not_equal", "ravel",
    "reciprocal", "relu6", "round", "rsqrt", "size", "softsign", "sort", "sparse_categorical_crossentropy", "top_k",
    "tril", "triu", "unstack", "vectorized_map", "while_loop",
]
#: names whose parameters differ on purpose (see shendu/ops/__init__.py): ours come first, Keras's follow
DIFFERENT = {"gelu"}


def _parameters(fn) -> list[tuple[str, object]]:
    return [(p.name, p.default) for p in inspect.signature(fn).parameters.values()
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


@pytest.mark.parametrize("name", KERAS_OPS)
def test_keras_parameters_are_accepted_by_name_and_position(name):
    ours, theirs = _parameters(getattr(ops, name)), _parameters(getattr(keras.ops, name))
    # Keras's parameters, in Keras's order and with Keras's defaults, lead ours (ours may add more after them,
    # and may give a default where Keras has none: ``clip(x, x_min=0.0)``, PyTorch's ``ones()``)
    signature = f"ops.{name}{inspect.signature(getattr(ops, name))}"
    assert [n for n, _ in ours[:len(theirs)]] == [n for n, _ in theirs], signature
    for (_, our_default), (param, default) in zip(ours, theirs):
        assert default is inspect.Parameter.empty or our_default == default, (name, param, our_default, default)


def test_no_keras_op_is_shadowed_by_a_submodule():
    for name in dir(keras.ops):
        if not name.startswith("_") and callable(getattr(keras.ops, name)) and hasattr(ops, name):
            assert not isinstance(getattr(ops, name), types.ModuleType), f"shendu.ops.{name} is a module"
    x = shendu.ones((2, 3))
    assert ops.shape(x) == (2, 3) and ops.shape(np.zeros((4,))) == (4,)


def test_keras_is_shendu_ops_itself():
    import shendu as keras_like
    assert keras_like.ops is ops and keras_like.ops.matmul is shendu.matmul


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x)) if not isinstance(x, shendu.Tensor) else x.numpy()


def _compare(ours, theirs, rtol=1e-5, atol=1e-6):
    ours = ours if isinstance(ours, (tuple, list)) else [ours]
    theirs = theirs if isinstance(theirs, (tuple, list)) else [theirs]
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        a = a.numpy() if isinstance(a, shendu.Tensor) else np.asarray(a)
        b = np.asarray(keras.ops.convert_to_numpy(b))
        assert a.shape == b.shape, (a.shape, b.shape)
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


RNG = np.random.default_rng(0)
CONV_X = RNG.standard_normal((2, 7, 6, 3)).astype(np.float32)
CONV_K = RNG.standard_normal((3, 2, 3, 4)).astype(np.float32)
CONV_X1 = RNG.standard_normal((2, 9, 3)).astype(np.float32)
CONV_K1 = RNG.standard_normal((3, 3, 5)).astype(np.float32)
X = RNG.standard_normal((3, 4)).astype(np.float32)
Y = RNG.standard_normal((3, 4)).astype(np.float32)
W = RNG.standard_normal((4, 5)).astype(np.float32)
P = np.abs(X) + 0.5
CASES = {
    "ones": lambda m: m.ones(shape=(2, 3)),
    "zeros": lambda m: m.zeros((2, 3), dtype="int32"),
    "full": lambda m: m.full((2,), 3.0),
    "ones_like": lambda m, t: m.ones_like(t(X)),
    "arange": lambda m: m.arange(1, 7, 2, dtype="int32"),
    "arange_float": lambda m: m.arange(0.5, 3.0),
    "square": lambda m, t: m.square(t(X)),
    "one_hot": lambda m, t: m.one_hot(t(np.array([0, 2, 1, -1])), 3),
    "one_hot_axis0": lambda m, t: m.one_hot(t(np.array([0, 2])), 3, axis=0),
    "argmax": lambda m, t: m.argmax(t(X), axis=1),
    "argmin_flat": lambda m, t: m.argmin(t(X)),
    "argmax_keepdims": lambda m, t: m.argmax(t(X), axis=0, keepdims=True),
    "cast": lambda m, t: m.cast(t(X * 3), "int32"),
    "multiply": lambda m, t: m.multiply(t(X), t(Y)),
    "add": lambda m, t: m.add(t(X), 2.0),
    "subtract": lambda m, t: m.subtract(t(X), t(Y)),
    "divide": lambda m, t: m.divide(t(X), t(P)),
    "negative": lambda m, t: m.negative(t(X)),
    "mean": lambda m, t: m.mean(t(X), axis=1, keepdims=True),
    "sum": lambda m, t: m.sum(t(X), axis=0),
    "max": lambda m, t: m.max(t(X), axis=-1),
    "max_initial": lambda m, t: m.max(t(X), axis=-1, initial=0.5),
    "min": lambda m, t: m.min(t(X), axis=1, keepdims=True),
    "min_all": lambda m, t: m.min(t(X)),
    "prod": lambda m, t: m.prod(t(X), axis=0, dtype="float64"),
    "cumsum": lambda m, t: m.cumsum(t(X), axis=1),
    "expand_dims": lambda m, t: m.expand_dims(t(X), 1),
    "squeeze": lambda m, t: m.squeeze(t(X[:1]), axis=0),
    "concatenate": lambda m, t: m.concatenate([t(X), t(Y)], axis=-1),
    "stack": lambda m, t: m.stack([t(X), t(Y)], axis=1),
    "reshape": lambda m, t: m.reshape(t(X), (4, -1)),
    "transpose": lambda m, t: m.transpose(t(X)),
    "transpose_axes": lambda m, t: m.transpose(t(X[None]), axes=(2, 0, 1)),
    "matmul": lambda m, t: m.matmul(t(X), t(W)),
    "softmax": lambda m, t: m.softmax(t(X)),
    "log_softmax": lambda m, t: m.log_softmax(t(X), axis=0),
    "sigmoid": lambda m, t: m.sigmoid(t(X)),
    "relu": lambda m, t: m.relu(t(X)),
    "leaky_relu": lambda m, t: m.leaky_relu(t(X)),
    "logsumexp": lambda m, t: m.logsumexp(t(X), axis=1),
    "where": lambda m, t: m.where(t(X > 0), t(X), t(Y)),
    "where_indices": lambda m, t: m.stack(list(m.where(t(X > 0))), axis=0),
    "clip": lambda m, t: m.clip(t(X), -0.5, 0.5),
    "sqrt": lambda m, t: m.sqrt(t(P)),
    "exp": lambda m, t: m.exp(t(X)),
    "log": lambda m, t: m.log(t(P)),
    "abs": lambda m, t: m.abs(t(X)),
    "absolute": lambda m, t: m.absolute(t(X)),
    "maximum": lambda m, t: m.maximum(t(X), t(Y)),
    "minimum": lambda m, t: m.minimum(t(X), 0.0),
    "tanh": lambda m, t: m.tanh(t(X)),
    "take": lambda m, t: m.take(t(X), t(np.array([2, 0])), axis=1),
    "take_flat": lambda m, t: m.take(t(X), t(np.array([5, 0]))),
    "norm": lambda m, t: m.norm(t(X)),
    "norm_axis": lambda m, t: m.norm(t(X), axis=-1, keepdims=True),
    "norm_l1": lambda m, t: m.norm(t(X), ord=1, axis=0),
    "norm_inf": lambda m, t: m.norm(t(X), ord=np.inf, axis=1),
    "norm_3": lambda m, t: m.norm(t(X), ord=3, axis=1),
    "norm_fro": lambda m, t: m.norm(t(X), ord="fro", axis=(0, 1)),
    "split": lambda m, t: m.split(t(X), 2, axis=1),
    "tile": lambda m, t: m.tile(t(X), (2, 1)),
    "repeat": lambda m, t: m.repeat(t(X), 2, axis=0),
    "power": lambda m, t: m.power(t(P), 2.5),
    "amax": lambda m, t: m.amax(t(X), axis=0),
    "elu": lambda m, t: m.elu(t(X), alpha=0.5),
    "softplus": lambda m, t: m.softplus(t(X)),
    "silu": lambda m, t: m.silu(t(X)),
}
LABELS = np.array([0, 2, 1])
ONE_HOT = np.eye(4, dtype=np.float32)[[0, 2, 1]]
PROBS = np.exp(X) / np.exp(X).sum(-1, keepdims=True)
CASES.update({
    "reciprocal": lambda m, t: m.reciprocal(t(P)),
    "rsqrt": lambda m, t: m.rsqrt(t(P)),
    "log2": lambda m, t: m.log2(t(P)),
    "log10": lambda m, t: m.log10(t(P)),
    "dot": lambda m, t: m.dot(t(X), t(W)),
    "dot_scalar": lambda m, t: m.dot(t(X), t(np.float32(2.0))),
    "ravel": lambda m, t: m.ravel(t(X)),
    "flip": lambda m, t: m.flip(t(X), axis=1),
    "flip_all": lambda m, t: m.flip(t(X)),
    "tril": lambda m, t: m.tril(t(X), k=1),
    "triu": lambda m, t: m.triu(t(X[None]), k=-1),
    "unstack": lambda m, t: m.unstack(t(X), axis=1),
    "moments": lambda m, t: m.moments(t(X), axes=[0], keepdims=True),
    "normalize": lambda m, t: m.normalize(t(X), axis=0),
    "relu6": lambda m, t: m.relu6(t(X * 4)),
    "hard_sigmoid": lambda m, t: m.hard_sigmoid(t(X * 3)),
    "hard_silu": lambda m, t: m.hard_silu(t(X * 3)),
    "softsign": lambda m, t: m.softsign(t(X)),
    "log_sigmoid": lambda m, t: m.log_sigmoid(t(X * 10)),
    "binary_crossentropy": lambda m, t: m.binary_crossentropy(t((X > 0).astype("float32")), t(PROBS)),
    "binary_crossentropy_logits": lambda m, t: m.binary_crossentropy(t((X > 0).astype("float32")), t(X * 5),
                                                                      from_logits=True),
    "categorical_crossentropy": lambda m, t: m.categorical_crossentropy(t(ONE_HOT), t(PROBS)),
    "categorical_crossentropy_logits": lambda m, t: m.categorical_crossentropy(t(ONE_HOT), t(X), from_logits=True),
    "sparse_categorical_crossentropy": lambda m, t: m.sparse_categorical_crossentropy(t(LABELS), t(PROBS)),
    "sparse_categorical_crossentropy_column": lambda m, t: m.sparse_categorical_crossentropy(t(LABELS[:, None]),
                                                                                              t(PROBS)),
    "sparse_categorical_crossentropy_logits": lambda m, t: m.sparse_categorical_crossentropy(t(LABELS), t(X),
                                                                                              from_logits=True),
    "equal": lambda m, t: m.equal(t(X > 0), t(Y > 0)),
    "greater": lambda m, t: m.greater(t(X), t(Y)),
    "less_equal": lambda m, t: m.less_equal(t(X), 0.0),
    "logical_and": lambda m, t: m.logical_and(t(X > 0), t(Y > 0)),
    "logical_not": lambda m, t: m.logical_not(t(X > 0)),
    "isnan": lambda m, t: m.isnan(t(np.array([1.0, np.nan], dtype=np.float32))),
    "floor": lambda m, t: m.floor(t(X * 3)),
    "ceil": lambda m, t: m.ceil(t(X * 3)),
    "round": lambda m, t: m.round(t(X * 3)),
    "round_decimals": lambda m, t: m.round(t(X), decimals=2),
    "all": lambda m, t: m.all(t(X > -1), axis=1),
    "any": lambda m, t: m.any(t(X > 1), keepdims=True),
    "sort": lambda m, t: m.sort(t(X), axis=0),
    "argsort": lambda m, t: m.argsort(t(X)),
    "top_k": lambda m, t: m.top_k(t(X), 2),
    "max_pool": lambda m, t: m.max_pool(t(CONV_X), 2),
    "max_pool_same": lambda m, t: m.max_pool(t(CONV_X), (3, 2), strides=2, padding="same"),
    "average_pool": lambda m, t: m.average_pool(t(CONV_X), 2, strides=1),
    "average_pool_same_1d": lambda m, t: m.average_pool(t(CONV_X1), 2, padding="same"),
    "eye": lambda m: m.eye(3, 4, k=1),
    "pad": lambda m, t: m.pad(t(X), ((1, 2), (0, 1)), constant_values=0.5),
    "pad_reflect": lambda m, t: m.pad(t(X), ((2, 1), (1, 3)), mode="reflect"),
    "pad_symmetric": lambda m, t: m.pad(t(X[None]), ((0, 0), (1, 1), (1, 1)), mode="symmetric"),
    "var": lambda m, t: m.var(t(X), 1, True),
    "std": lambda m, t: m.std(t(X), axis=0),
    "take_along_axis": lambda m, t: m.take_along_axis(t(X), t(np.argsort(X, axis=1)), axis=1),
    "take_along_axis_flat": lambda m, t: m.take_along_axis(t(X), t(np.array([3, 0, 11]))),
    "vectorized_map": lambda m, t: m.vectorized_map(lambda row: m.sum(m.square(row)), t(X)),
})
CASES.update({
    "conv2d": lambda m, t: m.conv(t(CONV_X), t(CONV_K)),
    "conv2d_same_strided": lambda m, t: m.conv(t(CONV_X), t(CONV_K), strides=2, padding="same"),
    "conv2d_dilated": lambda m, t: m.conv(t(CONV_X), t(CONV_K), dilation_rate=2),
    "conv1d": lambda m, t: m.conv(t(CONV_X1), t(CONV_K1), padding="same"),
})


@pytest.mark.parametrize("case", sorted(CASES))
def test_values_match_keras(case):
    fn = CASES[case]
    if fn.__code__.co_argcount == 1:
        ours, theirs = fn(ops), fn(keras.ops)
    else:
        ours, theirs = fn(ops, ops.convert_to_tensor), fn(keras.ops, keras.ops.convert_to_tensor)
    _compare(ours, theirs)
    if isinstance(ours, shendu.Tensor):  # the same dtype as Keras's result
        assert ours.dtype == np.dtype(str(theirs.dtype).removeprefix("torch.")), case


def test_gradients_flow_through_the_keras_names():
    x = shendu.tensor(X, requires_grad=True)
    loss = ops.sum(ops.square(ops.multiply(x, 2.0))) + ops.mean(ops.norm(x, axis=1)) \
        + ops.sum(ops.subtract(ops.divide(x, 2.0), ops.negative(x)))
    loss.backward()
    expected = 8 * X + (X / np.linalg.norm(X, axis=1, keepdims=True)) / 3 + 1.5
    np.testing.assert_allclose(x.grad, expected, rtol=1e-5)
    y = shendu.tensor(X, requires_grad=True)
    ops.sum(ops.cast(y, "float64")).backward()
    np.testing.assert_array_equal(y.grad, np.ones_like(X))


def test_eager_control_flow_and_introspection():
    assert ops.cond(ops.convert_to_tensor(True), lambda: 1, lambda: 2) == 1
    assert ops.fori_loop(0, 4, lambda i, v: v + i, 10) == 16
    assert ops.while_loop(lambda a, b: a < 5, lambda a, b: (a + 1, b * 2), (0, 1)) == (5, 32)
    assert ops.while_loop(lambda a: a < 100, lambda a: a + 1, 0, maximum_iterations=7) == 7
    x = ops.convert_to_tensor(X)
    assert ops.size(x) == 12 and ops.ndim(x) == 2 and ops.dtype(x) == keras.ops.dtype(keras.ops.convert_to_tensor(X))
    assert "round" not in shendu.__all__ and shendu.ops.round is ops.around  # star imports keep the builtin


def test_sort_and_top_k_pass_gradients_to_the_entries():
    x = shendu.tensor(X, requires_grad=True)
    values, indices = ops.top_k(x, 2)
    (ops.sum(values) + ops.sum(ops.sort(x, axis=0)[0])).backward()
    expected = np.zeros_like(X)
    np.put_along_axis(expected, indices.numpy().astype(int), 1.0, axis=-1)
    expected[np.argmin(X, axis=0), np.arange(4)] += 1.0
    np.testing.assert_array_equal(x.grad, expected)


def test_reflect_padding_passes_gradients_to_the_repeated_entries():
    x = shendu.tensor(X, requires_grad=True)
    ops.sum(ops.pad(x, ((0, 0), (1, 1)), mode="reflect")).backward()
    expected = np.ones_like(X)
    expected[:, 1] += 1.0  # column 1 is reflected before column 0, column 2 after column 3
    expected[:, 2] += 1.0
    np.testing.assert_array_equal(x.grad, expected)
    for mode in ("symmetric", "edge", "wrap"):  # wider than Keras's PyTorch backend gets right: NumPy is the oracle
        np.testing.assert_array_equal(ops.pad(shendu.tensor(X), ((2, 2), (3, 1)), mode=mode).numpy(),
                                      np.pad(X, ((2, 2), (3, 1)), mode=mode))
    with pytest.raises(ValueError, match="mode"):
        ops.pad(X, 1, mode="mirror")


def test_conversions():
    t = ops.convert_to_tensor([1.0, 2.0])
    assert isinstance(t, shendu.Tensor) and t.dtype == np.float32 and ops.is_tensor(t) and not ops.is_tensor(X)
    assert ops.convert_to_tensor(t) is t and ops.convert_to_tensor(t, "float64").dtype == np.float64
    assert isinstance(ops.convert_to_numpy(t), np.ndarray) and ops.convert_to_numpy([1, 2]).tolist() == [1, 2]
    x = shendu.tensor(X, requires_grad=True)
    assert not ops.stop_gradient(x * 2).requires_grad
    with pytest.raises(ValueError, match="sparse"):
        ops.convert_to_tensor(X, sparse=True)


def test_errors_name_what_is_supported():
    with pytest.raises(ValueError, match="3-D convolutions"):
        ops.conv(np.zeros((1, 2, 2, 2, 1)), np.zeros((1, 1, 1, 1, 1)))
    with pytest.raises(ValueError, match="Frobenius"):
        ops.norm(X, ord=1)
    with pytest.raises(ValueError, match="both x1 and x2"):
        ops.where(X > 0, X)


def test_creation_takes_keras_and_pytorch_shapes():
    assert shendu.ones(shape=(2, 3)).shape == (2, 3) and shendu.zeros(shape=4).shape == (4,)
    assert shendu.ones(2, 3).shape == (2, 3) and shendu.zeros([2, 3]).shape == (2, 3) and shendu.ones().shape == ()
    assert ops.ones is shendu.ones and ops.arange(3, step=None).numpy().tolist() == [0, 1, 2]
