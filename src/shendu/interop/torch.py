"""Load a PyTorch ``state_dict`` into the equivalent shendu model, converting layouts.

``load_torch_state_dict(model, source)`` takes a ``.safetensors`` file (read with the ``safetensors``
package, no torch needed), a ``.pt``/``.pth`` file (read with ``torch.load(weights_only=True)``: tensors
only, never code), a dict of arrays/tensors, or a ``torch.nn.Module``. Keys are grouped by module
(``'features.0.weight'`` -> module ``'features.0'``) and matched, in order, to the shendu layers that own
weights (see :mod:`shendu.interop._common`). The conversions:

============================  =============================  ============================================
PyTorch                       shendu                         conversion
============================  =============================  ============================================
Linear weight (out, in)       Dense kernel (in, out)         transpose; rows permuted from (C, H, W) to
                                                             (H, W, C) order after a channels_last Flatten
Conv1d/Conv2d (O, I, *K)      Conv1D/Conv2D (*K, I, O)       OIHW -> HWIO
Conv2d groups=C (C*M,1,H,W)   DepthwiseConv2D (H, W, C, M)
ConvTranspose2d (I, O, H, W)  Conv2DTranspose (H, W, O, I)
BatchNorm weight/bias,        gamma/beta, moving_mean/       num_batches_tracked is ignored; set the shendu
running_mean/var              moving_variance                layer's epsilon=1e-5 (PyTorch's default)
LayerNorm weight/bias         gamma/beta
Embedding weight              embeddings                     as is
LSTM W_ih, W_hh, b_ih, b_hh   kernel, recurrent_kernel, bias W.T; bias = b_ih + b_hh (gates i, f, g, o in both)
GRU (gates r, z, n)           GRU reset_after=True (z, r, h) blocks reordered; bias = stack(b_ih, b_hh)
RNN                           SimpleRNN                      W.T; bias = b_ih + b_hh
``l0_reverse`` weights        Bidirectional backward_layer   each layer of a multi-layer RNN (``l1``, ...)
                                                             loads into the next shendu RNN layer
============================  =============================  ============================================

Images: a PyTorch model sees NCHW, shendu NHWC: feed ``x.transpose(0, 2, 3, 1)``.

>>> import numpy as np
>>> from shendu.layers import Dense
>>> from shendu.models import Sequential
>>> model = Sequential([Dense(2, input_dim=3, name="classifier")])
>>> state = {"fc.weight": np.arange(6.0).reshape(2, 3), "fc.bias": np.zeros(2)}
>>> load_torch_state_dict(model, state)
{'classifier': 'fc'}
>>> model.layers[0].kernel.data.tolist()
[[0.0, 3.0], [1.0, 4.0], [2.0, 5.0]]
"""

from __future__ import annotations

import os
import pickle  # only for its exception type: nothing is ever unpickled here except by torch.load(weights_only=True)
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from shendu.interop._common import Group, Incompatible, leaf_layers, load_groups
from shendu.utils.weights_io import fail, is_zip, load_arrays

_RNN_KEY = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh)_l(\d+)(_reverse)?$")
_RNN_GATES = {"LSTM": 4, "GRU": 3, "SimpleRNN": 1}


