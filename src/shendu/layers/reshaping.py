"""Image reshaping layers with Keras 3's arguments: UpSampling2D (nearest neighbour), ZeroPadding2D,
Cropping2D, and SpatialDropout2D (drops whole feature maps).

>>> import numpy as np
>>> UpSampling2D()(np.zeros((1, 3, 4, 2))).shape
(1, 6, 8, 2)
>>> ZeroPadding2D(((1, 0), (2, 2)))(np.zeros((1, 3, 4, 2))).shape
(1, 4, 8, 2)
>>> Cropping2D(((1, 0), (1, 2)))(np.zeros((1, 3, 4, 2))).shape
(1, 2, 1, 2)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shendu import ops
from shendu.autograd.tensor import Tensor
from shendu.backend import get_array_module
from shendu.layers.core import check_data_format, seeded_dropout
from shendu.layers.input_spec import InputSpec
from shendu.layers.layer import Layer
from shendu.ops.convolution import int_tuple


def _spatial_axes(data_format: str) -> tuple[int, int]:
    return (1, 2) if data_format == "channels_last" else (2, 3)


def _pairs(value: Any, layer: str, name: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """int p -> ((p, p), (p, p)); (a, b) -> ((a, a), (b, b)); ((t, b), (l, r)) as given; all >= 0."""
    try:
        if isinstance(value, int):
            pairs = ((value, value), (value, value))
        else:
            value = tuple(value)
            if len(value) != 2:
                raise ValueError
            pairs = tuple((v, v) if isinstance(v, int) else tuple(v) for v in value)
        if any(len(p) != 2 or not isinstance(a, int) or a < 0 for p in pairs for a in p):
            raise ValueError
    except (TypeError, ValueError):
        raise ValueError(f"{layer}: {name} must be an int, 2 ints (height, width) or 2 pairs "
                         f"((top, bottom), (left, right)) of non-negative ints, got {value!r}") from None
    return pairs  # type: ignore[return-value]


def _resize(shape: tuple, axes: tuple[int, int], fn: Any) -> tuple:
    return tuple(fn(i, d) if i in axes and d is not None else d for i, d in enumerate(shape))


def bilinear_matrix(size: int, scale: int, dtype: Any = np.float32) -> np.ndarray:
    """The (size * scale, size) matrix of bilinear upsampling along one axis, half-pixel centres (TensorFlow's
    and PyTorch's ``align_corners=False``): output o reads source s = (o + 0.5) / scale - 0.5, clamped at 0,
    as (1 - f) x[floor(s)] + f x[floor(s) + 1].

    >>> bilinear_matrix(2, 2)
    array([[1.  , 0.  ],
           [0.75, 0.25],
           [0.25, 0.75],
           [0.  , 1.  ]], dtype=float32)
    """
    out = np.arange(size * scale)
    source = np.maximum((out + 0.5) / scale - 0.5, 0.0)
    low = np.floor(source).astype(int)
    high = np.minimum(low + 1, size - 1)
    frac = source - low
    matrix = np.zeros((size * scale, size))
    np.add.at(matrix, (out, low), 1.0 - frac)
    np.add.at(matrix, (out, high), frac)
    return matrix.astype(dtype)


class UpSampling2D(Layer):
    """Repeat every row ``size[0]`` times and every column ``size[1]`` times (``interpolation='nearest'``; the
    gradient sums each block back onto its source pixel), or interpolate bilinearly (``'bilinear'``, half-pixel
    centres as Keras/TensorFlow): y = A_h x A_w^T per channel, A from :func:`bilinear_matrix`."""

    def __init__(self, size: Any = (2, 2), data_format: str | None = None, interpolation: str = "nearest",
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.size = int_tuple(size, 2, "UpSampling2D: size")
        self.data_format = check_data_format("UpSampling2D", data_format)
        if interpolation not in ("nearest", "bilinear"):
            raise ValueError(f"UpSampling2D: interpolation {interpolation!r} is not implemented; use 'nearest' or "
                             "'bilinear' (or a Conv2DTranspose for learned upsampling)")
        self.interpolation = interpolation
        self.input_spec = InputSpec(ndim=4)

    def call(self, inputs: Tensor) -> Tensor:
        (h_axis, w_axis), (sh, sw) = _spatial_axes(self.data_format), self.size
        if self.interpolation == "bilinear":
            xp = get_array_module(inputs.data)
            rows = xp.asarray(bilinear_matrix(inputs.shape[h_axis], sh, inputs.dtype))
            cols = xp.asarray(bilinear_matrix(inputs.shape[w_axis], sw, inputs.dtype).T.copy())
            images = inputs if self.data_format == "channels_first" else ops.transpose(inputs, (0, 3, 1, 2))
            y = ops.matmul(ops.matmul(rows, images), cols)  # (N, C, H*sh, W*sw)
            return y if self.data_format == "channels_first" else ops.transpose(y, (0, 2, 3, 1))
        shape = list(inputs.shape)
        expanded = ops.expand_dims(inputs, (h_axis + 1, w_axis + 2))  # (.., H, 1, W, 1, ..)
        target = list(expanded.shape)
        target[h_axis + 1], target[w_axis + 2] = sh, sw
        shape[h_axis] *= sh
        shape[w_axis] *= sw
        return ops.reshape(ops.broadcast_to(expanded, target), shape)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        axes = _spatial_axes(self.data_format)
        return _resize(input_shape, axes, lambda i, d: d * self.size[axes.index(i)])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "size": list(self.size), "data_format": self.data_format,
                "interpolation": self.interpolation}


class ZeroPadding2D(Layer):
    """Add rows and columns of zeros: ``padding`` an int, (h, w) symmetric, or ((top, bottom), (left, right))."""

    def __init__(self, padding: Any = (1, 1), data_format: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.padding = _pairs(padding, "ZeroPadding2D", "padding")
        self.data_format = check_data_format("ZeroPadding2D", data_format)
        self.input_spec = InputSpec(ndim=4)

    def call(self, inputs: Tensor) -> Tensor:
        width = [(0, 0)] * 4
        for axis, pair in zip(_spatial_axes(self.data_format), self.padding):
            width[axis] = pair
        return ops.pad(inputs, width)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        axes = _spatial_axes(self.data_format)
        return _resize(input_shape, axes, lambda i, d: d + sum(self.padding[axes.index(i)]))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "padding": [list(p) for p in self.padding], "data_format": self.data_format}


class Cropping2D(Layer):
    """Remove rows and columns at the borders: ``cropping`` an int, (h, w) symmetric, or
    ((top, bottom), (left, right))."""

    def __init__(self, cropping: Any = ((0, 0), (0, 0)), data_format: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cropping = _pairs(cropping, "Cropping2D", "cropping")
        self.data_format = check_data_format("Cropping2D", data_format)
        self.input_spec = InputSpec(ndim=4)

    def _check(self, shape: tuple) -> None:
        for axis, (a, b) in zip(_spatial_axes(self.data_format), self.cropping):
            if shape[axis] is not None and a + b >= shape[axis]:
                raise ValueError(f"layer '{self.name}' (Cropping2D): cropping {self.cropping} removes all of axis "
                                 f"{axis} (size {shape[axis]}) of an input of shape {shape}")

    def call(self, inputs: Tensor) -> Tensor:
        self._check(inputs.shape)
        key = [slice(None)] * 4
        for axis, (a, b) in zip(_spatial_axes(self.data_format), self.cropping):
            key[axis] = slice(a, inputs.shape[axis] - b)
        return inputs[tuple(key)]

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        self._check(input_shape)
        axes = _spatial_axes(self.data_format)
        return _resize(input_shape, axes, lambda i, d: d - sum(self.cropping[axes.index(i)]))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "cropping": [list(p) for p in self.cropping], "data_format": self.data_format}


class SpatialDropout2D(Layer):
    """Dropout of whole feature maps in training: one Bernoulli(1 - rate) draw per (sample, channel), kept maps
    scaled by 1 / (1 - rate); the identity in inference. Masks come from ``shendu.seed``'s generator, or the
    layer's own when ``seed`` is given."""

    def __init__(self, rate: float, data_format: str | None = None, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
            raise ValueError(f"SpatialDropout2D: rate must be a number in [0, 1], got {rate!r}")
        self.rate = float(rate)
        self.data_format = check_data_format("SpatialDropout2D", data_format)
        self.seed = seed
        self._rng = None if seed is None else np.random.default_rng(seed)
        self.input_spec = InputSpec(ndim=4)

    def _noise_shape(self, shape: tuple) -> tuple:
        n, c = (shape[0], shape[3]) if self.data_format == "channels_last" else (shape[0], shape[1])
        return (n, 1, 1, c) if self.data_format == "channels_last" else (n, c, 1, 1)

    def call(self, inputs: Tensor, training: bool | None = None) -> Tensor:
        if not training or self.rate == 0:
            return inputs
        return seeded_dropout(inputs, self.rate, self._rng, self._noise_shape(inputs.shape))

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rate": self.rate, "data_format": self.data_format, "seed": self.seed}
