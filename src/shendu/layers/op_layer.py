"""``OpLayer``: an op called on a functional model's symbolic tensors, as a node of the graph.

``ops.relu(layers.Dense(4)(inputs))`` reaches the op with a :class:`~shendu.layers.symbolic.SymbolicTensor`;
the op's forward cannot run on it, and :func:`record_op` (registered with ``shendu.autograd.op`` when this
module is imported) wraps the op in an ``OpLayer`` instead, as Keras 3 records an Operation. The layer keeps the
op as a template and calls a fresh copy of it on each call (an op keeps per-call state for its backward), so fit,
predict and evaluate run through it with the op's own gradient. Its output shape comes from running it on zeros
(batch 1), as for any layer without ``compute_output_shape``.

An OpLayer is serialised as data, never code: its config names the op class (a key of ``shendu.OP_REGISTRY``,
shendu's own ops only) and the op's constructor arguments, read back from the attributes of the same names as JSON
values (tuples and NumPy dtypes tagged, so they come back as they were). ``from_config`` looks the class up in the
registry only and calls its constructor with those values; an unknown op or a value of another kind is refused.
Constants the op got as inputs (the ``2.0`` of ``x * 2.0``) are part of the node's inputs, which the functional
model's config stores. An op whose constructor takes something else (an array, a slice, a function) makes
``get_config`` raise, naming the op and the layer to use instead.
"""

from __future__ import annotations

import copy
import inspect
import math
import re
from typing import Any

import numpy as np

from shendu.autograd import op as op_module
from shendu.autograd.op import OP_REGISTRY, Op
from shendu.layers.layer import Layer
from shendu.layers.names import unique_name


def op_name(op: Op) -> str:
    """``ReluOp`` -> ``'relu'``, ``MatMulOp`` -> ``'mat_mul'``."""
    if getattr(op, "keras_name", None):
        return op.keras_name
    name = type(op).__name__
    name = name[:-2] if name.endswith("Op") and len(name) > 2 else name
    name = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
    return _KERAS_NAMES.get(name, name)


#: op class names whose Keras function is called otherwise
_KERAS_NAMES = {"mul": "multiply", "div": "divide", "sub": "subtract", "mat_mul": "matmul", "neg": "negative",
                "astype": "cast", "abs": "absolute"}


class OpLayer(Layer):
    """A layer that calls (a fresh copy of) ``op`` on its list of inputs (see the module docstring)."""

    def __init__(self, op: Op, **kwargs: Any) -> None:
        if not kwargs.get("name"):
            kwargs["name"] = unique_name(op_name(op))
        super().__init__(**kwargs)
        self.op = op

    def call(self, inputs: Any) -> Any:
        return copy.copy(self.op)(*inputs)

    def _infer_output(self, inputs: Any, args: tuple, kwargs: dict[str, Any]) -> tuple[Any, list]:
        with np.errstate(all="ignore"):  # zeros through log or a division: only the shape is wanted
            return super()._infer_output(inputs, args, kwargs)

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"name": self.name, "trainable": self._trainable, "dtype": self.dtype}
        config["op"] = type(self.op).__name__
        config["op_config"] = op_config(self.op, self.name)
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> OpLayer:
        config = dict(config)
        op = op_from_config(config.pop("op", None), config.pop("op_config", None))
        return cls(op, **config)


def _refuse(op: Op, layer_name: str, why: str) -> ValueError:
    return ValueError(f"layer '{layer_name}' records ops.{op_name(op)} called on a functional model's symbolic "
                      f"tensors, and {why}, so shendu cannot serialise it. Use a layer instead (layers.Activation, "
                      "layers.ReLU, layers.Reshape, layers.Concatenate, layers.Add, ..., or a Layer subclass with "
                      "get_config()), or save only the weights (save_weights / get_weights).")


def _constructor_parameters(cls: type) -> list[inspect.Parameter]:
    if cls.__init__ is Op.__init__:
        return []
    return [p for p in inspect.signature(cls.__init__).parameters.values() if p.name != "self"]


def _encode(value: Any) -> Any:
    """A constructor argument as JSON (tuples and dtypes tagged); raises TypeError for anything else."""
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, np.generic) and value.dtype.kind in "biuf":
        return value.item()
    if isinstance(value, np.dtype):
        return {"dtype": value.name}
    if isinstance(value, tuple):
        return {"tuple": [_encode(v) for v in value]}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    raise TypeError(type(value).__name__)


