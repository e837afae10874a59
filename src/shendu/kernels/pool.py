"""Max pooling over NHWC images in one pass: the fast path of :class:`shendu.ops.pool.MaxPool2DOp`.

The reference (``shendu.ops.pool``) makes KH*KW passes over strided slices of a padded copy. Here each output
pixel reads its window once, for all channels at once (C is the contiguous axis), in parallel over output rows;
the backward sends each gradient to the saved argmax, in parallel over images (windows never cross images, so no
two threads write one pixel) and writes every pixel of dx, so no zero-filled array is made first.

Same answers as the reference: padding counts as -inf (never wins against a finite value), the first maximum of a
window wins ties, a NaN in a window makes its maximum NaN (as ``np.maximum``) and the argmax stays on the
maximum before it. ``argmax`` holds the tap index a*KW + b of the winner (uint8 for windows of <= 256 taps).
"""

from __future__ import annotations

import numpy as np

from shendu.kernels.jit import jit, prange

#: the op takes these kernels from inputs of this many elements (below, a parallel launch costs more than it saves)
MIN_SIZE = 16384


@jit(parallel=True)
def max_pool_forward(x, y, argmax, kh, kw, sh, sw, pt, pl, track):
    """y[n, i, j, c] = max over the window of xpad (-inf padding); argmax[n, i, j, c] = its tap when ``track``."""
    n, oh, ow, channels = y.shape
    h, w = x.shape[1], x.shape[2]
    for r in prange(n * oh):
        b, i = r // oh, r % oh
        for j in range(ow):
            for a in range(kh):
                row = i * sh + a - pt
                for c in range(kw):
                    col = j * sw + c - pl
                    tap = a * kw + c
                    if not (0 <= row < h and 0 <= col < w):  # padding: -inf, which wins only as the first tap
                        if tap == 0:
                            y[b, i, j] = -np.inf
                            if track:
                                argmax[b, i, j] = 0
                    elif tap == 0:
                        y[b, i, j] = x[b, row, col]
                        if track:
                            argmax[b, i, j] = 0
                    else:
                        for k in range(channels):
                            v, m = x[b, row, col, k], y[b, i, j, k]
                            better = v > m
                            y[b, i, j, k] = v if better or v != v else m
                            if track:
                                argmax[b, i, j, k] = tap if better else argmax[b, i, j, k]
    return y


@jit(parallel=True)
def max_pool_backward(gy, argmax, dx, kh, kw, sh, sw, pt, pl):
    """dx[n, window argmax] += gy[n, i, j, c], every other pixel zero."""
    n, oh, ow, channels = gy.shape
    h, w = dx.shape[1], dx.shape[2]
    for b in prange(n):
        dx[b] = 0
        for i in range(oh):
            for j in range(ow):
                for a in range(kh):
                    row = i * sh + a - pt
                    for c in range(kw):
                        col = j * sw + c - pl
                        if 0 <= row < h and 0 <= col < w:
                            tap = a * kw + c
                            for k in range(channels):
                                if argmax[b, i, j, k] == tap:
                                    dx[b, row, col, k] += gy[b, i, j, k]
    return dx
