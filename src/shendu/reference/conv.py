"""Convolution by its definition, one output pixel at a time.

    y[n, i, j, o] = b[o] + sum_{a, b, c} xpad[n, i*sh + a*dh, j*sw + b*dw, c] * w[a, b, c, o]

(per group: output channel o reads only its group's input channels). The backward pass runs the same loop
and sends each product's gradient back to both factors:

    dxpad[n, window(i, j)] += gy[n, i, j, :] @ w^T        dw += window(i, j)^T @ gy[n, i, j, :]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shendu.ops.convolution import ConvGeometry


def _geometry(x_shape: tuple, w_shape: tuple, strides: Any, padding: Any, dilation: Any, groups: int) -> ConvGeometry:
    return ConvGeometry.make(tuple(x_shape[1:3]), tuple(w_shape[:2]), strides, padding, dilation, groups)


def _window(geo: ConvGeometry, i: int, j: int) -> tuple[slice, slice]:
    """The rows and columns of the padded input under output pixel (i, j)."""
    (kh, kw), (sh, sw), (dh, dw) = geo.kernel, geo.strides, geo.dilation
    return (slice(i * sh, i * sh + dh * (kh - 1) + 1, dh), slice(j * sw, j * sw + dw * (kw - 1) + 1, dw))


def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, strides: Any = 1, padding: Any = "valid",
           dilation: Any = 1, groups: int = 1) -> np.ndarray:
    """y = conv(x, w) + b, looping over output pixels and groups."""
    geo = _geometry(x.shape, w.shape, strides, padding, dilation, groups)
    (pt, pb), (pl, pr) = geo.pads
    xpad = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    n, cg, out_ch = x.shape[0], w.shape[2], w.shape[3]
    og = out_ch // groups
    y = np.zeros((n, *geo.out_hw, out_ch), dtype=np.result_type(x, w))
    for i in range(geo.out_hw[0]):
        for j in range(geo.out_hw[1]):
            rows, cols = _window(geo, i, j)
            for g in range(groups):
                patch = xpad[:, rows, cols, g * cg:(g + 1) * cg]          # (N, KH, KW, C/G)
                kernel = w[:, :, :, g * og:(g + 1) * og]                  # (KH, KW, C/G, O/G)
                y[:, i, j, g * og:(g + 1) * og] = np.tensordot(patch, kernel, axes=3)
    return y if b is None else y + b


def conv2d_backward(x: np.ndarray, w: np.ndarray, gy: np.ndarray, strides: Any = 1, padding: Any = "valid",
                    dilation: Any = 1, groups: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dx, dw, db) of ``sum(conv2d(x, w, b) * gy)``, by the same loop as the forward."""
    geo = _geometry(x.shape, w.shape, strides, padding, dilation, groups)
    (pt, pb), (pl, pr) = geo.pads
    xpad = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    dxpad, dw = np.zeros_like(xpad), np.zeros_like(w)
    cg, og = w.shape[2], w.shape[3] // groups
    for i in range(geo.out_hw[0]):
        for j in range(geo.out_hw[1]):
            rows, cols = _window(geo, i, j)
            for g in range(groups):
                c_in, c_out = slice(g * cg, (g + 1) * cg), slice(g * og, (g + 1) * og)
                grad = gy[:, i, j, c_out]                                  # (N, O/G)
                dxpad[:, rows, cols, c_in] += np.tensordot(grad, w[:, :, :, c_out], axes=([1], [3]))
                dw[:, :, :, c_out] += np.tensordot(xpad[:, rows, cols, c_in], grad, axes=([0], [0]))
    h, wd = geo.in_hw
    return dxpad[:, pt:pt + h, pl:pl + wd], dw, gy.sum(axis=(0, 1, 2))


def conv2d_transpose(x: np.ndarray, w: np.ndarray, out_hw: tuple[int, int], strides: Any = 1,
                     padding: Any = "valid", dilation: Any = 1) -> np.ndarray:
    """The transposed convolution: every input pixel scatters ``x[n, i, j] @ w[a, b]^T`` onto the output
    window it would have been computed from; ``out_hw`` is the output size (kernel (KH, KW, C_out, C_in))."""
    geo = ConvGeometry.make(tuple(out_hw), tuple(w.shape[:2]), strides, padding, dilation)
    (pt, _), (pl, _) = geo.pads
    ypad = np.zeros((x.shape[0], *geo.padded_hw, w.shape[2]), dtype=np.result_type(x, w))
    for i in range(x.shape[1]):
        for j in range(x.shape[2]):
            rows, cols = _window(geo, i, j)
            ypad[:, rows, cols] += np.tensordot(x[:, i, j], w, axes=([1], [3]))
    return ypad[:, pt:pt + out_hw[0], pl:pl + out_hw[1]]
