"""The byte budget of a model being loaded: a file's config cannot build more weights than the file stores.

While :func:`weight_budget` is active (``shendu.saving.load_model`` opens it with the bytes the file stores),
``Layer.add_weight`` calls :func:`charge` with a weight's size *before* allocating it, so a small hostile config
(one ``Dense(S)`` on inputs of size S, or 96 ``Dense(4096)``) is refused before its memory is claimed, whatever
kind of model or layer asks. Outside a load nothing is checked. The budget is per thread.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from shendu.utils.weights_io import fail

_STATE = threading.local()


class _Budget:
    def __init__(self, path: Any, limit: int) -> None:
        self.path = path
        self.limit = limit
        self.used = 0


@contextmanager
def weight_budget(path: Any, limit: int) -> Iterator[None]:
    """While active, :func:`charge` refuses more than ``limit`` bytes of new weights (``path`` names the file)."""
    previous = getattr(_STATE, "budget", None)
    _STATE.budget = _Budget(path, limit)
    try:
        yield
    finally:
        _STATE.budget = previous


def charge(nbytes: int, what: str) -> None:
    """Count ``nbytes`` of a weight about to be made (``what`` names it) against the active budget, if any."""
    budget = getattr(_STATE, "budget", None)
    if budget is None:
        return
    budget.used += nbytes
    if budget.used > budget.limit:
        raise fail(budget.path, f"the model's config builds more weights than the file stores: {budget.used:,} "
                   f"bytes by {what}, the file holds {budget.limit:,}",
                   "the config does not match the weights, or the file is hostile")
