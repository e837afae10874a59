"""Calling a layer on :class:`~shendu.layers.symbolic.SymbolicTensor` inputs (the functional API).

Such a call computes no numbers: it builds the layer, finds the output shape and returns new SymbolicTensors
whose ``node`` records the call. The output shape comes from ``compute_output_shape`` when the layer defines
it; otherwise ``call`` runs once on zeros of batch 1 (twice, with different sizes, when some axis is unknown:
the axes that differ are unknown in the output).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shendu import backend
from shendu.autograd.grad_mode import no_grad
from shendu.autograd.tensor import Tensor
from shendu.layers.shapes import is_shape
from shendu.layers.symbolic import Node, SymbolicTensor
from shendu.utils.tree import flatten, map_structure


class SymbolicCallMixin:
    """The functional-API part of ``Layer`` (see the module docstring)."""

    _dtype: np.dtype
    _device: str | None
    name: str
    built: bool
    inbound_nodes: list[Node]
    _symbolic_outputs: list[Any]

    def _call_symbolic(self, inputs: Any, args: tuple, kwargs: dict[str, Any]) -> Any:
        shapes = map_structure(lambda t: t.shape if isinstance(t, SymbolicTensor) else t, inputs)
        if isinstance(shapes, tuple) and not isinstance(inputs, SymbolicTensor):
            shapes = list(shapes)
        if not self.built:
            self.build(shapes)
        self._check_inputs(shapes)
        if self._has_static_output_shape():
            out_shapes = self.compute_output_shape(shapes)
            out_dtypes = None
        else:
            out_shapes, out_dtypes = self._infer_output(inputs, args, kwargs)
        node = Node(self, inputs, dict(kwargs), tuple(args))
        if is_shape(out_shapes):
            outputs: Any = SymbolicTensor(out_shapes, out_dtypes[0] if out_dtypes else self._dtype, node, 0)
        else:
            outputs = [SymbolicTensor(s, out_dtypes[i] if out_dtypes else self._dtype, node, i)
                       for i, s in enumerate(out_shapes)]
        self.inbound_nodes.append(node)
        self._symbolic_outputs.append(outputs)
        return outputs

    def _infer_output(self, inputs: Any, args: tuple, kwargs: dict[str, Any]) -> tuple[Any, list]:
        """Output shape(s) and dtypes from running ``call`` on zeros (batch 1; unknown sizes probed twice)."""
        def run(size: int) -> list[Tensor]:
            def zeros(t: Any) -> Any:
                if not isinstance(t, SymbolicTensor):
                    return t
                shape = (1,) + tuple(size if d is None else d for d in t.shape[1:])
                return Tensor._wrap(backend.as_array(np.zeros(shape, dtype=t.dtype), device=self._device))

            with no_grad():
                kw = map_structure(zeros, kwargs)
                kw.setdefault("training", False)
                out = self(map_structure(zeros, inputs), *map_structure(zeros, list(args)), **kw)
            return out

        first = run(2)
        symbolic_leaves = [t for t in flatten([inputs, list(args), kwargs]) if isinstance(t, SymbolicTensor)]
        unknown = any(d is None for t in symbolic_leaves for d in t.shape[1:])
        second = run(3) if unknown else first
        single = isinstance(first, Tensor)
        firsts = [first] if single else flatten(first)
        seconds = [second] if single else flatten(second)
        shapes = []
        for a, b in zip(firsts, seconds):
            dims = [None if da != db else da for da, db in zip(a.shape[1:], b.shape[1:])]
            shapes.append((None, *dims) if a.ndim else ())
        dtypes = [t.dtype for t in firsts]
        return (shapes[0] if single else shapes), dtypes

    def _has_static_output_shape(self) -> bool:
        """Whether ``compute_output_shape`` is defined (else symbolic calls probe ``call`` on zeros)."""
        return type(self).compute_output_shape is not SymbolicCallMixin.compute_output_shape

    def compute_output_shape(self, input_shape: Any) -> Any:
        """The output shape (batch axis None) for ``input_shape``; by default found by running ``call`` on zeros."""
        def placeholder(shape: Any) -> SymbolicTensor:
            return SymbolicTensor(shape, self._dtype)

        if is_shape(input_shape):
            inputs: Any = placeholder(input_shape)
        else:
            inputs = [placeholder(s) for s in input_shape]
        if not self.built:
            self.build(input_shape)
        shapes, _ = self._infer_output(inputs, (), {})
        return shapes

    @property
    def output(self) -> Any:
        """The symbolic output of this layer's first functional call."""
        if not self.inbound_nodes:
            raise AttributeError(f"layer '{self.name}' has not been called on symbolic inputs (Input(...)) yet")
        return self._symbolic_outputs[0]
