"""Activation functions by name (Keras 3 names and defaults): ``get('relu')(x)``.

Each is a function of a Tensor built from shendu ops, so it differentiates (and double-differentiates).
``get(None)`` is ``linear``; ``serialize(fn)`` gives the name back.

>>> import shendu
>>> x = shendu.tensor([-2.0, 0.5, 8.0])
>>> get("relu6")(x)
tensor([0. , 0.5, 6. ])
>>> serialize(get("swish"))
'silu'
"""

from __future__ import annotations

from typing import Any, Callable

from shendu import ops
from shendu.utils.custom_objects import get_registered_object, registered_name_of


def linear(x: Any) -> Any:
    """y = x"""
    return x


def relu(x: Any, negative_slope: float = 0.0, max_value: float | None = None, threshold: float = 0.0) -> Any:
    """y = max(x, 0); Keras's options: slope below ``threshold``, clipped at ``max_value``."""
    if negative_slope == 0.0 and max_value is None and threshold == 0.0:
        return ops.relu(x)
    y = ops.where(x >= threshold, x, (x - threshold) * negative_slope)
    return y if max_value is None else ops.clip(y, None, max_value)


def fused_name(activation: Callable) -> str | None:
    """The name under which the layers' ops take ``activation`` inside themselves ('relu': ``shendu.ops.bias``),
    or None for an activation applied as ops of its own after the layer's product."""
    return "relu" if activation is relu else None


def sigmoid(x: Any) -> Any:
    """y = 1 / (1 + exp(-x))"""
    return ops.sigmoid(x)


def tanh(x: Any) -> Any:
    """y = tanh(x)"""
    return ops.tanh(x)


def softmax(x: Any, axis: int = -1) -> Any:
    """y = exp(x) / sum(exp(x), axis)"""
    return ops.softmax(x, axis)


def log_softmax(x: Any, axis: int = -1) -> Any:
    """y = x - logsumexp(x, axis)"""
    return ops.log_softmax(x, axis)


def elu(x: Any, alpha: float = 1.0) -> Any:
    """y = x if x > 0 else alpha (exp(x) - 1)"""
    return ops.elu(x, alpha)


def selu(x: Any) -> Any:
    """y = scale * elu(x, alpha), scale = 1.0507, alpha = 1.6733"""
    return ops.selu(x)


def gelu(x: Any, approximate: bool = False) -> Any:
    """y = x Phi(x) (exact by default, as Keras 3's activation; ``approximate=True``: tanh form)"""
    return ops.gelu(x, approximate)


def silu(x: Any) -> Any:
    """y = x sigmoid(x)"""
    return ops.silu(x)


swish = silu


def softplus(x: Any) -> Any:
    """y = log(1 + exp(x))"""
    return ops.softplus(x)


def softsign(x: Any) -> Any:
    """y = x / (1 + |x|)"""
    return x / (ops.abs(x) + 1)


def leaky_relu(x: Any, negative_slope: float = 0.2) -> Any:
    """y = x if x > 0 else negative_slope * x (Keras default 0.2)"""
    return ops.leaky_relu(x, negative_slope)


def relu6(x: Any) -> Any:
    """y = min(max(x, 0), 6)"""
    return ops.clip(x, 0.0, 6.0)


def hard_sigmoid(x: Any) -> Any:
    """y = relu6(x + 3) / 6 = clip(x / 6 + 1/2, 0, 1) (Keras 3)"""
    return ops.clip(x * (1 / 6) + 0.5, 0.0, 1.0)


def exponential(x: Any) -> Any:
    """y = exp(x)"""
    return ops.exp(x)


_BY_NAME: dict[str, Callable] = {
    "linear": linear, "relu": relu, "sigmoid": sigmoid, "tanh": tanh, "softmax": softmax,
    "log_softmax": log_softmax, "elu": elu, "selu": selu, "gelu": gelu, "silu": silu, "swish": silu,
    "softplus": softplus, "softsign": softsign, "leaky_relu": leaky_relu, "relu6": relu6,
    "hard_sigmoid": hard_sigmoid, "exponential": exponential,
}


def get(identifier: str | Callable | None) -> Callable:
    """The activation function for a name, a callable (returned as is) or None (``linear``)."""
    if identifier is None:
        return linear
    if isinstance(identifier, str):
        fn = _BY_NAME.get(identifier.lower()) or get_registered_object(identifier)
        if fn is None:
            raise ValueError(f"unknown activation {identifier!r}; choose one of {sorted(_BY_NAME)}, pass a callable, "
                             "or register your function with shendu.saving.register_keras_serializable()")
        return fn
    if isinstance(identifier, dict) and "class_name" in identifier:
        return get(identifier["class_name"])
    if callable(identifier):
        return identifier
    raise ValueError(f"could not interpret activation {identifier!r}: give a name, a callable or None")


def serialize(activation: Callable | None) -> str:
    """The name of a built-in activation, or the registered name (``'Custom>my_fn'``) of a function registered
    with ``shendu.saving.register_keras_serializable`` (for configs)."""
    fn = get(activation)
    for name, known in _BY_NAME.items():
        if known is fn:
            return name
    registered = registered_name_of(fn)
    if registered is not None:
        return registered
    raise ValueError(f"cannot serialise the activation {activation!r}: only built-in and registered activations "
                     "have a name; decorate your function with @shendu.saving.register_keras_serializable()")


def deserialize(name: str) -> Callable:
    """The inverse of :func:`serialize`."""
    return get(name)
