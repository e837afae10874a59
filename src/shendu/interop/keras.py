"""Load Keras weights (``.weights.h5``, ``.keras``, and legacy Keras 2 ``.h5``) into the equivalent shendu model, and
write a shendu model's weights as Keras 3's ``.weights.h5`` (:func:`save_keras_weights`).

shendu's layers use Keras's weight layouts (Dense kernel (in, out), Conv kernels HWIO, LSTM gates i, f, c, o,
GRU z, r, h with the (2, 3*units) bias of ``reset_after``, BatchNormalization gamma, beta, moving_mean,
moving_variance), so loading is matching, not converting. Files are read with ``h5py`` (datasets only: a
``.keras`` archive's ``config.json`` is never executed, only its ``model.weights.h5`` is read).

Keras 3 stores a layer's variables under ``layers/<class name>[_n]/vars/<i>`` (an LSTM's under ``.../cell/vars``,
a Bidirectional's under ``forward_layer/`` and ``backward_layer/``, a nested model's under ``layers/<model>/layers/``,
a subclassed model's layer attributes under ``<attribute>/`` and its lists under ``<attribute>/<class name>[_n]``)
with the layer's name as an attribute; Keras 2 files list ``layer_names`` and each layer's ``weight_names``. Each
Keras layer becomes one group (nested models are flattened, as shendu's layers are), matched to the shendu
layers in order (a layer with the same name is preferred; see :mod:`shendu.interop._common`).
"""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
from typing import Any

import numpy as np

from shendu.interop._common import Group, Incompatible, load_groups
from shendu.naming import snake_case

_MAX_WEIGHTS_BYTES = 1 << 34  # 16 GiB: a .keras archive declaring more is refused


def _h5py() -> Any:
    try:
        import h5py
    except ImportError:
        raise ImportError("loading Keras weights needs h5py: pip install h5py") from None
    return h5py


def _vars(group: Any) -> list[np.ndarray]:
    """The arrays of a Keras 3 ``vars`` group, in index order."""
    if "vars" not in group:
        return []
    variables = group["vars"]
    return [np.asarray(variables[k]) for k in sorted(variables, key=int)]


_SUBLAYER_ORDER = ("cell", "forward_layer", "backward_layer", "layer",
                   "query_dense", "key_dense", "value_dense", "output_dense")  # MultiHeadAttention: q, k, v, o


def _collect(group: Any) -> list[np.ndarray]:
    """A Keras 3 layer's arrays: its own vars, then its sublayers' (cell; forward then backward layer)."""
    arrays = _vars(group)
    subgroups = [k for k in group if k not in ("vars", "layers")]
    for key in sorted(subgroups, key=lambda k: (_SUBLAYER_ORDER.index(k) if k in _SUBLAYER_ORDER else 9, k)):
        arrays += _collect(group[key])
    return arrays


def _keras3_groups(root: Any, prefix: str = "") -> list[Group]:
    """One group per layer (nested models flattened), in the order Keras walks a model: a subclassed model's
    layer attributes (``<attribute>/vars``) sorted by name around its ``layers/`` list, whose entries go in
    Keras's naming order. The optimiser's state is skipped."""
    entries: list[tuple[str, str, Any, str | None]] = []  # (attribute, path, group, kind)
    for key in root:
        child = root[key]
        if key in ("vars", "optimizer") or not hasattr(child, "keys"):
            continue
        if key == "layers" or not ("vars" in child or "layers" in child):  # a list of layers: '<attr>/<class>_n'
            entries += [(key, f"{key}/{item}", child[item], re.sub(r"_\d+$", "", item))
                        for item in sorted(child, key=_keras_order)
                        if hasattr(child[item], "keys") and ("vars" in child[item] or "layers" in child[item])]
        else:
            entries.append((key, key, child, None))
    entries.sort(key=lambda e: e[0])  # attributes by name, as Keras walks them; stable within a list
    groups = []
    for _, path, layer, kind in entries:
        if "layers" in layer:  # a nested model
            groups += _keras3_groups(layer, f"{prefix}{path}/")
            continue
        name = layer["vars"].attrs.get("name") if "vars" in layer else None
        arrays = _collect(layer)
        groups.append(Group(f"{prefix}{path}", {str(i): a for i, a in enumerate(arrays)},
                            name=_text(name), kind=kind))
    return groups


