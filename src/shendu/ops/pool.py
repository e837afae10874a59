"""Max and average pooling over NHWC images, vectorised: one pass per window tap (KH*KW strided slices of the
padded input, each covering every output pixel), never a Python loop over pixels.

* ``MaxPool2DOp``: y = max over each window; the winning tap's index (the first maximum, as PyTorch) is kept,
  so the gradient goes to the argmax only: dx[window argmax] += gy.
* ``AvgPool2DOp``: y = sum over each window / count; dx[window] += gy / count. ``count`` is the window size, or,
  with ``count_include_pad=False`` (Keras/TensorFlow 'same'), the number of real (unpadded) pixels.

Padding 'same' follows Keras/TensorFlow (padded pixels never win a max and, for Keras, are not counted in an
average); an int padding follows PyTorch. 1-D pooling is 2-D pooling on a height-1 image. Global pooling is a
plain reduction (``shendu.mean`` / ``shendu.max`` over the spatial axes). With ``create_graph=True`` the
backward is recorded with differentiable ops (``IndexAddOp`` per tap), so double backward works.
The loop-level textbook forms are in :mod:`shendu.reference.pool`.

>>> import numpy as np, shendu
>>> x = shendu.tensor(np.arange(16.0).reshape(1, 4, 4, 1))
>>> max_pool2d(x, 2).data[0, :, :, 0]
array([[ 5.,  7.],
       [13., 15.]])
"""

from __future__ import annotations

import math
from typing import Any

from shendu import kernels
from shendu.autograd.grad_mode import is_grad_enabled
from shendu.autograd.op import Op, raw
from shendu.autograd.tensor import Tensor
from shendu.backend import get_array_module
from shendu.kernels import pool as pool_kernels
from shendu.ops.convolution import (
    ConvGeometry,
    _from_channels_last,
    _to_channels_last,
    crop_padding,
    int_tuple,
    pad_input,
)
from shendu.ops.shaping import IndexAddOp, reshape


def _window_taps(geo: ConvGeometry):
    (kh, kw) = geo.kernel
    for i in range(kh):
        for j in range(kw):
            yield i * kw + j, geo.tap(i, j)


def _windows_disjoint(geo: ConvGeometry) -> bool:
    """True when no two windows overlap (strides >= pool size, e.g. the usual 2x2 pooling with stride 2)."""
    return geo.strides[0] >= geo.kernel[0] and geo.strides[1] >= geo.kernel[1]


def _scatter_taps(geo: ConvGeometry, x_shape: tuple, tap_grads: Any) -> Any:
    """dx = sum over taps k of gk placed where tap k read (cropped to the input), written with differentiable
    ops: the backward's graph when ``create_graph=True`` (each gk a Tensor of the output's shape)."""
    padded = (x_shape[0], *geo.padded_hw, x_shape[3])
    dx = None
    for k, (rows, cols) in _window_taps(geo):
        part = IndexAddOp((slice(None), rows, cols), padded)(tap_grads(k))
        dx = part if dx is None else dx + part
    (pt, _), (pl, _) = geo.pads
    return dx[:, pt:pt + geo.in_hw[0], pl:pl + geo.in_hw[1]]


class _Pool2D(Op):
    """Shared set-up: the window geometry (kernel, strides, explicit pads) over NHWC inputs."""

    def __init__(self, geo: ConvGeometry) -> None:
        self.geo = geo

    def _check(self, op: str, x: Any) -> None:
        if x.ndim != 4 or tuple(x.shape[1:3]) != self.geo.in_hw:
            raise ValueError(f"{op}: expected an NHWC input with spatial size {self.geo.in_hw}, got shape {x.shape}")


