"""Convolution layers with Keras 3's arguments and defaults: Conv1D, Conv2D, DepthwiseConv2D, SeparableConv2D,
Conv2DTranspose.

Kernels use Keras's layouts: Conv2D ``(KH, KW, C/groups, filters)``, Conv1D ``(K, C/groups, filters)``,
DepthwiseConv2D ``(KH, KW, C, depth_multiplier)``, Conv2DTranspose ``(KH, KW, filters, C)``. Inputs are
channels_last by default; ``data_format='channels_first'`` transposes in and out around the NHWC ops
(:mod:`shendu.ops.convolution`).

>>> import numpy as np
>>> layer = Conv2D(8, 3, padding="same", activation="relu", name="c")
>>> layer(np.zeros((2, 28, 28, 1))).shape
(2, 28, 28, 8)
>>> [w.shape for w in layer.weights]
[(3, 3, 1, 8), (8,)]
"""

from __future__ import annotations

from typing import Any

from shendu import activations
from shendu import initializers as initializers_module
from shendu import regularizers as regularizers_module
from shendu.autograd.tensor import Tensor
from shendu.layers.core import check_data_format, positive_int
from shendu.layers.input_spec import InputSpec
from shendu.layers.layer import Layer
from shendu.ops import convolution as conv_ops
from shendu.ops.convolution import int_tuple


def check_padding(layer: str, padding: str, allowed: tuple[str, ...] = ("valid", "same")) -> str:
    mode = padding.lower() if isinstance(padding, str) else padding
    if mode not in allowed:
        raise ValueError(f"{layer}: padding must be one of {allowed}, got {padding!r}")
    return mode


class _Conv(Layer):
    """The shared part of Conv1D/Conv2D: arguments, weights, output shapes, config."""

    rank = 2

    def __init__(self, filters: int, kernel_size: Any, strides: Any = 1, padding: str = "valid",
                 data_format: str | None = None, dilation_rate: Any = 1, groups: int = 1, activation: Any = None,
                 use_bias: bool = True, kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None, activity_regularizer: Any = None,
                 kernel_constraint: Any = None, bias_constraint: Any = None, **kwargs: Any) -> None:
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        cls = type(self).__name__
        filters = positive_int(cls, "filters", filters)
        if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1 or filters % groups:
            raise ValueError(f"{cls}: groups must be a positive integer dividing filters={filters}, got {groups!r}")
        self.filters, self.groups = filters, groups
        self.kernel_size = int_tuple(kernel_size, self.rank, f"{cls}: kernel_size")
        self.strides = int_tuple(strides, self.rank, f"{cls}: strides")
        self.dilation_rate = int_tuple(dilation_rate, self.rank, f"{cls}: dilation_rate")
        self.padding = check_padding(cls, padding, ("valid", "same", "causal") if self.rank == 1 else ("valid", "same"))
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(f"{cls}: strides > 1 together with dilation_rate > 1 is not supported (as in Keras), "
                             f"got strides={self.strides}, dilation_rate={self.dilation_rate}")
        self.data_format = check_data_format(cls, data_format)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers_module.get(kernel_initializer)
        self.bias_initializer = initializers_module.get(bias_initializer)
        self.kernel_regularizer = regularizers_module.get(kernel_regularizer)
        self.bias_regularizer = regularizers_module.get(bias_regularizer)
        self.kernel_constraint, self.bias_constraint = kernel_constraint, bias_constraint

    @property
    def _channel_axis(self) -> int:
        return -1 if self.data_format == "channels_last" else 1

    def _input_channels(self, input_shape: tuple) -> int:
        if len(input_shape) != self.rank + 2:
            raise ValueError(f"layer '{self.name}' ({type(self).__name__}) expects {self.rank + 2}-D inputs "
                             f"(batch, {'spatial, ' * self.rank}channels), received shape {input_shape}. Hint: "
                             "add the channel axis, e.g. x[..., None] for grey images")
        channels = input_shape[self._channel_axis]
        if channels is None:
            raise ValueError(f"layer '{self.name}' ({type(self).__name__}) needs a known channel axis, got input "
                             f"shape {input_shape}")
        return channels

    def _kernel_shape(self, channels: int) -> tuple[int, ...]:
        if channels % self.groups:
            raise ValueError(f"layer '{self.name}' ({type(self).__name__}): input channels ({channels}) must be "
                             f"divisible by groups={self.groups}")
        return (*self.kernel_size, channels // self.groups, self.filters)

    def _output_channels(self, in_channels: int | None) -> int | None:
        return self.filters

    def build(self, input_shape: tuple) -> None:
        channels = self._input_channels(input_shape)
        self.kernel = self.add_weight("kernel", self._kernel_shape(channels), self.kernel_initializer,
                                      self.kernel_regularizer, constraint=self.kernel_constraint)
        self.bias = (self.add_weight("bias", (self._output_channels(channels),), self.bias_initializer,
                                     self.bias_regularizer, constraint=self.bias_constraint)
                     if self.use_bias else None)
        self.input_spec = InputSpec(ndim=self.rank + 2, axes={self._channel_axis: channels})

    def _activate(self, y: Tensor) -> Tensor:
        return y if self.activation is activations.linear else self.activation(y)

    def _spatial_output(self, sizes: tuple) -> list:
        return [conv_ops.conv_output_length(n, k, self.padding, s, d)
                for n, k, s, d in zip(sizes, self.kernel_size, self.strides, self.dilation_rate)]

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        channels = self._output_channels(input_shape[self._channel_axis])
        if self.data_format == "channels_last":
            return (input_shape[0], *self._spatial_output(input_shape[1:-1]), channels)
        return (input_shape[0], channels, *self._spatial_output(input_shape[2:]))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "filters": self.filters, "kernel_size": list(self.kernel_size),
                "strides": list(self.strides), "padding": self.padding, "data_format": self.data_format,
                "dilation_rate": list(self.dilation_rate), "groups": self.groups,
                "activation": activations.serialize(self.activation), "use_bias": self.use_bias,
                "kernel_initializer": initializers_module.serialize(self.kernel_initializer),
                "bias_initializer": initializers_module.serialize(self.bias_initializer),
                "kernel_regularizer": regularizers_module.serialize(self.kernel_regularizer),
                "bias_regularizer": regularizers_module.serialize(self.bias_regularizer),
                "activity_regularizer": regularizers_module.serialize(self.activity_regularizer),
                "kernel_constraint": _constraint_config(self.kernel_constraint),
                "bias_constraint": _constraint_config(self.bias_constraint)}