def _keras_order(key: str) -> tuple:
    """'dense' < 'dense_1' < 'dense_2' < 'dense_10' (Keras's counters, compared as numbers)."""
    match = re.match(r"^(.*?)(?:_(\d+))?$", key)
    return (match.group(1), int(match.group(2) or 0))


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def _legacy_nested_models(root: Any) -> set[str] | None:
    """Names of the nested models in a Keras 2 full-model file (from its JSON config), None without one."""
    config = root.attrs.get("model_config")
    if config is None:
        return None
    try:
        layers = json.loads(_text(config))["config"]["layers"]
    except (ValueError, KeyError, TypeError):
        return None
    return {layer["config"]["name"] for layer in layers if layer.get("class_name") in _MODEL_CLASSES}


_MODEL_CLASSES = ("Sequential", "Functional", "Model")


def _legacy_groups(root: Any) -> list[Group]:
    """Keras 2 HDF5: ``layer_names`` in model order, each with its ``weight_names``; a nested model's weights
    ('sequential_1/dense_2/kernel') are split into one group per inner layer."""
    nested = _legacy_nested_models(root)
    if "model_weights" in root:
        root = root["model_weights"]
    groups = []
    for name in (_text(n) for n in root.attrs["layer_names"]):
        layer = root[name]
        weights = [(_text(w), np.asarray(layer[_text(w)])) for w in layer.attrs.get("weight_names", [])]
        is_model = name in nested if nested is not None else name.startswith(("sequential", "functional", "model"))
        if not is_model:
            groups.append(Group(name, {str(i): a for i, (_, a) in enumerate(weights)}, name=name))
            continue
        inner: dict[str, Group] = {}
        for weight_name, array in weights:
            parts = weight_name.split("/")
            sub = parts[1] if len(parts) > 2 else parts[0]
            group = inner.setdefault(sub, Group(f"{name}/{sub}", name=sub))
            group.arrays[str(len(group.arrays))] = array
        groups.extend(inner.values())
    return groups


def read_keras_weights(path: str | os.PathLike) -> list[Group]:
    """The weight groups of a ``.weights.h5``, ``.keras`` or legacy ``.h5`` file, one per Keras layer."""
    h5py = _h5py()
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load_keras_weights: no file at {path!r}")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            try:
                info = archive.getinfo("model.weights.h5")
            except KeyError:
                raise ValueError(f"load_keras_weights: {path!r} is a zip archive without model.weights.h5; is it a "
                                 ".keras file?") from None
            if info.file_size > _MAX_WEIGHTS_BYTES:
                raise ValueError(f"load_keras_weights: {path!r} declares a {info.file_size}-byte weights file; "
                                 "refusing it")
            source: Any = io.BytesIO(archive.read(info))
    else:
        source = path
    try:
        with h5py.File(source, "r") as root:
            if "layer_names" in root.attrs or "model_weights" in root:
                return _legacy_groups(root)
            return _keras3_groups(root)
    except OSError as e:
        raise ValueError(f"load_keras_weights: {path!r} is not an HDF5 weights file ({e})") from None


def _same(layer: Any, group: Group) -> list[np.ndarray]:
    if group.kind is not None and group.name != layer.name and not _kinds_agree(layer, group.kind):
        raise Incompatible(f"a Keras {group.kind} layer")
    arrays = list(group.arrays.values())
    if type(layer).__name__ == "Normalization" and len(arrays) == 3 and arrays[2].ndim == 0:
        arrays = arrays[:2]  # Keras 3 keeps a scalar 'count' after mean and variance, for old files only
    return arrays


def _kinds_agree(layer: Any, kind: str) -> bool:
    ours = snake_case(type(layer).__name__)
    return kind in (ours, ours.replace("1_d", "1d").replace("2_d", "2d"))


def load_keras_weights(model: Any, path: str | os.PathLike, strict: bool = True,
                       mapping: dict[str, str] | None = None) -> dict[str, str]:
    """Load a Keras weights file into ``model``; returns {shendu layer name: Keras layer path}.

    ``path`` is a ``.weights.h5`` (``model.save_weights``), a ``.keras`` archive (``model.save``) or a Keras 2
    ``.h5``. ``mapping`` pairs layers by hand ({'dense_1': 'layers/dense_2'}); ``strict=False`` ignores Keras
    layers the shendu model lacks.
    """
    groups = read_keras_weights(path)
    return load_groups(model, groups, _same, f"Keras file {os.fspath(path)!r}", strict, mapping)


