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

:class:`Table` and the ``*_all`` functions update *all* of a model's parameters in one kernel call: the
table holds every parameter's arrays by address, cut into chunks that the threads share, so a step costs
one call whatever the number of parameters (the per-parameter path costs ~3 us of Python each, most of a
small model's update). The element rule is the same function as above, so the results are the same bits.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from shendu.kernels.jit import Kernel, address, array_at, fast, jit, prange

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


# ---------------------------------------------------------------- all parameters in one call
#: a table's chunks hold at most this many elements (the threads share them out)
CHUNK = 1 << 14


class Table:
    """The arrays of many parameters, by address, for kernels that update them all in one call.

    ``weights[p]`` and ``slots[name][p]`` (the rule's state arrays by name; a slot is None for every
    parameter where the rule has no such array) are NumPy float32/float64 arrays of one dtype, C-ordered,
    each state array shaped like its weight, the weights writeable and not overlapping (:meth:`build`
    checks). ``rows[p]`` is the row of :attr:`scalars` that parameter p reads each step: its rate
    (column 0) and weight-decay factor (column 1).

    The table keeps a reference to every array it holds, so its addresses stay valid; :attr:`arrays` lists
    them for a caller to check that they are still the parameters' own (:meth:`holds`). Gradients change
    every step: :meth:`load_gradients` records theirs just before a kernel runs. A copy of a table is None
    (its addresses would still be the original's arrays), so a copied optimiser builds its own.
    """

    def __init__(self, weights: list[np.ndarray], slots: dict[str, list[np.ndarray | None]], rows: list[int],
                 scalar_rows: int) -> None:
        self.like = np.empty(0, weights[0].dtype)  # gives the kernels the dtype (one compiled type per dtype)
        self.shapes = [w.shape for w in weights]
        self.arrays = [a for p, w in enumerate(weights) for a in (w, *(slot[p] for slot in slots.values()))]
        self.weights = np.array([address(w) for w in weights], np.intp)
        self.slots = {name: None if slot[0] is None else np.array([address(a) for a in slot], np.intp)
                      for name, slot in slots.items()}
        self.gradients = np.zeros(len(weights), np.intp)
        self.scalars = np.ones((scalar_rows, 2))
        self._rates: list[float] = []
        self._decays: list[float] = []
        self.size = sum(w.size for w in weights)
        chunks = [(p, start, min(start + CHUNK, w.size), rows[p])
                  for p, w in enumerate(weights) for start in range(0, w.size, CHUNK)]
        self.chunks = np.array(chunks, np.intp).reshape(-1, 4)

    @classmethod
    def build(cls, weights: list[Any], slots: dict[str, list[Any]], rows: list[int],
              scalar_rows: int) -> Table | None:
        """A table of these arrays, or None where they cannot share one kernel: kernels off, other array
        types or dtypes, a slot present for some parameters only, memory not C-ordered or read-only, or
        weights that overlap (views of one buffer must be updated one after the other)."""
        if not weights or not fast(*weights):
            return None
        dtype = weights[0].dtype
        for slot in slots.values():
            if slot[0] is None and any(a is not None for a in slot):
                return None
        for p, w in enumerate(weights):
            states = [slot[p] for slot in slots.values() if slot[0] is not None]
            if w.dtype != dtype or any(a is None for a in states) or not ready(w, *states):
                return None
        spans = sorted((address(w), address(w) + w.nbytes) for w in weights if w.size)
        if any(end > start for (_, end), (start, _) in zip(spans, spans[1:])):
            return None
        return cls(weights, slots, rows, scalar_rows)

    def holds(self, arrays: list[Any]) -> bool:
        """Whether ``arrays`` (laid out as :attr:`arrays`) are the very arrays this table was built from."""
        return len(arrays) == len(self.arrays) and all(map(operator.is_, arrays, self.arrays))

    def load_gradients(self, gradients: list[Any]) -> bool:
        """Record the gradients' addresses for the next kernel (the caller keeps the arrays alive until it has
        run); False when one is not a C-ordered NumPy array of the weights' dtype and its weight's shape."""
        dtype, shapes, column = self.like.dtype, self.shapes, self.gradients
        for p, g in enumerate(gradients):
            if (type(g) is not np.ndarray or g.shape != shapes[p] or (g.dtype is not dtype and g.dtype != dtype)
                    or not g.flags.c_contiguous):
                return False
            column[p] = address(g)
        return True

    def set_scalars(self, rates: list[float], decays: list[float]) -> None:
        """Row ``2k`` of :attr:`scalars` gets group k's (rate, decay factor); row ``2k + 1`` gets (rate, 1.0),
        the row of its parameters exempt from weight decay. Groups added after the table was built have no
        parameter in it and no row. (Unchanged values are not written again: a NumPy element store costs more
        than comparing two short lists.)"""
        if rates == self._rates and decays == self._decays:
            return
        self._rates, self._decays = rates, decays
        scalars = self.scalars
        for k, rate, decay in zip(range(len(scalars) // 2), rates, decays):
            scalars[2 * k, 0] = scalars[2 * k + 1, 0] = rate
            scalars[2 * k, 1] = decay

    def __reduce__(self) -> tuple:
        return _no_table, ()


def _no_table() -> None:
    return None


@jit(inline="always")
def _chunk(chunks, scalars, k, t):  # pragma: no cover - compiled
    """Chunk k of a table: its parameter, first element, length, and the parameter's rate and decay factor."""
    p, start, row = chunks[k, 0], chunks[k, 1], chunks[k, 3]
    return p, start, chunks[k, 2] - start, t(scalars[row, 0]), t(scalars[row, 1])


# Each kernel shares the table's chunks among the threads and applies the element rule above to each chunk,
# through views that begin at the chunk.
@_loop
def _adam_all(like, chunks, scalars, w, g, m, v, v_hat, c1, c2, eps):  # pragma: no cover - compiled
    t = like.dtype.type
    c1, c2, eps = t(c1), t(c2), t(eps)
    for k in prange(chunks.shape[0]):
        p, start, n, alpha, decay = _chunk(chunks, scalars, k, t)
        wp, gp, mp = array_at(w, p, start, n, like), array_at(g, p, start, n, like), array_at(m, p, start, n, like)
        vp, hp = array_at(v, p, start, n, like), array_at(v_hat, p, start, n, like)
        for i in range(n):
            _adam_at(i, wp, gp, mp, vp, hp, c1, c2, alpha, eps, decay)


@_loop
def _sgd_all(like, chunks, scalars, w, g, v, momentum, nesterov):  # pragma: no cover - compiled
    t = like.dtype.type
    momentum = t(momentum)
    for k in prange(chunks.shape[0]):
        p, start, n, lr, decay = _chunk(chunks, scalars, k, t)
        wp, gp, vp = array_at(w, p, start, n, like), array_at(g, p, start, n, like), array_at(v, p, start, n, like)
        for i in range(n):
            _sgd_at(i, wp, gp, vp, lr, momentum, nesterov, decay)


@_loop
def _rmsprop_all(like, chunks, scalars, w, g, v, a, s, c, eps, momentum):  # pragma: no cover - compiled
    t = like.dtype.type
    c, eps, momentum = t(c), t(eps), t(momentum)
    for k in prange(chunks.shape[0]):
        p, start, n, lr, decay = _chunk(chunks, scalars, k, t)
        wp, gp, vp = array_at(w, p, start, n, like), array_at(g, p, start, n, like), array_at(v, p, start, n, like)
        ap, sp = array_at(a, p, start, n, like), array_at(s, p, start, n, like)
        for i in range(n):
            _rmsprop_at(i, wp, gp, vp, ap, sp, c, lr, eps, momentum, decay)


def adam_all(table: Table, alphas: list[float], decays: list[float], c1: float, c2: float, eps: float) -> None:
    """:func:`adam` on every parameter of ``table`` (slots ``m``, ``v``, ``v_hat``): group k's with ``alphas[k]``
    and ``decays[k]``, the gradients those of :meth:`Table.load_gradients`."""
    table.set_scalars(alphas, decays)
    slots = table.slots
    _adam_all.pick(table.size)(table.like, table.chunks, table.scalars, table.weights, table.gradients,
                               slots["m"], slots["v"], slots["v_hat"], float(c1), float(c2), float(eps))


def sgd_all(table: Table, rates: list[float], decays: list[float], momentum: float, nesterov: bool) -> None:
    """:func:`sgd` on every parameter of ``table`` (slot ``v``; None without momentum): group k's with learning
    rate ``rates[k]`` and ``decays[k]``."""
    table.set_scalars(rates, decays)
    _sgd_all.pick(table.size)(table.like, table.chunks, table.scalars, table.weights, table.gradients,
                              table.slots["v"], float(momentum), bool(nesterov))


def rmsprop_all(table: Table, rates: list[float], decays: list[float], c: float, eps: float,
                momentum: float) -> None:
    """:func:`rmsprop` on every parameter of ``table`` (slots ``v``, ``average``, ``s``): group k's with learning
    rate ``rates[k]`` and ``decays[k]``."""
    table.set_scalars(rates, decays)
    slots = table.slots
    _rmsprop_all.pick(table.size)(table.like, table.chunks, table.scalars, table.weights, table.gradients,
                                  slots["v"], slots["average"], slots["s"], float(c), float(eps), float(momentum))