def _constraint_config(constraint: Any) -> Any:
    if constraint is None:
        return None
    if hasattr(constraint, "get_config"):
        return {"class_name": type(constraint).__name__, "config": constraint.get_config()}
    raise ValueError(f"cannot serialise the constraint {constraint!r}: give it a get_config() method")


class Conv2D(_Conv):
    """2-D convolution: ``y = activation(conv2d(x, kernel) + bias)``, kernel ``(KH, KW, C/groups, filters)``.

    ``padding`` 'valid' or 'same' (TensorFlow arithmetic: output ceil(H / stride), extra row at the bottom);
    ``groups`` splits the channels into independent convolutions.
    """

    rank = 2

    def call(self, inputs: Tensor) -> Tensor:
        fused = activations.fused_name(self.activation)  # 'relu': inside the op, with the bias (shendu.ops.bias)
        y = conv_ops.conv2d(inputs, self.kernel, self.bias, self.strides, self.padding, self.dilation_rate,
                            self.groups, self.data_format, activation=fused)
        return y if fused else self._activate(y)


class Conv1D(_Conv):
    """1-D convolution over (batch, steps, channels): kernel ``(K, C/groups, filters)``; ``padding`` 'valid',
    'same' or 'causal' (left padding only, so y[t] sees x[:t + 1]).

    >>> import numpy as np
    >>> Conv1D(4, 3, padding="causal")(np.zeros((2, 10, 3))).shape
    (2, 10, 4)
    """

    rank = 1

    def call(self, inputs: Tensor) -> Tensor:
        y = conv_ops.conv1d(inputs, self.kernel, self.bias, self.strides[0], self.padding, self.dilation_rate[0],
                            self.groups, self.data_format)
        return self._activate(y)


