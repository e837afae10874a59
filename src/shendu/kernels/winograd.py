"""Winograd's minimal filtering F(4x4, 3x3): a 3x3 stride-1 convolution in 36 products instead of 144 per
4x4 block of outputs (Lavin & Gray, 2016). A fast path of :mod:`shendu.ops.convolution`.

For each tile d, a 6x6 patch of the (framed) input per channel, and each 3x3 filter g::

    y (4x4) = A^T [ sum over channels c of (G g G^T) * (B^T d B) ] A        (* elementwise, 6x6)

    B^T = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
           [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]
    G   = [[1/4, 0, 0], [-1/6, -1/6, -1/6], [-1/6, 1/6, -1/6], [1/24, 1/12, 1/6], [1/24, -1/12, 1/6], [0, 0, 1]]
    A^T = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]

(the interpolation points 0, 1, -1, 2, -2 and infinity). Neighbouring tiles overlap by two pixels. The sum over
channels of each of the 36 elements is a GEMM: with V[e] (tiles, C) the transformed input and U[e] = (G g G^T)[e]
(C, O) the transformed kernel, M[e] = V[e] U[e] (tiles, O), then each tile's 4x4 outputs per channel o from
M[0..35][tile, o]. The multiplications per output fall from 9 C O to 2.25 C O (F(2x2, 3x3): 4 C O). The price
is rounding: the transforms scale by up to 5 and G by 1/24, so float32 results are within 2e-6 to 9e-6 of the
largest output (the most for 128 input channels; a direct im2col GEMM 6e-7 to 8e-7, F(2x2, 3x3) about 3e-7;
``tests/test_kernels_conv.py``), float64 within 1e-14. ``SHENDU_WINOGRAD=0`` turns the kernels off
(:data:`shendu.ops.convolution.WINOGRAD`).

Each kernel thread takes a contiguous range of tiles, :data:`TILES` at a time: it transforms them into its
own workspace, multiplies by 36 one-thread GEMMs there (:mod:`shendu.kernels.gemm`) and transforms back,
while the block is in its core's cache. Every output is computed from its own tile alone, so the result does
not depend on the thread count. Each 2-D transform is two passes of the 1-D one (:func:`_bt`, :func:`_at`,
:func:`_a`, :func:`_b`), over columns and then rows, channels innermost, through a small scratch array.
The padding is never built: a tile inside x is read in place, one that reaches into the frame of zeros is
copied first with its zeros (:func:`_input_tile`; the input gradient drops the frame's pixels as it adds).

The gradients are the adjoints of these linear maps, with dM = A dy A^T per tile (a 4x4 block of gy)::

    dU[e] = sum over tiles of V[e]^T dM[e]   ->  dg = G^T dU G               (:func:`winograd_filter_grad`)
    dV[e] = dM[e] U[e]^T                     ->  dd = B dV B^T, added onto the tile's 6x6 input pixels
                                                                             (:func:`winograd_conv_adjoint`)

so the filter gradient and the input gradient save the same share of products as the forward.
"""

from __future__ import annotations

import numpy as np

from shendu.kernels.gemm import gemm_at
from shendu.kernels.jit import jit, prange

#: outputs per tile side, and input pixels per tile side (tiles OUT apart, overlapping by 2)
OUT, SIDE = 4, 6
#: elements of a transformed tile: one GEMM each
ELEMENTS = SIDE * SIDE

#: tiles per block: a block's transformed input (TILES, 36, C) and products (36, TILES, O) stay in the core's
#: cache between the transforms and the GEMMs (0.9 MB for the MNIST convnet's 32 -> 64 channels). Blocks of 32,
#: 64 and 128 tiles on that layer at 2 threads, medians, user's BLAS kernel: forward 4.9 / 4.7 / 4.9 ms,
#: filter gradient 6.0 / 5.4 / 5.3, input gradient 4.6 / 4.5 / 4.4; pinned AVX2 kernel 4.6 / 4.5 / 4.4,
#: 5.2 / 4.8 / 5.0 and 5.5 / 4.2 / 4.3
TILES = 64

#: fixed blocks of tiles the filter gradient sums one by one (:func:`winograd_filter_grad`), then in order
GRAD_BLOCKS = 16

#: fixed stripes of rows of tiles the input gradient sums, the even ones in parallel, then the odd ones
#: (:func:`winograd_conv_adjoint`)
STRIPES = 64

#: the transforms (see the module's docstring); the kernels apply B^T and A^T as the 1-D transforms below
G = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6],
              [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]])
BT = np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0],
               [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], dtype=float)
