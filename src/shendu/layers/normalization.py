"""Normalisation layers: BatchNormalization (moving statistics) and LayerNormalization (Keras semantics)."""

from __future__ import annotations

from typing import Any

from shendu import initializers as initializers_module
from shendu import ops
from shendu import regularizers as regularizers_module
from shendu.autograd.grad_mode import no_grad
from shendu.autograd.tensor import Tensor
from shendu.distribute import data_parallel, sync_batch_norm
from shendu.layers.core import _serialize_constraint
from shendu.layers.layer import InputSpec, Layer
from shendu.ops import normalization as norm


def _axes(layer: Layer, axis: Any, ndim: int) -> tuple[int, ...]:
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    for a in axes:
        if not -ndim <= a < ndim or a % ndim == 0:
            raise ValueError(f"layer '{layer.name}' ({type(layer).__name__}): axis {a} is not a feature axis of a "
                             f"{ndim}-D input (axis 0 is the batch)")
    return tuple(sorted(a % ndim for a in axes))


class _Normalization(Layer):
    """Shared arguments and weights: gamma (``scale``) and beta (``center``) over the normalised feature axes."""

    supports_masking = True

    def __init__(self, axis: Any = -1, epsilon: float = 1e-3, center: bool = True, scale: bool = True,
                 beta_initializer: Any = "zeros", gamma_initializer: Any = "ones", beta_regularizer: Any = None,
                 gamma_regularizer: Any = None, beta_constraint: Any = None, gamma_constraint: Any = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.axis = axis if isinstance(axis, int) else [int(a) for a in axis]
        if epsilon <= 0:
            raise ValueError(f"{type(self).__name__}: epsilon must be positive, got {epsilon}")
        self.epsilon, self.center, self.scale = float(epsilon), bool(center), bool(scale)
        self.beta_initializer = initializers_module.get(beta_initializer)
        self.gamma_initializer = initializers_module.get(gamma_initializer)
        self.beta_regularizer = regularizers_module.get(beta_regularizer)
        self.gamma_regularizer = regularizers_module.get(gamma_regularizer)
        self.beta_constraint, self.gamma_constraint = beta_constraint, gamma_constraint

    def _build_affine(self, input_shape: tuple) -> None:
        ndim = len(input_shape)
        self.feature_axes = _axes(self, self.axis, ndim)
        sizes = [input_shape[a] for a in self.feature_axes]
        if any(s is None for s in sizes):
            raise ValueError(f"layer '{self.name}' ({type(self).__name__}) needs known sizes on axes "
                             f"{self.feature_axes}, got input shape {input_shape}")
        # weights have Keras's shapes ((C,) per normalised axis); ``affine`` reshapes them to broadcast
        self.param_shape = tuple(sizes)
        self.broadcast_shape = tuple(input_shape[a] if a in self.feature_axes else 1
                                     for a in range(self.feature_axes[0], ndim))
        self.gamma = (self.add_weight("gamma", self.param_shape, self.gamma_initializer, self.gamma_regularizer,
                                      constraint=self.gamma_constraint) if self.scale else None)
        self.beta = (self.add_weight("beta", self.param_shape, self.beta_initializer, self.beta_regularizer,
                                     constraint=self.beta_constraint) if self.center else None)
        self.input_spec = InputSpec(ndim=ndim, axes={a: input_shape[a] for a in self.feature_axes})

    def broadcastable(self, weight: Any) -> Any:
        """A weight (or array) reshaped from Keras's shape to broadcast against the input (a view)."""
        if weight is None or self.broadcast_shape == self.param_shape:
            return weight
        return ops.reshape(weight, self.broadcast_shape) if isinstance(weight, Tensor) else weight.reshape(
            self.broadcast_shape)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon, "center": self.center,
                "scale": self.scale,
                "beta_initializer": initializers_module.serialize(self.beta_initializer),
                "gamma_initializer": initializers_module.serialize(self.gamma_initializer),
                "beta_regularizer": regularizers_module.serialize(self.beta_regularizer),
                "gamma_regularizer": regularizers_module.serialize(self.gamma_regularizer),
                "beta_constraint": _serialize_constraint(self.beta_constraint),
                "gamma_constraint": _serialize_constraint(self.gamma_constraint)}


