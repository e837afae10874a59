"""ONNX for shendu's activation functions: one small emitter per activation, keyed by the function itself.

``emit_activation(b, fn, x, where)`` writes the nodes of ``fn(x)``; ``rnn_activation(fn)`` names the ONNX
RNN/LSTM/GRU activation (with its alpha/beta) for the recurrent ops.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from shendu import activations as A
from shendu.export.graph import GraphBuilder
from shendu.ops.elementwise import SELU_ALPHA, SELU_SCALE


def _gelu(b: GraphBuilder, x: str) -> str:
    """x * (1 + erf(x / sqrt 2)) / 2 (exact, as Keras 3's default)."""
    erf = b.op("Erf", [b.op("Mul", [x, b.scalar(1 / math.sqrt(2))])])
    half_x = b.op("Mul", [x, b.scalar(0.5)])
    return b.op("Mul", [half_x, b.op("Add", [erf, b.scalar(1.0)])], "gelu")


def _silu(b: GraphBuilder, x: str) -> str:
    return b.op("Mul", [x, b.op("Sigmoid", [x])], "silu")


#: activation function -> emitter (b, x) -> output name
ACTIVATIONS: dict[Callable, Callable[[GraphBuilder, str], str]] = {
    A.linear: lambda b, x: x,
    A.relu: lambda b, x: b.op("Relu", [x]),
    A.sigmoid: lambda b, x: b.op("Sigmoid", [x]),
    A.tanh: lambda b, x: b.op("Tanh", [x]),
    A.softmax: lambda b, x: b.op("Softmax", [x], axis=-1),
    A.log_softmax: lambda b, x: b.op("LogSoftmax", [x], axis=-1),
    A.elu: lambda b, x: b.op("Elu", [x], alpha=1.0),
    A.selu: lambda b, x: b.op("Selu", [x], alpha=SELU_ALPHA, gamma=SELU_SCALE),
    A.gelu: _gelu,
    A.silu: _silu,
    A.softplus: lambda b, x: b.op("Softplus", [x]),
    A.softsign: lambda b, x: b.op("Softsign", [x]),
    A.leaky_relu: lambda b, x: b.op("LeakyRelu", [x], alpha=0.2),
    A.relu6: lambda b, x: b.op("Clip", [x, b.scalar(0.0), b.scalar(6.0)], "relu6"),
    A.hard_sigmoid: lambda b, x: b.op("HardSigmoid", [x], alpha=1 / 6, beta=0.5),
    A.exponential: lambda b, x: b.op("Exp", [x]),
}

#: activation function -> (ONNX recurrent activation name, alpha, beta); alpha/beta None when unused
RNN_ACTIVATIONS: dict[Callable, tuple[str, float | None, float | None]] = {
    A.sigmoid: ("Sigmoid", None, None),
    A.tanh: ("Tanh", None, None),
    A.relu: ("Relu", None, None),
    A.hard_sigmoid: ("HardSigmoid", 1 / 6, 0.5),
    A.softsign: ("Softsign", None, None),
    A.softplus: ("Softplus", None, None),
}


def _describe(fn: Any) -> str:
    try:
        return repr(A.serialize(fn))
    except ValueError:
        return repr(fn)


def emit_activation(b: GraphBuilder, fn: Callable, x: str, where: str) -> str:
    """The nodes of ``fn(x)``; ``where`` names the layer for the error on an activation ONNX cannot express."""
    emitter = ACTIVATIONS.get(fn)
    if emitter is None:
        raise NotImplementedError(f"ONNX export: {where} uses the activation {_describe(fn)}, which has no ONNX "
                                  f"converter. Exportable activations: {sorted(A.serialize(f) for f in ACTIVATIONS)}. "
                                  "Hint: use one of those, or register a converter for a custom layer with "
                                  "shendu.export.register_onnx_converter")
    return emitter(b, x)


def rnn_activation(fn: Callable, where: str) -> tuple[str, float | None, float | None]:
    """The ONNX recurrent-op activation for ``fn`` (name, alpha, beta)."""
    found = RNN_ACTIVATIONS.get(fn)
    if found is None:
        names = sorted(A.serialize(f) for f in RNN_ACTIVATIONS)
        raise NotImplementedError(f"ONNX export: {where} uses the activation {_describe(fn)} inside a recurrent "
                                  f"cell; ONNX's RNN/LSTM/GRU ops take only {names}")
    return found
