"""Core layers: Dense, Activation, Dropout, Flatten, Reshape, Permute, RepeatVector, Lambda."""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from shendu import activations, ops
from shendu import initializers as initializers_module
from shendu import regularizers as regularizers_module
from shendu.autograd.tensor import Tensor
from shendu.backend import get_array_module
from shendu.layers.layer import InputSpec, Layer
from shendu.ops import nn


def _serialize_constraint(constraint: Any) -> Any:
    if constraint is None:
        return None
    if hasattr(constraint, "get_config"):
        return {"class_name": type(constraint).__name__, "config": constraint.get_config()}
    raise ValueError(f"cannot serialise the constraint {constraint!r}: give it a get_config() method")


def positive_int(layer: str, name: str, value: Any) -> int:
    """``value`` as an int, or a ValueError naming the layer and argument unless it is a positive integer."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{layer}: {name} must be a positive integer, got {value!r}")
    return int(value)


class Dense(Layer):
    """A fully connected layer: ``y = activation(x @ kernel + bias)`` on the last axis of x.

    ``kernel`` is ``(in, units)``; N-D inputs ``(batch, ..., in)`` give ``(batch, ..., units)``, as in Keras.

    >>> import numpy as np
    >>> layer = Dense(3, input_dim=2, name="hidden")
    >>> layer(np.ones((4, 2))).shape
    (4, 3)
    >>> [w.name for w in layer.weights]
    ['hidden/kernel', 'hidden/bias']
    """

    supports_masking = True

    def __init__(self, units: int, activation: Any = None, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None, activity_regularizer: Any = None,
                 kernel_constraint: Any = None, bias_constraint: Any = None, **kwargs: Any) -> None:
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.units = positive_int("Dense", "units", units)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers_module.get(kernel_initializer)
        self.bias_initializer = initializers_module.get(bias_initializer)
        self.kernel_regularizer = regularizers_module.get(kernel_regularizer)
        self.bias_regularizer = regularizers_module.get(bias_regularizer)
        self.kernel_constraint, self.bias_constraint = kernel_constraint, bias_constraint

    def build(self, input_shape: tuple) -> None:
        in_dim = input_shape[-1] if input_shape else None
        if in_dim is None:
            raise ValueError(f"layer '{self.name}' (Dense) needs the size of the last input axis, got input shape "
                             f"{input_shape}. Hint: give the model's first layer input_shape=(features,).")
        self.kernel = self.add_weight("kernel", (in_dim, self.units), self.kernel_initializer,
                                      self.kernel_regularizer, constraint=self.kernel_constraint)
        self.bias = (self.add_weight("bias", (self.units,), self.bias_initializer, self.bias_regularizer,
                                     constraint=self.bias_constraint) if self.use_bias else None)
        self.input_spec = InputSpec(min_ndim=2, axes={-1: in_dim})

    def call(self, inputs: Tensor) -> Tensor:
        fused = activations.fused_name(self.activation)  # 'relu': one op with the bias (shendu.ops.bias)
        y = nn.linear(inputs, self.kernel, self.bias, activation=fused)
        return y if fused or self.activation is activations.linear else self.activation(y)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (*input_shape[:-1], self.units)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units, "activation": activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "kernel_initializer": initializers_module.serialize(self.kernel_initializer),
                "bias_initializer": initializers_module.serialize(self.bias_initializer),
                "kernel_regularizer": regularizers_module.serialize(self.kernel_regularizer),
                "bias_regularizer": regularizers_module.serialize(self.bias_regularizer),
                "activity_regularizer": regularizers_module.serialize(self.activity_regularizer),
                "kernel_constraint": _serialize_constraint(self.kernel_constraint),
                "bias_constraint": _serialize_constraint(self.bias_constraint)}


class Activation(Layer):
    """y = activation(x), the activation given by name or as a callable.

    >>> import numpy as np
    >>> Activation("relu")(np.array([[-1.0, 2.0]]))
    tensor([[0., 2.]])
    """

    supports_masking = True

    def __init__(self, activation: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def call(self, inputs: Tensor) -> Tensor:
        return self.activation(inputs)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "activation": activations.serialize(self.activation)}


def seeded_dropout(inputs: Tensor, rate: float, rng: np.random.Generator | None, noise_shape: Any = None) -> Tensor:
    """Inverted dropout (training) with the mask's key from ``rng``, or from shendu's global generator when it is
    None; ``noise_shape`` entries that are None take the input's size."""
    return nn.dropout(inputs, rate, True, noise_shape, rng)


