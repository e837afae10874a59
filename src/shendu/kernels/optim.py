"""Fused optimiser updates: one pass over a parameter's arrays instead of NumPy's eight to twelve.

The readable rules (and their NumPy references) live in :mod:`shendu.optimizers`; each function here
applies one rule in place, element by element, with the same operations in the same order and every
hyper-parameter rounded to the parameter's dtype first, as NumPy rounds a Python float meeting a float32
array. So the result equals the reference's to the last bit (LLVM may not contract ``a * b + c`` into
an FMA without ``fastmath``, which stays off). ``error_model="numpy"``: a division by zero gives inf or NaN
as in NumPy (and lets LLVM vectorise the loop).

Each also takes ``decay``, the factor ``1 - lr * weight_decay`` of decoupled weight decay (1.0: none), which
the reference applies as a pass of its own before the update (``w *= decay``); here it costs nothing.

Arrays below :data:`PARALLEL_MIN` elements (biases, small models) run a serial kernel: a parallel launch
costs ~3 us, more than the whole update of a few thousand values. Above it, the elements are shared
among the threads. :func:`ready` says whether a parameter's arrays may take this path.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shendu.kernels.jit import Kernel, fast, jit, prange

#: parameters with at least this many elements are updated by all threads, smaller ones by one
PARALLEL_MIN = 1 << 15


def ready(w: Any, *arrays: Any) -> bool:
    """True when the kernels may update ``w`` with ``arrays`` (gradient, state; None entries are skipped):
    kernels enabled, NumPy float32/float64 arrays of ``w``'s dtype and shape, all C-ordered (so their flat
    views are the arrays themselves), and ``w`` writeable (else the reference raises NumPy's error)."""
    if not fast(w):
        return False
    flags = w.flags
    if not (flags.c_contiguous and flags.writeable):
        return False
    for a in arrays:
        if a is not None and (type(a) is not np.ndarray or a.dtype != w.dtype or a.shape != w.shape
                              or not a.flags.c_contiguous):
            return False
    return True


# ---------------------------------------------------------------- one element of each rule
# An optional state array (v_hat, the centered average, RMSprop's momentum, SGD's velocity) is passed as None
# when the rule has none: Numba compiles the function for that case and drops the branch, so each loop holds
# no conditional store and vectorises.
@jit(error_model="numpy")
def _adam_at(i, w, g, m, v, v_hat, c1, c2, alpha, eps, decay):  # pragma: no cover - compiled
    gi = g[i]
    mi = m[i] + (gi - m[i]) * c1
    vi = v[i] + (gi * gi - v[i]) * c2
    m[i] = mi
    v[i] = vi
    if v_hat is not None:
        vi = np.maximum(v_hat[i], vi)
        v_hat[i] = vi
    w[i] = w[i] * decay - mi / (np.sqrt(vi) + eps) * alpha


@jit(error_model="numpy")
def _sgd_at(i, w, g, v, lr, momentum, nesterov, decay):  # pragma: no cover - compiled
    step = g[i] * lr
    wi = w[i] * decay
    if v is None:
        w[i] = wi - step
    else:
        vi = v[i] * momentum - step
        v[i] = vi
        w[i] = (wi - step) + vi * momentum if nesterov else wi + vi


@jit(error_model="numpy")
def _rmsprop_at(i, w, g, v, a, s, c, lr, eps, momentum, decay):  # pragma: no cover - compiled
    gi = g[i]
    vi = v[i] + (gi * gi - v[i]) * c
    v[i] = vi
    if a is None:
        d = vi + eps
    else:
        ai = a[i] + (gi - a[i]) * c
        a[i] = ai
        d = (vi - ai * ai) + eps
    step = gi / np.sqrt(d) * lr
    if s is not None:
        step = s[i] * momentum + step
        s[i] = step
    w[i] = w[i] * decay - step


# ---------------------------------------------------------------- the loops: serial and parallel
# Hyper-parameters arrive as Python floats and are rounded to the parameter's dtype once, before the loop.
def _loop(function):
    return Kernel(function, PARALLEL_MIN, error_model="numpy")


@_loop
def _adam(w, g, m, v, v_hat, c1, c2, alpha, eps, decay):  # pragma: no cover - compiled
    t = w.dtype.type
    c1, c2, alpha, eps, decay = t(c1), t(c2), t(alpha), t(eps), t(decay)
    for i in prange(w.size):
        _adam_at(i, w, g, m, v, v_hat, c1, c2, alpha, eps, decay)


@_loop
def _sgd(w, g, v, lr, momentum, nesterov, decay):  # pragma: no cover - compiled
    t = w.dtype.type
    lr, momentum, decay = t(lr), t(momentum), t(decay)
    for i in prange(w.size):
        _sgd_at(i, w, g, v, lr, momentum, nesterov, decay)


@_loop
def _rmsprop(w, g, v, a, s, c, lr, eps, momentum, decay):  # pragma: no cover - compiled
    t = w.dtype.type
    c, lr, eps, momentum, decay = t(c), t(lr), t(eps), t(momentum), t(decay)
    for i in prange(w.size):
        _rmsprop_at(i, w, g, v, a, s, c, lr, eps, momentum, decay)


# ---------------------------------------------------------------- what the optimisers call
# Every array is C-ordered with w's shape (see ready): one flat view each, and Python floats for the
# hyper-parameters, so each kernel compiles once per dtype (and per set of optional arrays).
def _flat(a: np.ndarray | None) -> np.ndarray | None:
    return a.reshape(-1) if a is not None else None


def adam(w: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, v_hat: np.ndarray | None,
         c1: float, c2: float, alpha: float, eps: float, decay: float = 1.0) -> None:
    """Adam in place: ``m += (g - m) * c1; v += (g*g - v) * c2``; with ``v_hat``: ``v_hat = max(v_hat, v)``,
    used below instead of ``v``; ``w = w * decay - m / (sqrt(v) + eps) * alpha``."""
    if w.ndim != 1:
        w, g, m, v, v_hat = w.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1), _flat(v_hat)
    kernel = _adam.pick(w.size)
    kernel(w, g, m, v, v_hat, float(c1), float(c2), float(alpha), float(eps), float(decay))


