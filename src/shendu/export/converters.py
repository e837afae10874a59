"""The ONNX converter table: one small function per layer kind, emitting that layer's inference nodes.

Each converter is ``fn(b, layer, x, **call_arguments) -> output name(s)``: ``b`` is the
:class:`~shendu.export.graph.GraphBuilder`, ``x`` the input tensor name (a list of names for merge layers),
and the keyword arguments are the layer call's extra arguments that are tensors or differ from their
defaults (``value=`` of MultiHeadAttention, ``use_causal_mask=True``). A converter accepts only the call
arguments it declares; anything else is refused with the layer's name.

Images are channels_last (NHWC) in shendu and NCHW in ONNX's Conv/Pool: converters wrap those ops in
Transposes (onnxruntime folds the pairs that cancel). Keras's kernel layouts are moved to ONNX's here.
``CONVERTERS`` is keyed by the exact layer class, so a subclass with its own ``call`` is never converted by
its parent's rule; :func:`register_onnx_converter` adds one.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from shendu.backend import to_numpy
from shendu.export.activations import emit_activation, rnn_activation
from shendu.export.graph import GraphBuilder
from shendu.layers import (
    ELU,
    GRU,
    LSTM,
    Activation,
    Add,
    Average,
    AveragePooling1D,
    AveragePooling2D,
    BatchNormalization,
    Bidirectional,
    Concatenate,
    Conv1D,
    Conv2D,
    Conv2DTranspose,
    Cropping2D,
    Dense,
    DepthwiseConv2D,
    Dot,
    Dropout,
    Embedding,
    Flatten,
    GlobalAveragePooling1D,
    GlobalAveragePooling2D,
    GlobalMaxPooling1D,
    GlobalMaxPooling2D,
    LayerNormalization,
    LeakyReLU,
    Maximum,
    MaxPooling1D,
    MaxPooling2D,
    Minimum,
    MultiHeadAttention,
    Multiply,
    Normalization,
    Permute,
    PReLU,
    RandomFlip,
    RandomRotation,
    RandomTranslation,
    RandomZoom,
    ReLU,
    RepeatVector,
    Rescaling,
    Reshape,
    SeparableConv2D,
    SimpleRNN,
    Softmax,
    SpatialDropout2D,
    Subtract,
    UpSampling2D,
    ZeroPadding2D,
)

Converter = Callable[..., Any]
CONVERTERS: dict[type, Converter] = {}


def where(layer: Any) -> str:
    """``layer 'name' (Class)``, for error messages."""
    return f"layer '{layer.name}' ({type(layer).__name__})"


def register_onnx_converter(layer_class: type, converter: Converter | None = None) -> Any:
    """Register ``converter(b, layer, x, **call_arguments)`` for ``layer_class`` (usable as a decorator)."""
    def register(fn: Converter) -> Converter:
        CONVERTERS[layer_class] = fn
        return fn

    return register if converter is None else register(converter)


def weight(layer: Any, attribute: str) -> np.ndarray:
    """A weight of ``layer`` as a NumPy array (from the CPU or GPU)."""
    value = getattr(layer, attribute)
    return to_numpy(getattr(value, "data", value))


def _activate(b: GraphBuilder, layer: Any, y: str) -> str:
    return emit_activation(b, layer.activation, y, where(layer))


# ---------------------------------------------------------------------------- core
@register_onnx_converter(Dense)
def dense(b: GraphBuilder, layer: Dense, x: str) -> str:
    """y = act(x @ kernel + bias) (MatMul handles any leading axes)."""
    y = b.op("MatMul", [x, b.const(weight(layer, "kernel"), f"{layer.name}/kernel")], layer.name)
    if layer.use_bias:
        y = b.op("Add", [y, b.const(weight(layer, "bias"), f"{layer.name}/bias")], layer.name)
    return _activate(b, layer, y)


@register_onnx_converter(Activation)
def activation(b: GraphBuilder, layer: Activation, x: str) -> str:
    return _activate(b, layer, x)


@register_onnx_converter(ReLU)
def relu(b: GraphBuilder, layer: ReLU, x: str) -> str:
    """y = x if x >= threshold else negative_slope * (x - threshold), then min(y, max_value) (the layer's call)."""
    if layer.negative_slope == 0.0 and layer.threshold == 0.0:
        y = b.op("Relu", [x], layer.name)
    else:
        above = b.op("GreaterOrEqual", [x, b.scalar(layer.threshold)], "above_threshold")
        below = b.op("Mul", [b.op("Sub", [x, b.scalar(layer.threshold)]), b.scalar(layer.negative_slope)])
        y = b.op("Where", [above, x, below], layer.name)
    return y if layer.max_value is None else b.op("Min", [y, b.scalar(layer.max_value)], layer.name)


@register_onnx_converter(LeakyReLU)
def leaky_relu(b: GraphBuilder, layer: LeakyReLU, x: str) -> str:
    return b.op("LeakyRelu", [x], layer.name, alpha=float(layer.negative_slope))


@register_onnx_converter(ELU)
def elu(b: GraphBuilder, layer: ELU, x: str) -> str:
    return b.op("Elu", [x], layer.name, alpha=float(layer.alpha))


@register_onnx_converter(Softmax)
def softmax(b: GraphBuilder, layer: Softmax, x: str) -> str:
    """Softmax over one axis; over a tuple of axes exp(x - max) / sum(exp(x - max)) (a mask is refused: the
    converter takes no ``mask`` argument)."""
    if isinstance(layer.axis, int):
        return b.op("Softmax", [x], layer.name, axis=layer.axis)
    axes = list(layer.axis)
    shifted = b.op("Exp", [b.op("Sub", [x, b.reduce("ReduceMax", x, axes, True, "max")])])
    return b.op("Div", [shifted, b.reduce("ReduceSum", shifted, axes, True, "sum")], layer.name)


@register_onnx_converter(PReLU)
def prelu(b: GraphBuilder, layer: PReLU, x: str) -> str:
    """y = x if x >= 0 else alpha * x (alpha of shape input_shape[1:], 1 on shared axes, broadcasts over the batch)."""
    return b.op("PRelu", [x, b.const(weight(layer, "alpha"), f"{layer.name}/alpha")], layer.name)


@register_onnx_converter(Dropout)
@register_onnx_converter(SpatialDropout2D)
@register_onnx_converter(RandomFlip)
@register_onnx_converter(RandomRotation)
@register_onnx_converter(RandomTranslation)
@register_onnx_converter(RandomZoom)
def identity(b: GraphBuilder, layer: Any, x: str) -> str:
    """Dropout and the random augmentations are the identity at inference."""
    return x


@register_onnx_converter(Flatten)
def flatten(b: GraphBuilder, layer: Flatten, x: str) -> str:
    shape = b.shape_of(x)
    if layer.data_format == "channels_first":
        if shape is None:
            raise NotImplementedError(f"ONNX export: {where(layer)} with channels_first needs its input's rank")
        if len(shape) > 2:
            x = b.transpose(x, (0, *range(2, len(shape)), 1))
    return b.reshape(x, [0, -1], layer.name)


@register_onnx_converter(Reshape)
def reshape(b: GraphBuilder, layer: Reshape, x: str) -> str:
    return b.reshape(x, [0, *layer.target_shape], layer.name)


@register_onnx_converter(Permute)
def permute(b: GraphBuilder, layer: Permute, x: str) -> str:
    return b.transpose(x, (0, *layer.dims), layer.name)


@register_onnx_converter(RepeatVector)
def repeat_vector(b: GraphBuilder, layer: RepeatVector, x: str) -> str:
    y = b.op("Unsqueeze", [x, b.ints([1])])
    return b.op("Tile", [y, b.ints([1, layer.n, 1])], layer.name)


@register_onnx_converter(Rescaling)
def rescaling(b: GraphBuilder, layer: Any, x: str) -> str:
    """y = x * scale + offset."""
    y = b.op("Mul", [x, b.const(np.asarray(layer.scale), f"{layer.name}/scale")])
    return b.op("Add", [y, b.const(np.asarray(layer.offset), f"{layer.name}/offset")], layer.name)


@register_onnx_converter(Embedding)
def embedding(b: GraphBuilder, layer: Embedding, x: str) -> str:
    """y = embeddings[ids] (Gather; float ids are cast to int64, as the layer does)."""
    if layer.mask_zero:
        raise NotImplementedError(f"ONNX export: {where(layer)} has mask_zero=True; masks are not exported (the "
                                  "layers after it would skip padded steps in shendu but not in ONNX). Hint: export a "
                                  "model built with mask_zero=False")
    ids = b.cast(x, np.int64, "ids")
    return b.op("Gather", [b.const(weight(layer, "embeddings"), f"{layer.name}/embeddings"), ids], layer.name,
                axis=0)


@register_onnx_converter(Normalization)
def normalization(b: GraphBuilder, layer: Normalization, x: str) -> str:
    """y = (x - mean) / max(sqrt(var), eps), or x * std + mean with ``invert`` (statistics are constants)."""
    mean, std = (to_numpy(v) for v in layer._statistics())
    if layer.invert:
        y = b.op("Mul", [x, b.const(std, f"{layer.name}/std")])
        return b.op("Add", [y, b.const(mean, f"{layer.name}/mean")], layer.name)
    y = b.op("Sub", [x, b.const(mean, f"{layer.name}/mean")])
    return b.op("Mul", [y, b.const(1 / std, f"{layer.name}/inverse_std")], layer.name)


def _spatial_axes(layer: Any) -> tuple[int, int]:
    return (1, 2) if layer.data_format == "channels_last" else (2, 3)


@register_onnx_converter(ZeroPadding2D)
def zero_padding2d(b: GraphBuilder, layer: ZeroPadding2D, x: str) -> str:
    begins, ends = [0] * 4, [0] * 4
    for axis, (before, after) in zip(_spatial_axes(layer), layer.padding):
        begins[axis], ends[axis] = before, after
    return b.op("Pad", [x, b.ints(begins + ends)], layer.name, mode="constant")


@register_onnx_converter(Cropping2D)
def cropping2d(b: GraphBuilder, layer: Cropping2D, x: str) -> str:
    axes = list(_spatial_axes(layer))
    starts = [before for before, _ in layer.cropping]
    ends = [-after if after else np.iinfo(np.int64).max for _, after in layer.cropping]
    return b.op("Slice", [x, b.ints(starts), b.ints(ends), b.ints(axes)], layer.name)


@register_onnx_converter(UpSampling2D)
def up_sampling2d(b: GraphBuilder, layer: UpSampling2D, x: str) -> str:
    """Resize by ``size``: nearest (each pixel repeated) or bilinear with half-pixel centres (TensorFlow's)."""
    xc = _to_channels_first(b, layer, x, 2)
    scales = b.const(np.asarray([1, 1, *layer.size], dtype=np.float32), f"{layer.name}/scales", np.float32)
    if layer.interpolation == "nearest":
        attrs = {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}
    else:
        attrs = {"mode": "linear", "coordinate_transformation_mode": "half_pixel"}
    y = b.op("Resize", [xc, "", scales], layer.name, **attrs)
    return _to_channels_last(b, layer, y, 2)


# ---------------------------------------------------------------------------- normalisation
def _feature_constant(layer: Any, value: np.ndarray) -> np.ndarray:
    """A per-feature array reshaped to broadcast against the input (as the layer's ``broadcastable``)."""
    return np.asarray(value).reshape(layer.broadcast_shape)


@register_onnx_converter(BatchNormalization)
def batch_normalization(b: GraphBuilder, layer: BatchNormalization, x: str) -> str:
    """Inference: y = x * scale + shift, scale = gamma / sqrt(moving_var + eps), shift = beta - moving_mean * scale
    (folded here in float64)."""
    mean = weight(layer, "moving_mean").astype(np.float64)
    var = weight(layer, "moving_variance").astype(np.float64)
    scale = 1.0 / np.sqrt(var + layer.epsilon)
    if layer.gamma is not None:
        scale = scale * weight(layer, "gamma")
    shift = -mean * scale if layer.beta is None else weight(layer, "beta") - mean * scale
    y = b.op("Mul", [x, b.const(_feature_constant(layer, scale), f"{layer.name}/scale")])
    return b.op("Add", [y, b.const(_feature_constant(layer, shift), f"{layer.name}/shift")], layer.name)


@register_onnx_converter(LayerNormalization)
def layer_normalization(b: GraphBuilder, layer: LayerNormalization, x: str) -> str:
    """y = gamma (x - mean) / sqrt(var + eps) + beta over the feature axes (rms_scaling: gamma x / sqrt(var + eps))."""
    axes = list(layer.feature_axes)
    mean = b.reduce("ReduceMean", x, axes, True, "mean")
    centred = b.op("Sub", [x, mean], "centred")
    var = b.reduce("ReduceMean", b.op("Mul", [centred, centred]), axes, True, "var")
    std = b.op("Sqrt", [b.op("Add", [var, b.scalar(layer.epsilon)])], "std")
    y = b.op("Div", [x if layer.rms_scaling else centred, std])
    if layer.gamma is not None:
        y = b.op("Mul", [y, b.const(_feature_constant(layer, weight(layer, "gamma")), f"{layer.name}/gamma")])
    if layer.beta is not None:
        y = b.op("Add", [y, b.const(_feature_constant(layer, weight(layer, "beta")), f"{layer.name}/beta")])
    return y


# ---------------------------------------------------------------------------- convolution and pooling
def _to_channels_first(b: GraphBuilder, layer: Any, x: str, rank: int) -> str:
    return x if layer.data_format == "channels_first" else b.transpose(x, (0, rank + 1, *range(1, rank + 1)))


def _to_channels_last(b: GraphBuilder, layer: Any, y: str, rank: int) -> str:
    return y if layer.data_format == "channels_first" else b.transpose(y, (0, *range(2, rank + 2), 1))


def _conv_padding(padding: str, kernel: tuple, strides: tuple, dilation: tuple) -> dict[str, Any]:
    """ONNX pads for Keras's padding. 'same' is TensorFlow's arithmetic (the odd pixel at the end): explicit
    pads at stride 1 (onnxruntime refuses SAME_UPPER with dilation; strides > 1 never come with dilation)."""
    if padding == "same" and max(strides) > 1:
        return {"auto_pad": "SAME_UPPER"}
    if padding == "same":
        totals = [(k - 1) * d for k, d in zip(kernel, dilation)]
        return {"pads": [t // 2 for t in totals] + [t - t // 2 for t in totals]}
    if padding == "causal":
        left = [(k - 1) * d for k, d in zip(kernel, dilation)]
        return {"pads": [*left, *([0] * len(kernel))]}
    return {"pads": [0] * (2 * len(kernel))}


def _conv(b: GraphBuilder, layer: Any, x: str, w: np.ndarray, bias: np.ndarray | None, rank: int, group: int,
          strides: tuple, dilation: tuple, padding: str, activate: bool = True) -> str:
    """Conv over ``x`` in the layer's data_format with an ONNX-layout weight ``w`` (out, in/group, *kernel)."""
    xc = _to_channels_first(b, layer, x, rank)
    inputs = [xc, b.const(w, f"{layer.name}/kernel")]
    if bias is not None:
        inputs.append(b.const(bias, f"{layer.name}/bias"))
    y = b.op("Conv", inputs, layer.name, kernel_shape=list(w.shape[2:]), strides=list(strides),
             dilations=list(dilation), group=group, **_conv_padding(padding, w.shape[2:], strides, dilation))
    y = _to_channels_last(b, layer, y, rank)
    return _activate(b, layer, y) if activate else y


@register_onnx_converter(Conv2D)
@register_onnx_converter(Conv1D)
def conv(b: GraphBuilder, layer: Any, x: str) -> str:
    """Keras kernel (*K, C/groups, filters) -> ONNX (filters, C/groups, *K)."""
    rank = layer.rank
    w = np.transpose(weight(layer, "kernel"), (rank + 1, rank, *range(rank)))
    bias = weight(layer, "bias") if layer.use_bias else None
    return _conv(b, layer, x, w, bias, rank, layer.groups, layer.strides, layer.dilation_rate, layer.padding)


def _depthwise_weight(kernel: np.ndarray) -> np.ndarray:
    """(KH, KW, C, m) -> (C*m, 1, KH, KW): output channel c*m + k uses input channel c (group = C)."""
    kh, kw, c, m = kernel.shape
    return np.transpose(kernel, (2, 3, 0, 1)).reshape(c * m, 1, kh, kw)


@register_onnx_converter(DepthwiseConv2D)
def depthwise_conv2d(b: GraphBuilder, layer: DepthwiseConv2D, x: str) -> str:
    kernel = weight(layer, "kernel")
    bias = weight(layer, "bias") if layer.use_bias else None
    return _conv(b, layer, x, _depthwise_weight(kernel), bias, 2, kernel.shape[2], layer.strides,
                 layer.dilation_rate, layer.padding)


@register_onnx_converter(SeparableConv2D)
def separable_conv2d(b: GraphBuilder, layer: SeparableConv2D, x: str) -> str:
    """Depthwise conv (no bias), then a 1x1 pointwise conv with the bias."""
    depthwise = weight(layer, "depthwise_kernel")
    y = _conv(b, layer, x, _depthwise_weight(depthwise), None, 2, depthwise.shape[2], layer.strides,
              layer.dilation_rate, layer.padding, activate=False)
    pointwise = np.transpose(weight(layer, "pointwise_kernel"), (3, 2, 0, 1))
    bias = weight(layer, "bias") if layer.use_bias else None
    return _conv(b, layer, y, pointwise, bias, 2, 1, (1, 1), (1, 1), "valid")


def _same_pad_before(size: int, kernel_extent: int, stride: int) -> int:
    """TensorFlow 'same' padding before the data for a convolution of an input of ``size``."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel_extent - size, 0)
    return total // 2


@register_onnx_converter(Conv2DTranspose)
def conv2d_transpose(b: GraphBuilder, layer: Conv2DTranspose, x: str) -> str:
    """ConvTranspose with the crop (pads) and output_padding that give Keras's output size; both are the same
    for every input size, so they are worked out on a probe size."""
    kernel = weight(layer, "kernel")  # (KH, KW, filters, C)
    w = np.transpose(kernel, (3, 2, 0, 1))  # (C, filters, KH, KW)
    probe = 8
    begins, ends, extra = [], [], []
    for axis in range(2):
        k, s, d = layer.kernel_size[axis], layer.strides[axis], layer.dilation_rate[axis]
        extent = d * (k - 1) + 1
        out = layer._spatial_output((probe, probe))[axis]
        before = _same_pad_before(out, extent, s) if layer.padding == "same" else 0
        rest = s * (probe - 1) + extent - before - out
        begins.append(before)
        ends.append(max(rest, 0))
        extra.append(max(-rest, 0))
    inputs = [_to_channels_first(b, layer, x, 2), b.const(w, f"{layer.name}/kernel")]
    if layer.use_bias:
        inputs.append(b.const(weight(layer, "bias"), f"{layer.name}/bias"))
    y = b.op("ConvTranspose", inputs, layer.name, kernel_shape=list(layer.kernel_size), strides=list(layer.strides),
             dilations=list(layer.dilation_rate), pads=begins + ends,
             output_padding=extra if any(extra) else None)
    return _activate(b, layer, _to_channels_last(b, layer, y, 2))


@register_onnx_converter(MaxPooling1D)
@register_onnx_converter(MaxPooling2D)
@register_onnx_converter(AveragePooling1D)
@register_onnx_converter(AveragePooling2D)
def pooling(b: GraphBuilder, layer: Any, x: str) -> str:
    """MaxPool / AveragePool (padded pixels never counted, as Keras)."""
    rank = layer.rank
    op_type = "MaxPool" if isinstance(layer, (MaxPooling1D, MaxPooling2D)) else "AveragePool"
    pad = {"auto_pad": "SAME_UPPER"} if layer.padding == "same" else {"pads": [0] * (2 * rank)}
    extra = {"count_include_pad": 0} if op_type == "AveragePool" else {}
    y = b.op(op_type, [_to_channels_first(b, layer, x, rank)], layer.name, kernel_shape=list(layer.pool_size),
             strides=list(layer.strides), **pad, **extra)
    return _to_channels_last(b, layer, y, rank)


@register_onnx_converter(GlobalAveragePooling1D)
@register_onnx_converter(GlobalAveragePooling2D)
@register_onnx_converter(GlobalMaxPooling1D)
@register_onnx_converter(GlobalMaxPooling2D)
def global_pooling(b: GraphBuilder, layer: Any, x: str) -> str:
    """A mean or max over the spatial axes."""
    op_type = "ReduceMax" if isinstance(layer, (GlobalMaxPooling1D, GlobalMaxPooling2D)) else "ReduceMean"
    return b.reduce(op_type, x, list(layer._axes), layer.keepdims, layer.name)


# ---------------------------------------------------------------------------- merging
@register_onnx_converter(Add)
def add(b: GraphBuilder, layer: Add, xs: list[str]) -> str:
    return b.op("Sum", list(xs), layer.name)


@register_onnx_converter(Subtract)
def subtract(b: GraphBuilder, layer: Subtract, xs: list[str]) -> str:
    return b.op("Sub", list(xs), layer.name)


@register_onnx_converter(Multiply)
def multiply(b: GraphBuilder, layer: Multiply, xs: list[str]) -> str:
    y = xs[0]
    for other in xs[1:]:
        y = b.op("Mul", [y, other], layer.name)
    return y


@register_onnx_converter(Average)
def average(b: GraphBuilder, layer: Average, xs: list[str]) -> str:
    return b.op("Mul", [b.op("Sum", list(xs)), b.scalar(1.0 / len(xs))], layer.name)


@register_onnx_converter(Maximum)
def maximum(b: GraphBuilder, layer: Maximum, xs: list[str]) -> str:
    return b.op("Max", list(xs), layer.name)


@register_onnx_converter(Minimum)
def minimum(b: GraphBuilder, layer: Minimum, xs: list[str]) -> str:
    return b.op("Min", list(xs), layer.name)


@register_onnx_converter(Concatenate)
def concatenate(b: GraphBuilder, layer: Concatenate, xs: list[str]) -> str:
    return b.op("Concat", list(xs), layer.name, axis=layer.axis)


def _l2_normalize(b: GraphBuilder, x: str, axis: int) -> str:
    norm2 = b.reduce("ReduceSum", b.op("Mul", [x, x]), [axis], True)
    return b.op("Div", [x, b.op("Sqrt", [b.op("Max", [norm2, b.scalar(1e-12)])])])


@register_onnx_converter(Dot)
def dot(b: GraphBuilder, layer: Dot, xs: list[str]) -> str:
    """Per-sample contraction of axis ax of x with axis ay of y, as one Einsum."""
    shapes = [b.shape_of(t) for t in xs]
    if any(s is None for s in shapes):
        raise NotImplementedError(f"ONNX export: {where(layer)} needs the ranks of its inputs")
    ax, ay = layer._resolved_axes([tuple(s) for s in shapes])
    x, y = xs
    if layer.normalize:
        x, y = _l2_normalize(b, x, ax), _l2_normalize(b, y, ay)
    letters = iter("bcdefghijklmnopqrstuvwxyz")
    sub_x = ["a"] + [next(letters) for _ in range(len(shapes[0]) - 1)]
    sub_y = ["a"] + [next(letters) for _ in range(len(shapes[1]) - 1)]
    sub_y[ay] = sub_x[ax]
    rest = [c for i, c in enumerate(sub_x) if i not in (0, ax)] + [c for i, c in enumerate(sub_y) if i not in (0, ay)]
    out = b.op("Einsum", [x, y], layer.name, equation=f"{''.join(sub_x)},{''.join(sub_y)}->a{''.join(rest)}")
    return out if rest else b.op("Unsqueeze", [out, b.ints([1])], layer.name)


# ---------------------------------------------------------------------------- recurrent
# Keras stacks the gates of LSTM as (i, f, c, o), ONNX as (i, o, f, c); GRU is (z, r, h) in both
_GATE_ORDER = {"LSTM": (0, 3, 1, 2), "GRU": (0, 1, 2), "RNN": (0,)}


def _onnx_gates(matrix: np.ndarray, units: int, order: tuple) -> np.ndarray:
    """(rows, gates*units) in Keras's gate order -> (gates*units, rows) in ONNX's."""
    blocks = [matrix[..., g * units:(g + 1) * units] for g in order]
    return np.concatenate(blocks, axis=-1).T


def recurrent(b: GraphBuilder, layer: Any, x: str, direction: str) -> tuple[str, list[str]]:
    """One ONNX RNN/LSTM/GRU op over x (batch, time, features): (the sequence in time order, batch-major,
    [final states])."""
    if layer.stateful:
        raise NotImplementedError(f"ONNX export: {where(layer)} is stateful; export a stateless copy")
    kind = "LSTM" if isinstance(layer, LSTM) else "GRU" if isinstance(layer, GRU) else "RNN"
    units, order = layer.units, _GATE_ORDER[kind]
    kernel, recurrent_kernel = weight(layer, "kernel"), weight(layer, "recurrent_kernel")
    w = _onnx_gates(kernel, units, order)[None]
    r = _onnx_gates(recurrent_kernel, units, order)[None]
    width = len(order) * units
    if not layer.use_bias:
        bias = np.zeros(2 * width, dtype=kernel.dtype)
    elif kind == "GRU" and layer.reset_after:  # (2, 3u): input bias, recurrent bias
        full = weight(layer, "bias")
        bias = np.concatenate([_onnx_gates(full[0:1], units, order)[:, 0], _onnx_gates(full[1:2], units, order)[:, 0]])
    else:
        single = _onnx_gates(weight(layer, "bias")[None], units, order)[:, 0]
        bias = np.concatenate([single, np.zeros_like(single)])
    fns = {"LSTM": [layer.recurrent_activation, layer.activation, layer.activation],
           "GRU": [layer.recurrent_activation, layer.activation], "RNN": [layer.activation]}[kind]
    acts = [rnn_activation(fn, where(layer)) for fn in fns]
    attrs: dict[str, Any] = {"hidden_size": units, "direction": direction, "activations": [a[0] for a in acts]}
    alphas = [a[1] for a in acts if a[1] is not None]
    betas = [a[2] for a in acts if a[2] is not None]
    if alphas:
        attrs["activation_alpha"], attrs["activation_beta"] = alphas, betas
    if kind == "GRU":
        attrs["linear_before_reset"] = int(layer.reset_after)
    time_major = b.transpose(x, (1, 0, 2), "time_major")
    inputs = [time_major, b.const(w, f"{layer.name}/W"), b.const(r, f"{layer.name}/R"),
              b.const(bias[None], f"{layer.name}/B")]
    n_out = 3 if kind == "LSTM" else 2
    outs = b.op(kind, inputs, layer.name, outputs=n_out, **attrs)
    seq = b.op("Squeeze", [outs[0], b.ints([1])], f"{layer.name}_seq")  # (T, 1, B, u) -> (T, B, u)
    seq = b.transpose(seq, (1, 0, 2), f"{layer.name}_sequence")
    states = [b.op("Squeeze", [s, b.ints([0])], f"{layer.name}_state") for s in outs[1:]]
    return seq, states


@register_onnx_converter(SimpleRNN)
@register_onnx_converter(LSTM)
@register_onnx_converter(GRU)
def rnn(b: GraphBuilder, layer: Any, x: str) -> Any:
    """SimpleRNN / LSTM / GRU: [output, *states] with return_state; go_backwards gives the reversed sequence."""
    seq, states = recurrent(b, layer, x, "reverse" if layer.go_backwards else "forward")
    if layer.go_backwards:
        seq = b.reverse_time(seq)
    output = seq if layer.return_sequences else states[0]
    return [output, *states] if layer.return_state else output


@register_onnx_converter(Bidirectional)
def bidirectional(b: GraphBuilder, layer: Bidirectional, x: str) -> Any:
    fw_layer, bw_layer = layer.forward_layer, layer.backward_layer
    outputs = []
    for sub in (fw_layer, bw_layer):
        seq, states = recurrent(b, sub, x, "reverse" if sub.go_backwards else "forward")
        outputs.append((seq if sub.return_sequences else states[0], states))
    (fw, fw_states), (bw, bw_states) = outputs
    mode = layer.merge_mode
    if mode == "concat":
        merged: Any = b.op("Concat", [fw, bw], layer.name, axis=-1)
    elif mode == "sum":
        merged = b.op("Add", [fw, bw], layer.name)
    elif mode == "mul":
        merged = b.op("Mul", [fw, bw], layer.name)
    elif mode == "ave":
        merged = b.op("Mul", [b.op("Add", [fw, bw]), b.scalar(0.5)], layer.name)
    else:
        merged = [fw, bw]
    if layer.return_state:
        return (merged if isinstance(merged, list) else [merged]) + fw_states + bw_states
    return merged


# ---------------------------------------------------------------------------- attention
def _project(b: GraphBuilder, layer: MultiHeadAttention, x: str, name: str) -> str:
    """(batch, T, features) @ (features, heads*dim) + bias -> (batch, heads, T, dim)."""
    kernel = weight(layer, f"{name}_kernel")
    features, heads, dim = kernel.shape
    y = b.op("MatMul", [x, b.const(kernel.reshape(features, heads * dim), f"{layer.name}/{name}/kernel")])
    if layer.use_bias:
        y = b.op("Add", [y, b.const(weight(layer, f"{name}_bias").reshape(-1), f"{layer.name}/{name}/bias")])
    return b.transpose(b.reshape(y, [0, 0, heads, dim]), (0, 2, 1, 3), f"{layer.name}_{name}")


@register_onnx_converter(MultiHeadAttention)
def multi_head_attention(b: GraphBuilder, layer: MultiHeadAttention, query: str, *, value: str,
                         key: str | None = None, attention_mask: str | None = None,
                         return_attention_scores: bool = False, use_causal_mask: bool = False) -> Any:
    """softmax(Q K^T / sqrt(key_dim) + mask) V per head, heads merged and projected by the output kernel;
    masked scores are set to the float minimum (a fully masked row gives equal weights, not NaN)."""
    key = value if key is None else key
    q, k, v = _project(b, layer, query, "query"), _project(b, layer, key, "key"), _project(b, layer, value, "value")
    scores = b.op("MatMul", [q, b.transpose(k, (0, 1, 3, 2))])
    scores = b.op("Mul", [scores, b.scalar(1.0 / math.sqrt(layer.key_dim))], "scaled_scores")
    mask = None
    if attention_mask is not None:  # (batch, T, S), True = attend
        mask = b.op("Unsqueeze", [b.cast(attention_mask, bool), b.ints([1])], "attention_mask")
    if use_causal_mask:
        ts = b.op("Slice", [b.op("Shape", [scores]), b.ints([-2]), b.ints([4]), b.ints([0])], "causal_shape")
        ones = b.op("ConstantOfShape", [ts], value=b.onnx.numpy_helper.from_array(np.ones(1, dtype=np.int64)))
        causal = b.cast(b.op("Trilu", [ones], "causal", upper=0), bool)
        mask = causal if mask is None else b.op("And", [mask, causal], "mask")
    if mask is not None:
        scores = b.op("Where", [mask, scores, b.scalar(np.finfo(b.dtype).min)], "masked_scores")
    weights = b.op("Softmax", [scores], f"{layer.name}_scores", axis=-1)
    heads = b.op("MatMul", [weights, v])
    merged = b.reshape(b.transpose(heads, (0, 2, 1, 3)), [0, 0, -1], "merged_heads")
    kernel = weight(layer, "output_kernel")
    out = b.op("MatMul", [merged, b.const(kernel.reshape(-1, kernel.shape[-1]), f"{layer.name}/output/kernel")])
    if layer.use_bias:
        out = b.op("Add", [out, b.const(weight(layer, "output_bias"), f"{layer.name}/output/bias")], layer.name)
    return [out, weights] if return_attention_scores else out