class DepthwiseConv2D(_Conv):
    """Depthwise 2-D convolution: each input channel convolved with its own ``depth_multiplier`` filters;
    kernel ``(KH, KW, C, depth_multiplier)``, output channel ``c * depth_multiplier + m``.

    >>> import numpy as np
    >>> DepthwiseConv2D(3, depth_multiplier=2)(np.zeros((1, 5, 5, 3))).shape
    (1, 3, 3, 6)
    """

    def __init__(self, kernel_size: Any, strides: Any = (1, 1), padding: str = "valid", depth_multiplier: int = 1,
                 data_format: str | None = None, dilation_rate: Any = (1, 1), activation: Any = None,
                 use_bias: bool = True, depthwise_initializer: Any = "glorot_uniform",
                 bias_initializer: Any = "zeros", depthwise_regularizer: Any = None, bias_regularizer: Any = None,
                 activity_regularizer: Any = None, depthwise_constraint: Any = None, bias_constraint: Any = None,
                 **kwargs: Any) -> None:
        depth_multiplier = int_tuple(depth_multiplier, 1, "DepthwiseConv2D: depth_multiplier")[0]
        super().__init__(depth_multiplier, kernel_size, strides, padding, data_format, dilation_rate, 1, activation,
                         use_bias, depthwise_initializer, bias_initializer, depthwise_regularizer, bias_regularizer,
                         activity_regularizer, depthwise_constraint, bias_constraint, **kwargs)
        self.depth_multiplier = depth_multiplier

    def _kernel_shape(self, channels: int) -> tuple[int, ...]:
        return (*self.kernel_size, channels, self.depth_multiplier)

    def _output_channels(self, in_channels: int | None) -> int | None:
        return None if in_channels is None else in_channels * self.depth_multiplier

    def build(self, input_shape: tuple) -> None:
        super().build(input_shape)
        self.depthwise_kernel = self.kernel  # Keras's attribute name

    def call(self, inputs: Tensor) -> Tensor:
        y = conv_ops.depthwise_conv2d(inputs, self.kernel, self.bias, self.strides, self.padding, self.dilation_rate,
                                      self.data_format)
        return self._activate(y)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        for key in ("filters", "groups"):
            config.pop(key)
        for key in ("initializer", "regularizer", "constraint"):
            config[f"depthwise_{key}"] = config.pop(f"kernel_{key}")
        return {**config, "depth_multiplier": self.depth_multiplier}


class SeparableConv2D(_Conv):
    """Depthwise convolution (``depth_multiplier`` filters per channel) then a 1x1 pointwise convolution to
    ``filters`` channels: depthwise kernel ``(KH, KW, C, depth_multiplier)``, pointwise ``(1, 1, C*m, filters)``.

    >>> import numpy as np
    >>> SeparableConv2D(4, 3, padding="same")(np.zeros((1, 5, 5, 3))).shape
    (1, 5, 5, 4)
    """

    def __init__(self, filters: int, kernel_size: Any, strides: Any = (1, 1), padding: str = "valid",
                 data_format: str | None = None, dilation_rate: Any = (1, 1), depth_multiplier: int = 1,
                 activation: Any = None, use_bias: bool = True, depthwise_initializer: Any = "glorot_uniform",
                 pointwise_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 depthwise_regularizer: Any = None, pointwise_regularizer: Any = None, bias_regularizer: Any = None,
                 activity_regularizer: Any = None, depthwise_constraint: Any = None, pointwise_constraint: Any = None,
                 bias_constraint: Any = None, **kwargs: Any) -> None:
        super().__init__(filters, kernel_size, strides, padding, data_format, dilation_rate, 1, activation, use_bias,
                         depthwise_initializer, bias_initializer, depthwise_regularizer, bias_regularizer,
                         activity_regularizer, depthwise_constraint, bias_constraint, **kwargs)
        self.depth_multiplier = int_tuple(depth_multiplier, 1, "SeparableConv2D: depth_multiplier")[0]
        self.pointwise_initializer = initializers_module.get(pointwise_initializer)
        self.pointwise_regularizer = regularizers_module.get(pointwise_regularizer)
        self.pointwise_constraint = pointwise_constraint

    def build(self, input_shape: tuple) -> None:
        channels = self._input_channels(input_shape)
        m = self.depth_multiplier
        self.depthwise_kernel = self.add_weight("depthwise_kernel", (*self.kernel_size, channels, m),
                                                self.kernel_initializer, self.kernel_regularizer,
                                                constraint=self.kernel_constraint)
        self.pointwise_kernel = self.add_weight("pointwise_kernel", (1, 1, channels * m, self.filters),
                                                self.pointwise_initializer, self.pointwise_regularizer,
                                                constraint=self.pointwise_constraint)
        self.bias = (self.add_weight("bias", (self.filters,), self.bias_initializer, self.bias_regularizer,
                                     constraint=self.bias_constraint) if self.use_bias else None)
        self.input_spec = InputSpec(ndim=4, axes={self._channel_axis: channels})

    def call(self, inputs: Tensor) -> Tensor:
        y = conv_ops.depthwise_conv2d(inputs, self.depthwise_kernel, None, self.strides, self.padding,
                                      self.dilation_rate, self.data_format)
        y = conv_ops.conv2d(y, self.pointwise_kernel, self.bias, data_format=self.data_format)
        return self._activate(y)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.pop("groups")
        for key in ("initializer", "regularizer", "constraint"):
            config[f"depthwise_{key}"] = config.pop(f"kernel_{key}")
        return {**config, "depth_multiplier": self.depth_multiplier,
                "pointwise_initializer": initializers_module.serialize(self.pointwise_initializer),
                "pointwise_regularizer": regularizers_module.serialize(self.pointwise_regularizer),
                "pointwise_constraint": _constraint_config(self.pointwise_constraint)}


