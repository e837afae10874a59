"""``GraphBuilder``: the small ONNX graph writer every layer converter uses.

A converter never touches ``onnx`` itself: it calls ``b.op("MatMul", [x, w])`` for a node, ``b.const(array)``
for a weight (an initializer) and ``b.ints([...])`` for an int64 shape/axes constant, and gets tensor names
back. ``b.shape_of(name)`` is the static shape a tensor is known to have (batch axis None), when known.

``onnx`` is imported only when a builder is made (:func:`require_onnx`), so ``import shendu`` works
without it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: the ONNX opset the exporter writes by default (onnxruntime >= 1.18 runs it)
DEFAULT_OPSET = 21
#: the oldest opset the converters are written for (Reduce* ops take ``axes`` as an input from opset 18)
MIN_OPSET = 18


def require_onnx() -> Any:
    """The ``onnx`` module, or an ImportError that says how to install it."""
    try:
        import onnx  # optional dependency: only ONNX export needs it
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("exporting to ONNX needs the 'onnx' package: pip install 'shendu[onnx]' "
                          "(or pip install onnx onnxruntime)") from err
    return onnx


class GraphBuilder:
    """Collects ONNX nodes and initializers with unique names; ``dtype`` is the float type of the graph."""

    def __init__(self, opset: int = DEFAULT_OPSET, dtype: Any = "float32") -> None:
        self.onnx = require_onnx()
        self.opset = opset
        self.dtype = np.dtype(dtype)
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.shapes: dict[str, tuple | None] = {}
        self._taken: set[str] = set()
        self._reversed_of: dict[str, str] = {}

    # ------------------------------------------------------------------ names
    def fresh(self, hint: str) -> str:
        """A tensor name not used yet, derived from ``hint``."""
        base = hint.replace(" ", "_") or "t"
        name, k = base, 1
        while name in self._taken:
            name, k = f"{base}_{k}", k + 1
        self._taken.add(name)
        return name

    def reserve(self, name: str) -> None:
        """Mark ``name`` (a graph input or output) as taken, so no other tensor gets it."""
        if name in self._taken:
            raise ValueError(f"ONNX export: two graph inputs/outputs are named {name!r}; give them distinct names")
        self._taken.add(name)

    def shape_of(self, name: str) -> tuple | None:
        """The static shape of tensor ``name`` (None entries unknown), or None when not known."""
        return self.shapes.get(name)

    # ------------------------------------------------------------------ constants
    def const(self, value: Any, hint: str = "const", dtype: Any = None) -> str:
        """An initializer holding ``value`` (cast to ``dtype``, by default the graph's float dtype for floats)."""
        array = np.asarray(value)
        if dtype is not None:
            array = array.astype(dtype)
        elif array.dtype.kind == "f":
            array = array.astype(self.dtype)
        name = self.fresh(hint)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.ascontiguousarray(array), name))
        self.shapes[name] = array.shape
        return name

    def ints(self, values: Any, hint: str = "ints") -> str:
        """A 1-D int64 constant (shapes, axes, slice bounds)."""
        return self.const(np.asarray(list(values), dtype=np.int64).reshape(-1), hint, np.int64)

    def scalar(self, value: float, hint: str = "scalar") -> str:
        """A 0-D constant of the graph's float dtype."""
        return self.const(np.asarray(value, dtype=self.dtype), hint)

    # ------------------------------------------------------------------ nodes
    def op(self, op_type: str, inputs: list[str], hint: str | None = None, outputs: int | list[str] = 1,
           shape: tuple | None = None, **attrs: Any) -> Any:
        """Emit one node; returns its output name (or the list of names when ``outputs`` > 1 or a list).

        ``outputs`` as a list names them ('' skips an optional output); ``shape`` records the first output's
        static shape for later converters."""
        if isinstance(outputs, int):
            names = [self.fresh(f"{hint or op_type}" + (f"_{i}" if outputs > 1 else "")) for i in range(outputs)]
        else:
            names = list(outputs)
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), names, name=self.fresh(f"{op_type}_node"),
                                                     **{k: v for k, v in attrs.items() if v is not None}))
        if shape is not None:
            self.shapes[names[0]] = tuple(shape)
        return names[0] if isinstance(outputs, int) and outputs == 1 else names

    # ------------------------------------------------------------------ helpers used by several converters
    def transpose(self, x: str, perm: Any, hint: str = "transpose") -> str:
        """Transpose ``x`` (a transpose straight back to where it came from is skipped)."""
        perm = [int(p) for p in perm]
        if perm == list(range(len(perm))):
            return x
        shape = self.shape_of(x)
        out_shape = None if shape is None or len(shape) != len(perm) else tuple(shape[p] for p in perm)
        return self.op("Transpose", [x], hint, perm=perm, shape=out_shape)

    def reshape(self, x: str, shape: Any, hint: str = "reshape", static: tuple | None = None) -> str:
        """Reshape to ``shape`` (ONNX rules: 0 copies the input's size on that axis, -1 is inferred)."""
        return self.op("Reshape", [x, self.ints(shape, "shape")], hint, shape=static)

    def reduce(self, op_type: str, x: str, axes: Any, keepdims: bool, hint: str | None = None) -> str:
        """``ReduceMean``/``ReduceMax``/``ReduceSum`` over ``axes`` (axes as an input: opset >= 18)."""
        return self.op(op_type, [x, self.ints(axes, "axes")], hint, keepdims=int(keepdims))

    def reverse_time(self, x: str, axis: int = 1) -> str:
        """``x`` reversed along ``axis`` (reversing a reversed tensor gives back the original name)."""
        if x in self._reversed_of:
            return self._reversed_of[x]
        y = self.op("Slice", [x, self.ints([-1]), self.ints([np.iinfo(np.int64).min]), self.ints([axis]),
                              self.ints([-1])], "reversed", shape=self.shape_of(x))
        self._reversed_of[y] = x
        return y

    def cast(self, x: str, dtype: Any, hint: str = "cast") -> str:
        """``x`` cast to the NumPy ``dtype``."""
        to = self.onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
        return self.op("Cast", [x], hint, to=to, shape=self.shape_of(x))
