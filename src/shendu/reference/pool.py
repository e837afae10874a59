"""Pooling by its definition, one output pixel at a time.

    max:  y[n, i, j, c] = max of window(i, j);   dx[argmax of the window] += gy[n, i, j, c]
    avg:  y[n, i, j, c] = mean of window(i, j);  dx[window] += gy[n, i, j, c] / window size

Windows are ``pool_size`` wide and start every ``strides`` pixels of the padded input; padded pixels never
win a max, and an average counts them only when ``count_include_pad`` is true.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shendu.ops.convolution import ConvGeometry


def _setup(x: np.ndarray, pool_size: Any, strides: Any, padding: Any, fill: float):
    size = (pool_size, pool_size) if isinstance(pool_size, int) else tuple(pool_size)
    geo = ConvGeometry.make(tuple(x.shape[1:3]), size, size if strides is None else strides, padding)
    (pt, pb), (pl, pr) = geo.pads
    xpad = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=fill)
    real = np.pad(np.ones(x.shape[1:3]), ((pt, pb), (pl, pr)))  # 1 on real pixels, 0 on padding
    return geo, xpad, real


def _window(geo: ConvGeometry, i: int, j: int) -> tuple[slice, slice]:
    (kh, kw), (sh, sw) = geo.kernel, geo.strides
    return slice(i * sh, i * sh + kh), slice(j * sw, j * sw + kw)


def _crop(geo: ConvGeometry, dxpad: np.ndarray) -> np.ndarray:
    (pt, _), (pl, _) = geo.pads
    return dxpad[:, pt:pt + geo.in_hw[0], pl:pl + geo.in_hw[1]]


def max_pool2d(x: np.ndarray, pool_size: Any = 2, strides: Any = None, padding: Any = "valid") -> np.ndarray:
    geo, xpad, _ = _setup(x, pool_size, strides, padding, -np.inf)
    y = np.empty((x.shape[0], *geo.out_hw, x.shape[3]), dtype=x.dtype)
    for i in range(geo.out_hw[0]):
        for j in range(geo.out_hw[1]):
            rows, cols = _window(geo, i, j)
            y[:, i, j] = xpad[:, rows, cols].max(axis=(1, 2))
    return y


def max_pool2d_backward(x: np.ndarray, gy: np.ndarray, pool_size: Any = 2, strides: Any = None,
                        padding: Any = "valid") -> np.ndarray:
    geo, xpad, _ = _setup(x, pool_size, strides, padding, -np.inf)
    dxpad = np.zeros_like(xpad)
    kw = geo.kernel[1]
    for i in range(geo.out_hw[0]):
        for j in range(geo.out_hw[1]):
            rows, cols = _window(geo, i, j)
            for n in range(x.shape[0]):
                for c in range(x.shape[3]):
                    k = int(np.argmax(xpad[n, rows, cols, c]))  # the first maximum, row-major
                    dxpad[n, rows.start + k // kw, cols.start + k % kw, c] += gy[n, i, j, c]
    return _crop(geo, dxpad)


def avg_pool2d(x: np.ndarray, pool_size: Any = 2, strides: Any = None, padding: Any = "valid",
               count_include_pad: bool = False) -> np.ndarray:
    geo, xpad, real = _setup(x, pool_size, strides, padding, 0.0)
    y = np.empty((x.shape[0], *geo.out_hw, x.shape[3]), dtype=x.dtype)
    for i in range(geo.out_hw[0]):
        for j in range(geo.out_hw[1]):
            rows, cols = _window(geo, i, j)
            count = geo.kernel[0] * geo.kernel[1] if count_include_pad else real[rows, cols].sum()
            y[:, i, j] = xpad[:, rows, cols].sum(axis=(1, 2)) / count
    return y


def avg_pool2d_backward(x: np.ndarray, gy: np.ndarray, pool_size: Any = 2, strides: Any = None,
                        padding: Any = "valid", count_include_pad: bool = False) -> np.ndarray:
    geo, xpad, real = _setup(x, pool_size, strides, padding, 0.0)
    dxpad = np.zeros_like(xpad)
    for i in range(geo.out_hw[0]):
        for j in range(geo.out_hw[1]):
            rows, cols = _window(geo, i, j)
            count = geo.kernel[0] * geo.kernel[1] if count_include_pad else real[rows, cols].sum()
            dxpad[:, rows, cols] += gy[:, i, j][:, None, None, :] / count
    return _crop(geo, dxpad)
