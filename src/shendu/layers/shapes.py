"""Shape helpers shared by the layer modules: normalising declared shapes and reading the shapes of inputs."""

from __future__ import annotations

from typing import Any

import numpy as np

from shendu.autograd.tensor import Tensor


def normalize_shape(shape: Any, what: str) -> tuple:
    """``shape`` as a tuple of ints and None (an int ``k`` means ``(k,)``); ``what`` names it in the error."""
    if isinstance(shape, (int, np.integer)):
        return (int(shape),)
    try:
        return tuple(None if d is None else int(d) for d in shape)
    except TypeError:
        raise TypeError(f"{what} must be a tuple of ints (None for unknown sizes), got {shape!r}") from None


def is_shape(x: Any) -> bool:
    """Whether ``x`` is one shape (a tuple of ints and None), as opposed to a list of shapes."""
    return isinstance(x, tuple) and all(d is None or isinstance(d, (int, np.integer)) for d in x)


def batch_shapes(inputs: Any) -> Any:
    """Shapes with the batch axis as None (a list for several inputs)."""
    if isinstance(inputs, Tensor):
        return (None, *inputs.data.shape[1:]) if inputs.data.ndim else ()
    if isinstance(inputs, (list, tuple)):
        return [batch_shapes(x) for x in inputs]
    if isinstance(inputs, dict):
        return {k: batch_shapes(v) for k, v in inputs.items()}
    return None


def full_shapes(inputs: Any) -> Any:
    """The shapes of the input Tensors, batch axis included (a list for several inputs)."""
    if isinstance(inputs, Tensor):
        return inputs.data.shape
    if isinstance(inputs, (list, tuple)):
        return [full_shapes(x) for x in inputs]
    return None
