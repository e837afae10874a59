"""Winograd's minimal filtering F(2x2, 3x3): a 3x3 stride-1 convolution in 16 products instead of 36 per
2x2 block of outputs (Lavin & Gray, 2016). A fast path of :mod:`shendu.ops.convolution`.

For each tile d, a 4x4 patch of the (padded) input per channel, and each 3x3 filter g::

    y (2x2) = A^T [ sum over channels c of (G g G^T) * (B^T d B) ] A        (* elementwise, 4x4)

    B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
    G   = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]
    A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]

Neighbouring tiles overlap by two pixels. The sum over channels of each of the 16 elements is a GEMM: with
V[e] (tiles, C) the transformed input and U[e] = (G g G^T)[e] (C, O) the transformed kernel, M[e] = V[e] U[e]
(tiles, O), then each tile's 2x2 outputs per channel o from M[0..15][tile, o]. The multiplications per output
fall from 9 C O to 4 C O, and the transforms are additions only, so float32 rounds about as a direct sum does.

Each kernel thread takes a contiguous range of tiles, :data:`TILES` at a time: it transforms them into its
own workspace, multiplies by 16 one-thread GEMMs there (:mod:`shendu.kernels.gemm`) and transforms back,
while the block is in its core's cache. Every output is computed from its own tile alone, so the result does
not depend on the thread count. Measured on the MNIST convnet's second layer ((64, 26, 26, 32) -> 64): see
:data:`TILES`.

The gradients are the adjoints of these linear maps, with dM = A dy A^T per tile (a 2x2 block of gy)::

    dU[e] = sum over tiles of V[e]^T dM[e]   ->  dg = G^T dU G               (:func:`winograd_filter_grad`)
    dV[e] = dM[e] U[e]^T                     ->  dd = B dV B^T, added onto the tile's 4x4 input pixels
                                                                             (:func:`winograd_conv_adjoint`)

so the filter gradient and the input gradient save the same share of products as the forward.
"""

from __future__ import annotations

import numpy as np

from shendu.kernels.gemm import gemm_at
from shendu.kernels.jit import jit, prange

#: tiles per block: a block's transformed input (TILES, 16, C) and products (16, TILES, O) stay in the core's
#: cache between the transforms and the GEMMs. The MNIST convnet's second layer at 2 threads, medians: forward
#: 6.7-7.0 ms against 10.7-11.1 for implicit im2col (user's BLAS kernel), 10.2-10.6 against 15.1-15.3 (pinned
#: AVX2 kernel); at a quieter moment the 16 GEMMs took 2.7 ms, the input transform 1.4, the output transform 1.1.
#: Blocks of 64 or 256 tiles: 2-6% slower
TILES = 128

#: fixed blocks of tiles the filter gradient sums one by one (:func:`winograd_filter_grad`), then in order
GRAD_BLOCKS = 16

#: fixed stripes of rows of tiles the input gradient sums, the even ones in parallel, then the odd ones
#: (:func:`winograd_conv_adjoint`)
STRIPES = 64

#: the kernel transform G (4x3), applied as U = G g G^T per input and output channel
G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])


def transform_kernel(w: np.ndarray) -> np.ndarray:
    """U (16, C, O) = G g G^T for each (C, O) filter g of w (3, 3, C, O), in float64, then w's dtype: G over
    the rows of every filter at once, then over their columns (two small GEMMs; an einsum of the three took 5x
    as long, 0.6 ms per forward for the MNIST convnet's second layer)."""
    c, o = w.shape[2], w.shape[3]
    rows = (G @ w.astype(np.float64).reshape(3, -1)).reshape(4, 3, c * o)  # G g: (a, j, c*o)
    u = (G @ rows.transpose(1, 0, 2).reshape(3, -1)).reshape(4, 4, c * o)  # (G g) G^T, as (b, a, c*o)
    return np.ascontiguousarray(u.transpose(1, 0, 2).reshape(16, c, o), dtype=w.dtype)



