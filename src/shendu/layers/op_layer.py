"""``OpLayer``: an op called on a functional model's symbolic tensors, as a node of the graph.

``ops.relu(layers.Dense(4)(inputs))`` reaches the op with a :class:`~shendu.layers.symbolic.SymbolicTensor`;
the op's forward cannot run on it, and :func:`record_op` (registered with ``shendu.autograd.op`` when this
module is imported) wraps the op in an ``OpLayer`` instead, as Keras 3 records an Operation. The layer keeps the
op as a template and calls a fresh copy of it on each call (an op keeps per-call state for its backward), so fit,
predict and evaluate run through it with the op's own gradient. Its output shape comes from running it on zeros
(batch 1), as for any layer without ``compute_output_shape``.

An OpLayer is not serialised: ``get_config`` raises, naming the op and the layer to use instead.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import numpy as np

from shendu.autograd import op as op_module
from shendu.autograd.op import Op
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
        raise ValueError(f"layer '{self.name}' records ops.{op_name(self.op)} called on a functional model's "
                         "symbolic tensors; shendu does not serialise these. Use a "
                         "layer instead (layers.Activation, layers.ReLU, layers.Reshape, layers.Concatenate, "
                         "layers.Add, ..., or a Layer subclass with get_config()), or save only the weights "
                         "(save_weights / get_weights).")


def record_op(op: Op, inputs: tuple) -> Any:
    """``op`` called on symbolic tensors: a node of the functional graph (an :class:`OpLayer`)."""
    if not any(getattr(x, "is_symbolic", False) and x.node is not None for x in inputs):
        raise TypeError(f"{op_name(op)}: its symbolic inputs belong to no functional graph (keras.Input(...))")
    return OpLayer(op)(list(inputs))


op_module.symbolic_handler = record_op
