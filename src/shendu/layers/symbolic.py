"""The functional graph's records: :class:`SymbolicTensor` (a placeholder with a shape) and :class:`Node`
(one call of a layer). Nested input structures are walked with :mod:`shendu.utils.tree`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from shendu import backend
from shendu.autograd.tensor import Tensor
from shendu.layers.registry import LAYER_REGISTRY
from shendu.utils.tree import flatten, map_structure

#: the former name of :func:`shendu.utils.tree.flatten` (``None`` is a leaf here)
flatten_structure = flatten

if TYPE_CHECKING:
    from shendu.layers.layer import Layer


def _has_symbolic(inputs: Any) -> bool:
    if type(inputs) is SymbolicTensor:
        return True
    if isinstance(inputs, (list, tuple, dict)):
        return any(isinstance(t, SymbolicTensor) for t in flatten(inputs))
    return False


def _is_structure(x: Any) -> bool:
    """A list/tuple of inputs (Tensors, arrays, symbolic tensors), as opposed to nested numbers."""
    return isinstance(x, (list, tuple)) and any(
        isinstance(v, (Tensor, SymbolicTensor)) or backend.is_array(v) for v in flatten(x))


class Node(NamedTuple):
    """One call of a layer in a functional graph: ``layer(inputs, *args, **kwargs)``."""

    layer: Layer
    inputs: Any
    kwargs: dict[str, Any]
    args: tuple = ()

    @property
    def parents(self) -> list[SymbolicTensor]:
        """Every SymbolicTensor this call consumed, in order (none for an Input)."""
        leaves = flatten([self.inputs, list(self.args), self.kwargs]) if self.inputs is not None else []
        return [t for t in leaves if isinstance(t, SymbolicTensor)]

    def replay(self, values: dict[int, Any], training: bool | None = None) -> Any:
        """Call the layer on real values: ``values[id(t)]`` replaces each SymbolicTensor ``t``."""
        def resolve(t: Any) -> Any:
            return values[id(t)] if isinstance(t, SymbolicTensor) else t

        inputs = map_structure(resolve, self.inputs)
        args = map_structure(resolve, list(self.args))
        kwargs = map_structure(resolve, self.kwargs)
        if training is not None and "training" not in kwargs:
            kwargs["training"] = training
        return self.layer(inputs, *args, **kwargs)


class SymbolicTensor:
    """A placeholder in a functional graph: ``shape`` (batch axis None), ``dtype``, the ``node`` that made
    it and its output ``index`` in that node."""

    __slots__ = ("shape", "dtype", "node", "index", "name")

    def __init__(self, shape: tuple, dtype: Any, node: Node | None = None, index: int = 0,
                 name: str | None = None) -> None:
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype).name
        self.node, self.index, self.name = node, index, name

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        source = f", from={self.node.layer.name!r}" if self.node is not None else ""
        return f"<SymbolicTensor shape={self.shape}, dtype={self.dtype}{source}>"

    def _merge(self, other: Any, layer_name: str, symbol: str, reverse: bool = False) -> SymbolicTensor:
        """``a + b``, ``a - b``, ``a * b`` of two SymbolicTensors record an Add/Subtract/Multiply layer."""
        if not isinstance(other, SymbolicTensor):
            raise TypeError(f"SymbolicTensor {symbol} {type(other).__name__}: only two SymbolicTensors combine with "
                            f"{symbol} (as a {layer_name} layer); for constants use a layer, e.g. "
                            f"Lambda(lambda t: t {symbol} c)(x)")
        return LAYER_REGISTRY[layer_name]()([other, self] if reverse else [self, other])

    def __add__(self, other: Any) -> SymbolicTensor:
        return self._merge(other, "Add", "+")

    def __sub__(self, other: Any) -> SymbolicTensor:
        return self._merge(other, "Subtract", "-")

    def __rsub__(self, other: Any) -> SymbolicTensor:
        return self._merge(other, "Subtract", "-", reverse=True)

    def __mul__(self, other: Any) -> SymbolicTensor:
        return self._merge(other, "Multiply", "*")

    __radd__, __rmul__ = __add__, __mul__

    def __len__(self) -> int:
        raise TypeError("a SymbolicTensor has no length yet: it stands for data that will flow through the model")

    def __bool__(self) -> bool:
        raise TypeError("a SymbolicTensor has no truth value: it is a placeholder in a functional model; "
                        "use layers, not Python control flow, on it")
