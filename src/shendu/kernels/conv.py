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

Implicit im2col (one group, C >= :data:`IM2COL_MIN_CHANNELS`): the forward and the filter gradient copy a
block of :data:`IMPLICIT_ROWS` windows into a buffer of their thread and multiply it there by a one-thread
GEMM (:mod:`shendu.kernels.gemm`), so ``cols`` is never stored (see :data:`IMPLICIT_ROWS` for the figures).

Narrow convolutions (at most :data:`NARROW_MAX_OUT` output channels, such as an image model's last layer)
skip im2col: the forward and both gradients run as direct loops over windows and taps, each window's pixels
read in place (see the measurements at :data:`NARROW_MAX_OUT`).

Also here: the bias of a convolution or Dense layer added to its output, alone or with the ReLU that follows it
(``y += b``, ``y = max(y + b, 0)``), and summed out of its gradient (``db = sum(gy)`` over N, H, W), each in one
parallel pass instead of NumPy's single-threaded ones (see :mod:`shendu.ops.bias`).
"""

from __future__ import annotations

import numpy as np

from shendu.kernels.gemm import gemm_at
from shendu.kernels.jit import jit, prange

#: the ops take these kernels from this many elements (of cols, or of the biased output): below it a parallel
#: launch costs more than it saves (on a busy machine, waiting for a descheduled worker: milliseconds)
MIN_SIZE = 16384
#: im2col takes the kernel from this many channels per group (shorter runs copy faster in NumPy's strided copy)
IM2COL_MIN_CHANNELS = 8


@jit(inline="always")
def _windows(x, g, c, first, last, local, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow):  # pragma: no cover - compiled
    """local[r - first] = cols[g, r] for the output pixels r in [first, last): the windows of group g (of ``c``
    channels) that im2col copies."""
    h, wd = x.shape[1], x.shape[2]
    for r in range(first, last):
        n, i, j = r // (oh * ow), (r // ow) % oh, r % ow
        row = local[r - first]
        for a in range(kh):
            yy = i * sh + a * dh - pt
            for b in range(kw):
                u = j * sw + b * dw - pl
                dst = row[(a * kw + b) * c:(a * kw + b + 1) * c]
                if 0 <= yy < h and 0 <= u < wd:
                    src = x[n, yy, u, g * c:(g + 1) * c]
                    for q in range(c):
                        dst[q] = src[q]
                else:
                    for q in range(c):
                        dst[q] = 0


@jit(parallel=True)
def im2col(x, cols, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow):
    """cols[g, (n*OH + i)*OW + j, (a*KW + b)*Cg + k] = x[n, i*sh + a*dh - pt, j*sw + b*dw - pl, g*Cg + k], zero
    where that pixel is padding; in parallel over output rows (no padded copy of x is made)."""
    groups = cols.shape[0]
    cg = x.shape[3] // groups
    for r in prange(x.shape[0] * oh):
        for g in range(groups):
            _windows(x, g, cg, r * ow, (r + 1) * ow, cols[g, r * ow:(r + 1) * ow], kh, kw, sh, sw, dh, dw, pt, pl,
                     oh, ow)
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


# ---------------------------------------------------------------------------- implicit im2col
#: windows per block in the implicit kernels: a block of im2col's rows is copied into its thread's workspace and
#: multiplied there at once, while it is in the core's cache; im2col's matrix is never stored whole. Measured on
#: the MNIST convnet's second layer ((64, 26, 26, 32) -> 64, 3x3), 2 threads, against im2col + GEMM in groups
#: of images, medians of 15 alternations: forward 1.29-1.66x as fast with the user's BLAS kernel and 1.25x
#: pinned (blocks of 32-256 rows: 128 is near the best in both), filter gradient 1.10x and 1.06x; the whole
#: convnet step 41-60 -> 33-51 ms (user) and 49-54 -> 46-48 ms (pinned), alternating processes
IMPLICIT_ROWS = 128
#: the implicit filter gradient is summed over this many fixed blocks of windows (then over the blocks, in order):
#: the same bits on any thread count
FILTER_GRAD_BLOCKS = 16


@jit(parallel=True)
def conv_implicit(x, w, y, workspace, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow):  # pragma: no cover - compiled
    """y[r] = cols[r] @ W for every output pixel r = (n*OH + i)*OW + j, y (N*OH*OW, O), W (KH*KW*C, O), with
    cols[r] the window of x that im2col would copy (one group). Each thread takes a contiguous range of pixels
    and copies their windows ``workspace.shape[1]`` at a time into its own workspace[t], then multiplies that
    block by a one-thread GEMM (call inside :func:`shendu.kernels.gemm.one_thread_each`)."""
    threads, rows, k = workspace.shape
    m, o = y.shape
    per = (m + threads - 1) // threads
    for t in prange(threads):
        local = workspace[t]
        for first in range(t * per, min(m, (t + 1) * per), rows):
            last = min(m, (t + 1) * per, first + rows)
            _windows(x, 0, x.shape[3], first, last, local, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow)
            gemm_at(last - first, o, k, local.ctypes.data, k, w.ctypes.data, o, y.ctypes.data + first * o * y.itemsize,
                    o, False, y.itemsize)
    return y


@jit(parallel=True)
def conv_implicit_filter_grad(x, gy, parts, workspace, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow):  # pragma: no cover
    """parts[p] = sum over the output pixels r of block p of cols[r]^T gy[r] (gy (N*OH*OW, O), parts (P, KH*KW*C,
    O); cols[r] as in :func:`conv_implicit`): P fixed blocks of pixels, each summed in order by one thread,
    ``workspace.shape[1]`` windows at a time (a one-thread GEMM adding onto the block's sum); the caller sums
    the blocks in order, so dW does not depend on the thread count."""
    threads, rows, k = workspace.shape
    blocks, m, o = parts.shape[0], gy.shape[0], gy.shape[1]
    per = (m + blocks - 1) // blocks
    for t in prange(threads):
        local = workspace[t]
        for p in range(t, blocks, threads):
            start, stop = p * per, min(m, (p + 1) * per)
            if start >= stop:
                parts[p] = 0
            for first in range(start, stop, rows):
                last = min(stop, first + rows)
                _windows(x, 0, x.shape[3], first, last, local, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow)
                gemm_at(k, o, last - first, local.ctypes.data, k, gy.ctypes.data + first * o * gy.itemsize, o,
                        parts[p].ctypes.data, o, first > start, gy.itemsize, True)
    return parts


# ---------------------------------------------------------------------------- narrow convolutions
#: a convolution with at most this many output channels (groups=1) runs the direct kernels below instead of
#: im2col + GEMM. With O outputs the GEMMs have O columns (forward, filter gradient) or an inner dimension of
#: O (input gradient, an outer product for O = 1 that also writes the whole KH*KW*C-wide cols matrix).
#: Measured at 2 threads on (128, 28, 28, 32) 3x3 'same', forward + both gradients: O = 1 106 -> 16 ms,
#: O = 2 43 -> 24, O = 4 37 -> 28, O = 8 52 -> 84 (the GEMMs win from there). The loops index the arrays in
#: full instead of taking a 1-D view per tap (a view costs more than the C multiply-adds it serves): O = 1,
#: alternating processes on a noisy host, forward 4.3-7.8 -> 3.1-5.5 ms, both gradients 6.5-11.8 -> 4.0-7.9 ms,
#: the same bits. The window loops test each tap against the image's edges, as col2im's do; computing each
#: window's range of inside taps once instead (shared by the three kernels) measured 1.3-1.7x slower
NARROW_MAX_OUT = 4


@jit(parallel=True)
def conv_narrow(x, wt, y, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow):
    """y[n, i, j, o] = sum over taps (a, b) inside the image and channels k of
    x[n, i*sh + a*dh - pt, j*sw + b*dw - pl, k] * wt[a, b, o, k]   (wt: the kernel as (KH, KW, O, C));
    per channel lane over the taps, then over the lanes, in that order; in parallel over output rows."""
    h, w, c, outs = x.shape[1], x.shape[2], x.shape[3], wt.shape[2]
    for r in prange(x.shape[0] * oh):
        n, i = r // oh, r % oh
        lanes = np.empty((outs, c), x.dtype)
        for j in range(ow):
            lanes[:] = 0
            for a in range(kh):
                yy = i * sh + a * dh - pt
                if yy < 0 or yy >= h:
                    continue
                for b in range(kw):
                    u = j * sw + b * dw - pl
                    if u < 0 or u >= w:
                        continue
                    for o in range(outs):  # indexed in full: no array views per tap (see conv_narrow_backward)
                        for k in range(c):
                            lanes[o, k] += x[n, yy, u, k] * wt[a, b, o, k]
            for o in range(outs):
                total = lanes[o, 0]
                for k in range(1, c):
                    total += lanes[o, k]
                y[n, i, j, o] = total
    return y


@jit(parallel=True)
def conv_narrow_backward(x, gy, wt, dx, parts, want_dx, want_dw, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow):
    """Both gradients of a narrow convolution in one walk over its windows. For every window (n, i, j), tap
    (a, b) inside the image and output o, with g = gy[n, i, j, o] and p = (n, i*sh + a*dh - pt, j*sw + b*dw - pl):

        dx[p, :] += g * wt[a, b, o, :]              (when want_dx; dx (N, H, W, C) is overwritten)
        parts[k, a, b, o, :] += g * x[p, :]         (when want_dw; k: the fixed block of images n falls in)

    in parallel over the parts.shape[0] blocks of images; the caller sums the blocks in order, so neither
    gradient depends on the thread count. An array not wanted may be empty (of its dtype and number of axes)."""
    images, blocks, outs = gy.shape[0], parts.shape[0], gy.shape[3]
    h, w = (dx.shape[1], dx.shape[2]) if want_dx else (x.shape[1], x.shape[2])
    channels = dx.shape[3] if want_dx else x.shape[3]
    per = (images + blocks - 1) // blocks
    for k in prange(blocks):
        if want_dw:
            parts[k] = 0
        for n in range(k * per, min(images, (k + 1) * per)):
            if want_dx:
                dx[n] = 0
            for i in range(oh):
                for j in range(ow):
                    for a in range(kh):
                        yy = i * sh + a * dh - pt
                        if yy < 0 or yy >= h:
                            continue
                        for b in range(kw):
                            u = j * sw + b * dw - pl
                            if u < 0 or u >= w:
                                continue
                            for o in range(outs):  # indexed in full: an array view per tap cost more than its
                                g = gy[n, i, j, o]  # few multiply-adds (see NARROW_MAX_OUT)
                                if want_dx:
                                    for c in range(channels):
                                        dx[n, yy, u, c] += g * wt[a, b, o, c]
                                if want_dw:
                                    for c in range(channels):
                                        parts[k, a, b, o, c] += g * x[n, yy, u, c]
    return dx, parts


#: gradients are summed in this many fixed blocks (bias: of rows; narrow filter gradient: of images), so they
#: do not depend on the thread count
SUM_BLOCKS = 64


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
    blocks = min(rows, SUM_BLOCKS)
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