class MaxPool2DOp(_Pool2D):
    """y[n,i,j,c] = max_{a,b} xpad[n, i*sh + a, j*sw + b, c] (padding never wins);
    dx[n, argmax] += gy[n,i,j,c] (the first maximum of each window)"""

    def forward(self, x):
        self._check("max_pool2d", x)
        xp = get_array_module(x)
        track = is_grad_enabled()  # the argmax is only needed for a backward
        index = xp.uint8 if math.prod(self.geo.kernel) <= 256 else xp.int32
        if kernels.fast(x) and x.size >= pool_kernels.MIN_SIZE:  # one parallel pass, the same answers as below
            geo, (pt, _), (pl, _) = self.geo, *self.geo.pads
            y = xp.empty((x.shape[0], *geo.out_hw, x.shape[3]), dtype=x.dtype)
            argmax = xp.empty(y.shape if track else (0, 0, 0, 0), dtype=index)
            pool_kernels.max_pool_forward(xp.ascontiguousarray(x), y, argmax, *geo.kernel, *geo.strides, pt, pl, track)
            if track:
                self.argmax = argmax
            return y
        padded = pad_input(x, self.geo.pads, -xp.inf)
        y = better = None
        for k, (rows, cols) in _window_taps(self.geo):
            tap = padded[:, rows, cols]
            if y is None:
                y = tap.copy()
                if track:
                    self.argmax = xp.zeros(y.shape, dtype=index)
                    better = xp.empty(y.shape, dtype=bool)
                continue
            if track:
                xp.greater(tap, y, out=better)
                xp.copyto(self.argmax, k, where=better)
            xp.maximum(y, tap, out=y)
        return y

    def backward(self, gy, x, y):
        geo = self.geo
        if isinstance(gy, Tensor):  # create_graph: the same sum, recorded (the argmax masks are constants)
            return _scatter_taps(geo, raw(x).shape, lambda k: gy * (self.argmax == k).astype(raw(gy).dtype))
        xp = get_array_module(gy)
        if kernels.fast(gy) and math.prod(x.shape) >= pool_kernels.MIN_SIZE:  # one pass, every pixel written
            (pt, _), (pl, _) = geo.pads
            dx = xp.empty((*x.shape[:3], gy.shape[3]), dtype=gy.dtype)
            return pool_kernels.max_pool_backward(xp.ascontiguousarray(gy), self.argmax, dx, *geo.kernel, *geo.strides,
                                                  pt, pl)
        out = xp.zeros((x.shape[0], *geo.padded_hw, x.shape[3]), dtype=gy.dtype)
        hit = xp.empty(gy.shape, dtype=bool)
        disjoint = _windows_disjoint(geo)
        part = None if disjoint else xp.empty_like(gy)  # one buffer for every tap's share
        for k, (rows, cols) in _window_taps(geo):
            xp.equal(self.argmax, k, out=hit)
            if disjoint:  # every pixel belongs to one window at most: write in place, no temporary
                xp.multiply(gy, hit, out=out[:, rows, cols])
            else:
                out[:, rows, cols] += xp.multiply(gy, hit, out=part)
        return crop_padding(out, geo)


class AvgPool2DOp(_Pool2D):
    """y[n,i,j,c] = sum_{a,b} xpad[n, i*sh + a, j*sw + b, c] / count[i,j];   dx[window] += gy / count"""

    def __init__(self, geo: ConvGeometry, count_include_pad: bool = True) -> None:
        super().__init__(geo)
        self.count_include_pad = count_include_pad

    def _count(self, xp: Any, dtype: Any) -> Any:
        """The divisor: a scalar, or (1, OH, OW, 1) real pixels per window when padding is not counted."""
        geo = self.geo
        kh, kw = geo.kernel
        if self.count_include_pad or geo.pads == ((0, 0), (0, 0)):
            return float(kh * kw)
        ones = pad_input(xp.ones((1, *geo.in_hw, 1), dtype=dtype), geo.pads)
        count = xp.zeros((1, *geo.out_hw, 1), dtype=dtype)
        for _, (rows, cols) in _window_taps(geo):
            count += ones[:, rows, cols]
        return count

    def forward(self, x):
        self._check("avg_pool2d", x)
        xp = get_array_module(x)
        padded = pad_input(x, self.geo.pads)
        y = None
        for _, (rows, cols) in _window_taps(self.geo):
            if y is None:
                y = padded[:, rows, cols].copy()
            else:
                y += padded[:, rows, cols]
        self.count = self._count(xp, x.dtype)
        y /= self.count
        return y

    def backward(self, gy, x, y):
        geo = self.geo
        share = gy / self.count
        if isinstance(gy, Tensor):  # create_graph: the same sum, recorded
            return _scatter_taps(geo, raw(x).shape, lambda k: share)
        xp = get_array_module(gy)
        out = xp.zeros((x.shape[0], *geo.padded_hw, x.shape[3]), dtype=gy.dtype)
        disjoint = _windows_disjoint(geo)
        for _, (rows, cols) in _window_taps(geo):
            if disjoint:
                out[:, rows, cols] = share
            else:
                out[:, rows, cols] += share
        return crop_padding(out, geo)