class Conv2DTranspose(_Conv):
    """Transposed 2-D convolution (the gradient of a convolution; "deconvolution"): kernel
    ``(KH, KW, filters, C)``. Output size per axis: 'same' H*s, 'valid' H*s + max(k - s, 0), or with
    ``output_padding`` p: (H - 1) s + k - 2 (k // 2 for 'same') + p (Keras).

    >>> import numpy as np
    >>> Conv2DTranspose(4, 3, strides=2, padding="same")(np.zeros((1, 7, 7, 8))).shape
    (1, 14, 14, 4)
    """

    def __init__(self, filters: int, kernel_size: Any, strides: Any = (1, 1), padding: str = "valid",
                 output_padding: Any = None, data_format: str | None = None, dilation_rate: Any = (1, 1),
                 activation: Any = None, use_bias: bool = True, kernel_initializer: Any = "glorot_uniform",
                 bias_initializer: Any = "zeros", kernel_regularizer: Any = None, bias_regularizer: Any = None,
                 activity_regularizer: Any = None, kernel_constraint: Any = None, bias_constraint: Any = None,
                 **kwargs: Any) -> None:
        super().__init__(filters, kernel_size, strides, padding, data_format, dilation_rate, 1, activation, use_bias,
                         kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
                         activity_regularizer, kernel_constraint, bias_constraint, **kwargs)
        if output_padding is not None:
            output_padding = (output_padding,) * 2 if isinstance(output_padding, int) else tuple(output_padding)
            if len(output_padding) != 2 or any(not 0 <= p < s for p, s in zip(output_padding, self.strides)):
                raise ValueError(f"Conv2DTranspose: output_padding must be 2 ints each smaller than the stride "
                                 f"{self.strides}, got {output_padding!r}")
        self.output_padding = output_padding

    def _kernel_shape(self, channels: int) -> tuple[int, ...]:
        return (*self.kernel_size, self.filters, channels)

    def call(self, inputs: Tensor) -> Tensor:
        fused = activations.fused_name(self.activation)  # 'relu': inside the op, with the bias (shendu.ops.bias)
        y = conv_ops.conv2d_transpose(inputs, self.kernel, self.bias, self.strides, self.padding,
                                      self.output_padding, self.dilation_rate, 1, self.data_format, activation=fused)
        return y if fused else self._activate(y)

    def _spatial_output(self, sizes: tuple) -> list:
        pads = self.output_padding or (None, None)
        return [None if n is None else conv_ops.conv_transpose_output_size(n, k, s, self.padding, p, d)
                for n, k, s, d, p in zip(sizes, self.kernel_size, self.strides, self.dilation_rate, pads)]

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.pop("groups")
        return {**config, "output_padding": None if self.output_padding is None else list(self.output_padding)}

# Keras's aliases
Convolution1D, Convolution2D, Convolution2DTranspose, SeparableConvolution2D = Conv1D, Conv2D, Conv2DTranspose, \
    SeparableConv2D
