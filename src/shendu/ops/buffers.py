"""Scratch arrays reused from one call of an op to the next.

Some ops need large work arrays every training step: the im2col matrix of a convolution (tens of megabytes), the
time-major states and gate gradients of a recurrent layer. Fresh each step, every 4 KB page of them faults on
first touch (measured: 4x the im2col copy itself; ~10 ms of a 60 ms Embedding-LSTM step). A :class:`BufferPool`
hands out a free array of the asked shape and dtype (contents undefined, as ``np.empty``) or a new one, and
takes arrays back once nothing reads them any more.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from shendu.backend import get_array_module


class BufferPool:
    """Free arrays by (array module, shape, dtype): at most ``per_shape`` of each, and, with ``limit``, at most
    ``limit`` bytes in all (a larger array is not kept; past the limit the pool starts over, so a new batch size
    or sequence length replaces the old arrays). Views are never kept (their base may still be in use). Safe to
    use from several threads."""

    def __init__(self, per_shape: int = 2, limit: int | None = None) -> None:
        self.per_shape, self.limit = per_shape, limit
        self.free: dict[tuple, list[Any]] = {}
        self.bytes = 0
        self.lock = threading.Lock()

    def take(self, xp: Any, shape: tuple[int, ...], dtype: Any) -> Any:
        """A free array of this shape and dtype, or a new one."""
        with self.lock:
            stack = self.free.get((xp.__name__, tuple(shape), np.dtype(dtype)))
            if stack:
                a = stack.pop()
                self.bytes -= a.nbytes
                return a
        return xp.empty(shape, dtype=dtype)

    def give(self, *arrays: Any) -> None:
        """Keep these arrays for a later :meth:`take` (within the bounds above)."""
        with self.lock:
            for a in arrays:
                if a.base is not None or (self.limit is not None and a.nbytes > self.limit):
                    continue
                stack = self.free.setdefault((get_array_module(a).__name__, a.shape, a.dtype), [])
                if len(stack) >= self.per_shape:
                    continue
                if self.limit is not None and self.bytes + a.nbytes > self.limit:
                    self.free.clear()
                    self.bytes = 0
                    stack = self.free.setdefault((get_array_module(a).__name__, a.shape, a.dtype), [])
                stack.append(a)
                self.bytes += a.nbytes

    def clear(self) -> None:
        """Let go of every free array."""
        with self.lock:
            self.free.clear()
            self.bytes = 0
