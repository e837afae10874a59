"""Keras 3's ``keras.ops`` functions that the derivative table does not hold under the same name.

``shendu.ops`` *is* the ``keras.ops`` of ``import shendu as keras``: the ops modules give most of its names
(``matmul``, ``softmax``, ``reshape``, ...), with Keras's signatures; this module adds the rest, each built from
the ops (so gradients flow) or, for results that have no gradient (``argmax``, ``one_hot``, ``shape``), computed
on the arrays and returned as a Tensor. An op given only NumPy arrays returns a NumPy array (the ops also run on
raw arrays inside backward); ``convert_to_tensor`` makes a Tensor of anything.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shendu import backend
from shendu.autograd.op import raw
from shendu.autograd.tensor import Tensor
from shendu.ops.arithmetic import astype, div, mul, neg, power, sub
from shendu.ops.convolution import conv1d, conv2d
from shendu.ops.elementwise import absolute, sqrt
from shendu.ops.reduce import reduce_max, reduce_min, reduce_sum

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
    if len(axes) == 2 or axis is None:
        if ord not in (None, "fro") and not (axis is None and ndim == 1):
            raise ValueError(f"norm: over two axes only ord=None or 'fro' (Frobenius) is supported, got {ord!r}")
        if ord in (None, "fro", 2):
            return sqrt(reduce_sum(mul(x, x), axis=axes, keepdims=keepdims))
    if len(axes) > 2:
        raise ValueError(f"norm: axis must be one or two axes, got {axis!r}")
    magnitude = absolute(x)
    if ord is None or ord == 2:
        return sqrt(reduce_sum(mul(x, x), axis=axes, keepdims=keepdims))
    if ord == np.inf:
        return reduce_max(magnitude, axis=axes, keepdims=keepdims)
    if ord == -np.inf:
        return reduce_min(magnitude, axis=axes, keepdims=keepdims)
    if ord == 0:
        return reduce_sum(astype(raw(x) != 0, raw(x).dtype), axis=axes, keepdims=keepdims)
    if ord == 1:
        return reduce_sum(magnitude, axis=axes, keepdims=keepdims)
    return power(reduce_sum(power(magnitude, ord), axis=axes, keepdims=keepdims), 1.0 / ord)