def untransform_filter_grad(du: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """dg (3, 3, C, O) = G^T dU G for each (C, O) of du (16, C, O), the gradient of U = G g G^T (the adjoint of
    :func:`transform_kernel`), in float64, then ``dtype``."""
    c, o = du.shape[1], du.shape[2]
    rows = (G.T @ du.astype(np.float64).reshape(4, -1)).reshape(3, 4, c * o)  # G^T dU: (a, j, c*o)
    dg = (G.T @ rows.transpose(1, 0, 2).reshape(4, -1)).reshape(3, 3, c * o)  # (.) G, as (b, a, c*o)
    return np.ascontiguousarray(dg.transpose(1, 0, 2).reshape(3, 3, c, o), dtype=dtype)

@jit(inline="always")
def _input_tile(x, n, i, j, v, r):  # pragma: no cover - compiled
    """v[r] (16, C) = B^T d B for the 4x4 tile d of x at (n, i, j), channels innermost."""
    for k in range(x.shape[3]):
        d00, d01, d02, d03 = x[n, i, j, k], x[n, i, j + 1, k], x[n, i, j + 2, k], x[n, i, j + 3, k]
        d10, d11, d12, d13 = x[n, i + 1, j, k], x[n, i + 1, j + 1, k], x[n, i + 1, j + 2, k], x[n, i + 1, j + 3, k]
        d20, d21, d22, d23 = x[n, i + 2, j, k], x[n, i + 2, j + 1, k], x[n, i + 2, j + 2, k], x[n, i + 2, j + 3, k]
        d30, d31, d32, d33 = x[n, i + 3, j, k], x[n, i + 3, j + 1, k], x[n, i + 3, j + 2, k], x[n, i + 3, j + 3, k]
        a0, a1, a2, a3 = d00 - d20, d01 - d21, d02 - d22, d03 - d23  # rows of B^T d
        b0, b1, b2, b3 = d10 + d20, d11 + d21, d12 + d22, d13 + d23
        e0, e1, e2, e3 = d20 - d10, d21 - d11, d22 - d12, d23 - d13
        f0, f1, f2, f3 = d10 - d30, d11 - d31, d12 - d32, d13 - d33
        v[r, 0, k], v[r, 1, k], v[r, 2, k], v[r, 3, k] = a0 - a2, a1 + a2, a2 - a1, a1 - a3  # (.) B
        v[r, 4, k], v[r, 5, k], v[r, 6, k], v[r, 7, k] = b0 - b2, b1 + b2, b2 - b1, b1 - b3
        v[r, 8, k], v[r, 9, k], v[r, 10, k], v[r, 11, k] = e0 - e2, e1 + e2, e2 - e1, e1 - e3
        v[r, 12, k], v[r, 13, k], v[r, 14, k], v[r, 15, k] = f0 - f2, f1 + f2, f2 - f1, f1 - f3


@jit(inline="always")
def _gradient_tile(gy, n, i, j, g, r, zero):  # pragma: no cover - compiled
    """g[r] (16, O) = A dy A^T for the 2x2 block dy of gy at (n, i, j) (``zero`` past gy's last row or
    column), outputs innermost: the adjoint of the output transform y = A^T M A."""
    right, below = j + 1 < gy.shape[2], i + 1 < gy.shape[1]
    for k in range(gy.shape[3]):
        y00 = gy[n, i, j, k]
        y01 = gy[n, i, j + 1, k] if right else zero
        y10 = gy[n, i + 1, j, k] if below else zero
        y11 = gy[n, i + 1, j + 1, k] if right and below else zero
        s0, s1, d0, d1 = y00 + y10, y01 + y11, y00 - y10, y01 - y11  # rows of A dy: y0, y0 + y1, y0 - y1, -y1
        g[r, 0, k], g[r, 1, k], g[r, 2, k], g[r, 3, k] = y00, y00 + y01, y00 - y01, -y01  # (.) A^T
        g[r, 4, k], g[r, 5, k], g[r, 6, k], g[r, 7, k] = s0, s0 + s1, s0 - s1, -s1
        g[r, 8, k], g[r, 9, k], g[r, 10, k], g[r, 11, k] = d0, d0 + d1, d0 - d1, -d1
        g[r, 12, k], g[r, 13, k], g[r, 14, k], g[r, 15, k] = -y10, -y10 - y11, y11 - y10, y11


@jit(parallel=True)
def winograd_conv(x, u, y, inputs, products):  # pragma: no cover - compiled
    """y (N, OH, OW, O) = the 3x3 stride-1 'valid' correlation of x (N, 2*ceil(OH/2) + 2, 2*ceil(OW/2) + 2, C)
    with the kernel whose transform is u (16, C, O) (:func:`transform_kernel`): x is padded by the caller so
    that every 4x4 tile lies inside it. ``inputs`` (threads, tiles, 16, C) and ``products`` (threads, 16, tiles,
    O) are the threads' workspaces. Call inside :func:`shendu.kernels.gemm.one_thread_each`."""
    threads, block, _, c = inputs.shape
    o = u.shape[2]
    oh, ow = y.shape[1], y.shape[2]
    th, tw = (oh + 1) // 2, (ow + 1) // 2
    tiles = x.shape[0] * th * tw
    per = (tiles + threads - 1) // threads
    for t in prange(threads):
        v, m = inputs[t], products[t]
        for first in range(t * per, min(tiles, (t + 1) * per), block):
            last = min(tiles, (t + 1) * per, first + block)
            for q in range(first, last):  # V = B^T d B
                _input_tile(x, q // (th * tw), 2 * ((q % (th * tw)) // tw), 2 * (q % tw), v, q - first)
            for e in range(16):  # M[e] = V[e] U[e]: V[e] is every 16th row of C values
                gemm_at(last - first, o, c, v.ctypes.data + e * c * v.itemsize, 16 * c, u[e].ctypes.data, o,
                        m[e].ctypes.data, o, False, v.itemsize)
            for q in range(first, last):  # y = A^T M A, output channels innermost
                r = q - first
                n, i, j = q // (th * tw), 2 * ((q % (th * tw)) // tw), 2 * (q % tw)
                for k in range(o):
                    s00 = m[0, r, k] + m[4, r, k] + m[8, r, k]  # rows of A^T M
                    s01 = m[1, r, k] + m[5, r, k] + m[9, r, k]
                    s02 = m[2, r, k] + m[6, r, k] + m[10, r, k]
                    s03 = m[3, r, k] + m[7, r, k] + m[11, r, k]
                    s10 = m[4, r, k] - m[8, r, k] - m[12, r, k]
                    s11 = m[5, r, k] - m[9, r, k] - m[13, r, k]
                    s12 = m[6, r, k] - m[10, r, k] - m[14, r, k]
                    s13 = m[7, r, k] - m[11, r, k] - m[15, r, k]
                    y[n, i, j, k] = s00 + s01 + s02  # (.) A; the last row or column of an odd size is left out
                    if j + 1 < ow:
                        y[n, i, j + 1, k] = s01 - s02 - s03
                    if i + 1 < oh:
                        y[n, i + 1, j, k] = s10 + s11 + s12
                        if j + 1 < ow:
                            y[n, i + 1, j + 1, k] = s11 - s12 - s13
    return y


@jit(inline="always")
def _add_tile_gradients(gy, ut, dx, g, m, first, last, top, left):  # pragma: no cover - compiled
    """For the tiles first..last-1: dM = A dy A^T (in g), dV = dM U^T (one-thread GEMMs, into m), then
    dd = B dV B^T added onto the 4x4 pixels of dx the tile read (those of the frame dropped), tile by tile."""
    o, c = ut.shape[1], ut.shape[2]
    th, tw, h, w = (gy.shape[1] + 1) // 2, (gy.shape[2] + 1) // 2, dx.shape[1], dx.shape[2]
    zero = np.zeros(1, gy.dtype)[0]
    for q in range(first, last):
        _gradient_tile(gy, q // (th * tw), 2 * ((q % (th * tw)) // tw), 2 * (q % tw), g, q - first, zero)
    for e in range(16):
        gemm_at(last - first, c, o, g.ctypes.data + e * o * g.itemsize, 16 * o, ut[e].ctypes.data, c,
                m[e].ctypes.data, c, False, g.itemsize)
    for q in range(first, last):
        r = q - first
        n, i, j = q // (th * tw), 2 * ((q % (th * tw)) // tw), 2 * (q % tw)
        for k in range(c):  # dd = B dV B^T in place; B's rows: x0, x1 - x2 + x3, x1 + x2 - x0, -x3
            for e in range(0, 16, 4):  # each row's columns
                x0, x1, x2, x3 = m[e, r, k], m[e + 1, r, k], m[e + 2, r, k], m[e + 3, r, k]
                m[e, r, k], m[e + 1, r, k], m[e + 2, r, k], m[e + 3, r, k] = x0, x1 - x2 + x3, x1 + x2 - x0, -x3
            for e in range(4):  # then the rows
                x0, x1, x2, x3 = m[e, r, k], m[e + 4, r, k], m[e + 8, r, k], m[e + 12, r, k]
                m[e, r, k], m[e + 4, r, k], m[e + 8, r, k], m[e + 12, r, k] = x0, x1 - x2 + x3, x1 + x2 - x0, -x3
        for a in range(4):
            row = i + a - top
            if 0 <= row < h:
                for b in range(4):
                    col = j + b - left
                    if 0 <= col < w:
                        for k in range(c):
                            dx[n, row, col, k] += m[4 * a + b, r, k]


@jit(parallel=True)
def winograd_conv_adjoint(gy, ut, dx, grads, products, top, left):  # pragma: no cover - compiled
    """dx (N, H, W, C) = the gradient with respect to x of y = :func:`winograd_conv` of x framed by ``top``/
    ``left`` rows/columns of zeros, given gy (N, OH, OW, O) and ut (16, O, C), the kernel transform with its
    channels swapped: per tile, dd = B [(A dy A^T) U^T] B^T added onto the 4x4 pixels the tile read.

    Neighbouring tiles overlap by two pixels. The rows of tiles of all images are cut into :data:`STRIPES`
    fixed stripes: the even stripes are summed in parallel, each by one thread tile by tile, then the odd ones,
    so no two threads add onto one pixel at once, and every pixel adds its tiles in one order whatever the
    thread count. ``grads`` (threads, tiles, 16, O) and ``products`` (threads, 16, tiles, C) are the threads'
    workspaces."""
    threads, block = grads.shape[0], grads.shape[1]
    th, tw, h = (gy.shape[1] + 1) // 2, (gy.shape[2] + 1) // 2, dx.shape[1]
    tile_rows = gy.shape[0] * th
    for u in prange(tile_rows):  # zero the rows of dx that each row of tiles starts (the last: all it reads)
        n, i = u // th, 2 * (u % th)
        stop = i + 4 if u % th == th - 1 else i + 2
        for row in range(max(0, i - top), min(h, stop - top)):
            dx[n, row] = 0
    stripes = max(1, min(STRIPES, tile_rows))  # one (empty) for an empty batch
    per = (tile_rows + stripes - 1) // stripes
    for parity in range(2):
        count = (stripes - parity + 1) // 2
        for t in prange(threads):
            for s in range(parity + 2 * t, parity + 2 * count, 2 * threads):
                for first in range(s * per * tw, min(tile_rows, (s + 1) * per) * tw, block):
                    last = min(min(tile_rows, (s + 1) * per) * tw, first + block)
                    _add_tile_gradients(gy, ut, dx, grads[t], products[t], first, last, top, left)
    return dx


@jit(parallel=True)
def winograd_filter_grad(x, gy, parts, inputs, grads):  # pragma: no cover - compiled
    """parts[p] (16, C, O) = sum over the tiles of block p of V[e]^T dM[e] per element e, V = B^T d B of x's
    tiles (x framed as for :func:`winograd_conv`) and dM = A dy A^T of gy's 2x2 blocks: the gradient of the
    kernel transform U, which the caller sums over the blocks in order and maps back (dg = G^T dU G,
    :func:`untransform_filter_grad`). The blocks are fixed, each summed by one thread (one-thread GEMMs of
    the transposed V adding onto it), so the bits do not depend on the thread count. ``inputs`` (threads,
    tiles, 16, C) and ``grads`` (threads, tiles, 16, O) are the threads' workspaces."""
    threads, block, _, c = inputs.shape
    o = gy.shape[3]
    th, tw = (gy.shape[1] + 1) // 2, (gy.shape[2] + 1) // 2
    tiles, blocks = gy.shape[0] * th * tw, parts.shape[0]
    per = (tiles + blocks - 1) // blocks
    zero = np.zeros(1, gy.dtype)[0]
    for t in prange(threads):
        v, g = inputs[t], grads[t]
        for p in range(t, blocks, threads):
            start, stop = p * per, min(tiles, (p + 1) * per)
            if start >= stop:
                parts[p] = 0
            for first in range(start, stop, block):
                last = min(stop, first + block)
                for q in range(first, last):
                    n, i, j = q // (th * tw), 2 * ((q % (th * tw)) // tw), 2 * (q % tw)
                    _input_tile(x, n, i, j, v, q - first)
                    _gradient_tile(gy, n, i, j, g, q - first, zero)
                for e in range(16):  # dU[e] += V[e]^T dM[e]
                    gemm_at(c, o, last - first, v.ctypes.data + e * c * v.itemsize, 16 * c,
                            g.ctypes.data + e * o * g.itemsize, 16 * o, parts[p, e].ctypes.data, o, first > start,
                            v.itemsize, True)
    return parts