def dropout_mask(rng: np.random.Generator, shape: tuple, rate: float, like: Any) -> Any:
    """A mask of ``shape`` for inverted dropout: 0 with probability ``rate``, else 1 / (1 - rate); with the
    dtype and on the device of the array ``like`` (hashed from one key drawn from ``rng``, as DropoutOp's)."""
    mask = nn.dropout_mask(rng.integers(2**64, dtype=np.uint64), tuple(shape), rate, like.dtype)
    return get_array_module(like).asarray(mask)


class Dropout(Layer):
    """Inverted dropout in training (``training=True``): y = x * m / (1 - rate), m ~ Bernoulli(1 - rate)
    shaped ``noise_shape`` (None entries take the input's size); the identity in inference.

    Masks come from shendu's global generator (``shendu.seed``), or from the layer's own when ``seed`` is given.
    """

    supports_masking = True

    def __init__(self, rate: float, noise_shape: Any = None, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
            raise ValueError(f"Dropout: rate must be a number in [0, 1], got {rate!r}")
        self.rate = float(rate)
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)
        self.seed = seed
        self._rng = None if seed is None else np.random.default_rng(seed)

    def call(self, inputs: Tensor, training: bool | None = None) -> Tensor:
        if not training or self.rate == 0:
            return inputs
        return seeded_dropout(inputs, self.rate, self._rng, self.noise_shape)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        noise = None if self.noise_shape is None else list(self.noise_shape)
        return {**super().get_config(), "rate": self.rate, "noise_shape": noise, "seed": self.seed}


def check_data_format(layer: str, data_format: str | None) -> str:
    data_format = data_format or "channels_last"
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(f"{layer}: data_format must be 'channels_last' or 'channels_first', got {data_format!r}")
    return data_format


class Flatten(Layer):
    """y = x.reshape(batch, -1) (channels_first inputs are moved to channels_last first, as Keras does).

    >>> import numpy as np
    >>> Flatten()(np.zeros((2, 3, 4))).shape
    (2, 12)
    """

    def __init__(self, data_format: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data_format = check_data_format("Flatten", data_format)

    def call(self, inputs: Tensor) -> Tensor:
        if self.data_format == "channels_first" and inputs.ndim > 2:
            inputs = ops.transpose(inputs, (0, *range(2, inputs.ndim), 1))
        return ops.reshape(inputs, (inputs.shape[0], -1))

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        rest = input_shape[1:]
        return (input_shape[0], None if any(d is None for d in rest) else math.prod(rest))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "data_format": self.data_format}


class Reshape(Layer):
    """y = x.reshape(batch, *target_shape); one entry of ``target_shape`` may be -1.

    >>> import numpy as np
    >>> Reshape((3, -1))(np.zeros((2, 12))).shape
    (2, 3, 4)
    """

    def __init__(self, target_shape: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        target_shape = tuple(int(d) for d in target_shape)
        if sum(d == -1 for d in target_shape) > 1 or any(d == 0 or d < -1 for d in target_shape):
            raise ValueError(f"Reshape: target_shape must hold positive sizes and at most one -1, got {target_shape}")
        self.target_shape = target_shape

    def _resolve(self, input_shape: tuple) -> tuple:
        size = input_shape[1:]
        if any(d is None for d in size):
            return tuple(None if d == -1 else d for d in self.target_shape)
        total, known = math.prod(size), math.prod(d for d in self.target_shape if d != -1)
        if (-1 in self.target_shape and total % known) or (-1 not in self.target_shape and total != known):
            raise ValueError(f"layer '{self.name}' (Reshape) cannot reshape an input of shape {input_shape} "
                             f"({total} values per sample) into target_shape {self.target_shape} "
                             f"({known} values). Hint: the target must hold as many values as the input.")
        return tuple(total // known if d == -1 else d for d in self.target_shape)

    def call(self, inputs: Tensor) -> Tensor:
        return ops.reshape(inputs, (inputs.shape[0], *self._resolve(inputs.shape)))

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], *self._resolve(input_shape))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "target_shape": list(self.target_shape)}


