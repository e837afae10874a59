"""What a layer accepts (:class:`InputSpec`) and the errors for inputs that do not fit: each names the layer,
the expected and the received shape, and suggests a fix (a missing Flatten, an ``input_shape`` that includes
the batch axis, a sample without its batch axis)."""

from __future__ import annotations

import math
from typing import Any


def _fmt(shape: Any) -> str:
    return str(tuple(shape)) if shape is not None else "unknown"


def shape_hint(expected: tuple | None, received: tuple, declared: tuple | None = None) -> str:
    """A sentence that suggests a fix for an input of shape ``received`` where ``expected`` was wanted."""
    received = tuple(received)
    if declared is not None and len(declared) >= 2:
        declared_features = tuple(declared[1:])
        if received[1:] == declared_features[1:] or received == declared_features[1:]:
            return (f"input_shape must not include the batch axis: it was declared as {declared_features}; "
                    f"use input_shape={declared_features[1:]} (or batch_size={declared_features[0]}).")
    if expected is not None:
        expected = tuple(expected)
        if len(received) == len(expected) - 1 and all(e is None or e == r for e, r in zip(expected[1:], received)):
            return f"the input has no batch axis; pass a batch, e.g. x.reshape(1, *{received})."
        last = expected[-1] if expected else None
        if len(received) >= 3 and len(expected) == 2 and last is not None:
            features = math.prod(d for d in received[1:] if d is not None)
            if features == last:
                return (f"the input is {len(received)}-D; add a Flatten() layer before this one to turn "
                        f"{received[1:]} into {last} features.")
            return (f"the input is {len(received)}-D and this layer works on its last axis; add a Flatten() "
                    "layer (or pooling) before it.")
    return "check the previous layer's output shape (model.summary() shows them)."


def shape_error(layer: Any, expected: Any, received: Any, index: int | None = None,
                what: str = "") -> ValueError:
    """The ValueError for a wrong input shape: layer name, expected and received shape, and a hint."""
    which = "" if index is None else f" (input {index})"
    detail = f" ({what})" if what else ""
    hint = shape_hint(expected, received, getattr(layer, "_batch_input_shape", None))
    return ValueError(f"layer '{layer.name}' ({type(layer).__name__}){which} expected an input of shape "
                      f"{_fmt(expected)}{detail} but received shape {_fmt(received)}. Hint: {hint}")


class InputSpec:
    """What a layer accepts: an exact ``ndim`` or a ``min_ndim``, and sizes of some ``axes`` ({axis: size}).

    >>> InputSpec(min_ndim=2, axes={-1: 4}).is_compatible((None, 3, 4))
    True
    """

    def __init__(self, ndim: int | None = None, min_ndim: int | None = None,
                 axes: dict[int, int] | None = None, shape: tuple | None = None) -> None:
        if shape is not None:
            ndim = len(shape)
            axes = {i: d for i, d in enumerate(shape) if i > 0 and d is not None}
        self.ndim, self.min_ndim = ndim, min_ndim
        self.axes = dict(axes or {})

    def is_compatible(self, shape: tuple) -> bool:
        n = len(shape)
        if self.ndim is not None and n != self.ndim:
            return False
        if self.min_ndim is not None and n < self.min_ndim:
            return False
        for axis, size in self.axes.items():
            if not -n <= axis < n:
                return False
            got = shape[axis]
            if got is not None and got != size:
                return False
        return True

    def describe(self) -> str:
        parts = []
        if self.ndim is not None:
            parts.append(f"{self.ndim}-D")
        if self.min_ndim is not None:
            parts.append(f"at least {self.min_ndim}-D")
        parts += [f"axis {a} of size {s}" for a, s in self.axes.items()]
        return ", ".join(parts)

    def __repr__(self) -> str:
        return f"InputSpec({self.describe()})"
