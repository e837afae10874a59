"""Pooling layers with Keras 3's arguments: MaxPooling1D/2D, AveragePooling1D/2D (windows of ``pool_size``
moved by ``strides``, default ``pool_size``; 'same' padding never counts padded pixels, as Keras), and the
global poolings, which are reductions over the spatial axes (``keepdims`` keeps them as size 1).

>>> import numpy as np
>>> MaxPooling2D()(np.zeros((2, 28, 28, 3))).shape
(2, 14, 14, 3)
>>> GlobalAveragePooling2D()(np.ones((2, 5, 5, 3))).shape
(2, 3)
"""

from __future__ import annotations

from typing import Any

from shendu import ops
from shendu.autograd.tensor import Tensor
from shendu.backend import get_array_module
from shendu.layers.conv import check_data_format, check_padding
from shendu.layers.input_spec import InputSpec
from shendu.layers.layer import Layer
from shendu.ops import convolution as conv_ops
from shendu.ops import pool as pool_ops
from shendu.ops.convolution import int_tuple


class _Pooling(Layer):
    """The shared part of the windowed poolings: arguments, output shape, config."""

    rank = 2
    _pool_fn: Any = None

    def __init__(self, pool_size: Any = 2, strides: Any = None, padding: str = "valid", data_format: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        cls = type(self).__name__
        self.pool_size = int_tuple(pool_size, self.rank, f"{cls}: pool_size")
        self.strides = self.pool_size if strides is None else int_tuple(strides, self.rank, f"{cls}: strides")
        self.padding = check_padding(cls, padding)
        self.data_format = check_data_format(cls, data_format)
        self.input_spec = InputSpec(ndim=self.rank + 2)

    def call(self, inputs: Tensor) -> Tensor:
        size, strides = (self.pool_size, self.strides) if self.rank == 2 else (self.pool_size[0], self.strides[0])
        return type(self)._pool_fn(inputs, size, strides, self.padding, data_format=self.data_format)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        spatial = input_shape[1:-1] if self.data_format == "channels_last" else input_shape[2:]
        out = [conv_ops.conv_output_length(n, k, self.padding, s) for n, k, s in
               zip(spatial, self.pool_size, self.strides)]
        if self.data_format == "channels_last":
            return (input_shape[0], *out, input_shape[-1])
        return (input_shape[0], input_shape[1], *out)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "pool_size": list(self.pool_size), "strides": list(self.strides),
                "padding": self.padding, "data_format": self.data_format}


class MaxPooling2D(_Pooling):
    """y = the maximum of each ``pool_size`` window (gradient to the window's first maximum)."""

    _pool_fn = staticmethod(pool_ops.max_pool2d)


class AveragePooling2D(_Pooling):
    """y = the mean of each ``pool_size`` window (padded pixels not counted)."""

    _pool_fn = staticmethod(pool_ops.avg_pool2d)


class MaxPooling1D(_Pooling):
    """y = the maximum of each window of ``pool_size`` steps over (batch, steps, features)."""

    rank = 1
    _pool_fn = staticmethod(pool_ops.max_pool1d)


class AveragePooling1D(_Pooling):
    """y = the mean of each window of ``pool_size`` steps over (batch, steps, features)."""

    rank = 1
    _pool_fn = staticmethod(pool_ops.avg_pool1d)


class _GlobalPooling(Layer):
    """A reduction over every spatial axis; ``keepdims`` keeps them with size 1."""

    rank = 2
    _reduce: Any = None

    def __init__(self, data_format: str | None = None, keepdims: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data_format = check_data_format(type(self).__name__, data_format)
        self.keepdims = bool(keepdims)
        self.input_spec = InputSpec(ndim=self.rank + 2)

    @property
    def _axes(self) -> tuple[int, ...]:
        start = 1 if self.data_format == "channels_last" else 2
        return tuple(range(start, start + self.rank))

    def call(self, inputs: Tensor) -> Tensor:
        return type(self)._reduce(inputs, axis=self._axes, keepdims=self.keepdims)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        axes = self._axes
        if self.keepdims:
            return tuple(1 if i in axes else d for i, d in enumerate(input_shape))
        return tuple(d for i, d in enumerate(input_shape) if i not in axes)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "data_format": self.data_format, "keepdims": self.keepdims}


class GlobalAveragePooling2D(_GlobalPooling):
    """y[n, c] = mean over (H, W) of x[n, :, :, c]."""

    _reduce = staticmethod(ops.mean)


class GlobalMaxPooling2D(_GlobalPooling):
    """y[n, c] = max over (H, W) of x[n, :, :, c]."""

    _reduce = staticmethod(ops.max)


class GlobalMaxPooling1D(_GlobalPooling):
    """y[n, c] = max over the steps of x[n, :, c]."""

    rank = 1
    _reduce = staticmethod(ops.max)


class GlobalAveragePooling1D(_GlobalPooling):
    """y[n, c] = mean over the steps of x[n, :, c]; with a ``mask`` (batch, steps), over the unmasked steps only
    (as Keras, so padded tokens from ``Embedding(mask_zero=True)`` do not dilute the mean).

    >>> import numpy as np
    >>> x = np.array([[[1.0], [3.0], [100.0]]])
    >>> GlobalAveragePooling1D()(x, mask=np.array([[True, True, False]])).data
    array([[2.]], dtype=float32)
    """

    rank = 1
    supports_masking = True

    def call(self, inputs: Tensor, mask: Any = None) -> Tensor:
        if mask is None:
            return ops.mean(inputs, axis=self._axes, keepdims=self.keepdims)
        mask_data = mask.data if isinstance(mask, Tensor) else mask
        weights = get_array_module(inputs.data).asarray(mask_data).astype(inputs.dtype)
        if self.data_format == "channels_last":
            weights = weights[:, :, None]
        else:
            weights = weights[:, None, :]
        axis = self._axes
        total = ops.sum(inputs * weights, axis=axis, keepdims=self.keepdims)
        return total / weights.sum(axis=axis, keepdims=self.keepdims)

# Keras's short aliases
MaxPool1D, MaxPool2D, AvgPool1D, AvgPool2D = MaxPooling1D, MaxPooling2D, AveragePooling1D, AveragePooling2D
GlobalAvgPool1D, GlobalAvgPool2D = GlobalAveragePooling1D, GlobalAveragePooling2D
GlobalMaxPool1D, GlobalMaxPool2D = GlobalMaxPooling1D, GlobalMaxPooling2D