#: the largest integer, and product of a tuple of integers (a shape, repeats), an op argument from a file may hold:
#: op layers have no weights, so the file's weight budget does not bound them, and a shape argument such as
#: broadcast_to's would otherwise make shape inference allocate whatever a small hostile file asks for
MAX_OP_ARGUMENT = 2**24


def _decode(value: Any) -> Any:
    """Undo :func:`_encode` on a value from a file: plain JSON values, tagged tuples and numeric dtypes only;
    integers (alone or multiplied over a tuple) bounded by :data:`MAX_OP_ARGUMENT`."""
    if type(value) is int and abs(value) > MAX_OP_ARGUMENT:
        raise ValueError(f"OpLayer config: the op argument {value} is over the limit {MAX_OP_ARGUMENT:,}")
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict) and len(value) == 1 and isinstance(value.get("tuple"), list):
        items = tuple(_decode(v) for v in value["tuple"])
        sizes = [abs(v) for v in items if type(v) is int and v != 0]
        if sizes and math.prod(sizes) > MAX_OP_ARGUMENT:
            raise ValueError(f"OpLayer config: the op argument {items} asks for {math.prod(sizes):,} elements, over "
                             f"the limit {MAX_OP_ARGUMENT:,}")
        return items
    if isinstance(value, dict) and len(value) == 1 and isinstance(value.get("dtype"), str):
        name = value["dtype"]
        if name not in _DTYPES:
            raise ValueError(f"OpLayer config: unknown dtype {name[:50]!r}")
        return np.dtype(name)
    raise ValueError(f"OpLayer config: invalid op argument {str(value)[:100]}")


#: the dtypes an op argument may name
_DTYPES = {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16", "float32",
           "float64", "complex64", "complex128"}


def op_config(op: Op, layer_name: str = "?") -> dict[str, Any]:
    """``op``'s constructor arguments as JSON: each parameter of its ``__init__`` read from the attribute of the same
    name. Raises ValueError (naming the op) when one is missing or not a JSON value, a tuple or a dtype, or when
    the op is not one of shendu's registered ops."""
    cls = type(op)
    if OP_REGISTRY.get(cls.__name__) is not cls:
        raise _refuse(op, layer_name, f"{cls.__name__} is not one of shendu's ops (shendu.OP_REGISTRY)")
    config: dict[str, Any] = {}
    for p in _constructor_parameters(cls):
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or not hasattr(op, p.name):
            raise _refuse(op, layer_name, f"{cls.__name__} does not keep its argument {p.name!r}")
        try:
            config[p.name] = _encode(getattr(op, p.name))
        except TypeError as e:
            raise _refuse(op, layer_name, f"its argument {p.name!r} is a {e}, not a JSON value") from None
    rebuilt = op_from_config(cls.__name__, config)
    if any(_encode(getattr(rebuilt, k)) != v for k, v in config.items()):
        raise _refuse(op, layer_name, f"{cls.__name__} does not keep its arguments as given")
    return config


def op_from_config(name: Any, config: Any) -> Op:
    """The op ``OP_REGISTRY[name](**config)``, from a file's data: only shendu's registered op classes, only their
    constructor parameters, only the values :func:`op_config` writes (raises ValueError otherwise)."""
    cls = OP_REGISTRY.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"OpLayer config: unknown op {str(name)[:100]!r} (only shendu's own ops are loaded)")
    if not isinstance(config, dict):
        raise ValueError(f"OpLayer config: the arguments of {name} must be an object")
    names = {p.name for p in _constructor_parameters(cls)}
    if set(config) != names:
        raise ValueError(f"OpLayer config: {name} takes the arguments {sorted(names)}, the file gives "
                         f"{sorted(str(k)[:50] for k in config)}")
    return cls(**{k: _decode(v) for k, v in config.items()})


def record_op(op: Op, inputs: tuple) -> Any:
    """``op`` called on symbolic tensors: a node of the functional graph (an :class:`OpLayer`)."""
    if not any(getattr(x, "is_symbolic", False) and x.node is not None for x in inputs):
        raise TypeError(f"{op_name(op)}: its symbolic inputs belong to no functional graph (keras.Input(...))")
    return OpLayer(op)(list(inputs))


op_module.symbolic_handler = record_op
