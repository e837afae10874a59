"""Merge layers: combine a list of inputs (Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Dot),
each with a functional form (``add([a, b])`` is ``Add()([a, b])``).

Elementwise merges broadcast the non-batch axes with NumPy's rules, as Keras does.

>>> import numpy as np
>>> add([np.ones((2, 3)), np.ones((2, 3))]).shape
(2, 3)
>>> concatenate([np.ones((2, 3)), np.ones((2, 1))]).shape
(2, 4)
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from shendu import ops
from shendu.autograd.tensor import Tensor
from shendu.layers.layer import Layer


def _broadcast_shapes(layer: Layer, shapes: list[tuple]) -> tuple:
    """The broadcast of several shapes (None = unknown size), or a ValueError naming the layer."""
    ndim = max(len(s) for s in shapes)
    padded = [(1,) * (ndim - len(s)) + tuple(s) for s in shapes]
    out = []
    for i, dims in enumerate(zip(*padded)):
        sizes = {d for d in dims if d is not None and d != 1}
        if len(sizes) > 1:
            raise ValueError(f"layer '{layer.name}' ({type(layer).__name__}) cannot combine inputs of shapes "
                             f"{[tuple(s) for s in shapes]}: axis {i} has sizes {sorted(sizes)}. Hint: the inputs "
                             "must have equal shapes (or sizes of 1 that broadcast)")
        out.append(sizes.pop() if sizes else (None if any(d is None for d in dims) else 1))
    return tuple(out)


class _Merge(Layer):
    """Base: ``call`` receives a list of at least ``min_inputs`` tensors and folds them with ``merge``."""

    min_inputs, max_inputs = 2, None

    def _check_count(self, input_shape: Any) -> list[tuple]:
        if not isinstance(input_shape, (list, tuple)) or not input_shape or not isinstance(input_shape[0], tuple):
            raise ValueError(f"layer '{self.name}' ({type(self).__name__}) must be called on a list of inputs, "
                             f"received one input of shape {input_shape}")
        n = len(input_shape)
        if n < self.min_inputs or (self.max_inputs is not None and n > self.max_inputs):
            wanted = (f"exactly {self.min_inputs}" if self.max_inputs == self.min_inputs
                      else f"at least {self.min_inputs}")
            raise ValueError(f"layer '{self.name}' ({type(self).__name__}) needs {wanted} inputs, received {n}")
        return list(input_shape)

    def build(self, input_shape: Any) -> None:
        shapes = self._check_count(input_shape)
        self.compute_output_shape(shapes)

    def call(self, inputs: list[Tensor]) -> Tensor:
        self._check_count([tuple(x.shape) for x in inputs])
        return self.merge(list(inputs))

    def merge(self, inputs: list[Tensor]) -> Tensor:
        return functools.reduce(self.combine, inputs)

    def compute_mask(self, inputs: Any, previous_mask: Any = None) -> Any:
        """A position is kept when every input that has a mask keeps it (Keras)."""
        masks = [m for m in (previous_mask or []) if m is not None]
        return functools.reduce(np.logical_and, masks) if masks else None

    def combine(self, a: Tensor, b: Tensor) -> Tensor:
        raise NotImplementedError

    def compute_output_shape(self, input_shape: Any) -> tuple:
        return _broadcast_shapes(self, self._check_count(input_shape))


class Add(_Merge):
    """y = x_1 + x_2 + ... + x_n"""

    def combine(self, a, b):
        return a + b


class Subtract(_Merge):
    """y = x_1 - x_2 (exactly two inputs)"""

    max_inputs = 2

    def combine(self, a, b):
        return a - b


class Multiply(_Merge):
    """y = x_1 * x_2 * ... * x_n (elementwise)"""

    def combine(self, a, b):
        return a * b


class Average(_Merge):
    """y = (x_1 + ... + x_n) / n"""

    def merge(self, inputs):
        return functools.reduce(ops.add, inputs) * (1.0 / len(inputs))


class Maximum(_Merge):
    """y = max(x_1, ..., x_n) elementwise"""

    def combine(self, a, b):
        return ops.maximum(a, b)


class Minimum(_Merge):
    """y = min(x_1, ..., x_n) elementwise"""

    def combine(self, a, b):
        return ops.minimum(a, b)


class Concatenate(_Merge):
    """y = concatenate(inputs, axis); the other axes must agree."""

    min_inputs = 1

    def __init__(self, axis: int = -1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.axis = int(axis)

    def merge(self, inputs):
        return ops.concatenate(inputs, self.axis)

    def compute_output_shape(self, input_shape: Any) -> tuple:
        shapes = self._check_count(input_shape)
        ndim = len(shapes[0])
        if any(len(s) != ndim for s in shapes) or not -ndim <= self.axis < ndim:
            raise ValueError(f"layer '{self.name}' (Concatenate) with axis={self.axis} needs inputs of one rank "
                             f"with that axis, received shapes {shapes}")
        axis = self.axis % ndim
        out = []
        for i, dims in enumerate(zip(*shapes)):
            if i == axis:
                out.append(None if any(d is None for d in dims) else sum(dims))
                continue
            sizes = {d for d in dims if d is not None}
            if len(sizes) > 1:
                raise ValueError(f"layer '{self.name}' (Concatenate) with axis={self.axis} needs inputs whose other "
                                 f"axes match, received shapes {shapes} (axis {i} differs). Hint: reshape or pad "
                                 "the inputs, or concatenate along another axis")
            out.append(sizes.pop() if sizes else None)
        return tuple(out)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axis": self.axis}


def _batch_dot(x: Tensor, y: Tensor, ax: int, ay: int) -> Tensor:
    """Contract axis ``ax`` of x with axis ``ay`` of y for every sample (Keras ``batch_dot``)."""
    xt = ops.transpose(x, (0, *[i for i in range(1, x.ndim) if i != ax], ax))
    yt = ops.transpose(y, (0, ay, *[i for i in range(1, y.ndim) if i != ay]))
    rest_x, rest_y = xt.shape[1:-1], yt.shape[2:]
    n, k = x.shape[0], x.shape[ax]
    out = ops.reshape(xt, (n, int(np.prod(rest_x)), k)) @ ops.reshape(yt, (n, k, int(np.prod(rest_y))))
    shape = (n, *rest_x, *rest_y)
    return ops.reshape(out, shape if len(shape) > 1 else (n, 1))


def _l2_normalize(x: Tensor, axis: int) -> Tensor:
    return x / ops.sqrt(ops.maximum(ops.sum(x * x, axis, keepdims=True), 1e-12))


class Dot(_Merge):
    """y[b] = sum_k x[b, ..., k, ...] * z[b, ..., k, ...]: the dot product of two inputs over ``axes``
    (one int for both, or a pair), per sample; ``normalize=True`` l2-normalises first (cosine similarity)."""

    min_inputs = max_inputs = 2

    def __init__(self, axes: int | tuple[int, int], normalize: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.axes = (int(axes), int(axes)) if isinstance(axes, (int, np.integer)) else tuple(int(a) for a in axes)
        if len(self.axes) != 2:
            raise ValueError(f"Dot: axes must be an int or a pair of ints, got {axes!r}")
        self.normalize = bool(normalize)

    def _resolved_axes(self, shapes: list[tuple]) -> tuple[int, int]:
        ax, ay = (a % len(s) for a, s in zip(self.axes, shapes))
        if ax == 0 or ay == 0:
            raise ValueError(f"layer '{self.name}' (Dot): axes {self.axes} must not include the batch axis 0")
        kx, ky = shapes[0][ax], shapes[1][ay]
        if kx is not None and ky is not None and kx != ky:
            raise ValueError(f"layer '{self.name}' (Dot) with axes={self.axes} needs matching sizes on those axes, "
                             f"received shapes {shapes[0]} and {shapes[1]} ({kx} != {ky})")
        return ax, ay

    def merge(self, inputs):
        x, y = inputs
        ax, ay = self._resolved_axes([tuple(x.shape), tuple(y.shape)])
        if self.normalize:
            x, y = _l2_normalize(x, ax), _l2_normalize(y, ay)
        return _batch_dot(x, y, ax, ay)

    def compute_output_shape(self, input_shape: Any) -> tuple:
        shapes = self._check_count(input_shape)
        ax, ay = self._resolved_axes(shapes)
        rest = [d for i, d in enumerate(shapes[0]) if i not in (0, ax)] + [
            d for i, d in enumerate(shapes[1]) if i not in (0, ay)]
        return (shapes[0][0], *rest) if rest else (shapes[0][0], 1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axes": list(self.axes), "normalize": self.normalize}


def add(inputs: list[Any], **kwargs: Any) -> Any:
    """``Add(**kwargs)(inputs)``: the elementwise sum."""
    return Add(**kwargs)(inputs)


def subtract(inputs: list[Any], **kwargs: Any) -> Any:
    """``Subtract(**kwargs)(inputs)``: inputs[0] - inputs[1]."""
    return Subtract(**kwargs)(inputs)


def multiply(inputs: list[Any], **kwargs: Any) -> Any:
    """``Multiply(**kwargs)(inputs)``: the elementwise product."""
    return Multiply(**kwargs)(inputs)


def average(inputs: list[Any], **kwargs: Any) -> Any:
    """``Average(**kwargs)(inputs)``: the elementwise mean."""
    return Average(**kwargs)(inputs)


def maximum(inputs: list[Any], **kwargs: Any) -> Any:
    """``Maximum(**kwargs)(inputs)``: the elementwise maximum."""
    return Maximum(**kwargs)(inputs)


def minimum(inputs: list[Any], **kwargs: Any) -> Any:
    """``Minimum(**kwargs)(inputs)``: the elementwise minimum."""
    return Minimum(**kwargs)(inputs)


def concatenate(inputs: list[Any], axis: int = -1, **kwargs: Any) -> Any:
    """``Concatenate(axis, **kwargs)(inputs)``."""
    return Concatenate(axis=axis, **kwargs)(inputs)


def dot(inputs: list[Any], axes: int | tuple[int, int], normalize: bool = False, **kwargs: Any) -> Any:
    """``Dot(axes, normalize, **kwargs)(inputs)``: per-sample dot products."""
    return Dot(axes=axes, normalize=normalize, **kwargs)(inputs)
