"""What one batch of data is: ``x``, ``(x, y)`` or ``(x, y, sample_weight)`` (Keras 3's ``keras.utils`` helpers)."""

from __future__ import annotations

from typing import Any


def unpack_x_y_sample_weight(data: Any) -> tuple[Any, Any, Any]:
    """Keras's ``unpack_x_y_sample_weight``: ``(x, y, sample_weight)`` from ``x``, ``(x,)``, ``(x, y)`` or
    ``(x, y, sample_weight)``; a list is read as a tuple (as Keras does, e.g. a PyTorch DataLoader's ``[x, y]``)."""
    if isinstance(data, list):
        data = tuple(data)
    if not isinstance(data, tuple):
        return data, None, None
    if len(data) == 1:
        return data[0], None, None
    if len(data) == 2:
        return data[0], data[1], None
    if len(data) == 3:
        return data
    raise ValueError(f"a data batch must be x, (x,), (x, y) or (x, y, sample_weight); got a "
                     f"{type(data).__name__} of {len(data)} items")


def pack_x_y_sample_weight(x: Any, y: Any = None, sample_weight: Any = None) -> Any:
    """Keras's ``pack_x_y_sample_weight``: what ``train_step``/``test_step``/``predict_step`` receive, ``x`` alone
    (``(x,)`` when x is a list or tuple of inputs), ``(x, y)`` or ``(x, y, sample_weight)``."""
    if y is None and sample_weight is None:
        return (x,) if isinstance(x, (list, tuple)) else x
    if sample_weight is None:
        return x, y
    return x, y, sample_weight
