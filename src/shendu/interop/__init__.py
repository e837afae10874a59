"""Weights from other frameworks: PyTorch state_dicts and Keras weight files, into the equivalent shendu model.

>>> from shendu.interop import load_keras_weights, load_torch_state_dict  # doctest: +SKIP
>>> load_torch_state_dict(model, "resnet_block.safetensors")              # doctest: +SKIP
>>> load_keras_weights(model, "classifier.weights.h5")                    # doctest: +SKIP

Both return ``{shendu layer name: source key}`` so you can see what went where.
"""

from shendu.interop.keras import load_keras_weights, read_keras_weights, save_keras_weights
from shendu.interop.torch import load_torch_state_dict, read_state_dict

__all__ = ["load_keras_weights", "load_torch_state_dict", "read_keras_weights", "read_state_dict",
           "save_keras_weights"]