# ---------------------------------------------------------------------------- user functions
def _pool_geometry(x: Any, pool_size: Any, strides: Any, padding: Any, n: int = 2) -> ConvGeometry:
    kernel = int_tuple(pool_size, n, "pool_size")
    strides = kernel if strides is None else int_tuple(strides, n, "strides")
    if n == 1:
        kernel, strides = (1, *kernel), (1, *strides)
        if not isinstance(padding, str):
            padding = ((0, 0), (padding, padding) if isinstance(padding, int) else tuple(padding))
    return ConvGeometry.make(tuple(raw(x).shape[1:3]), kernel, strides, padding)


def max_pool2d(x: Any, pool_size: Any = 2, strides: Any = None, padding: Any = "valid",
               data_format: str = "channels_last") -> Any:
    """Max over pool_size windows of x (N, H, W, C), moved by ``strides`` (default: pool_size); ``padding``
    'valid', 'same' or an int (PyTorch)."""
    x = _to_channels_last(x, data_format)
    return _from_channels_last(MaxPool2DOp(_pool_geometry(x, pool_size, strides, padding))(x), data_format)


def avg_pool2d(x: Any, pool_size: Any = 2, strides: Any = None, padding: Any = "valid",
               count_include_pad: bool | None = None, data_format: str = "channels_last") -> Any:
    """Mean over pool_size windows of x (N, H, W, C). Padded pixels count in the mean for an int padding
    (PyTorch's default) and do not for 'same' (Keras); ``count_include_pad`` overrides."""
    x = _to_channels_last(x, data_format)
    if count_include_pad is None:
        count_include_pad = not isinstance(padding, str)
    op = AvgPool2DOp(_pool_geometry(x, pool_size, strides, padding), count_include_pad)
    return _from_channels_last(op(x), data_format)


def _pool1d(op_fn: Any, x: Any, pool_size: Any, strides: Any, padding: Any, data_format: str) -> Any:
    x = _to_channels_last(x, data_format)
    n, length, c = raw(x).shape
    x4 = reshape(x, (n, 1, length, c))
    y = op_fn(x4, _pool_geometry(x4, pool_size, strides, padding, n=1))
    shape = raw(y).shape
    return _from_channels_last(reshape(y, (n, shape[2], shape[3])), data_format)


def max_pool1d(x: Any, pool_size: int = 2, strides: int | None = None, padding: Any = "valid",
               data_format: str = "channels_last") -> Any:
    """Max over windows of x (N, L, C) along L."""
    return _pool1d(lambda x4, geo: MaxPool2DOp(geo)(x4), x, pool_size, strides, padding, data_format)


def avg_pool1d(x: Any, pool_size: int = 2, strides: int | None = None, padding: Any = "valid",
               count_include_pad: bool | None = None, data_format: str = "channels_last") -> Any:
    """Mean over windows of x (N, L, C) along L (padding counted as for :func:`avg_pool2d`)."""
    include = (not isinstance(padding, str)) if count_include_pad is None else count_include_pad
    return _pool1d(lambda x4, geo: AvgPool2DOp(geo, include)(x4), x, pool_size, strides, padding, data_format)
