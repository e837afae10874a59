"""Keras-style masks: a boolean array attached to a Tensor that says which timesteps are padding.

A layer that makes a mask (``Embedding(mask_zero=True)``) defines ``compute_mask(inputs, previous_mask)``;
``Layer.__call__`` attaches the result to the outputs, and passes an input's mask to the next layer's
``call(..., mask=)`` when that call takes one. Layers with ``supports_masking = True`` pass masks through.
Tensors have fixed slots, so masks live in a table keyed by the tensor's id with a weak reference
(an entry disappears with its tensor); while no mask exists the table is empty and costs nothing.

>>> import numpy as np, shendu
>>> t = shendu.tensor(np.ones((2, 3)))
>>> set_mask(t, np.array([[True, True, False], [True, False, False]]))
>>> get_mask(t).sum()
np.int64(3)
"""

from __future__ import annotations

import weakref
from typing import Any

from shendu.autograd.tensor import Tensor

_MASKS: dict[int, tuple[weakref.ref, Any]] = {}


def get_mask(t: Any) -> Any:
    """The mask attached to ``t`` (a list of masks for a list of tensors; None when there is none)."""
    if isinstance(t, (list, tuple)):
        masks = [get_mask(x) for x in t]
        return None if all(m is None for m in masks) else masks
    entry = _MASKS.get(id(t))
    return entry[1] if entry is not None and entry[0]() is t else None


def set_mask(t: Any, mask: Any) -> None:
    """Attach ``mask`` (an array, or None to remove it) to the Tensor ``t`` (or to each of a list of tensors)."""
    if isinstance(t, (list, tuple)):
        masks = mask if isinstance(mask, (list, tuple)) else [mask] * len(t)
        for x, m in zip(t, masks):
            set_mask(x, m)
        return
    if not isinstance(t, Tensor):
        return
    key = id(t)
    if mask is None:
        _MASKS.pop(key, None)
        return
    mask = mask.data if isinstance(mask, Tensor) else mask
    _MASKS[key] = (weakref.ref(t, lambda _ref, key=key: _MASKS.pop(key, None)), mask)


def masks_active() -> bool:
    """Whether any mask is attached to a live tensor (the fast path of ``Layer.__call__`` checks this)."""
    return bool(_MASKS)
