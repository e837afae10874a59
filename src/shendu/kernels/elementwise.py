"""Fused, multi-threaded activation kernels: each forward or gradient in one pass, no temporaries.

The maths lives in the op classes of :mod:`shendu.ops.elementwise`; these kernels compute the same expressions
in the same order and in the arrays' own dtype (constants typed with ``x.dtype.type``), so float32 results are
bit-identical to the NumPy references (``tests/test_kernels_elementwise.py`` checks it).

Only arithmetic is fused here. Transcendentals (``tanh``, ``exp``) stay NumPy ufuncs: without Intel's SVML,
Numba calls the scalar libm per element (tanh ~100x slower than NumPy's SIMD loop), so e.g. the sigmoid
forward keeps ``np.tanh`` and fuses only the affine tail around it.

Every kernel takes 1-D C-contiguous arrays (the callers pass ``reshape(-1)`` views) and writes ``out``.
:func:`fits` says whether arrays may take them: NumPy float32/float64 arrays of one dtype and shape, C-contiguous,
and at least :data:`MIN_SIZE` elements (below that NumPy's own loop is as fast as a kernel call); from
:data:`PARALLEL_MIN` elements they run on all threads.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shendu.kernels.jit import Kernel as TwoBuildKernel
from shendu.kernels.jit import fast, prange

MIN_SIZE = 1 << 14  # elements: the activations take the kernels from here (measured: below it the call overhead
#                      eats the gain of one fused pass)
PARALLEL_MIN = 1 << 16  # elements: kernels run on all threads from here, in the calling thread below (on a
#                         loaded machine a parallel launch costs 10-20 us; measured at 128x128, load ~12)


def fits(*arrays: Any) -> bool:
    """Whether these arrays may take the kernels here (see the module docstring)."""
    first = arrays[0]
    if type(first) is not np.ndarray or first.size < MIN_SIZE or not fast(*arrays):  # cheapest test first
        return False
    return all(a.flags.c_contiguous and a.shape == first.shape and a.dtype == first.dtype for a in arrays)


def Kernel(function: Any) -> TwoBuildKernel:  # noqa: N802 - used as a decorator, like a class
    """One element-wise loop compiled serial and parallel, parallel from :data:`PARALLEL_MIN` elements (see
    :class:`shendu.kernels.jit.Kernel`). Call it on 1-D arrays: ``kernel(*arrays, *constants, out)``."""
    return TwoBuildKernel(function, PARALLEL_MIN)


def run(kernel: TwoBuildKernel, *arrays: Any, constants: tuple = ()) -> np.ndarray:
    """A new array like ``arrays[0]`` filled by ``kernel(*flat arrays, *constants in its dtype, out)``."""
    out = np.empty(arrays[0].size, arrays[0].dtype)
    typed = tuple(out.dtype.type(c) for c in constants)
    kernel(*(a.reshape(-1) for a in arrays), *typed, out)
    return out.reshape(arrays[0].shape)


@Kernel
def relu(x, out):
    """out = max(x, 0) (NaN stays NaN, as np.maximum)"""
    zero = x.dtype.type(0)
    for i in prange(x.size):
        v = x[i]
        out[i] = v if v > zero or v != v else zero


@Kernel
def relu_grad(gy, y, out):
    """out = gy * (y > 0)"""
    one, zero = y.dtype.type(1), y.dtype.type(0)
    for i in prange(gy.size):
        out[i] = gy[i] * (one if y[i] > zero else zero)


@Kernel
def leaky_relu(x, alpha, out):
    """out = x if x > 0 else alpha x"""
    zero = x.dtype.type(0)
    for i in prange(x.size):
        v = x[i]
        out[i] = v if v > zero else v * alpha


@Kernel
def leaky_relu_grad(gy, x, alpha, out):
    """out = gy * (1 if x > 0 else alpha)"""
    one, zero = x.dtype.type(1), x.dtype.type(0)
    for i in prange(gy.size):
        out[i] = gy[i] * (one if x[i] > zero else alpha)


@Kernel
def elu_grad(gy, x, y, alpha, out):
    """out = gy * (1 if x > 0 else y + alpha)"""
    one, zero = x.dtype.type(1), x.dtype.type(0)
    for i in prange(gy.size):
        out[i] = gy[i] * (one if x[i] > zero else y[i] + alpha)


@Kernel
def half_affine(t, out):
    """out = t * 0.5 + 0.5 (the tail of sigmoid(x) = 0.5 tanh(x / 2) + 0.5; ``out`` may be ``t``)"""
    half = t.dtype.type(0.5)
    for i in prange(t.size):
        out[i] = t[i] * half + half


@Kernel
def sigmoid_grad(gy, y, out):
    """out = gy * y * (1 - y)"""
    one = y.dtype.type(1)
    for i in prange(gy.size):
        v = y[i]
        out[i] = gy[i] * v * (one - v)


@Kernel
def tanh_grad(gy, y, out):
    """out = gy * (1 - y * y)"""
    one = y.dtype.type(1)
    for i in prange(gy.size):
        v = y[i]
        out[i] = gy[i] * (one - v * v)


@Kernel
def gelu_grad(gy, x, cdf, e, c, out):
    """out = gy * (cdf + x * (e * c)): GELU's gradient, e = exp(-x^2 / 2), c = 1 / sqrt(2 pi)"""
    for i in prange(gy.size):
        out[i] = gy[i] * (cdf[i] + x[i] * (e[i] * c))
