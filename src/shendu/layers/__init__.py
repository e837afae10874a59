"""Keras-style layers: ``from shendu.layers import Dense, Dropout, BatchNormalization, Input, ...``.

``serialize(layer)`` gives ``{'class_name': ..., 'config': ...}`` (JSON-safe) and ``deserialize`` rebuilds a
layer from it; every ``Layer`` subclass is found by its registered name (``LAYER_REGISTRY``, see
:mod:`shendu.layers.registry`: the class name, qualified when a different class took it first).
"""

from __future__ import annotations

from shendu.layers.activation_layers import ELU, LeakyReLU, PReLU, ReLU, Softmax
from shendu.layers.attention import MultiHeadAttention
from shendu.layers.conv import Conv1D, Conv2D, Conv2DTranspose, DepthwiseConv2D, SeparableConv2D
from shendu.layers.core import Activation, Dense, Dropout, Flatten, Lambda, Permute, RepeatVector, Reshape
from shendu.layers.embedding import Embedding
from shendu.layers.layer import (
    LAYER_REGISTRY,
    Input,
    InputLayer,
    InputSpec,
    Layer,
    Node,
    SymbolicTensor,
    reset_name_counters,
)
from shendu.layers.merge import (
    Add,
    Average,
    Concatenate,
    Dot,
    Maximum,
    Minimum,
    Multiply,
    Subtract,
    add,
    average,
    concatenate,
    dot,
    maximum,
    minimum,
    multiply,
    subtract,
)
from shendu.layers.normalization import BatchNormalization, LayerNormalization
from shendu.layers.op_layer import OpLayer  # (also registers how ops record themselves on symbolic tensors)
from shendu.layers.pooling import (
    AveragePooling1D,
    AveragePooling2D,
    GlobalAveragePooling1D,
    GlobalAveragePooling2D,
    GlobalMaxPooling1D,
    GlobalMaxPooling2D,
    MaxPooling1D,
    MaxPooling2D,
)
from shendu.layers.preprocessing import (
    Normalization,
    RandomCrop,
    RandomFlip,
    RandomRotation,
    RandomTranslation,
    RandomZoom,
    Rescaling,
)
from shendu.layers.recurrent import GRU, LSTM, Bidirectional, SimpleRNN, TimeDistributed
from shendu.layers.registry import deserialize, get_layer_class, registered_name, serialize
from shendu.layers.reshaping import Cropping2D, SpatialDropout2D, UpSampling2D, ZeroPadding2D

# Keras's aliases
MaxPool1D, MaxPool2D, AvgPool1D, AvgPool2D = MaxPooling1D, MaxPooling2D, AveragePooling1D, AveragePooling2D
GlobalAvgPool1D, GlobalAvgPool2D = GlobalAveragePooling1D, GlobalAveragePooling2D
GlobalMaxPool1D, GlobalMaxPool2D = GlobalMaxPooling1D, GlobalMaxPooling2D
Convolution1D, Convolution2D, Convolution2DTranspose, SeparableConvolution2D = (
    Conv1D, Conv2D, Conv2DTranspose, SeparableConv2D)

__all__ = [
    "AvgPool1D", "AvgPool2D", "Convolution1D", "Convolution2D", "Convolution2DTranspose", "GlobalAvgPool1D",
    "GlobalAvgPool2D", "GlobalMaxPool1D", "GlobalMaxPool2D", "MaxPool1D", "MaxPool2D", "SeparableConvolution2D",
    "ELU", "LeakyReLU", "PReLU", "ReLU", "Softmax",
    "Activation", "Add", "OpLayer", "Average", "AveragePooling1D", "AveragePooling2D", "BatchNormalization",
    "Bidirectional", "Concatenate", "Conv1D", "Conv2D", "Conv2DTranspose", "Cropping2D", "Dense",
    "DepthwiseConv2D", "Dot", "Dropout", "Embedding", "Flatten", "GRU", "GlobalAveragePooling1D",
    "GlobalAveragePooling2D", "GlobalMaxPooling1D", "GlobalMaxPooling2D", "Input", "InputLayer", "InputSpec",
    "LAYER_REGISTRY", "LSTM", "Lambda", "Layer", "LayerNormalization", "MaxPooling1D", "MaxPooling2D",
    "Maximum", "Minimum", "MultiHeadAttention", "Multiply", "Node", "Normalization", "Permute", "RandomCrop",
    "RandomFlip", "RandomRotation", "RandomTranslation", "RandomZoom", "RepeatVector", "Rescaling", "Reshape",
    "SeparableConv2D", "SimpleRNN", "SpatialDropout2D", "Subtract", "SymbolicTensor", "TimeDistributed",
    "UpSampling2D", "ZeroPadding2D", "add", "average", "concatenate", "deserialize", "dot", "maximum",
    "minimum", "multiply", "reset_name_counters", "serialize", "subtract", "get_layer_class", "registered_name",
]