class BatchNormalization(_Normalization):
    """y = gamma (x - mean) / sqrt(var + epsilon) + beta, per feature on ``axis``.

    Training (``training=True`` and the layer trainable): mean and (biased) var of the batch, and
    ``moving = momentum * moving + (1 - momentum) * batch_stat``. Inference: the moving statistics.
    (PyTorch's ``BatchNorm`` momentum is ``1 - momentum`` here and its running var is unbiased.)

    With several ranks (:mod:`shendu.distribute`) each rank normalises by its own shard's statistics, as in
    PyTorch and Keras; ``synchronized=True`` uses the moments of the whole global batch instead (all-reduced
    through the current distribution, so N ranks then match one process on the global batch).

    >>> import numpy as np
    >>> bn = BatchNormalization()
    >>> y = bn(np.array([[0.0], [2.0]]), training=True)
    >>> y.data.astype(float).round(4).ravel().tolist(), bn.moving_mean.data.astype(float).round(4).tolist()
    ([-0.9995, 0.9995], [0.01])
    """

    def __init__(self, axis: Any = -1, momentum: float = 0.99, epsilon: float = 1e-3, center: bool = True,
                 scale: bool = True, beta_initializer: Any = "zeros", gamma_initializer: Any = "ones",
                 moving_mean_initializer: Any = "zeros", moving_variance_initializer: Any = "ones",
                 beta_regularizer: Any = None, gamma_regularizer: Any = None, beta_constraint: Any = None,
                 gamma_constraint: Any = None, synchronized: bool = False, **kwargs: Any) -> None:
        super().__init__(axis, epsilon, center, scale, beta_initializer, gamma_initializer, beta_regularizer,
                         gamma_regularizer, beta_constraint, gamma_constraint, **kwargs)
        if not 0 <= momentum <= 1:
            raise ValueError(f"BatchNormalization: momentum must be in [0, 1], got {momentum}")
        self.momentum = float(momentum)
        self.moving_mean_initializer = initializers_module.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers_module.get(moving_variance_initializer)
        self.synchronized = bool(synchronized)

    def build(self, input_shape: tuple) -> None:
        self._build_affine(input_shape)
        self.moving_mean = self.add_weight("moving_mean", self.param_shape, self.moving_mean_initializer,
                                           trainable=False)
        self.moving_variance = self.add_weight("moving_variance", self.param_shape,
                                               self.moving_variance_initializer, trainable=False)
        ndim = len(input_shape)
        self.reduce_axes = tuple(a for a in range(ndim) if a not in self.feature_axes)

    def call(self, inputs: Tensor, training: bool | None = None) -> Tensor:
        if training and self.trainable:
            gamma, beta = self.broadcastable(self.gamma), self.broadcastable(self.beta)
            distribution = data_parallel.active() if self.synchronized else None
            if distribution is not None:
                y, mean, var = sync_batch_norm(inputs, gamma, beta, self.reduce_axes, self.epsilon,
                                               distribution.comm)
            else:
                y, mean, var = norm.batch_norm_train(inputs, gamma, beta, self.reduce_axes, self.epsilon)
            with no_grad():
                m = self.momentum
                for moving, stat in ((self.moving_mean, mean), (self.moving_variance, var)):
                    moving.data *= m
                    moving.data += (1 - m) * stat.reshape(moving.shape)
            return y
        return norm.batch_norm_infer(inputs, *map(self.broadcastable, (self.gamma, self.beta, self.moving_mean.data,
                                                                       self.moving_variance.data)), self.epsilon)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "momentum": self.momentum,
                "moving_mean_initializer": initializers_module.serialize(self.moving_mean_initializer),
                "moving_variance_initializer": initializers_module.serialize(self.moving_variance_initializer),
                "synchronized": self.synchronized}


class LayerNormalization(_Normalization):
    """y = gamma (x - mean) / sqrt(var + epsilon) + beta, mean and var over ``axis`` of each sample.

    ``rms_scaling=True``: y = gamma x / sqrt(var(x) + epsilon), no centring and no beta: exactly what
    Keras computes (its docs call it RMS scaling, but it divides by the standard deviation).

    >>> import numpy as np
    >>> y = LayerNormalization(epsilon=1e-6)(np.array([[1.0, 3.0]]))
    >>> np.round(y.data, 4).tolist()
    [[-1.0, 1.0]]
    """

    def __init__(self, axis: Any = -1, epsilon: float = 1e-3, center: bool = True, scale: bool = True,
                 rms_scaling: bool = False, beta_initializer: Any = "zeros", gamma_initializer: Any = "ones",
                 beta_regularizer: Any = None, gamma_regularizer: Any = None, beta_constraint: Any = None,
                 gamma_constraint: Any = None, **kwargs: Any) -> None:
        super().__init__(axis, epsilon, center and not rms_scaling, scale, beta_initializer, gamma_initializer,
                         beta_regularizer, gamma_regularizer, beta_constraint, gamma_constraint, **kwargs)
        self.rms_scaling = bool(rms_scaling)

    def build(self, input_shape: tuple) -> None:
        self._build_affine(input_shape)

    def call(self, inputs: Tensor) -> Tensor:
        if self.rms_scaling:
            return norm.variance_scaling(inputs, self.broadcastable(self.gamma), self.feature_axes, self.epsilon)
        return norm.layer_norm(inputs, self.broadcastable(self.gamma), self.broadcastable(self.beta),
                               self.feature_axes, self.epsilon)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rms_scaling": self.rms_scaling}