AT = np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]], dtype=float)


def constants(dtype: np.dtype) -> np.ndarray:
    """The transforms' factors 2, 4, 5, 8 in the data's dtype (the kernels' ``c``: a float32 tile stays float32)."""
    return np.array([2, 4, 5, 8], dtype=dtype)


def _both_sides(matrix: np.ndarray, filters: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """matrix @ f @ matrix^T for each (C, O) filter f of filters (k, k, C, O) -> (r, r, C, O), in float64, then
    ``dtype``: the matrix over the rows of every filter at once, then over their columns (two small GEMMs; an
    einsum of the three took 5x as long)."""
    r, k = matrix.shape
    c, o = filters.shape[2], filters.shape[3]
    rows = (matrix @ filters.astype(np.float64).reshape(k, -1)).reshape(r, k, c * o)  # M f: (a, j, c*o)
    both = (matrix @ rows.transpose(1, 0, 2).reshape(k, -1)).reshape(r, r, c * o)  # (M f) M^T, as (b, a, c*o)
    return np.ascontiguousarray(both.transpose(1, 0, 2).reshape(r, r, c, o), dtype=dtype)


def transform_kernel(w: np.ndarray) -> np.ndarray:
    """U (36, C, O) = G g G^T for each (C, O) filter g of w (3, 3, C, O), in w's dtype."""
    return _both_sides(G, w, w.dtype).reshape(ELEMENTS, w.shape[2], w.shape[3])


def untransform_filter_grad(du: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """dg (3, 3, C, O) = G^T dU G for each (C, O) of du (36, C, O), the gradient of U = G g G^T (the adjoint of
    :func:`transform_kernel`), in ``dtype``."""
    return _both_sides(G.T, du.reshape(SIDE, SIDE, *du.shape[1:]), dtype)


@jit(inline="always")
def _tile_origin(q, th, tw):  # pragma: no cover - compiled
    """Tile q of N images with th x tw tiles each: its image and the framed pixel of its top-left corner."""
    return q // (th * tw), OUT * ((q % (th * tw)) // tw), OUT * (q % tw)


@jit(inline="always")
def _bt(d0, d1, d2, d3, d4, d5, c):  # pragma: no cover - compiled
    """B^T d for a column d of 6 (c: the constants 2, 4, 5, 8 in the data's dtype)."""
    return (c[1] * d0 - c[2] * d2 + d4, d3 + d4 - c[1] * (d1 + d2), c[1] * (d1 - d2) + d4 - d3,
            c[0] * (d3 - d1) + d4 - d2, c[0] * (d1 - d3) + d4 - d2, c[1] * d1 - c[2] * d3 + d5)


@jit(inline="always")
def _b(x0, x1, x2, x3, x4, x5, c):  # pragma: no cover - compiled
    """B x: the adjoint of :func:`_bt`."""
    return (c[1] * x0, c[1] * (x2 - x1) + c[0] * (x4 - x3) + c[1] * x5, -(c[2] * x0 + c[1] * (x1 + x2) + x3 + x4),
            x1 - x2 + c[0] * (x3 - x4) - c[2] * x5, x0 + x1 + x2 + x3 + x4, x5)


@jit(inline="always")
def _at(m0, m1, m2, m3, m4, m5, c):  # pragma: no cover - compiled
    """A^T m for a column m of 6."""
    return (m0 + m1 + m2 + m3 + m4, m1 - m2 + c[0] * (m3 - m4), m1 + m2 + c[1] * (m3 + m4),
            m1 - m2 + c[3] * (m3 - m4) + m5)


@jit(inline="always")
def _a(y0, y1, y2, y3, c):  # pragma: no cover - compiled
    """A y: the adjoint of :func:`_at`."""
    return (y0, y0 + y1 + y2 + y3, y0 - y1 + y2 - y3, y0 + c[0] * y1 + c[1] * y2 + c[3] * y3,
            y0 - c[0] * y1 + c[1] * y2 - c[3] * y3, y3)


@jit(inline="always")
def _input_tile(x, n, i, j, top, left, v, r, c, tmp, edge):  # pragma: no cover - compiled
    """v[r] (36, C) = B^T d B for the 6x6 tile d at framed (n, i, j): x framed by ``top``/``left`` rows/columns of
    zeros, and by zeros on the other sides as far as the tiles reach. A tile inside x is read in place; one that
    reaches the frame is first copied to ``edge`` (1, 6, 6, C) with its zeros (no framed copy of x)."""
    y0, x0 = i - top, j - left
    if y0 >= 0 and x0 >= 0 and y0 + SIDE <= x.shape[1] and x0 + SIDE <= x.shape[2]:
        source, sn = x, n
    else:
        for a in range(SIDE):
            for b in range(SIDE):
                inside = 0 <= y0 + a < x.shape[1] and 0 <= x0 + b < x.shape[2]
                for k in range(x.shape[3]):
                    edge[0, a, b, k] = x[n, y0 + a, x0 + b, k] if inside else 0
        source, sn, y0, x0 = edge, 0, 0, 0
    _transform_input(source, sn, y0, x0, v, r, c, tmp)


@jit(inline="always")
def _transform_input(x, n, i, j, v, r, c, tmp):  # pragma: no cover - compiled
    """v[r] (36, C) = B^T d B for the 6x6 tile d of x at (n, i, j), channels innermost (tmp: (6, 6, C))."""
    for b in range(SIDE):  # tmp[:, b] = B^T d[:, b]
        for k in range(x.shape[3]):
            tmp[0, b, k], tmp[1, b, k], tmp[2, b, k], tmp[3, b, k], tmp[4, b, k], tmp[5, b, k] = _bt(
                x[n, i, j + b, k], x[n, i + 1, j + b, k], x[n, i + 2, j + b, k], x[n, i + 3, j + b, k],
                x[n, i + 4, j + b, k], x[n, i + 5, j + b, k], c)
    for a in range(SIDE):  # v[a, :] = tmp[a, :] B
        e = SIDE * a
        for k in range(x.shape[3]):
            v[r, e, k], v[r, e + 1, k], v[r, e + 2, k], v[r, e + 3, k], v[r, e + 4, k], v[r, e + 5, k] = _bt(
                tmp[a, 0, k], tmp[a, 1, k], tmp[a, 2, k], tmp[a, 3, k], tmp[a, 4, k], tmp[a, 5, k], c)


@jit(inline="always")
def _gradient_tile(gy, n, i, j, g, r, c, block, tmp):  # pragma: no cover - compiled
    """g[r] (36, O) = A dy A^T for the 4x4 block dy of gy at (n, i, j), zeros past gy's edges (block: (4, 4, O),
    tmp: (6, 4, O))."""
    for a in range(OUT):
        for b in range(OUT):
            if i + a < gy.shape[1] and j + b < gy.shape[2]:
                block[a, b] = gy[n, i + a, j + b]
            else:
                block[a, b] = 0
    for b in range(OUT):  # tmp[:, b] = A dy[:, b]
        for k in range(gy.shape[3]):
            tmp[0, b, k], tmp[1, b, k], tmp[2, b, k], tmp[3, b, k], tmp[4, b, k], tmp[5, b, k] = _a(
                block[0, b, k], block[1, b, k], block[2, b, k], block[3, b, k], c)
    for a in range(SIDE):  # g[a, :] = tmp[a, :] A^T
        e = SIDE * a
        for k in range(gy.shape[3]):
            g[r, e, k], g[r, e + 1, k], g[r, e + 2, k], g[r, e + 3, k], g[r, e + 4, k], g[r, e + 5, k] = _a(
                tmp[a, 0, k], tmp[a, 1, k], tmp[a, 2, k], tmp[a, 3, k], c)


@jit(inline="always")
def _output_tile(m, r, y, n, i, j, c, tmp, block):  # pragma: no cover - compiled
    """y's 4x4 block at (n, i, j) = A^T M A from m[:, r] (36, O) (tmp: (4, 6, O), block: (4, 4, O)), the rows
    and columns past y's edges left out."""
    for b in range(SIDE):  # tmp[:, b] = A^T M[:, b]
        for k in range(y.shape[3]):
            tmp[0, b, k], tmp[1, b, k], tmp[2, b, k], tmp[3, b, k] = _at(
                m[b, r, k], m[SIDE + b, r, k], m[2 * SIDE + b, r, k], m[3 * SIDE + b, r, k], m[4 * SIDE + b, r, k],
                m[5 * SIDE + b, r, k], c)
    for a in range(OUT):  # block[a, :] = tmp[a, :] A
        for k in range(y.shape[3]):
            block[a, 0, k], block[a, 1, k], block[a, 2, k], block[a, 3, k] = _at(
                tmp[a, 0, k], tmp[a, 1, k], tmp[a, 2, k], tmp[a, 3, k], tmp[a, 4, k], tmp[a, 5, k], c)
    for a in range(min(OUT, y.shape[1] - i)):
        for b in range(min(OUT, y.shape[2] - j)):
            y[n, i + a, j + b] = block[a, b]


@jit(inline="always")
def _add_input_tile(m, r, dx, n, i, j, top, left, c, tmp, tile):  # pragma: no cover - compiled
    """dx's 6x6 pixels read by the tile at framed (n, i, j) += B dV B^T from m[:, r] (36, C) (tmp, tile:
    (6, 6, C)), the frame's pixels dropped."""
    for b in range(SIDE):  # tmp[:, b] = B dV[:, b]
        for k in range(dx.shape[3]):
            tmp[0, b, k], tmp[1, b, k], tmp[2, b, k], tmp[3, b, k], tmp[4, b, k], tmp[5, b, k] = _b(
                m[b, r, k], m[SIDE + b, r, k], m[2 * SIDE + b, r, k], m[3 * SIDE + b, r, k], m[4 * SIDE + b, r, k],
                m[5 * SIDE + b, r, k], c)
    for a in range(SIDE):  # tile[a, :] = tmp[a, :] B^T
        for k in range(dx.shape[3]):
            tile[a, 0, k], tile[a, 1, k], tile[a, 2, k], tile[a, 3, k], tile[a, 4, k], tile[a, 5, k] = _b(
                tmp[a, 0, k], tmp[a, 1, k], tmp[a, 2, k], tmp[a, 3, k], tmp[a, 4, k], tmp[a, 5, k], c)
    for a in range(max(0, top - i), min(SIDE, dx.shape[1] + top - i)):
        for b in range(max(0, left - j), min(SIDE, dx.shape[2] + left - j)):
            for k in range(dx.shape[3]):
                dx[n, i + a - top, j + b - left, k] += tile[a, b, k]


@jit(parallel=True)
def winograd_conv(x, u, y, inputs, products, top, left, c):  # pragma: no cover - compiled
    """y (N, OH, OW, O) = the 3x3 stride-1 correlation of x (N, H, W, C), framed by ``top``/``left`` rows/columns
    of zeros (the padding; zeros too past its other edges), with the kernel whose transform is u (36, C, O)
    (:func:`transform_kernel`). ``inputs`` (threads, tiles, 36, C) and ``products`` (threads, 36, tiles, O) are
    the threads' workspaces, ``c`` :func:`constants`. Call inside :func:`shendu.kernels.gemm.one_thread_each`."""
    threads, block, _, ch = inputs.shape
    o = u.shape[2]
    th, tw = (y.shape[1] + OUT - 1) // OUT, (y.shape[2] + OUT - 1) // OUT
    tiles = x.shape[0] * th * tw
    per = (tiles + threads - 1) // threads
    for t in prange(threads):
        v, m = inputs[t], products[t]
        tmp_in, tmp_out = np.empty((SIDE, SIDE, ch), x.dtype), np.empty((OUT, SIDE, o), x.dtype)
        out, edge = np.empty((OUT, OUT, o), x.dtype), np.empty((1, SIDE, SIDE, ch), x.dtype)
        for first in range(t * per, min(tiles, (t + 1) * per), block):
            last = min(tiles, (t + 1) * per, first + block)
            for q in range(first, last):
                n, i, j = _tile_origin(q, th, tw)
                _input_tile(x, n, i, j, top, left, v, q - first, c, tmp_in, edge)
            for e in range(ELEMENTS):
                gemm_at(last - first, o, ch, v.ctypes.data + e * ch * v.itemsize, ELEMENTS * ch, u[e].ctypes.data, o,
                        m[e].ctypes.data, o, False, v.itemsize)
            for q in range(first, last):
                n, i, j = _tile_origin(q, th, tw)
                _output_tile(m, q - first, y, n, i, j, c, tmp_out, out)
    return y


@jit(parallel=True)
def winograd_conv_adjoint(gy, ut, dx, grads, products, top, left, c):  # pragma: no cover - compiled
    """dx (N, H, W, C) = the gradient with respect to x of y = :func:`winograd_conv` of x framed by ``top``/
    ``left`` rows/columns of zeros, given gy (N, OH, OW, O) and ut (36, O, C), the kernel transform with its
    channels swapped: per tile, dd = B [(A dy A^T) U^T] B^T added onto the 6x6 pixels the tile read.

    Neighbouring tiles overlap by two pixels. The rows of tiles of all images are cut into :data:`STRIPES`
    fixed stripes: the even stripes are summed in parallel, each by one thread tile by tile, then the odd ones,
    so no two threads add onto one pixel at once, and every pixel adds its tiles in one order whatever the
    thread count. ``grads`` (threads, tiles, 36, O) and ``products`` (threads, 36, tiles, C) are the threads'
    workspaces."""
    threads, block, _, o = grads.shape
    ch = ut.shape[2]
    th, tw, h = (gy.shape[1] + OUT - 1) // OUT, (gy.shape[2] + OUT - 1) // OUT, dx.shape[1]
    tile_rows = gy.shape[0] * th
    for q in prange(tile_rows):  # zero the rows of dx that each row of tiles starts (the last: all it reads)
        n, i = q // th, OUT * (q % th)
        stop = i + SIDE if q % th == th - 1 else i + OUT
        for row in range(max(0, i - top), min(h, stop - top)):
            dx[n, row] = 0
    stripes = max(1, min(STRIPES, tile_rows))  # one (empty) for an empty batch
    per = (tile_rows + stripes - 1) // stripes
    for parity in range(2):
        count = (stripes - parity + 1) // 2
        for t in prange(threads):
            g, m = grads[t], products[t]
            tmp_gy, tmp_dx = np.empty((SIDE, OUT, o), gy.dtype), np.empty((SIDE, SIDE, ch), gy.dtype)
            tile = np.empty((SIDE, SIDE, ch), gy.dtype)
            dy = np.empty((OUT, OUT, o), gy.dtype)
            for s in range(parity + 2 * t, parity + 2 * count, 2 * threads):
                for first in range(s * per * tw, min(tile_rows, (s + 1) * per) * tw, block):
                    last = min(min(tile_rows, (s + 1) * per) * tw, first + block)
                    for q in range(first, last):
                        n, i, j = _tile_origin(q, th, tw)
                        _gradient_tile(gy, n, i, j, g, q - first, c, dy, tmp_gy)
                    for e in range(ELEMENTS):
                        gemm_at(last - first, ch, o, g.ctypes.data + e * o * g.itemsize, ELEMENTS * o,
                                ut[e].ctypes.data, ch, m[e].ctypes.data, ch, False, g.itemsize)
                    for q in range(first, last):
                        n, i, j = _tile_origin(q, th, tw)
                        _add_input_tile(m, q - first, dx, n, i, j, top, left, c, tmp_dx, tile)
    return dx


@jit(parallel=True)
def winograd_filter_grad(x, gy, parts, inputs, grads, top, left, c):  # pragma: no cover - compiled
    """parts[p] (36, C, O) = sum over the tiles of block p of V[e]^T dM[e] per element e, V = B^T d B of x's
    tiles (x framed by ``top``/``left`` as in :func:`winograd_conv`) and dM = A dy A^T of gy's 4x4 blocks: the
    gradient of the kernel transform U, which the caller sums over the blocks in order and maps back
    (dg = G^T dU G, :func:`untransform_filter_grad`). The blocks are fixed, each summed by one thread
    (one-thread GEMMs of the transposed V adding onto it), so the bits do not depend on the thread count.
    ``inputs`` (threads, tiles, 36, C) and ``grads`` (threads, tiles, 36, O) are the threads' workspaces."""
    threads, block, _, ch = inputs.shape
    o = gy.shape[3]
    th, tw = (gy.shape[1] + OUT - 1) // OUT, (gy.shape[2] + OUT - 1) // OUT
    tiles, blocks = gy.shape[0] * th * tw, parts.shape[0]
    per = (tiles + blocks - 1) // blocks
    for t in prange(threads):
        v, g = inputs[t], grads[t]
        tmp_in, tmp_gy = np.empty((SIDE, SIDE, ch), x.dtype), np.empty((SIDE, OUT, o), x.dtype)
        dy, edge = np.empty((OUT, OUT, o), x.dtype), np.empty((1, SIDE, SIDE, ch), x.dtype)
        for p in range(t, blocks, threads):
            start, stop = p * per, min(tiles, (p + 1) * per)
            if start >= stop:
                parts[p] = 0
            for first in range(start, stop, block):
                last = min(stop, first + block)
                for q in range(first, last):
                    n, i, j = _tile_origin(q, th, tw)
                    _input_tile(x, n, i, j, top, left, v, q - first, c, tmp_in, edge)
                    _gradient_tile(gy, n, i, j, g, q - first, c, dy, tmp_gy)
                for e in range(ELEMENTS):
                    gemm_at(ch, o, last - first, v.ctypes.data + e * ch * v.itemsize, ELEMENTS * ch,
                            g.ctypes.data + e * o * g.itemsize, ELEMENTS * o, parts[p, e].ctypes.data, o,
                            first > start, v.itemsize, True)
    return parts
