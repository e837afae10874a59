"""One source of randomness: ``shendu.seed(n)`` seeds initialisation, dropout and shuffling.

Everything random in shendu draws from :func:`get_rng`, a NumPy ``Generator`` (PCG64), so two CPU
runs after the same ``seed`` are bit-identical. Its state can be saved and restored exactly.
"""

from __future__ import annotations

import random as _py_random
from typing import Any

import numpy as np

_rng = np.random.default_rng()


def seed(n: int) -> None:
    """Seed shendu's generator (and Python's and NumPy's legacy global ones, as Keras's set_random_seed does)."""
    global _rng
    _rng = np.random.default_rng(n)
    _py_random.seed(n)
    np.random.seed(n % 2**32)


def get_rng() -> np.random.Generator:
    """The generator every random op in shendu draws from."""
    return _rng


def get_state() -> dict[str, Any]:
    """The generator's state (a JSON-friendly dict) for exact resume."""
    return _rng.bit_generator.state


def set_state(state: dict[str, Any]) -> None:
    """Restore a state returned by :func:`get_state`."""
    _rng.bit_generator.state = state
