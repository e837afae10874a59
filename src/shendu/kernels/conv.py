"""im2col and col2im in one parallel pass each: fast paths of :mod:`shendu.ops.convolution`.

im2col copies every receptive field into a row of ``cols`` (the NumPy reference: a strided view of a padded
copy, copied again); the kernel tests the padding bounds instead of padding, in parallel over output rows.

The input gradient of a convolution (and the transposed convolution) is ``dx = col2im(gy @ W^T)``: one GEMM
gives every window's gradient as a row of ``cols`` (G, N*OH*OW, KH*KW*C/G), and col2im adds each row back onto
the pixels its window read. The NumPy reference never forms ``cols``: it runs KH*KW narrow GEMMs (one per
kernel tap, K = C/G columns each) and KH*KW strided adds over the whole image batch. With the kernel below the
op runs one wide GEMM (faster per flop) and a single pass that reads ``cols`` in order, once (measured on the
MNIST convnet's second layer, 1 thread: 27 ms -> 19 ms).

Images are independent, so the pass runs in parallel over images and no two threads write one pixel; inside an
image it walks the rows of ``cols`` in memory order (a streaming read; a gather per input pixel instead reads
``cols`` out of order and was measured 3x slower). Padding is never materialised: taps that land in it are
skipped. The kernel also zeroes each image of ``dx`` before adding, so ``dx`` may be uninitialised.

Also here: the bias of a convolution or Dense layer added to its output, alone or with the ReLU that follows it
(``y += b``, ``y = max(y + b, 0)``), and summed out of its gradient (``db = sum(gy)`` over N, H, W), each in one
parallel pass instead of NumPy's single-threaded ones (see :mod:`shendu.ops.bias`).
"""

from __future__ import annotations

import numpy as np

from shendu.kernels.jit import jit, prange

#: the ops take these kernels from this many elements (of cols, or of the biased output): below it a parallel
#: launch costs more than it saves (on a busy machine, waiting for a descheduled worker: milliseconds)
MIN_SIZE = 16384
#: im2col takes the kernel from this many channels per group (shorter runs copy faster in NumPy's strided copy)
IM2COL_MIN_CHANNELS = 8


@jit(parallel=True)
def im2col(x, cols, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow):
    """cols[g, (n*OH + i)*OW + j, (a*KW + b)*Cg + k] = x[n, i*sh + a*dh - pt, j*sw + b*dw - pl, g*Cg + k], zero
    where that pixel is padding; in parallel over output rows (no padded copy of x is made)."""
    groups = cols.shape[0]
    h, w, cg = x.shape[1], x.shape[2], x.shape[3] // groups
    for r in prange(x.shape[0] * oh):
        n, i = r // oh, r % oh
        for j in range(ow):
            for g in range(groups):
                row = cols[g, r * ow + j]  # 1-D views: the copy loops below index from 0 and vectorise
                for a in range(kh):
                    y = i * sh + a * dh - pt
                    for b in range(kw):
                        u = j * sw + b * dw - pl
                        dst = row[(a * kw + b) * cg:(a * kw + b + 1) * cg]
                        if 0 <= y < h and 0 <= u < w:
                            src = x[n, y, u, g * cg:(g + 1) * cg]
                            for k in range(cg):
                                dst[k] = src[k]
                        else:
                            for k in range(cg):
                                dst[k] = 0
    return cols


@jit(parallel=True)
def col2im(cols, dx, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow):
    """dx[n, i*sh + a*dh - pt, j*sw + b*dw - pl, g*Cg + k] += cols[g, (n*OH + i)*OW + j, (a*KW + b)*Cg + k] over
    every window (n, i, j) and tap (a, b) inside the image; dx (N, H, W, C) is overwritten."""
    groups = cols.shape[0]
    h, w, cg = dx.shape[1], dx.shape[2], dx.shape[3] // groups
    for n in prange(dx.shape[0]):
        dx[n] = 0
        for i in range(oh):
            for j in range(ow):
                row = (n * oh + i) * ow + j
                for a in range(kh):
                    y = i * sh + a * dh - pt
                    if y < 0 or y >= h:
                        continue
                    for b in range(kw):
                        u = j * sw + b * dw - pl
                        if u < 0 or u >= w:
                            continue
                        col = (a * kw + b) * cg
                        for g in range(groups):
                            for k in range(cg):
                                dx[n, y, u, g * cg + k] += cols[g, row, col + k]
    return dx


#: rows are summed in this many fixed blocks, so the bias gradient does not depend on the thread count
_BLOCKS = 64


@jit(parallel=True)
def add_bias(y, b):
    """y[m, o] += b[o] in place, y (M, O) C-contiguous, in parallel over rows."""
    for m in prange(y.shape[0]):
        for o in range(y.shape[1]):
            y[m, o] += b[o]
    return y


@jit(parallel=True)
def add_bias_relu(y, b):
    """y[m, o] = max(y[m, o] + b[o], 0) in place (NaN stays NaN, as np.maximum), y (M, O) C-contiguous, in
    parallel over rows."""
    zero = y.dtype.type(0)
    for m in prange(y.shape[0]):
        for o in range(y.shape[1]):
            v = y[m, o] + b[o]
            y[m, o] = v if v > zero or v != v else zero
    return y


@jit(parallel=True)
def bias_grad(gy, out):
    """out[o] = sum over m of gy[m, o], gy (M, O) C-contiguous: fixed blocks of rows summed in parallel, then the
    block sums in order (the same answer on any number of threads)."""
    rows, cols = gy.shape
    blocks = min(rows, _BLOCKS)
    per = (rows + blocks - 1) // blocks
    part = np.zeros((blocks, cols), dtype=out.dtype)
    for k in prange(blocks):
        for r in range(k * per, min(rows, (k + 1) * per)):
            for o in range(cols):
                part[k, o] += gy[r, o]
    for o in range(cols):
        total = part[0, o]
        for k in range(1, blocks):
            total += part[k, o]
        out[o] = total
    return out
