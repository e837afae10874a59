"""Keras 3's ``keras.ops`` functions that the derivative table does not hold under the same name.

``shendu.ops`` *is* the ``keras.ops`` of ``import shendu as keras``: the ops modules give most of its names
(``matmul``, ``softmax``, ``reshape``, ...), with Keras's signatures; this module adds the rest, each built from
the ops (so gradients flow) or, for results that have no gradient (``argmax``, ``one_hot``, ``shape``), computed
on the arrays and returned as a Tensor. An op given only NumPy arrays returns a NumPy array (the ops also run on
raw arrays inside backward); ``convert_to_tensor`` makes a Tensor of anything.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from shendu import backend
from shendu.autograd.op import raw
from shendu.autograd.tensor import Tensor
from shendu.ops.arithmetic import add, astype, div, mul, neg, power, sub
from shendu.ops.convolution import conv1d, conv2d
from shendu.ops.elementwise import absolute, clip, log, maximum, relu, softplus, sqrt, where
from shendu.ops.linalg import matmul
from shendu.ops.nn import negative_log_likelihood
from shendu.ops.pool import avg_pool1d, avg_pool2d, max_pool1d, max_pool2d
from shendu.ops.reduce import log_softmax, mean, reduce_max, reduce_min, reduce_sum, var
from shendu.ops.shaping import getitem, reshape, split, squeeze, stack, take_along_axis

subtract, multiply, divide, true_divide, negative = sub, mul, div, div, neg  # Keras's (NumPy's) names


def shape(x: Any) -> tuple[int, ...]:
    """The shape of ``x`` as a tuple of ints."""
    return tuple(raw(x).shape) if hasattr(raw(x), "shape") else np.shape(x)


def cast(x: Any, dtype: Any) -> Any:
    """``x`` as ``dtype`` (a NumPy dtype or its name, e.g. ``"float32"``); gradients flow back for floats."""
    return astype(x, np.dtype(dtype))


def convert_to_tensor(x: Any, dtype: Any = None, sparse: bool | None = None, ragged: bool | None = None) -> Tensor:
    """A Tensor of ``x`` (a Tensor is returned as it is, cast when ``dtype`` differs); Python floats become
    float32. Sparse and ragged tensors do not exist in shendu."""
    if sparse or ragged:
        raise ValueError("convert_to_tensor: shendu has no sparse or ragged tensors; pass sparse=None, ragged=None")
    if isinstance(x, Tensor):
        return x if dtype is None else astype(x, np.dtype(dtype))
    return Tensor(backend.as_array(x, dtype=dtype))


def convert_to_numpy(x: Any) -> np.ndarray:
    """``x`` as a NumPy array on the host (a Tensor's data, without its graph)."""
    return np.asarray(backend.to_numpy(raw(x)))


def is_tensor(x: Any) -> bool:
    """Whether ``x`` is a shendu Tensor."""
    return isinstance(x, Tensor)


def stop_gradient(variable: Any) -> Any:
    """``variable`` cut from the graph (``Tensor.detach``): no gradient flows through it."""
    return variable.detach() if isinstance(variable, Tensor) else variable


def square(x: Any) -> Any:
    """y = x * x;   dx = 2 x gy."""
    return mul(x, x)


def _index_result(array: Any) -> Tensor:
    return Tensor(array.astype("int32"))


def argmax(x: Any, axis: int | None = None, keepdims: bool = False) -> Tensor:
    """Indices of the maxima along ``axis`` (of the flattened array when None), as int32 (Keras)."""
    return _index_result(backend.get_array_module(raw(x)).argmax(raw(x), axis=axis, keepdims=keepdims))


def argmin(x: Any, axis: int | None = None, keepdims: bool = False) -> Tensor:
    """Indices of the minima along ``axis`` (of the flattened array when None), as int32 (Keras)."""
    return _index_result(backend.get_array_module(raw(x)).argmin(raw(x), axis=axis, keepdims=keepdims))


def one_hot(x: Any, num_classes: int, axis: int = -1, dtype: Any = None, sparse: bool = False) -> Tensor:
    """Integer labels ``x`` as one-hot vectors along a new axis ``axis`` (float32 unless ``dtype``); a label
    outside ``[0, num_classes)`` gives a row of zeros, as in Keras."""
    if sparse:
        raise ValueError("one_hot: shendu has no sparse tensors; pass sparse=False")
    labels = raw(x)
    xp = backend.get_array_module(labels)
    hot = (xp.asarray(labels)[..., None] == xp.arange(num_classes)).astype(
        backend.default_float_dtype() if dtype is None else np.dtype(dtype))
    return Tensor(hot if axis == -1 else xp.moveaxis(hot, -1, axis))


def conv(inputs: Any, kernel: Any, strides: Any = 1, padding: str = "valid", data_format: str | None = None,
         dilation_rate: Any = 1) -> Any:
    """Keras's N-D convolution for 1-D (inputs (N, L, C), kernel (K, C, O)) and 2-D (inputs (N, H, W, C), kernel
    (KH, KW, C, O)) inputs; ``padding`` 'valid' or 'same'; ``data_format`` None means 'channels_last'."""
    data_format = data_format or "channels_last"
    rank = len(shape(inputs))
    if rank == 3:
        return conv1d(inputs, kernel, strides=strides, padding=padding.lower(), dilation=dilation_rate,
                      data_format=data_format)
    if rank == 4:
        return conv2d(inputs, kernel, strides=strides, padding=padding.lower(), dilation=dilation_rate,
                      data_format=data_format)
    raise ValueError(f"conv: inputs must be 3-D (1-D convolution) or 4-D (2-D), got shape {shape(inputs)}; "
                     "3-D convolutions are not in shendu")


def norm(x: Any, ord: Any = None, axis: Any = None, keepdims: bool = False) -> Any:  # noqa: A002 - Keras's name
    """Vector norms along one axis (ord None/2, 1, inf, -inf, 0 or any p) and the Frobenius norm over two axes
    (ord None or 'fro'), as NumPy's ``linalg.norm``; with ``axis`` None, a 1-D or 2-D ``x`` takes its vector or
    Frobenius norm and a higher-rank one the 2-norm of all its entries."""
    ndim = len(shape(x))
    axes = tuple(range(ndim)) if axis is None else (axis,) if isinstance(axis, int) else tuple(axis)
    if (len(axes) == 2 or axis is None) and ord not in (None, "fro") and not (axis is None and ndim == 1):
        raise ValueError(f"norm: over two axes only ord=None or 'fro' (Frobenius) is supported, got {ord!r}")
    if ord in (None, "fro", 2) and (len(axes) <= 2 or axis is None):
        return sqrt(reduce_sum(mul(x, x), axis=axes, keepdims=keepdims))
    if len(axes) > 2:
        raise ValueError(f"norm: axis must be one or two axes, got {axis!r}")
    magnitude = absolute(x)
    if ord == np.inf:
        return reduce_max(magnitude, axis=axes, keepdims=keepdims)
    if ord == -np.inf:
        return reduce_min(magnitude, axis=axes, keepdims=keepdims)
    if ord == 0:
        return reduce_sum(astype(raw(x) != 0, raw(x).dtype), axis=axes, keepdims=keepdims)
    if ord == 1:
        return reduce_sum(magnitude, axis=axes, keepdims=keepdims)
    return power(reduce_sum(power(magnitude, ord), axis=axes, keepdims=keepdims), 1.0 / ord)


# ------------------------------------------------------------------ more math, built from the ops (gradients flow)
def reciprocal(x: Any) -> Any:
    """y = 1 / x."""
    return div(1.0, x)


def rsqrt(x: Any) -> Any:
    """y = 1 / sqrt(x)."""
    return div(1.0, sqrt(x))


def log2(x: Any) -> Any:
    """y = log(x) / log(2)."""
    return mul(log(x), 1.0 / math.log(2.0))


def log10(x: Any) -> Any:
    """y = log(x) / log(10)."""
    return mul(log(x), 1.0 / math.log(10.0))


def dot(x1: Any, x2: Any) -> Any:
    """``matmul``, or a product when either is a scalar (Keras's ``ops.dot``)."""
    if len(shape(x1)) == 0 or len(shape(x2)) == 0:
        return mul(x1, x2)
    return matmul(x1, x2)


def ravel(x: Any) -> Any:
    """``x`` flattened to one axis."""
    return reshape(x, (-1,))


def flip(x: Any, axis: int | Sequence[int] | None = None) -> Any:
    """``x`` with the order of its entries reversed along ``axis`` (all axes when None)."""
    ndim = len(shape(x))
    axes = range(ndim) if axis is None else [axis] if isinstance(axis, int) else axis
    flipped = {a % ndim for a in axes}
    return getitem(x, tuple(slice(None, None, -1) if a in flipped else slice(None) for a in range(ndim)))


def _triangle(x: Any, k: int, lower: bool) -> Any:
    xp = backend.get_array_module(raw(x))
    rows, cols = shape(x)[-2:]
    mask = xp.tri(rows, cols, k, dtype=bool) if lower else ~xp.tri(rows, cols, k - 1, dtype=bool)
    return where(mask, x, xp.zeros((), dtype=raw(x).dtype))


def tril(x: Any, k: int = 0) -> Any:
    """``x`` with the entries above the k-th diagonal zeroed (over the last two axes)."""
    return _triangle(x, k, lower=True)


def triu(x: Any, k: int = 0) -> Any:
    """``x`` with the entries below the k-th diagonal zeroed (over the last two axes)."""
    return _triangle(x, k, lower=False)


def unstack(x: Any, num: int | None = None, axis: int = 0) -> list[Any]:
    """The slices of ``x`` along ``axis``, as a list (``num``, when given, must equal their count)."""
    count = shape(x)[axis]
    if num is not None and num != count:
        raise ValueError(f"unstack: num={num} but axis {axis} has {count} entries")
    return [squeeze(part, axis=axis) for part in split(x, count, axis=axis)]


def moments(x: Any, axes: int | Sequence[int], keepdims: bool = False, synchronized: bool = False) -> tuple:
    """(mean, variance) of ``x`` over ``axes`` (``synchronized`` has no meaning on one device)."""
    axes = (axes,) if isinstance(axes, int) else tuple(axes)
    return mean(x, axis=axes, keepdims=keepdims), var(x, axis=axes, keepdims=keepdims)


def normalize(x: Any, axis: int = -1, order: int = 2, epsilon: float | None = None) -> Any:
    """x / max(norm(x, order, axis), epsilon), epsilon 1e-12 by default."""
    size = norm(x, ord=order, axis=axis, keepdims=True)
    return div(x, maximum(size, 1e-12 if epsilon is None else epsilon))


def relu6(x: Any) -> Any:
    """y = min(max(x, 0), 6)."""
    return clip(x, 0.0, 6.0)


def hard_sigmoid(x: Any) -> Any:
    """y = relu6(x + 3) / 6."""
    return mul(relu6(add(x, 3.0)), 1.0 / 6.0)


def hard_silu(x: Any) -> Any:
    """y = x * hard_sigmoid(x)."""
    return mul(x, hard_sigmoid(x))


hard_swish = hard_silu


def softsign(x: Any) -> Any:
    """y = x / (1 + |x|)."""
    return div(x, add(absolute(x), 1.0))


def log_sigmoid(x: Any) -> Any:
    """y = log(sigmoid(x)) = -softplus(-x), computed stably."""
    return neg(softplus(neg(x)))


def _pool(name: str, by_rank: dict[int, Any], inputs: Any, pool_size: Any, strides: Any, padding: str,
          data_format: str | None) -> Any:
    pool = by_rank.get(len(shape(inputs)))
    if pool is None:
        raise ValueError(f"{name}: inputs must be 3-D or 4-D, got shape {shape(inputs)}")
    return pool(inputs, pool_size, strides, padding.lower(), data_format=data_format or "channels_last")


def max_pool(inputs: Any, pool_size: Any, strides: Any = None, padding: str = "valid",
             data_format: str | None = None) -> Any:
    """Keras's max pooling of 3-D (N, L, C) or 4-D (N, H, W, C) inputs; ``strides`` default to ``pool_size``."""
    return _pool("max_pool", {3: max_pool1d, 4: max_pool2d}, inputs, pool_size, strides, padding, data_format)


def average_pool(inputs: Any, pool_size: Any, strides: Any = None, padding: str = "valid",
                 data_format: str | None = None) -> Any:
    """Keras's average pooling of 3-D or 4-D inputs ('same' padding leaves the padding out of the mean)."""
    return _pool("average_pool", {3: avg_pool1d, 4: avg_pool2d}, inputs, pool_size, strides, padding, data_format)


_EPSILON = 1e-7  # Keras's backend epsilon, which its cross-entropies clip probabilities with


def binary_crossentropy(target: Any, output: Any, from_logits: bool = False) -> Any:
    """Elementwise -(t log p + (1 - t) log(1 - p)); with logits, max(x, 0) - x t + log(1 + exp(-|x|))."""
    if from_logits:
        return add(sub(relu(output), mul(output, target)), softplus(neg(absolute(output))))
    p = clip(output, _EPSILON, 1.0 - _EPSILON)
    return neg(add(mul(target, log(p)), mul(sub(1.0, target), log(sub(1.0, p)))))


def categorical_crossentropy(target: Any, output: Any, from_logits: bool = False, axis: int = -1) -> Any:
    """-sum(t log p, axis): ``output`` as probabilities (scaled to sum to 1 and clipped, as Keras does) or as
    logits (``from_logits=True``, through log_softmax)."""
    if from_logits:
        log_p = log_softmax(output, axis=axis)
    else:
        p = div(output, reduce_sum(output, axis=axis, keepdims=True))
        log_p = log(clip(p, _EPSILON, 1.0 - _EPSILON))
    return neg(reduce_sum(mul(target, log_p), axis=axis))


def sparse_categorical_crossentropy(target: Any, output: Any, from_logits: bool = False, axis: int = -1) -> Any:
    """``categorical_crossentropy`` with integer class labels ``target`` in place of one-hot vectors."""
    if axis not in (-1, len(shape(output)) - 1):
        raise ValueError("sparse_categorical_crossentropy: only the last axis holds the classes in shendu")
    labels = raw(target).astype("int64")
    if labels.ndim == len(shape(output)) and labels.shape[-1] == 1:  # (N, 1) labels, as Keras takes them
        labels = labels[..., 0]
    if from_logits:
        log_p = log_softmax(output, axis=-1)
    else:
        p = div(output, reduce_sum(output, axis=-1, keepdims=True))
        log_p = log(clip(p, _EPSILON, 1.0 - _EPSILON))
    return negative_log_likelihood(log_p, labels, "sparse_categorical_crossentropy")


# ------------------------------------------------------------------ comparisons and other results without gradient
def _no_grad_result(array: Any) -> Tensor:
    return Tensor(array)


def _binary(fn_name: str) -> Any:
    def compare(x1: Any, x2: Any) -> Tensor:
        xp = backend.get_array_module(raw(x1), raw(x2))
        y = getattr(xp, fn_name)(raw(x1), raw(x2))
        return y if getattr(y, "is_symbolic", False) else _no_grad_result(y)  # (recorded on symbolic tensors)

    compare.__name__ = compare.__qualname__ = fn_name
    compare.__doc__ = f"NumPy's ``{fn_name}``, elementwise with broadcasting (no gradient)."
    return compare


equal, not_equal, greater, greater_equal = (_binary(n) for n in ("equal", "not_equal", "greater", "greater_equal"))
less, less_equal, logical_and, logical_or = (_binary(n) for n in ("less", "less_equal", "logical_and", "logical_or"))
logical_xor = _binary("logical_xor")


def _unary(fn_name: str) -> Any:
    def apply(x: Any) -> Tensor:
        return _no_grad_result(getattr(backend.get_array_module(raw(x)), fn_name)(raw(x)))

    apply.__name__ = apply.__qualname__ = fn_name
    apply.__doc__ = f"NumPy's ``{fn_name}``, elementwise (no gradient)."
    return apply


logical_not, isnan, isinf, isfinite = (_unary(n) for n in ("logical_not", "isnan", "isinf", "isfinite"))
floor, ceil = _unary("floor"), _unary("ceil")


def around(x: Any, decimals: int = 0) -> Tensor:
    """``x`` rounded to ``decimals`` (halves to even, as NumPy; no gradient)."""
    return _no_grad_result(backend.get_array_module(raw(x)).round(raw(x), decimals))


def reduce_all(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Whether every entry (along ``axis``) is true."""
    return _no_grad_result(backend.get_array_module(raw(x)).all(raw(x), axis=axis, keepdims=keepdims))


def reduce_any(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Whether some entry (along ``axis``) is true."""
    return _no_grad_result(backend.get_array_module(raw(x)).any(raw(x), axis=axis, keepdims=keepdims))


def argsort(x: Any, axis: int = -1) -> Tensor:
    """The indices that sort ``x`` along ``axis`` (stable), as int32."""
    return _index_result(backend.get_array_module(raw(x)).argsort(raw(x), axis=axis, kind="stable"))


def sort(x: Any, axis: int = -1) -> Any:
    """``x`` sorted along ``axis``; gradients go back to the entries' places."""
    return take_along_axis(x, raw(argsort(x, axis=axis)), axis=axis)


def top_k(x: Any, k: int, sorted: bool = True) -> tuple[Any, Tensor]:  # noqa: A002 - Keras's name
    """(values, indices) of the ``k`` largest entries along the last axis, largest first (ties: lower index
    first); gradients flow to the values' places."""
    indices = backend.get_array_module(raw(x)).argsort(-raw(x), axis=-1, kind="stable")[..., :k]
    return take_along_axis(x, indices, axis=-1), _index_result(indices)


def size(x: Any) -> int:
    """The number of entries of ``x``."""
    return int(np.prod(shape(x)))


def ndim(x: Any) -> int:
    """The number of axes of ``x``."""
    return len(shape(x))


def dtype(x: Any) -> str:
    """The dtype of ``x`` by name (``'float32'``), as Keras's ``ops.dtype``."""
    return str(raw(x).dtype)


def cond(pred: Any, true_fn: Any, false_fn: Any) -> Any:
    """``true_fn()`` if ``pred`` else ``false_fn()`` (eager: a Python ``if``)."""
    return true_fn() if bool(raw(pred)) else false_fn()


def fori_loop(lower: int, upper: int, body_fun: Any, init_val: Any) -> Any:
    """``val = body_fun(i, val)`` for i in range(lower, upper), from ``init_val``."""
    val = init_val
    for i in range(int(raw(lower)), int(raw(upper))):
        val = body_fun(i, val)
    return val


def while_loop(cond: Any, body: Any, loop_vars: Any, maximum_iterations: int | None = None) -> Any:
    """``loop_vars = body(*loop_vars)`` while ``cond(*loop_vars)`` (at most ``maximum_iterations`` times); a
    single loop variable may be passed bare, as in Keras."""
    single = not isinstance(loop_vars, (tuple, list))
    state = (loop_vars,) if single else tuple(loop_vars)
    steps = 0
    while (maximum_iterations is None or steps < maximum_iterations) and bool(raw(cond(*state))):
        result = body(*state)
        state = (result,) if single else tuple(result)
        steps += 1
    return state[0] if single else type(loop_vars)(state)


def vectorized_map(function: Any, elements: Any) -> Any:
    """``function`` applied to each slice of ``elements`` along its first axis, the results stacked."""
    return stack([function(e) for e in unstack(elements)], axis=0)
