"""Keras 3's activation layers: ``ReLU``, ``LeakyReLU``, ``ELU``, ``Softmax`` and ``PReLU`` (its slope learned).

Each is the op of the same maths with Keras's arguments, defaults and ``get_config``. ``LeakyReLU`` takes
Keras 2's ``alpha=`` too (with Keras 3's warning), as the older Keras examples write it.
"""

from __future__ import annotations

import warnings
from typing import Any

from shendu import initializers as initializers_module
from shendu import ops
from shendu import regularizers as regularizers_module
from shendu.autograd.tensor import Tensor
from shendu.layers.layer import Layer


class _ElementwiseActivation(Layer):
    supports_masking = True

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape


class ReLU(_ElementwiseActivation):
    """y = min(x, max_value) for x >= threshold, else negative_slope * (x - threshold) (Keras 3's ``ReLU``).

    >>> import numpy as np
    >>> ReLU(max_value=1.0)(np.array([[-1.0, 0.5, 2.0]]))
    tensor([[0. , 0.5, 1. ]])
    """

    def __init__(self, max_value: float | None = None, negative_slope: float = 0.0, threshold: float = 0.0,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if max_value is not None and max_value < 0.0:
            raise ValueError(f"ReLU: max_value must be >= 0 or None, got {max_value}")
        if negative_slope is None or negative_slope < 0.0:
            raise ValueError(f"ReLU: negative_slope must be a number >= 0, got {negative_slope}")
        if threshold is None or threshold < 0.0:
            raise ValueError(f"ReLU: threshold must be a number >= 0, got {threshold}")
        self.max_value, self.negative_slope, self.threshold = max_value, negative_slope, threshold

    def call(self, inputs: Tensor) -> Tensor:
        if self.negative_slope == 0.0 and self.threshold == 0.0:
            y = ops.relu(inputs)
        else:
            y = ops.where(inputs >= self.threshold, inputs, (inputs - self.threshold) * self.negative_slope)
        return y if self.max_value is None else ops.minimum(y, self.max_value)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "max_value": self.max_value, "negative_slope": self.negative_slope,
                "threshold": self.threshold}


class LeakyReLU(_ElementwiseActivation):
    """y = x if x > 0 else negative_slope * x (Keras 3's default slope 0.3).

    >>> import numpy as np
    >>> LeakyReLU()(np.array([[-1.0, 2.0]]))
    tensor([[-0.3,  2. ]])
    """

    def __init__(self, negative_slope: float = 0.3, **kwargs: Any) -> None:
        if "alpha" in kwargs:  # Keras 2's name, which Keras 3 still takes with this warning
            negative_slope = kwargs.pop("alpha")
            warnings.warn("Argument `alpha` is deprecated. Use `negative_slope` instead.", stacklevel=2)
        super().__init__(**kwargs)
        if negative_slope is None or negative_slope < 0.0:
            raise ValueError(f"LeakyReLU: negative_slope must be a number >= 0, got {negative_slope}")
        self.negative_slope = negative_slope

    def call(self, inputs: Tensor) -> Tensor:
        return ops.leaky_relu(inputs, negative_slope=self.negative_slope)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "negative_slope": self.negative_slope}


class ELU(_ElementwiseActivation):
    """y = x if x > 0 else alpha * (exp(x) - 1)."""

    def __init__(self, alpha: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.alpha = alpha

    def call(self, inputs: Tensor) -> Tensor:
        return ops.elu(inputs, alpha=self.alpha)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "alpha": self.alpha}


class Softmax(_ElementwiseActivation):
    """y = exp(x) / sum(exp(x), axis) over ``axis`` (an int or a tuple); where ``mask`` is False the input is
    pushed to -1e9 first (Keras's rule), so masked entries get (almost) no weight."""

    def __init__(self, axis: int | tuple[int, ...] = -1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.axis = axis

    def call(self, inputs: Tensor, mask: Any = None) -> Tensor:
        if mask is not None:
            inputs = inputs + (1.0 - ops.cast(mask, inputs.dtype)) * -1e9
        if isinstance(self.axis, int):
            return ops.softmax(inputs, axis=self.axis)
        return ops.exp(inputs - ops.logsumexp(inputs, axis=tuple(self.axis), keepdims=True))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axis": self.axis}


class PReLU(_ElementwiseActivation):
    """y = x if x > 0 else alpha * x, with ``alpha`` a weight of shape ``input_shape[1:]`` (1 along
    ``shared_axes``), learned; it starts at ``alpha_initializer`` (zeros: a ReLU)."""

    def __init__(self, alpha_initializer: Any = "Zeros", alpha_regularizer: Any = None, alpha_constraint: Any = None,
                 shared_axes: int | list[int] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.alpha_initializer = initializers_module.get(alpha_initializer)
        self.alpha_regularizer = regularizers_module.get(alpha_regularizer)
        self.alpha_constraint = alpha_constraint
        self.shared_axes = None if shared_axes is None else (
            [shared_axes] if isinstance(shared_axes, int) else list(shared_axes))

    def build(self, input_shape: Any) -> None:
        shape = list(input_shape[1:])
        for axis in self.shared_axes or ():
            shape[axis - 1] = 1
        if any(d is None for d in shape):
            raise ValueError(f"PReLU '{self.name}': the input shape {tuple(input_shape)} has unknown sizes "
                             "outside the batch; list those axes in shared_axes")
        self.alpha = self.add_weight(name="alpha", shape=tuple(shape), initializer=self.alpha_initializer,
                                     regularizer=self.alpha_regularizer, constraint=self.alpha_constraint)

    def call(self, inputs: Tensor) -> Tensor:
        return ops.relu(inputs) - self.alpha * ops.relu(-inputs)

    def get_config(self) -> dict[str, Any]:
        constraint = self.alpha_constraint
        if constraint is not None and not hasattr(constraint, "get_config"):
            raise ValueError(f"PReLU '{self.name}': cannot serialise the constraint {constraint!r}; give it a "
                             "get_config() method")
        return {**super().get_config(),
                "alpha_initializer": initializers_module.serialize(self.alpha_initializer),
                "alpha_regularizer": regularizers_module.serialize(self.alpha_regularizer),
                "alpha_constraint": None if constraint is None else {"class_name": type(constraint).__name__,
                                                                     "config": constraint.get_config()},
                "shared_axes": self.shared_axes}
