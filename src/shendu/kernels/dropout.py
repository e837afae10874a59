"""Dropout masks from a counter-based hash: mask generation and apply fused into one multi-threaded pass.

Element ``i`` of a mask (C order over the mask's shape) is kept when ``splitmix64(key, i) >> 11``, a uniform
53-bit integer, is at least ``keep_threshold(rate) = ceil(rate * 2**53)``: probability ``1 - rate`` (to 2**-53),
the rule ``uniform() >= rate`` of a NumPy draw. ``key`` is one 64-bit integer drawn per call from shendu's
generator (:func:`shendu.rng.get_rng`), so ``shendu.seed(n)`` fixes every mask, and a mask depends on nothing else:
not on the number of threads, nor on which of the two paths computed it. The backward pass hashes again
instead of keeping the mask.

:func:`splitmix64` is the NumPy reference (Steele, Lea and Flood's SplitMix64 finaliser applied to the counter
``key + (i + 1) * golden``, the stream of Java's ``SplittableRandom``); :func:`apply` is the kernel, with the
same integer arithmetic, so both give bit-identical masks (``tests/test_kernels_elementwise.py``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from shendu.kernels.elementwise import Kernel
from shendu.kernels.jit import prange

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def keep_threshold(rate: float) -> np.uint64:
    """Keep an element when its 53-bit hash is at least this (``ceil(rate * 2**53)``; exact, 2**53 for rate 1)."""
    return np.uint64(math.ceil(rate * 2.0**53))


def splitmix64(key: np.uint64, size: int) -> np.ndarray:
    """The 64-bit hashes of the counters 0 .. size-1 under ``key`` (NumPy reference of the kernel's hash)."""
    z = np.arange(1, size + 1, dtype=np.uint64)
    z *= _GOLDEN
    z += np.uint64(key)
    z ^= z >> np.uint64(30)
    z *= _MIX1
    z ^= z >> np.uint64(27)
    z *= _MIX2
    z ^= z >> np.uint64(31)
    return z


@Kernel
def _apply(x, key, threshold, scale, out):
    zero = x.dtype.type(0)
    for i in prange(x.size):
        z = np.uint64(i + 1) * _GOLDEN + key
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        z = z ^ (z >> np.uint64(31))
        out[i] = x[i] * (scale if (z >> np.uint64(11)) >= threshold else zero)


def apply(x: np.ndarray, key: np.uint64, threshold: np.uint64, scale: Any) -> np.ndarray:
    """``x * m`` for a C-contiguous float array ``x``, with ``m`` the mask of ``x``'s shape under ``key``
    (``scale``, a scalar of ``x``'s dtype, where kept, else 0), in one pass (parallel for large arrays)."""
    out = np.empty(x.size, x.dtype)
    _apply(x.reshape(-1), key, threshold, scale, out)
    return out.reshape(x.shape)


def mask(key: np.uint64, shape: tuple, threshold: np.uint64, scale: Any) -> np.ndarray:
    """The mask itself (``scale`` where kept, else 0, in ``scale``'s dtype), by the kernel: :func:`apply` to ones."""
    return apply(np.ones(shape, type(scale)), key, threshold, scale)