def sgd(w: np.ndarray, g: np.ndarray, v: np.ndarray | None, lr: float, momentum: float, nesterov: bool,
        decay: float = 1.0) -> None:
    """SGD in place, after ``w = w * decay``: without velocity ``v``, ``w -= g * lr``; with it
    ``v = v * momentum - g * lr`` and ``w += v`` (``w = (w - g * lr) + v * momentum`` when ``nesterov``)."""
    if w.ndim != 1:
        w, g, v = w.reshape(-1), g.reshape(-1), _flat(v)
    kernel = _sgd.pick(w.size)
    kernel(w, g, v, float(lr), float(momentum), bool(nesterov), float(decay))


def rmsprop(w: np.ndarray, g: np.ndarray, v: np.ndarray, average: np.ndarray | None, s: np.ndarray | None,
            c: float, lr: float, eps: float, momentum: float, decay: float = 1.0) -> None:
    """RMSprop in place: ``v += (g*g - v) * c``; centered (``average`` given): ``a += (g - a) * c`` and
    ``d = (v - a*a) + eps``, else ``d = v + eps``; ``step = g / sqrt(d) * lr``; with momentum buffer ``s``:
    ``s = s * momentum + step; w = w * decay - s``, else ``w = w * decay - step``."""
    if w.ndim != 1:
        w, g, v, average, s = w.reshape(-1), g.reshape(-1), v.reshape(-1), _flat(average), _flat(s)
    kernel = _rmsprop.pick(w.size)
    kernel(w, g, v, average, s, float(c), float(lr), float(eps), float(momentum), float(decay))
