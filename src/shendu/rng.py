"""One source of randomness: ``shendu.seed(n)`` seeds initialisation, dropout and shuffling.

This module holds the generators (low in the house, so the ops can draw from them); :mod:`shendu.random`
re-exports ``seed``, ``get_rng``, ``get_state`` and ``set_state`` beside Keras 3's ``keras.random`` functions.

Everything random in shendu draws from :func:`get_rng`, a NumPy ``Generator`` (PCG64), so two CPU
runs after the same ``seed`` are bit-identical. Its state can be saved and restored exactly
(``get_state``/``set_state``; ``BackupAndRestore`` and ``Model.save`` keep it for exact resume).

**The rule for threads.** ``seed(n)`` gives the *calling thread* its own generator, and ``get_rng()``
returns the generator of the thread it is called in: the thread's own once it has called ``seed``, else the
main thread's (the process-wide one). So a training that seeds in its own thread draws its initial weights,
Dropout masks and shuffling order from a generator no other thread touches, and its result is bit-equal to
the same training run alone::

    def train(n):                    # run in several threads at once
        shendu.seed(n)
        model = make_model()         # weights from this thread's generator
        model.fit(x, y, shuffle=True)  # shuffling and Dropout too

Threads that never call ``seed`` share the main thread's generator (safe, but their draws interleave, so
such runs are not reproducible). A single-threaded program sees exactly one generator, as before. Python's
and NumPy's legacy global generators are process-wide: ``seed`` resets them only when called in the main
thread (as Keras's ``set_random_seed`` does), so a worker thread never reseeds them under another thread.

A layer or initializer given its own ``seed=`` uses a private generator instead (Keras semantics).
"""

from __future__ import annotations

import random as _py_random
import threading
from typing import Any

import numpy as np

_process_rng = np.random.default_rng()  # the main thread's generator, shared by threads that never seeded


class _ThreadGenerator(threading.local):
    rng: np.random.Generator | None = None  # set by seed() in this thread


_local = _ThreadGenerator()


def seed(n: int) -> None:
    """Seed the calling thread's generator (in the main thread: the process-wide one, plus Python's and
    NumPy's legacy global generators, as Keras's ``set_random_seed`` does)."""
    global _process_rng
    rng = np.random.default_rng(n)
    _local.rng = rng
    if threading.current_thread() is threading.main_thread():
        _process_rng = rng
        _py_random.seed(n)
        np.random.seed(n % 2**32)


def get_rng() -> np.random.Generator:
    """The generator every random op in shendu draws from, for the calling thread (see the module docstring)."""
    rng = _local.rng
    return _process_rng if rng is None else rng


def get_state() -> dict[str, Any]:
    """The calling thread's generator state (a JSON-friendly dict) for exact resume."""
    return get_rng().bit_generator.state


def set_state(state: dict[str, Any]) -> None:
    """Restore a state returned by :func:`get_state` into the calling thread's generator."""
    get_rng().bit_generator.state = state
