"""``build`` bookkeeping: every subclass's ``build`` is wrapped (by ``Layer.__init_subclass__``) so that it
records the input shape, sets ``built``, applies ``weights=`` given to the constructor and sets a default
``input_spec`` (Keras 3 does the same).

The default spec: a declared ``input_shape`` is checked in full on every call; otherwise a layer with
weights checks the rank and the last axis of its build shape.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

from shendu.layers.input_spec import InputSpec, shape_error
from shendu.layers.shapes import is_shape, normalize_shape


def wrap_build(build: Callable) -> Callable:
    """``build`` with the bookkeeping of the module docstring around it (nested builds run it bare)."""
    @functools.wraps(build)
    def wrapped(self: Any, input_shape: Any = None, *args: Any, **kwargs: Any) -> None:
        if input_shape is not None and not isinstance(input_shape, (list, dict)):
            input_shape = normalize_shape(input_shape, f"layer '{self.name}': build input_shape")
        elif isinstance(input_shape, list) and is_shape(tuple(input_shape)):
            input_shape = tuple(input_shape)
        if self.__dict__.get("_in_build"):
            return build(self, input_shape, *args, **kwargs)
        if self._batch_input_shape is not None and is_shape(input_shape):
            declared = self._batch_input_shape
            if len(declared) != len(input_shape) or any(
                    d is not None and r is not None and d != r for d, r in zip(declared[1:], input_shape[1:])):
                raise shape_error(self, (None, *declared[1:]), input_shape)
        object.__setattr__(self, "_in_build", True)
        try:
            build(self, input_shape, *args, **kwargs)  # extra shapes: layers such as attention take several
        finally:
            object.__setattr__(self, "_in_build", False)
        object.__setattr__(self, "_build_input_shape", input_shape)
        object.__setattr__(self, "built", True)
        if self.__dict__.get("_initial_weights") is not None:
            initial, self._initial_weights = self._initial_weights, None
            self.set_weights(initial)
        if self._batch_input_shape is not None and is_shape(input_shape):
            self.input_spec = InputSpec(shape=self._batch_input_shape)
        elif self.input_spec is None and is_shape(input_shape) and input_shape and self._own_weights:
            if input_shape[-1] is not None and len(input_shape) > 1:
                self.input_spec = InputSpec(ndim=len(input_shape), axes={-1: input_shape[-1]})

    return wrapped
