"""Convolution as im2col + one GEMM, col2im for the gradient (channels_last: x is NHWC, kernels HWIO).

The whole layer is three array steps, each vectorised:

* **im2col**: a strided view ``(G, N, OH, OW, KH, KW, C/G)`` of the (zero-padded) input, copied once into a
  contiguous matrix ``cols`` of shape ``(G, N*OH*OW, KH*KW*C/G)`` (no Python loop over pixels);
* **GEMM**: ``y = cols @ W`` with the kernel ``(KH, KW, C/G, O)`` read as ``(KH*KW*C/G, O)``; the result is
  already NHWC;
* **col2im** (the gradient of im2col, fused with its GEMM): for each kernel tap (i, j), ``gy @ W[i, j]^T``
  added onto the pixels that tap read, one strided add per tap (a loop over the KH*KW window only).

Three ops share a :class:`ConvGeometry` and are each other's gradients, so double backward works:

* ``Conv2DOp(x, w, b)``:          y = conv(x, w) + b;   dx = conv_transpose(gy, w),  dw = filter_grad(x, gy)
* ``Conv2DTransposeOp(x, w, b)``: y = conv_transpose(x, w) + b;   dx = conv(gy, w),  dw = filter_grad(gy, x)
* ``Conv2DFilterGradOp(x, gy)``:  dw = cols(x)^T @ gy;   dx = conv_transpose(gy, G),  dgy = conv(x, G)

An ordinary backward reuses the ``cols`` saved by the forward for dw (no second im2col). Padding 'same'
follows Keras/TensorFlow: total = max((ceil(H/s) - 1) s + d (k - 1) + 1 - H, 0), top = total // 2 (the
extra row, when odd, goes to the bottom). conv1d is conv2d on a height-1 image.
The loop-level textbook forms are in :mod:`shendu.reference.conv`; tests check both agree.

Fast paths (:mod:`shendu.kernels.conv`, taken for NumPy float arrays from ``MIN_SIZE`` elements, the bodies
here staying the reference): im2col as one parallel pass that skips the padding instead of copying it; col2im
as one wide GEMM ``gy @ W^T`` into a pooled ``cols`` and one parallel pass adding its rows back (instead of
KH*KW narrow GEMMs and strided adds); the bias add (with a fused ReLU: ``activation='relu'``, shendu.ops.bias)
and its gradient as parallel passes. The GEMMs stay BLAS, except for narrow convolutions (at most
``NARROW_MAX_OUT`` outputs, one group): their forward and gradients are direct loops, with no cols at all.
Both walk the batch a group of images at a time (``GROUP_BYTES``), so the GEMM meets rows still in cache.
One group and enough channels for the im2col kernel (:func:`_implicit`): the forward and the filter gradient
never form ``cols`` either. Each kernel thread copies a block of windows (``IMPLICIT_ROWS`` rows of ``cols``)
into a small buffer of its own and multiplies it there by a one-thread GEMM (``cols_block @ W``, or
``cols_block^T @ gy`` added onto a fixed block's sum), so the filter gradient makes its windows again instead
of keeping the forward's ``cols`` (MNIST convnet's second layer: 42 MB per step not written, not read back).
A 3x3 stride-1 convolution with at least 32 input and output channels (:func:`_winograd`) runs Winograd's
F(4x4, 3x3) (:mod:`shendu.kernels.winograd`): 36 products per 4x4 block of outputs instead of 144, in the
forward and both gradients.

>>> import numpy as np, shendu
>>> x = shendu.ones((1, 4, 4, 1)); w = shendu.ones((3, 3, 1, 2))
>>> conv2d(x, w, padding="same").shape
(1, 4, 4, 2)
>>> conv2d(x, w).data[0, :, :, 0]
array([[9., 9.],
       [9., 9.]], dtype=float32)
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from shendu import kernels
from shendu.autograd.grad_mode import is_grad_enabled
from shendu.autograd.op import Op, raw
from shendu.autograd.tensor import Tensor
from shendu.backend import get_array_module
from shendu.kernels import conv as conv_kernels
from shendu.kernels import gemm
from shendu.kernels import winograd as winograd_kernels
from shendu.ops.bias import ReluEnd, add_bias, bias_grad, check_activation
from shendu.ops.buffers import BufferPool
from shendu.ops.elementwise import match_dtypes
from shendu.ops.shaping import reshape, transpose

Pads = tuple[tuple[int, int], tuple[int, int]]


# ---------------------------------------------------------------------------- geometry
def int_tuple(value: Any, n: int, name: str, minimum: int = 1) -> tuple[int, ...]:
    """An int or a sequence of ``n`` ints (each >= ``minimum``) -> an n-tuple; ``name`` is used in the error.

    >>> int_tuple(3, 2, "kernel_size"), int_tuple([1, 2], 2, "strides")
    ((3, 3), (1, 2))
    """
    values = (value,) * n if isinstance(value, int) else tuple(value) if isinstance(value, (tuple, list)) else ()
    if len(values) != n or any(isinstance(v, bool) or not isinstance(v, int) or v < minimum for v in values):
        kind = "positive" if minimum == 1 else f"integers >= {minimum}:"
        raise ValueError(f"{name} must be a {kind} int or a tuple of {n} of them, got {value!r}")
    return tuple(int(v) for v in values)


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """Keras/TensorFlow 'same' padding (before, after) of one axis: the output has ceil(size / stride) entries.

    >>> same_padding(28, 3, 1), same_padding(5, 2, 2), same_padding(4, 4, 1)
    ((1, 1), (0, 1), (1, 2))
    """
    extent = dilation * (kernel - 1) + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + extent - size, 0)
    return total // 2, total - total // 2


def resolve_padding(padding: Any, in_hw: tuple[int, int], kernel: tuple[int, int], strides: tuple[int, int],
                    dilation: tuple[int, int]) -> Pads:
    """'valid', 'same', an int p, (ph, pw), or ((top, bottom), (left, right)) -> explicit pads."""
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return (0, 0), (0, 0)
        if mode == "same":
            return tuple(same_padding(*a) for a in zip(in_hw, kernel, strides, dilation))  # type: ignore[return-value]
        raise ValueError(f"padding must be 'valid', 'same', an int or pairs of ints, got {padding!r} "
                         "(Conv1D also takes 'causal')")
    if isinstance(padding, int):
        padding = (padding, padding)
    pads = tuple((int(p), int(p)) if isinstance(p, int) else (int(p[0]), int(p[1])) for p in padding)
    if len(pads) != 2 or any(p < 0 for pair in pads for p in pair):
        raise ValueError(f"padding must be non-negative: an int, (ph, pw) or ((top, bottom), (left, right)), "
                         f"got {padding!r}")
    return pads  # type: ignore[return-value]


@dataclass(frozen=True)
class ConvGeometry:
    """Where every window of a 2-D convolution reads: kernel, strides, dilation, explicit pads, groups, and the
    spatial sizes of the convolution's input ``in_hw`` and output ``out_hw``."""

    kernel: tuple[int, int]
    strides: tuple[int, int]
    dilation: tuple[int, int]
    pads: Pads
    groups: int
    in_hw: tuple[int, int]
    out_hw: tuple[int, int]

    @classmethod
    def make(cls, in_hw: tuple[int, int], kernel: tuple[int, int], strides: Any = 1, padding: Any = "valid",
             dilation: Any = 1, groups: int = 1) -> ConvGeometry:
        strides, dilation = int_tuple(strides, 2, "strides"), int_tuple(dilation, 2, "dilation_rate")
        pads = resolve_padding(padding, in_hw, kernel, strides, dilation)
        out = []
        for size, k, s, d, (lo, hi) in zip(in_hw, kernel, strides, dilation, pads):
            extent = d * (k - 1) + 1
            if size + lo + hi < extent:
                raise ValueError(f"conv: the dilated kernel ({extent}) is larger than the padded input "
                                 f"({size} + {lo + hi}); input spatial size {in_hw}, kernel {kernel}, dilation "
                                 f"{dilation}. Hint: use padding='same' or a smaller kernel")
            out.append((size + lo + hi - extent) // s + 1)
        return cls(tuple(kernel), strides, dilation, pads, int(groups), tuple(in_hw), tuple(out))

    @property
    def spec(self) -> tuple[int, ...]:
        """The geometry as the ints the kernels take: (KH, KW, SH, SW, DH, DW, PAD_TOP, PAD_LEFT, OH, OW)."""
        (pt, _), (pl, _) = self.pads
        return (*self.kernel, *self.strides, *self.dilation, pt, pl, *self.out_hw)

    @property
    def padded_hw(self) -> tuple[int, int]:
        return tuple(n + lo + hi for n, (lo, hi) in zip(self.in_hw, self.pads))  # type: ignore[return-value]

    def tap(self, i: int, j: int) -> tuple[slice, slice]:
        """The (rows, cols) of the padded input that kernel tap (i, j) reads, one per output pixel."""
        (sh, sw), (dh, dw), (oh, ow) = self.strides, self.dilation, self.out_hw
        return slice(i * dh, i * dh + sh * (oh - 1) + 1, sh), slice(j * dw, j * dw + sw * (ow - 1) + 1, sw)


def pad_input(x: Any, pads: Pads, value: float = 0.0) -> Any:
    """x (N, H, W, C) framed by ``pads`` rows/columns of ``value`` (x itself when there is no padding)."""
    (pt, pb), (pl, pr) = pads
    if not (pt or pb or pl or pr):
        return x
    xp = get_array_module(x)
    n, h, w, c = x.shape
    out = xp.full((n, h + pt + pb, w + pl + pr, c), value, dtype=x.dtype)
    out[:, pt:pt + h, pl:pl + w] = x
    return out


def crop_padding(xp_: Any, geo: ConvGeometry) -> Any:
    """The inverse of :func:`pad_input` for a gradient: the interior, contiguous."""
    (pt, _), (pl, _) = geo.pads
    h, w = geo.in_hw
    if xp_.shape[1:3] == (h, w):
        return xp_
    return get_array_module(xp_).ascontiguousarray(xp_[:, pt:pt + h, pl:pl + w])


# ---------------------------------------------------------------------------- the three array steps
#: the pool of im2col matrices (``COLS_POOL.clear()`` frees them)
COLS_POOL = BufferPool()
#: the fast paths work through the batch a group of images at a time: the GEMM reads a group's rows of ``cols``
#: right after im2col writes them, and col2im right after the GEMM writes them, about this many bytes at a time,
#: still in cache rather than after a round trip through memory (the MNIST convnet's second layer, 2 threads:
#: forward 12.3 -> 11.1 ms, input gradient 12.2 -> 9.8 ms)
GROUP_BYTES = 3 << 20


def _cols_shape(x_shape: tuple, geo: ConvGeometry) -> tuple[int, int, int]:
    """The shape of im2col's matrix: (G, N*OH*OW, KH*KW*C/G)."""
    (kh, kw), (oh, ow) = geo.kernel, geo.out_hw
    return geo.groups, x_shape[0] * oh * ow, kh * kw * (x_shape[3] // geo.groups)


def _im2col_kernel_applies(x: Any, geo: ConvGeometry) -> bool:
    return (kernels.fast(x) and x.shape[3] // geo.groups >= conv_kernels.IM2COL_MIN_CHANNELS
            and math.prod(_cols_shape(x.shape, geo)) >= conv_kernels.MIN_SIZE)


def _images_per_group(bytes_per_image: int) -> int:
    """How many images make a group whose rows of cols are about GROUP_BYTES (at least one)."""
    return max(1, GROUP_BYTES // max(1, bytes_per_image))


def im2col(x: Any, geo: ConvGeometry, pool: BufferPool | None = None) -> Any:
    """x (N, H, W, C) -> cols (G, N*OH*OW, KH*KW*C/G): every receptive field as a row, in one copy (into an
    array from ``pool`` when given). Fast path: :func:`shendu.kernels.conv.im2col` (parallel, no padded copy)."""
    xp = get_array_module(x)
    n, c = x.shape[0], x.shape[3]
    g = geo.groups
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = geo.kernel, geo.strides, geo.dilation, geo.out_hw
    shape = _cols_shape(x.shape, geo)
    if _im2col_kernel_applies(x, geo):
        cols = xp.empty(shape, dtype=x.dtype) if pool is None else pool.take(xp, shape, x.dtype)
        return conv_kernels.im2col(xp.ascontiguousarray(x), cols, *geo.spec)
    x = pad_input(x, geo.pads)
    s_n, s_h, s_w, s_c = x.strides
    view = xp.lib.stride_tricks.as_strided(
        x, (g, n, oh, ow, kh, kw, c // g), (s_c * (c // g), s_n, s_h * sh, s_w * sw, s_h * dh, s_w * dw, s_c))
    if pool is None:
        return xp.ascontiguousarray(view).reshape(shape)
    cols = pool.take(xp, shape, x.dtype)
    xp.copyto(cols.reshape(view.shape), view)
    return cols


def _narrow(a: Any, b: Any, outputs: int, geo: ConvGeometry) -> bool:
    """Whether a product of a convolution with ``outputs`` output channels takes the direct kernels (``a``, ``b``:
    its operands): at most NARROW_MAX_OUT outputs, one group, NumPy float arrays of one dtype, large enough."""
    return (outputs <= conv_kernels.NARROW_MAX_OUT and geo.groups == 1 and kernels.fast(a, b) and a.dtype == b.dtype
            and a.size * geo.kernel[0] * geo.kernel[1] >= conv_kernels.MIN_SIZE)


def _implicit(x: Any, w: Any, geo: ConvGeometry) -> bool:
    """Whether a convolution's forward and filter gradient run on the implicit im2col kernels (im2col's matrix
    made and multiplied a block of windows at a time, never whole): one group, enough channels for the im2col
    kernel, NumPy floats of one dtype, and a GEMM the kernels can call (:mod:`shendu.kernels.gemm`)."""
    return (geo.groups == 1 and gemm.available() and _im2col_kernel_applies(x, geo) and kernels.fast(w)
            and x.dtype == w.dtype)


#: Winograd's kernels take a 3x3 convolution from this many input and output channels each, and from 8 x 8
#: outputs (a 7 x 7 output fills its 4 x 4 tiles to 77%): with fewer, the transforms outweigh the products
#: saved. Measured at 2 threads, batch 64, 'same', medians of 3 rounds, forward / filter gradient / input
#: gradient against implicit im2col / implicit im2col / GEMM + col2im: 8 -> 8 channels on 32 x 32 1.06x / 0.90x /
#: 0.97x, 32 -> 16 0.89x / 0.86x / 2.21x, 32 -> 32 1.43x / 1.41x / 1.90x, 64 -> 64 on 16 x 16 1.81x / 1.63x /
#: 2.73x, 64 -> 64 on 7 x 7 0.82x / 0.79x / 1.41x
WINOGRAD_MIN_CHANNELS = 32
WINOGRAD_MIN_OUTPUT_SIDE = 8
#: ... and while the kernel's transform (36 C O numbers), which every block of tiles multiplies by, stays near a
#: core's L2 cache: 128 -> 128 channels on 8 x 8 (2.4 MB in float32) 1.17x / 1.05x / 1.77x, 128 -> 256 (4.7 MB)
#: 1.20x / 1.04x / 1.42x, 256 -> 256 at batch 16 (9.4 MB, 64 tiles) 0.51x / 0.47x / 0.45x
WINOGRAD_MAX_KERNEL_BYTES = 4 << 20
#: Winograd's kernels on (the default) or off: ``SHENDU_WINOGRAD=0`` in the environment, or set this to False,
#: for float32 results that round as a direct sum does (3-11x closer to the exact answer; see
#: :mod:`shendu.kernels.winograd`), at the GEMMs' speed
WINOGRAD = os.environ.get("SHENDU_WINOGRAD", "1").strip().lower() not in ("0", "false", "no", "off")


def _winograd(x: Any, kernel_shape: tuple[int, ...], geo: ConvGeometry, other: Any) -> bool:
    """Whether a 3x3 convolution of x with a kernel of ``kernel_shape`` (3, 3, C, O) runs on Winograd's
    F(4x4, 3x3) kernels (:mod:`shendu.kernels.winograd`), forward and both gradients: not switched off
    (:data:`WINOGRAD`), stride 1, no dilation (any padding: the frame is zeros the tiles read), enough channels
    and outputs and a kernel transform that is not too large (:data:`WINOGRAD_MIN_CHANNELS`,
    :data:`WINOGRAD_MAX_KERNEL_BYTES`), and what the implicit kernels need of x and ``other`` (the kernel, or gy
    for the filter gradient; :func:`_implicit`)."""
    c, o = kernel_shape[2], kernel_shape[3]
    return (WINOGRAD and geo.kernel == (3, 3) and geo.strides == (1, 1) and geo.dilation == (1, 1)
            and min(c, o) >= WINOGRAD_MIN_CHANNELS
            and min(geo.out_hw) >= WINOGRAD_MIN_OUTPUT_SIDE
            and winograd_kernels.ELEMENTS * c * o * x.itemsize <= WINOGRAD_MAX_KERNEL_BYTES
            and _implicit(x, other, geo))


def _winograd_workspaces(xp: Any, dtype: Any, *widths: int) -> list[Any]:
    """Per kernel thread, a block of tiles' transforms (tiles, 36, width), pooled; give them back after."""
    threads, tiles = kernels.get_num_threads(), winograd_kernels.TILES
    return [COLS_POOL.take(xp, (threads, tiles, winograd_kernels.ELEMENTS, width), dtype) for width in widths]


def winograd_forward(x: Any, w: Any, geo: ConvGeometry) -> Any:
    """y (N, OH, OW, O) of a 3x3 stride-1 convolution of x (N, H, W, C) with w (3, 3, C, O), by
    :func:`shendu.kernels.winograd.winograd_conv` on x as it is (the kernel reads the padding as zeros)."""
    xp = get_array_module(x)
    o = w.shape[3]
    inputs, = _winograd_workspaces(xp, x.dtype, x.shape[3])
    products = COLS_POOL.take(xp, (inputs.shape[0], winograd_kernels.ELEMENTS, winograd_kernels.TILES, o), x.dtype)
    y = xp.empty((x.shape[0], *geo.out_hw, o), dtype=x.dtype)
    with gemm.one_thread_each():
        winograd_kernels.winograd_conv(xp.ascontiguousarray(x), winograd_kernels.transform_kernel(w), y, inputs,
                                       products, geo.pads[0][0], geo.pads[1][0], winograd_kernels.constants(x.dtype))
    COLS_POOL.give(inputs, products)
    return y


def winograd_input_grad(gy: Any, w: Any, geo: ConvGeometry) -> Any:
    """dx (N, H, W, C) of a 3x3 stride-1 convolution, by the adjoint of Winograd's forward
    (:func:`shendu.kernels.winograd.winograd_conv_adjoint`): each 4x4 block of gy to its tile's 6x6 gradient."""
    xp = get_array_module(gy)
    c = w.shape[2]
    grads, = _winograd_workspaces(xp, gy.dtype, gy.shape[3])
    products = COLS_POOL.take(xp, (grads.shape[0], winograd_kernels.ELEMENTS, winograd_kernels.TILES, c), gy.dtype)
    ut = winograd_kernels.transform_kernel(w.transpose(0, 1, 3, 2))  # (36, O, C)
    dx = xp.empty((gy.shape[0], *geo.in_hw, c), dtype=gy.dtype)
    with gemm.one_thread_each():
        winograd_kernels.winograd_conv_adjoint(xp.ascontiguousarray(gy), ut, dx, grads, products, geo.pads[0][0],
                                               geo.pads[1][0], winograd_kernels.constants(gy.dtype))
    COLS_POOL.give(grads, products)
    return dx


def winograd_filter_grad(x: Any, gy: Any, geo: ConvGeometry) -> Any:
    """dW (3, 3, C, O) of a 3x3 stride-1 convolution run by Winograd's forward: the gradient of the kernel
    transform summed over fixed blocks of tiles (:func:`shendu.kernels.winograd.winograd_filter_grad`), the
    blocks summed in order, then mapped back to the 3x3 taps."""
    xp = get_array_module(x)
    c, o = x.shape[3], gy.shape[3]
    inputs, grads = _winograd_workspaces(xp, x.dtype, c, o)
    parts = COLS_POOL.take(xp, (winograd_kernels.GRAD_BLOCKS, winograd_kernels.ELEMENTS, c, o), x.dtype)
    with gemm.one_thread_each():
        winograd_kernels.winograd_filter_grad(xp.ascontiguousarray(x), xp.ascontiguousarray(gy), parts, inputs,
                                              grads, geo.pads[0][0], geo.pads[1][0],
                                              winograd_kernels.constants(x.dtype))
    dw = winograd_kernels.untransform_filter_grad(parts.sum(axis=0), x.dtype)
    COLS_POOL.give(inputs, grads, parts)
    return dw


def _workspace(xp: Any, k: int, dtype: Any) -> Any:
    """A block of im2col rows per kernel thread (from the cols pool; give it back after)."""
    return COLS_POOL.take(xp, (kernels.get_num_threads(), conv_kernels.IMPLICIT_ROWS, k), dtype)


def implicit_forward(x: Any, w: Any, geo: ConvGeometry) -> Any:
    """y (N, OH, OW, O) = im2col(x) @ W by :func:`shendu.kernels.conv.conv_implicit` (no cols kept)."""
    xp = get_array_module(x)
    y = xp.empty((x.shape[0], *geo.out_hw, w.shape[3]), dtype=x.dtype)
    k = w.shape[0] * w.shape[1] * w.shape[2]
    workspace = _workspace(xp, k, x.dtype)
    with gemm.one_thread_each():
        conv_kernels.conv_implicit(xp.ascontiguousarray(x), xp.ascontiguousarray(w).reshape(k, w.shape[3]),
                                   y.reshape(-1, w.shape[3]), workspace, *geo.spec)
    COLS_POOL.give(workspace)
    return y


def implicit_filter_grad(x: Any, gy: Any, geo: ConvGeometry, kernel_shape: tuple[int, ...]) -> Any:
    """dW (KH, KW, C, O) = im2col(x)^T @ gy by :func:`shendu.kernels.conv.conv_implicit_filter_grad`: fixed
    blocks of windows, then the blocks summed in order (the same bits on any thread count)."""
    xp = get_array_module(x)
    k, o = math.prod(kernel_shape[:3]), kernel_shape[3]
    # pooled, not allocated per step: the blocks' sums are 1.2 MB for the MNIST convnet's second layer
    parts = COLS_POOL.take(xp, (conv_kernels.FILTER_GRAD_BLOCKS, k, o), x.dtype)
    workspace = _workspace(xp, k, x.dtype)
    with gemm.one_thread_each():
        conv_kernels.conv_implicit_filter_grad(xp.ascontiguousarray(x), xp.ascontiguousarray(gy).reshape(-1, o),
                                               parts, workspace, *geo.spec)
    dw = parts.sum(axis=0).reshape(kernel_shape)
    COLS_POOL.give(workspace, parts)
    return dw


def _taps_by_output(w: Any) -> Any:
    """(KH, KW, C, O) -> (KH, KW, O, C), C-ordered: the narrow kernels read one output's taps as a row."""
    return get_array_module(w).ascontiguousarray(w.transpose(0, 1, 3, 2))


def narrow_gradients(x: Any, gy: Any, w: Any, geo: ConvGeometry, kernel_shape: tuple[int, ...],
                     want_dx: bool = True, want_dw: bool = True) -> tuple[Any, Any]:
    """dx (N, H, W, C) and dW (KH, KW, C, O) of a narrow convolution, from gy and W, and x, directly (no cols),
    in one pass (:func:`shendu.kernels.conv.conv_narrow_backward`); None for a gradient not wanted (and ``x``
    or ``w`` may be None when only the other gradient is)."""
    xp = get_array_module(gy)
    kh, kw, c, o = kernel_shape
    n, dtype = gy.shape[0], gy.dtype
    blocks = max(1, min(n, conv_kernels.SUM_BLOCKS))
    none4 = xp.empty((0, 0, 0, 0), dtype)
    dx = xp.empty((n, *geo.in_hw, c), dtype) if want_dx else none4
    parts = xp.empty((blocks, kh, kw, o, c) if want_dw else (blocks, 0, 0, 0, 0), dtype)
    conv_kernels.conv_narrow_backward(xp.ascontiguousarray(x) if want_dw else none4, xp.ascontiguousarray(gy),
                                      _taps_by_output(w) if want_dx else none4, dx, parts, want_dx, want_dw,
                                      *geo.spec)
    dw = xp.ascontiguousarray(parts.sum(axis=0).transpose(0, 1, 3, 2)) if want_dw else None
    return (dx if want_dx else None), dw


def im2col_forward(x: Any, w: Any, geo: ConvGeometry, pool: BufferPool) -> tuple[Any, Any]:
    """``cols = im2col(x)`` (from ``pool``) and ``y = cols @ W`` (N, OH, OW, O). Fast path: im2col and the GEMM
    one group of images at a time, each group multiplied while its rows are still in cache (GROUP_BYTES).
    A narrow convolution (:func:`_narrow`) runs the direct kernel, and one that :func:`_implicit` takes its
    kernel; both return no cols (None)."""
    if _narrow(x, w, w.shape[3], geo):
        xp = get_array_module(x)
        y = xp.empty((x.shape[0], *geo.out_hw, w.shape[3]), dtype=x.dtype)
        return None, conv_kernels.conv_narrow(xp.ascontiguousarray(x), _taps_by_output(w), y, *geo.spec)
    if _winograd(x, w.shape, geo, w):
        return None, winograd_forward(x, w, geo)
    if _implicit(x, w, geo):
        return None, implicit_forward(x, w, geo)
    if not (_im2col_kernel_applies(x, geo) and x.dtype == w.dtype):
        cols = im2col(x, geo, pool)
        return cols, conv_forward(cols, w, geo, x.shape[0])
    xp = get_array_module(x)
    x = xp.ascontiguousarray(x)
    n, per_image = x.shape[0], geo.out_hw[0] * geo.out_hw[1]
    g, m, k = _cols_shape(x.shape, geo)
    cols = pool.take(xp, (g, m, k), x.dtype)
    kernel = _grouped_kernel(w, g)
    rows = xp.empty((g, m, kernel.shape[2]), dtype=x.dtype)
    step = _images_per_group(per_image * g * k * x.itemsize)
    for first in range(0, n, step):
        part = slice(first * per_image, min(n, first + step) * per_image)
        conv_kernels.im2col(x[first:first + step], cols[:, part], *geo.spec)
        _matmul(cols[:, part], kernel, out=rows[:, part])
    return cols, _ungroup_rows(rows, (x.shape[0], *geo.out_hw, w.shape[3]))


def _grouped_kernel(w: Any, g: int) -> Any:
    """(KH, KW, C/G, O) -> (G, KH*KW*C/G, O/G)."""
    kh, kw, cg, o = w.shape
    return w.reshape(kh * kw * cg, g, o // g).transpose(1, 0, 2)


def _grouped_rows(y: Any, g: int) -> Any:
    """(N, OH, OW, O) -> (G, N*OH*OW, O/G)."""
    o = y.shape[-1]
    return y.reshape(-1, g, o // g).transpose(1, 0, 2)


def _ungroup_rows(rows: Any, shape: tuple[int, ...]) -> Any:
    """(G, M, O/G) -> shape (..., O) with channel index g*O/G + o."""
    if rows.shape[0] == 1:
        return rows[0].reshape(shape)
    return rows.transpose(1, 0, 2).reshape(shape)


def _matmul(a: Any, b: Any, out: Any = None) -> Any:
    """(G, M, K) @ (G, K, P) -> (G, M, P); one plain 2-D GEMM when G == 1 (stacked matmul is slower)."""
    xp = get_array_module(a)
    if a.shape[0] == 1:
        return xp.matmul(a[0], b[0], out=None if out is None else out[0])[None]
    return xp.matmul(a, b, out=out)


def conv_forward(cols: Any, w: Any, geo: ConvGeometry, n: int) -> Any:
    """y (N, OH, OW, O) = cols @ W (one GEMM, or one per group)."""
    return _ungroup_rows(_matmul(cols, _grouped_kernel(w, geo.groups)), (n, *geo.out_hw, w.shape[3]))


def conv_input_grad(gy: Any, w: Any, geo: ConvGeometry) -> Any:
    """dx (N, H, W, C) = col2im(gy @ W^T), the transposed convolution of gy, computed tap by tap: for each
    kernel tap (i, j), gy @ W[i, j]^T (one GEMM, (N*OH*OW, C)) is added onto the pixels that tap read (one
    strided add). The (N*OH*OW, KH*KW*C) matrix of the textbook col2im is never formed.

    Fast path (:func:`shendu.kernels.conv.col2im`): that matrix formed by one wide GEMM into a pooled buffer,
    then added back in one parallel pass. Narrow convolutions: :func:`narrow_gradients`."""
    xp = get_array_module(gy)
    g = geo.groups
    (kh, kw), (oh, ow), (hp, wp) = geo.kernel, geo.out_hw, geo.padded_hw
    n, cg = gy.shape[0], w.shape[2]
    if _narrow(gy, w, w.shape[3], geo):  # few outputs: no cols at all (an outer product for O = 1)
        return narrow_gradients(None, gy, w, geo, w.shape, want_dw=False)[0]
    if _winograd(gy, w.shape, geo, w):
        return winograd_input_grad(gy, w, geo)
    rows = _grouped_rows(gy, g)  # (G, M, O/G)
    if kernels.fast(gy, w) and gy.dtype == w.dtype and n * oh * ow * kh * kw * cg * g >= conv_kernels.MIN_SIZE:
        per_image, k = oh * ow, kh * kw * cg
        step = _images_per_group(per_image * g * k * gy.itemsize)
        cols = COLS_POOL.take(xp, (g, min(n, step) * per_image, k), gy.dtype)
        kernel_t = _grouped_kernel(w, g).transpose(0, 2, 1)
        dx = xp.empty((n, *geo.in_hw, g * cg), dtype=gy.dtype)
        for first in range(0, n, step):  # each group's rows added back while still in cache (GROUP_BYTES)
            stop = min(n, first + step)
            part = cols[:, :(stop - first) * per_image]
            _matmul(rows[:, first * per_image:stop * per_image], kernel_t, out=part)  # (G, rows, KH*KW*C/G)
            conv_kernels.col2im(part, dx[first:stop], *geo.spec)
        COLS_POOL.give(cols)
        return dx
    taps = w.reshape(kh, kw, cg, g, w.shape[3] // g)
    out = xp.zeros((n, hp, wp, g, cg), dtype=gy.dtype)
    buf = xp.empty((g, n * oh * ow, cg), dtype=gy.dtype)
    for i in range(kh):
        for j in range(kw):
            _matmul(rows, taps[i, j].transpose(1, 2, 0), out=buf)  # (G, M, C/G)
            r, c = geo.tap(i, j)
            out[:, r, c] += buf.reshape(g, n, oh, ow, cg).transpose(1, 2, 3, 0, 4)
    return crop_padding(out.reshape(n, hp, wp, g * cg), geo)


def conv_filter_grad(cols: Any, gy: Any, geo: ConvGeometry, kernel_shape: tuple[int, ...], x: Any = None) -> Any:
    """dW (KH, KW, C/G, O) = cols^T @ gy; with no cols (the forward ran a narrow, Winograd or implicit kernel)
    from x: by the narrow kernel, Winograd's, the implicit one, or from cols made here."""
    if cols is None:
        if _narrow(x, gy, kernel_shape[3], geo):
            return narrow_gradients(x, gy, None, geo, kernel_shape, want_dx=False)[1]
        if _winograd(x, kernel_shape, geo, gy):
            return winograd_filter_grad(x, gy, geo)
        if _implicit(x, gy, geo):
            return implicit_filter_grad(x, gy, geo, kernel_shape)
        cols = im2col(x, geo)
    dw = _matmul(cols.transpose(0, 2, 1), _grouped_rows(gy, geo.groups))  # (G, KH*KW*C/G, O/G)
    return _ungroup_rows(dw, kernel_shape)


def _check_kernel(op: str, x_shape: tuple, w: Any, channels_axis_size: int, geo: ConvGeometry, what: str) -> None:
    if w.ndim != 4 or w.shape[:2] != geo.kernel:
        raise ValueError(f"{op}: kernel of shape {w.shape} does not match the kernel size {geo.kernel}; kernels are "
                         "(KH, KW, in/groups, out) (HWIO; a PyTorch OIHW weight needs .transpose(2, 3, 1, 0))")
    g = geo.groups
    if channels_axis_size != w.shape[2] * g or w.shape[3] % g:
        raise ValueError(f"{op}: {what} of shape {x_shape} has {channels_axis_size} channels, but the kernel "
                         f"{w.shape} with groups={g} expects {w.shape[2] * g} (and out channels divisible by groups)")


# ---------------------------------------------------------------------------- ops
class Conv2DOp(Op):
    """y[n,i,j,o] = sum_{a,b,c} xpad[n, i*sh + a*dh, j*sw + b*dw, c] W[a,b,c,o] + b[o] (per group), as
    y = im2col(x) @ W + b;   dx = col2im(gy @ W^T),  dW = im2col(x)^T @ gy,  db = sum(gy) over N, OH, OW"""

    relu = False  # Conv2DReluOp

    def __init__(self, geo: ConvGeometry) -> None:
        self.geo = geo

    def forward(self, x, w, b=None):
        geo = self.geo
        if x.ndim != 4 or tuple(x.shape[1:3]) != geo.in_hw:
            raise ValueError(f"conv2d: expected an NHWC input with spatial size {geo.in_hw}, got shape {x.shape}")
        _check_kernel("conv2d", x.shape, w, x.shape[3], geo, "input")
        x, w = match_dtypes(x, w)  # the dtype rule of every product (see shendu.ops.linalg)
        cols, y = im2col_forward(x, w, geo, COLS_POOL)
        if is_grad_enabled():
            self.cols = cols  # kept for dW, given back to the pool in release() (None: a narrow convolution)
        elif cols is not None:
            COLS_POOL.give(cols)
        return add_bias(y, b, self.relu)

    def release(self) -> None:
        cols = self.__dict__.get("cols")
        super().release()
        if cols is not None:
            COLS_POOL.give(cols)

    def backward(self, gy, x, w, b, y):
        geo = self.geo
        graph = isinstance(gy, Tensor) or isinstance(x, Tensor) or isinstance(w, Tensor)
        dx = dw = db = None
        if not graph and self.cols is None and _narrow(x, w, w.shape[3], geo):  # both gradients in one pass
            if self.needs_grad[0] or self.needs_grad[1]:
                dx, dw = narrow_gradients(x, gy, w, geo, w.shape, *self.needs_grad[:2])
        else:
            if self.needs_grad[0]:
                dx = Conv2DTransposeOp(geo)(gy, w, None)
            if self.needs_grad[1]:
                dw = (Conv2DFilterGradOp(geo, raw(w).shape)(x, gy) if graph
                      else conv_filter_grad(self.cols, gy, geo, w.shape, x))
        if self.needs_grad[2]:
            db = bias_grad(gy)
        return dx, dw, db


class Conv2DReluOp(ReluEnd, Conv2DOp):
    """y = max(conv2d(x, W) + b, 0) (Conv2D with activation='relu'; bias and ReLU in one pass, see shendu.ops.bias);
    dz = gy * (y > 0), then Conv2DOp's rules with dz"""


class Conv2DTransposeOp(Op):
    """The transposed convolution (the gradient of Conv2DOp with respect to its input):
    y = col2im(x @ W^T) + b, x (N, OH, OW, O), W (KH, KW, C/G, O), y (N, H, W, C);
    dx = im2col(gy) @ W,  dW = im2col(gy)^T @ x,  db = sum(gy) over N, H, W"""

    relu = False  # Conv2DTransposeReluOp

    def __init__(self, geo: ConvGeometry) -> None:
        self.geo = geo

    def forward(self, x, w, b=None):
        geo = self.geo
        if x.ndim != 4 or tuple(x.shape[1:3]) != geo.out_hw:
            raise ValueError(f"conv2d_transpose: expected an NHWC input with spatial size {geo.out_hw}, got shape "
                             f"{x.shape}")
        if w.ndim != 4 or w.shape[:2] != geo.kernel or x.shape[3] != w.shape[3]:
            raise ValueError(f"conv2d_transpose: kernel of shape {w.shape} does not fit an input of shape {x.shape}; "
                             f"the kernel is (KH, KW, out/groups, in) = ({geo.kernel[0]}, {geo.kernel[1]}, ?, "
                             f"{x.shape[3]}) (Keras's Conv2DTranspose layout)")
        x, w = match_dtypes(x, w)
        return add_bias(conv_input_grad(x, w, geo), b, self.relu)

    def backward(self, gy, x, w, b, y):
        geo = self.geo
        dx = dw = db = None
        if isinstance(gy, Tensor) or isinstance(x, Tensor) or isinstance(w, Tensor):
            if self.needs_grad[0]:
                dx = Conv2DOp(geo)(gy, w, None)
            if self.needs_grad[1]:
                dw = Conv2DFilterGradOp(geo, raw(w).shape)(gy, x)
        elif self.needs_grad[0] or self.needs_grad[1]:
            if self.needs_grad[0]:
                cols, dx = im2col_forward(gy, w, geo, COLS_POOL)
            else:
                direct = _narrow(gy, w, w.shape[3], geo) or _implicit(gy, w, geo)
                cols = None if direct else im2col(gy, geo, COLS_POOL)
            dw = conv_filter_grad(cols, x, geo, w.shape, gy) if self.needs_grad[1] else None
            if cols is not None:
                COLS_POOL.give(cols)
        if self.needs_grad[2]:
            db = bias_grad(gy)
        return dx, dw, db


class Conv2DTransposeReluOp(ReluEnd, Conv2DTransposeOp):
    """y = max(conv2d_transpose(x, W) + b, 0) (Conv2DTranspose with activation='relu', see shendu.ops.bias);
    dz = gy * (y > 0), then Conv2DTransposeOp's rules with dz"""


class Conv2DFilterGradOp(Op):
    """The kernel gradient of Conv2DOp as an op (for double backward): y = im2col(x)^T @ gy, shaped like W;
    dx = col2im(gy @ G^T) (= conv_transpose(gy, G)),  dgy = im2col(x) @ G (= conv(x, G)), G the upstream grad"""

    def __init__(self, geo: ConvGeometry, kernel_shape: tuple[int, ...]) -> None:
        self.geo = geo
        self.kernel_shape = tuple(kernel_shape)

    def forward(self, x, gy):
        return conv_filter_grad(None, gy, self.geo, self.kernel_shape, x)

    def backward(self, g, x, gy, y):
        dx = Conv2DTransposeOp(self.geo)(gy, g, None) if self.needs_grad[0] else None
        dgy = Conv2DOp(self.geo)(x, g, None) if self.needs_grad[1] else None
        return dx, dgy


# ---------------------------------------------------------------------------- user functions
def _to_channels_last(x: Any, data_format: str) -> Any:
    if data_format == "channels_last":
        return x
    if data_format != "channels_first":
        raise ValueError(f"data_format must be 'channels_last' or 'channels_first', got {data_format!r}")
    return transpose(x, (0, *range(2, raw(x).ndim), 1))


def _from_channels_last(y: Any, data_format: str) -> Any:
    if data_format == "channels_last":
        return y
    return transpose(y, (0, raw(y).ndim - 1, *range(1, raw(y).ndim - 1)))


def conv2d(x: Any, kernel: Any, bias: Any = None, strides: Any = 1, padding: Any = "valid", dilation: Any = 1,
           groups: int = 1, data_format: str = "channels_last", activation: str | None = None) -> Any:
    """2-D convolution (cross-correlation, as every framework): x (N, H, W, C), kernel (KH, KW, C/groups, O),
    bias (O,); ``padding`` 'valid', 'same' (Keras/TensorFlow), an int, (ph, pw) or ((top, bottom), (left, right)).
    ``groups=C`` with a kernel (KH, KW, 1, C*m) is a depthwise convolution. ``activation='relu'`` fuses
    max(., 0) into the op (one pass with the bias: :class:`Conv2DReluOp`)."""
    op_class = Conv2DReluOp if check_activation("conv2d", activation) else Conv2DOp
    x = _to_channels_last(x, data_format)
    kshape = raw(kernel).shape
    if len(kshape) != 4:
        raise ValueError(f"conv2d: kernel must be 4-D (KH, KW, in/groups, out), got shape {kshape}")
    geo = ConvGeometry.make(tuple(raw(x).shape[1:3]), kshape[:2], strides, padding, dilation, groups)
    return _from_channels_last(op_class(geo)(x, kernel, bias), data_format)


def depthwise_conv2d(x: Any, kernel: Any, bias: Any = None, strides: Any = 1, padding: Any = "valid",
                     dilation: Any = 1, data_format: str = "channels_last") -> Any:
    """Each input channel convolved with its own ``m`` filters: kernel (KH, KW, C, m) (Keras's depthwise layout),
    output channel c*m + k; conv2d with groups=C on the kernel read as (KH, KW, 1, C*m)."""
    kshape = raw(kernel).shape
    if len(kshape) != 4:
        raise ValueError(f"depthwise_conv2d: kernel must be 4-D (KH, KW, channels, depth_multiplier), got {kshape}")
    kh, kw, c, m = kshape
    return conv2d(x, reshape(kernel, (kh, kw, 1, c * m)), bias, strides, padding, dilation, c, data_format)


def conv_transpose_output_size(size: int, kernel: int, stride: int, padding: Any, output_padding: int | None,
                               dilation: int = 1) -> int:
    """The output length of a transposed convolution (Keras's ``deconv_output_length``; an int padding p
    follows PyTorch: (size - 1) s - 2p + d (k - 1) + output_padding + 1).

    >>> conv_transpose_output_size(7, 3, 2, "same", None), conv_transpose_output_size(7, 3, 2, "valid", None)
    (14, 15)
    """
    extent = dilation * (kernel - 1) + 1
    if isinstance(padding, int):
        return (size - 1) * stride - 2 * padding + extent + (output_padding or 0)
    if output_padding is None:
        return size * stride if padding == "same" else size * stride + max(extent - stride, 0)
    pad = extent // 2 if padding == "same" else 0
    return (size - 1) * stride + extent - 2 * pad + output_padding


def conv2d_transpose(x: Any, kernel: Any, bias: Any = None, strides: Any = 1, padding: Any = "valid",
                     output_padding: Any = None, dilation: Any = 1, groups: int = 1,
                     data_format: str = "channels_last", activation: str | None = None) -> Any:
    """Transposed 2-D convolution: x (N, H, W, C_in), kernel (KH, KW, C_out/groups, C_in) (Keras layout),
    bias (C_out,). The output size follows Keras for 'valid'/'same' and PyTorch for an int padding.
    ``activation='relu'`` fuses max(., 0) into the op (:class:`Conv2DTransposeReluOp`)."""
    op_class = Conv2DTransposeReluOp if check_activation("conv2d_transpose", activation) else Conv2DTransposeOp
    x = _to_channels_last(x, data_format)
    kshape = raw(kernel).shape
    if len(kshape) != 4:
        raise ValueError(f"conv2d_transpose: kernel must be 4-D (KH, KW, out/groups, in), got shape {kshape}")
    strides, dilation = int_tuple(strides, 2, "strides"), int_tuple(dilation, 2, "dilation_rate")
    out_pad = (None, None) if output_padding is None else int_tuple(output_padding, 2, "output_padding", 0)
    if isinstance(padding, str):
        conv_padding = padding.lower()
        per_axis: tuple = (conv_padding, conv_padding)
    else:
        conv_padding = per_axis = int_tuple(padding, 2, "conv2d_transpose: padding", 0)
    in_hw = tuple(raw(x).shape[1:3])
    out_hw = tuple(conv_transpose_output_size(*args) for args in
                   zip(in_hw, kshape[:2], strides, per_axis, out_pad, dilation))
    geo = ConvGeometry.make(out_hw, kshape[:2], strides, conv_padding, dilation, groups)
    if geo.out_hw != in_hw:
        raise ValueError(f"conv2d_transpose: an output of size {out_hw} (from input {in_hw}, strides {strides}, "
                         f"padding {padding!r}, output_padding {output_padding}) does not convolve back to the input; "
                         "Hint: output_padding must be smaller than the stride")
    return _from_channels_last(op_class(geo)(x, kernel, bias), data_format)


def conv1d(x: Any, kernel: Any, bias: Any = None, strides: int = 1, padding: Any = "valid", dilation: int = 1,
           groups: int = 1, data_format: str = "channels_last") -> Any:
    """1-D convolution: x (N, L, C), kernel (K, C/groups, O); ``padding`` 'valid', 'same', 'causal' (left pad
    d (K - 1), as Keras) or an int. Runs as Conv2DOp on a height-1 image."""
    x = _to_channels_last(x, data_format)
    kshape = raw(kernel).shape
    if len(kshape) != 3:
        raise ValueError(f"conv1d: kernel must be 3-D (K, in/groups, out), got shape {kshape}")
    n, length, c = raw(x).shape
    stride, dil = int_tuple(strides, 1, "conv1d: strides")[0], int_tuple(dilation, 1, "conv1d: dilation")[0]
    if isinstance(padding, str) and padding.lower() == "causal":
        pads: Any = ((0, 0), (dil * (kshape[0] - 1), 0))
    elif isinstance(padding, str):
        pads = ((0, 0), resolve_padding(padding, (1, length), (1, kshape[0]), (1, stride), (1, dil))[1])
    else:
        pads = ((0, 0), (padding, padding) if isinstance(padding, int) else tuple(padding))
    y = conv2d(reshape(x, (n, 1, length, c)), reshape(kernel, (1, *kshape)), bias, (1, stride), pads, (1, dil), groups)
    out_shape = raw(y).shape
    return _from_channels_last(reshape(y, (n, out_shape[2], out_shape[3])), data_format)


def conv_output_length(size: int | None, kernel: int, padding: str, stride: int, dilation: int = 1) -> int | None:
    """Keras's output length of a convolution or pooling window over ``size`` entries (None stays None).

    >>> conv_output_length(28, 3, "valid", 1), conv_output_length(28, 3, "same", 2)
    (26, 14)
    """
    if size is None:
        return None
    if padding in ("same", "causal"):
        return math.ceil(size / stride)
    return (size - (dilation * (kernel - 1) + 1)) // stride + 1