class Permute(Layer):
    """y = x.transpose(0, *dims) with ``dims`` a 1-based permutation of the non-batch axes (Keras).

    >>> import numpy as np
    >>> Permute((2, 1))(np.zeros((5, 3, 4))).shape
    (5, 4, 3)
    """

    supports_masking = True

    def __init__(self, dims: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        dims = tuple(int(d) for d in dims)
        if sorted(dims) != list(range(1, len(dims) + 1)):
            raise ValueError(f"Permute: dims must be a permutation of 1..{len(dims)} (the batch axis 0 stays first), "
                             f"got {dims}")
        self.dims = dims

    def build(self, input_shape: tuple) -> None:
        if len(input_shape) != len(self.dims) + 1:
            raise ValueError(f"layer '{self.name}' (Permute) with dims {self.dims} expects {len(self.dims) + 1}-D "
                             f"inputs, received shape {input_shape}")
        self.input_spec = InputSpec(ndim=len(self.dims) + 1)

    def call(self, inputs: Tensor) -> Tensor:
        return ops.transpose(inputs, (0, *self.dims))

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], *(input_shape[d] for d in self.dims))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "dims": list(self.dims)}


class RepeatVector(Layer):
    """(batch, features) -> (batch, n, features): y[:, i] = x for every i.

    >>> import numpy as np
    >>> RepeatVector(3)(np.zeros((2, 4))).shape
    (2, 3, 4)
    """

    def __init__(self, n: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.n = positive_int("RepeatVector", "n", n)
        self.input_spec = InputSpec(ndim=2)

    def call(self, inputs: Tensor) -> Tensor:
        return ops.broadcast_to(ops.expand_dims(inputs, 1), (inputs.shape[0], self.n, inputs.shape[1]))

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], self.n, input_shape[1])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "n": self.n}


class Lambda(Layer):
    """y = function(x, **arguments): any differentiable shendu expression as a layer.

    ``output_shape`` (without the batch axis, or a function of the input shape) skips the shape probe.
    Lambda layers are never serialised as code: ``get_config`` raises; write a Layer subclass instead.

    >>> import numpy as np
    >>> Lambda(lambda x: x * 2)(np.ones((1, 2)))
    tensor([[2., 2.]])
    """

    def __init__(self, function: Callable, output_shape: Any = None, mask: Any = None,
                 arguments: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not callable(function):
            raise TypeError(f"Lambda: function must be callable, got {function!r}")
        self.function = function
        self._output_shape = output_shape
        self.mask = mask
        self.arguments = dict(arguments or {})

    def call(self, inputs: Any) -> Any:
        return self.function(inputs, **self.arguments)

    def _has_static_output_shape(self) -> bool:
        return self._output_shape is not None

    def compute_output_shape(self, input_shape: Any) -> Any:
        if self._output_shape is None:
            return super().compute_output_shape(input_shape)
        if callable(self._output_shape):
            return tuple(self._output_shape(input_shape))
        batch = input_shape[0] if isinstance(input_shape, tuple) else input_shape[0][0]
        return (batch, *self._output_shape)

    def get_config(self) -> dict[str, Any]:
        raise ValueError(f"layer '{self.name}' is a Lambda layer: shendu never serialises Python code (loading it "
                         "would run arbitrary code). Write a Layer subclass with call() (and get_config()) instead, "
                         "or save only the weights (save_weights / get_weights).")