# ---------------------------------------------------------------------------- reading
def _natural_key(key: str) -> list[Any]:
    """'layers.10.weight' sorts after 'layers.2.weight' (numbers compared as numbers)."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in key.split(".")]


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":
            value = value.float()
        return value.numpy()
    return np.asarray(value)


def _starts_like_pickle(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(1) == b"\x80"  # the PROTO opcode every pickle since protocol 2 starts with


def read_state_dict(source: Any) -> dict[str, np.ndarray]:
    """A state_dict as {key: ndarray} from a path (.safetensors, .pt, .pth, .bin), a mapping or a Module."""
    if hasattr(source, "state_dict") and callable(source.state_dict):
        source = source.state_dict()
    if isinstance(source, Mapping):
        return {str(k): _to_numpy(v) for k, v in source.items()}
    path = os.fspath(source)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load_torch_state_dict: no file at {path!r}")
    if not is_zip(path) and not _starts_like_pickle(path):  # safetensors (by content), read by shendu's checker
        arrays = load_arrays(path)
        return {k: arrays[k] for k in sorted(arrays, key=_natural_key)}  # the file does not keep module order
    try:
        import torch
    except ImportError:
        raise ImportError(f"load_torch_state_dict: reading {path!r} needs PyTorch (pip install torch); or save the "
                          "state_dict with safetensors.torch.save_file and load the .safetensors file") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:  # weights_only refuses any pickled object other than tensors and containers
        raise fail(path, f"the file holds pickled Python objects, not only tensors ({str(e).splitlines()[0][:200]})",
                   "shendu never unpickles them (loading could run code); save just the tensors with "
                   "torch.save(model.state_dict(), path) or safetensors.torch.save_file") from None
    except (RuntimeError, EOFError, ValueError, OSError) as e:
        raise fail(path, f"not a readable PyTorch file ({type(e).__name__}: {str(e)[:200]})",
                   "the file is truncated or corrupt") from None
    if not isinstance(state, Mapping):
        raise ValueError(f"load_torch_state_dict: {path!r} holds a {type(state).__name__}, not a state_dict; save "
                         "it with torch.save(model.state_dict(), path)")
    return {str(k): _to_numpy(v) for k, v in state.items()}


def group_state_dict(state: dict[str, np.ndarray]) -> list[Group]:
    """One group per module, in first-appearance order; each layer of a multi-layer RNN is its own group."""
    groups: dict[str, Group] = {}
    for key, value in state.items():
        prefix, _, leaf = key.rpartition(".")
        match = _RNN_KEY.match(leaf)
        if match:
            layer_index, reverse = match.group(2), match.group(3) or ""
            group_key = f"{prefix}.l{layer_index}" if prefix else f"l{layer_index}"
            leaf = match.group(1) + reverse
        else:
            group_key = prefix
        groups.setdefault(group_key, Group(group_key)).arrays[leaf] = value
    return list(groups.values())


# ---------------------------------------------------------------------------- converters
def _need(group: Group, *names: str) -> list[np.ndarray]:
    missing = [n for n in names if n not in group.arrays]
    if missing:
        raise Incompatible(f"no {', '.join(missing)}")
    return [group.arrays[n] for n in names]


def _only(group: Group, allowed: set[str]) -> None:
    extra = set(group.arrays) - allowed
    if extra:
        raise Incompatible(f"unexpected {sorted(extra)}")


def _flatten_input_shape(model: Any, layer: Any) -> tuple | None:
    """The (H, W, C) shape flattened just before ``layer`` by a channels_last Flatten, else None."""
    graph = getattr(model, "_graph", None) if hasattr(model, "layers") else None
    flatten = None
    if graph is not None:
        for node, _ in graph.plan:
            if node.layer is layer and node.parents:
                flatten = node.parents[0].node.layer
                break
    else:
        layers = leaf_layers(model)
        index = next((i for i, candidate in enumerate(layers) if candidate is layer), 0)
        flatten = layers[index - 1] if index > 0 else None
    if type(flatten).__name__ != "Flatten" or getattr(flatten, "data_format", None) != "channels_last":
        return None
    shape = getattr(flatten, "_build_input_shape", None)
    if not isinstance(shape, tuple) or len(shape) < 3 or any(d is None for d in shape[1:]):
        return None
    return tuple(shape[1:])


def _dense(layer: Any, group: Group, model: Any) -> list[np.ndarray]:
    _only(group, {"weight", "bias"})
    (weight,) = _need(group, "weight")
    if weight.ndim != 2:
        raise Incompatible(f"weight is {weight.ndim}-D, a Linear weight is 2-D")
    kernel = weight.T
    spatial = _flatten_input_shape(model, layer)
    if spatial is not None and kernel.shape[0] == int(np.prod(spatial)):
        # PyTorch flattened (C, H, W); shendu flattens (H, W, C)
        channels, sizes = spatial[-1], spatial[:-1]
        kernel = np.moveaxis(kernel.reshape(channels, *sizes, -1), 0, -2).reshape(kernel.shape)
    return _with_bias(layer, group, [kernel])


def _with_bias(layer: Any, group: Group, arrays: list[np.ndarray]) -> list[np.ndarray]:
    has_bias = getattr(layer, "bias", None) is not None
    if has_bias != ("bias" in group.arrays):
        raise Incompatible("bias present in one model only (use_bias differs)")
    return arrays + ([group.arrays["bias"]] if has_bias else [])


def _conv(layer: Any, group: Group, model: Any) -> list[np.ndarray]:
    _only(group, {"weight", "bias"})
    (weight,) = _need(group, "weight")
    kind = type(layer).__name__
    if weight.ndim != layer.rank + 2:
        raise Incompatible(f"weight is {weight.ndim}-D, {kind} needs a {layer.rank + 2}-D one")
    if kind == "DepthwiseConv2D":  # (C*M, 1, KH, KW) -> (KH, KW, C, M)
        channels = layer.kernel.shape[2]
        if weight.shape[1] != 1 or weight.shape[0] % channels:
            raise Incompatible(f"weight {weight.shape} is not a depthwise (groups={channels}) kernel")
        kernel = weight.reshape(channels, -1, *weight.shape[2:]).transpose(2, 3, 0, 1)
    else:  # (O, I, *K) -> (*K, I, O); ConvTranspose's (I, O, *K) -> (*K, O, I) is the same permutation
        kernel = weight.transpose(*range(2, weight.ndim), 1, 0)
    return _with_bias(layer, group, [kernel])


def _batch_norm(layer: Any, group: Group, model: Any) -> list[np.ndarray]:
    _only(group, {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"})
    mean, var = _need(group, "running_mean", "running_var")
    affine = [group.arrays[n] for n, used in (("weight", layer.scale), ("bias", layer.center)) if used]
    if len(affine) != sum(n in group.arrays for n in ("weight", "bias")):
        raise Incompatible("affine weights present in one model only (center/scale differ from affine)")
    return [*affine, mean, var]


def _layer_norm(layer: Any, group: Group, model: Any) -> list[np.ndarray]:
    _only(group, {"weight", "bias"})
    if "running_mean" in group.arrays:
        raise Incompatible("a BatchNorm, not a LayerNorm")
    arrays = [group.arrays[n] for n, used in (("weight", layer.scale), ("bias", layer.center)) if used]
    if len(arrays) != len(group.arrays):
        raise Incompatible("weight/bias present in one model only (center/scale differ from elementwise_affine)")
    return arrays


def _embedding(layer: Any, group: Group, model: Any) -> list[np.ndarray]:
    _only(group, {"weight"})
    return _need(group, "weight")


def _rnn_direction(layer: Any, group: Group, suffix: str) -> list[np.ndarray]:
    kind = type(layer).__name__
    w_ih, w_hh = _need(group, "weight_ih" + suffix, "weight_hh" + suffix)
    gates = _RNN_GATES[kind]
    if w_hh.shape[0] != gates * w_hh.shape[1]:
        raise Incompatible(f"weight_hh {w_hh.shape} is not a {kind} ({gates} gate blocks)")
    names = ("bias_ih" + suffix, "bias_hh" + suffix)
    biases = _need(group, *names) if layer.use_bias else []
    if not layer.use_bias and any(n in group.arrays for n in names):
        raise Incompatible("bias present in one model only")
    if kind == "GRU":
        if not layer.reset_after:
            raise Incompatible("PyTorch's GRU matches GRU(reset_after=True) only")
        units = w_hh.shape[1]
        order = np.r_[units:2 * units, 0:units, 2 * units:3 * units]  # (r, z, n) -> (z, r, n)
        w_ih, w_hh = w_ih[order], w_hh[order]
        bias = [np.stack([b[order] for b in biases])] if biases else []
    else:
        bias = [biases[0] + biases[1]] if biases else []
    return [w_ih.T, w_hh.T, *bias]


def _rnn(layer: Any, group: Group, model: Any) -> list[np.ndarray]:
    if any(k.endswith("_reverse") for k in group.arrays):
        raise Incompatible("a bidirectional RNN (load it into Bidirectional)")
    _only(group, {"weight_ih", "weight_hh", "bias_ih", "bias_hh"})
    return _rnn_direction(layer, group, "")


def _bidirectional(layer: Any, group: Group, model: Any) -> list[np.ndarray]:
    if not any(k.endswith("_reverse") for k in group.arrays):
        raise Incompatible("not a bidirectional RNN")
    return (_rnn_direction(layer.forward_layer, group, "")
            + _rnn_direction(layer.backward_layer, group, "_reverse"))


_CONVERTERS = {"Dense": _dense, "Conv1D": _conv, "Conv2D": _conv, "DepthwiseConv2D": _conv,
               "Conv2DTranspose": _conv, "BatchNormalization": _batch_norm, "LayerNormalization": _layer_norm,
               "Embedding": _embedding, "LSTM": _rnn, "GRU": _rnn, "SimpleRNN": _rnn, "Bidirectional": _bidirectional}


def _convert(model: Any):
    def convert(layer: Any, group: Group) -> list[np.ndarray]:
        kind = type(layer).__name__
        if kind == "TimeDistributed":
            layer, kind = layer.layer, type(layer.layer).__name__
        converter = _CONVERTERS.get(kind)
        if converter is None:
            raise Incompatible(f"no PyTorch converter for {kind} (known: {', '.join(_CONVERTERS)})")
        return converter(layer, group, model)

    return convert


def load_torch_state_dict(model: Any, source: Any, strict: bool = True,
                          mapping: dict[str, str] | None = None) -> dict[str, str]:
    """Load a PyTorch state_dict (path, dict or Module) into ``model``; returns {shendu layer: torch module}.

    ``mapping`` pairs layers with modules by hand ({'dense_1': 'classifier.2'}); ``strict=False`` ignores
    modules the shendu model lacks. Raises ``ValueError`` naming the layer and the shapes when nothing fits.
    """
    groups = group_state_dict(read_state_dict(source))
    where = source if isinstance(source, (str, os.PathLike)) else "a PyTorch state_dict"
    return load_groups(model, groups, _convert(model), f"{where}", strict, mapping,
                       ignore=lambda g: set(g.arrays) <= {"num_batches_tracked"})
