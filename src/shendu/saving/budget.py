"""The weight budget of a file being loaded: a config cannot build more weights than the file stores.

A ``.shendu`` file stores every weight of its model, so the bytes of its ``weights.safetensors`` entry are
exactly what rebuilding the model from its config may allocate. While :func:`weight_budget` is active (during
``load_model``), the model classes call :func:`charge_weights` after building each layer (``Sequential.build``
and the functional replay in ``shendu.models``); as soon as the weights built so far exceed the budget the load
stops with a :class:`FormatError`. So a small hostile config that stacks 96 ``Dense(4096)`` layers is refused
after its first layer instead of after allocating gigabytes. Outside a load nothing is checked.
The budget is per thread, so two threads may load files at the same time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from shendu.utils.weights_io import fail

__all__ = ["charge_weights", "weight_budget"]

_STATE = threading.local()


class _Budget:
    def __init__(self, path: Any, limit: int) -> None:
        self.path = path
        self.limit = limit
        self.seen: set[int] = set()
        self.used = 0


@contextmanager
def weight_budget(path: Any, limit: int) -> Iterator[None]:
    """While active, :func:`charge_weights` refuses more than ``limit`` bytes of weights (``path`` names the file
    in the error)."""
    previous = getattr(_STATE, "budget", None)
    _STATE.budget = _Budget(path, limit)
    try:
        yield
    finally:
        _STATE.budget = previous


def charge_weights(layer: Any) -> None:
    """Count ``layer``'s weights not counted yet against the active budget (no-op when none is active)."""
    budget = getattr(_STATE, "budget", None)
    if budget is None:
        return
    for p in layer.weights:
        if id(p) not in budget.seen:
            budget.seen.add(id(p))
            budget.used += int(p.data.nbytes)
    if budget.used > budget.limit:
        raise fail(budget.path, f"the model's config builds more weights than the file stores: {budget.used:,} "
                   f"bytes by layer '{layer.name}', the file holds {budget.limit:,}",
                   "the config does not match the weights, or the file is hostile")
