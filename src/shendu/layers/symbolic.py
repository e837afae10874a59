"""The functional graph's records: :class:`SymbolicTensor` (a placeholder with a shape) and :class:`Node`
(one call of a layer). Nested input structures are walked with :mod:`shendu.utils.tree`."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from shendu import backend
from shendu.autograd import op as op_module
from shendu.autograd.op import Op, SymbolicValue
from shendu.autograd.tensor import Tensor
from shendu.layers.registry import LAYER_REGISTRY
from shendu.ops.arithmetic import AddOp, DivOp, MulOp, NegOp, SubOp
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


class _UfuncOp(Op):
    """A comparison or logical ufunc of NumPy (no gradient), recorded on symbolic tensors."""

    differentiable = False

    def __init__(self, name: str) -> None:
        self.keras_name = name

    def forward(self, *arrays: Any) -> Any:
        return getattr(backend.get_array_module(*arrays), self.keras_name)(*arrays)


_UFUNC_OPS = {"add": AddOp, "subtract": SubOp, "multiply": MulOp, "true_divide": DivOp, "divide": DivOp,
              "negative": NegOp}
_COMPARISONS = {"equal", "not_equal", "greater", "greater_equal", "less", "less_equal", "logical_and",
                "logical_or", "logical_xor", "logical_not"}


def symbolic_refusal(what: str | None = None) -> TypeError:
    """The error for a function that cannot run on a functional model's SymbolicTensor: it names the outermost
    ``shendu.ops`` function on the call stack (the one the program called) and says which layers to use."""
    if what is None:
        what = "this function"
        frame = sys._getframe(1)
        while frame is not None:
            module = frame.f_globals.get("__name__", "")
            if module.startswith("shendu.ops") or module.startswith("shendu.functional"):
                what = f"ops.{frame.f_code.co_name}"
            frame = frame.f_back
    return TypeError(f"{what} cannot run on a functional model's symbolic tensor (keras.Input(...) and the layers "
                     "after it): it needs the values. Use a layer there instead (layers.Activation, layers.Reshape, "
                     "layers.Concatenate, ..., or a Layer subclass whose call() uses the op; layers.Lambda works "
                     "too but is refused by model.save)")


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


class SymbolicTensor(SymbolicValue):
    """A placeholder in a functional graph: ``shape`` (batch axis None), ``dtype``, the ``node`` that made
    it and its output ``index`` in that node."""

    __slots__ = ("shape", "dtype", "node", "index", "name")
    #: how an op that meets this placeholder knows to record itself in the graph (see ``layers.op_layer``)
    is_symbolic = True

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

    def _merge(self, other: Any, layer_name: str, op: Any, reverse: bool = False) -> SymbolicTensor:
        """``a + b``, ``a - b``, ``a * b`` of two SymbolicTensors record an Add/Subtract/Multiply layer; with a
        constant (or ``/``), the op itself is recorded (as ``keras.ops`` on symbolic tensors)."""
        if isinstance(other, SymbolicTensor) and layer_name:
            return LAYER_REGISTRY[layer_name]()([other, self] if reverse else [self, other])
        return op_module.symbolic_handler(op, (other, self) if reverse else (self, other))

    def __add__(self, other: Any) -> SymbolicTensor:
        return self._merge(other, "Add", AddOp())

    def __radd__(self, other: Any) -> SymbolicTensor:
        return self._merge(other, "Add", AddOp(), reverse=True)

    def __sub__(self, other: Any) -> SymbolicTensor:
        return self._merge(other, "Subtract", SubOp())

    def __rsub__(self, other: Any) -> SymbolicTensor:
        return self._merge(other, "Subtract", SubOp(), reverse=True)

    def __mul__(self, other: Any) -> SymbolicTensor:
        return self._merge(other, "Multiply", MulOp())

    def __rmul__(self, other: Any) -> SymbolicTensor:
        return self._merge(other, "Multiply", MulOp(), reverse=True)

    def __truediv__(self, other: Any) -> SymbolicTensor:
        return self._merge(other, "", DivOp())

    def __rtruediv__(self, other: Any) -> SymbolicTensor:
        return self._merge(other, "", DivOp(), reverse=True)

    def __neg__(self) -> SymbolicTensor:
        return op_module.symbolic_handler(NegOp(), (self,))

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        """A NumPy ufunc met this placeholder (``array + x``, or an op function that calls NumPy directly, as the
        comparisons do): arithmetic and comparisons are recorded as ops; anything else is refused, clearly."""
        if method == "__call__" and not kwargs:
            if ufunc.__name__ in _UFUNC_OPS:
                return op_module.symbolic_handler(_UFUNC_OPS[ufunc.__name__](), inputs)
            if ufunc.__name__ in _COMPARISONS:
                return op_module.symbolic_handler(_UfuncOp(ufunc.__name__), inputs)
        raise symbolic_refusal(f"numpy.{ufunc.__name__}")

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        raise symbolic_refusal()

    def __len__(self) -> int:
        raise TypeError("a SymbolicTensor has no length yet: it stands for data that will flow through the model")

    def __bool__(self) -> bool:
        raise TypeError("a SymbolicTensor has no truth value: it is a placeholder in a functional model; "
                        "use layers, not Python control flow, on it")