# ---------------------------------------------------------------------------- writing .weights.h5
def keras_snake_case(name: str) -> str:
    """Keras's ``to_snake_case``: the group name of a layer class in a ``.weights.h5`` file ('Conv2D' -> 'conv2d',
    'SimpleRNN' -> 'simple_rnn')."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _is_model(layer: Any) -> bool:
    return hasattr(layer, "compile") and hasattr(layer, "layers")


def _children(layer: Any) -> list[tuple[str, Any]]:
    """(attribute, layer or list of layers) in the order Keras walks them (``sorted(dir(obj))``): a Sequential's
    or functional model's ``layers``; a subclassed model's layer attributes and ``layers``; a layer's layer
    attributes."""
    sequential = _is_model(layer) and hasattr(layer, "add") and hasattr(layer, "pop")
    if sequential or (_is_model(layer) and getattr(layer, "inputs", None) is not None):
        return [("layers", [lyr for lyr in layer.layers if not (sequential and _is_input(lyr))])]
    out: list[tuple[str, Any]] = []
    tracked = layer.__dict__.get("_tracked", {})
    for name in tracked:
        value = layer.__dict__.get(name)
        if name.startswith("_") and _is_model(layer):
            continue
        if _is_layer(value) or (isinstance(value, (list, tuple, dict)) and any(map(_is_layer, _values(value)))):
            out.append((name, value))
    if _is_model(layer):
        out.append(("layers", list(layer.layers)))
    return sorted(out, key=lambda item: item[0])


def _values(container: Any) -> list[Any]:
    return list(container.values()) if isinstance(container, dict) else list(container)


def _is_layer(value: Any) -> bool:
    return hasattr(value, "_own_params") and hasattr(value, "weights")


def _is_input(layer: Any) -> bool:
    return type(layer).__name__ == "InputLayer"


def _write_vars(group: Any, name: str, arrays: list[np.ndarray]) -> None:
    variables = group.create_group("vars")
    variables.attrs["name"] = name
    for i, array in enumerate(arrays):
        variables.create_dataset(str(i), data=array)


def _write_layer(layer: Any, group: Any, visited: set[int]) -> None:
    """One layer at ``group``, as Keras 3's ``_save_state`` writes it."""
    visited.add(id(layer))
    own = [np.asarray(p.numpy()) for p in layer._own_params()]
    if type(layer).__name__ in _RNN_CLASSES and not _children(layer):  # Keras keeps an RNN's weights in its cell
        _write_vars(group, layer.name, [])
        _write_vars(group.create_group("cell"), f"{keras_snake_case(type(layer).__name__)}_cell", own)
        return
    if type(layer).__name__ == "MultiHeadAttention" and own:  # Keras: four EinsumDense sublayers, q, k, v, o
        _write_vars(group, layer.name, [])
        per = len(own) // 4  # kernel, and bias when use_bias
        for i, (key, name) in enumerate(_MHA_PARTS):
            _write_vars(group.create_group(key), name, own[i * per:(i + 1) * per])
        for key, name in (("_softmax", "softmax"), ("_dropout_layer", "dropout")):
            _write_vars(group.create_group(key), name, [])
        return
    _write_vars(group, layer.name, own)
    for attribute, child in _children(layer):
        if _is_layer(child):
            if id(child) not in visited:
                _write_layer(child, group.create_group(attribute), visited)
            continue
        used: dict[str, int] = {}
        container = group.require_group(attribute) if any(id(c) not in visited for c in _values(child)
                                                          if _is_layer(c)) else None
        for item in _values(child):
            if not _is_layer(item):
                continue
            key = keras_snake_case(type(item).__name__)
            if key in used:
                used[key] += 1
                key = f"{key}_{used[key]}"
            else:
                used[key] = 0
            if id(item) not in visited and container is not None:
                _write_layer(item, container.create_group(key), visited)


_RNN_CLASSES = ("LSTM", "GRU", "SimpleRNN")
_MHA_PARTS = (("query_dense", "query"), ("key_dense", "key"), ("value_dense", "value"),
              ("output_dense", "attention_output"))


def save_keras_weights(model: Any, path: str | os.PathLike) -> None:
    """Write ``model``'s weights as Keras 3's ``.weights.h5`` (what ``keras_model.save_weights`` writes), so Keras
    itself can ``load_weights`` the file into the equivalent Keras model and shendu reads it back.

    Layers are stored under ``layers/<snake_case class name>[_n]/vars/<i>`` (counters per class, in layer order;
    an RNN's weights in its ``cell``; a nested model's layers under its own ``layers/``; other sublayers under
    their attribute names), each ``vars`` group with the layer's name as attribute. The optimiser's state is not
    written. Needs h5py; writes ``path`` directly (use :func:`shendu.utils.atomic.atomic_write` for atomicity).
    """
    h5py = _h5py()
    with h5py.File(os.fspath(path), "w") as root:
        _write_layer(model, root, set())
