"""Automatic layer names: 'dense', 'dense_1', 'dense_2', ... (one counter per base name, process-wide).

>>> reset_name_counters()
>>> unique_name("dense"), unique_name("dense")
('dense', 'dense_1')
"""

from __future__ import annotations

import threading

_NAME_COUNTS: dict[str, int] = {}
_LOCK = threading.Lock()  # two threads building models never get the same name


def reset_name_counters() -> None:
    """Start automatic names again at 'dense', 'dense_1', ... (Keras's ``clear_session``)."""
    with _LOCK:
        _NAME_COUNTS.clear()


def unique_name(base: str) -> str:
    """'base' the first time, then 'base_1', 'base_2', ..."""
    with _LOCK:
        n = _NAME_COUNTS.get(base, 0)
        _NAME_COUNTS[base] = n + 1
    return base if n == 0 else f"{base}_{n}"
