"""Safe saving and exact resume: ``model.save("model.shendu")``, ``load_model``, ``save_weights``/``load_weights``.

A ``.shendu`` file is one zip (see docs/saving-format.md and :mod:`shendu.saving.format`): JSON for the
architecture, the compile arguments, the optimiser's hyper-parameters and the training state (epoch, step,
every RNG state, the history, optionally a DataLoader's order), and safetensors for every array. Nothing is
pickled and no code is stored, so loading a file cannot run code; hostile or damaged files raise
:class:`FormatError`. Writes are atomic (temporary file, fsync, ``os.replace``; see :mod:`shendu.utils.atomic`).

A small file cannot claim large memory: the sizes a file declares are checked against a bound scaled to its
size before anything is decompressed, and rebuilding the architecture may not build more weights than the file
stores (:mod:`shendu.saving.budget`). ``load_model(path, max_bytes=...)`` / ``load_weights(..., max_bytes=...)``
raise the bound for a genuinely huge model. Each model class writes and reads its own config
(``get_config``/``from_config``); this package holds the container, the weights and the training state.

Exact resume, as in Keras: the user passes ``initial_epoch``::

    model.fit(x, y, epochs=2); model.save("run.shendu")
    model = load_model("run.shendu")                       # also restores the random generators
    model.fit(x, y, epochs=4, initial_epoch=read_training_state("run.shendu")["epoch"])

gives bit-identical weights to ``fit(x, y, epochs=4)`` in one go (on CPU).
"""

from __future__ import annotations

import datetime
import os
import random as py_random
import warnings
from typing import Any

import numpy as np

from shendu import backend, interop
from shendu import random as shendu_random
from shendu.saving.budget import weight_budget
from shendu.saving.format import (
    FORMAT_NAME,
    FORMAT_VERSION,
    READABLE_VERSIONS,
    FormatError,
    decode_arrays,
    decode_json,
    detect_format,
    encode_arrays,
    encode_json,
    fail,
    read_container,
    write_container,
)
from shendu.saving.serialization import (
    NotSerializable,
    compile_from_config,
    deserialize_keras_object,
    deserialize_model,
    model_from_json,
    model_to_json,
    register_serializable,
    serialize_compile,
    serialize_keras_object,
    serialize_model,
)
from shendu.utils.atomic import atomic_write
from shendu.utils.custom_objects import (
    CustomObjectScope,
    custom_object_scope,
    get_custom_objects,
    get_registered_name,
    get_registered_object,
    register_keras_serializable,
)
from shendu.utils.weights_io import load_arrays, save_arrays
from shendu.version import __version__

__all__ = ["CustomObjectScope", "FormatError", "NotSerializable", "atomic_write", "custom_object_scope",
           "deserialize_keras_object", "detect_format", "get_custom_objects", "get_registered_name",
           "get_registered_object", "load_model", "load_model_and_training_state", "load_weights", "model_from_json",
           "model_to_json", "read_training_state", "register_keras_serializable", "register_serializable", "restore",
           "save_model", "save_weights", "serialize_compile", "serialize_keras_object"]

WEIGHT_FORMATS = (".safetensors", ".npz")
#: the suffix of Keras 3's weights files, which save_weights writes through h5py
KERAS_WEIGHTS = ".weights.h5"
#: suffixes of other frameworks' files: ``save`` refuses them rather than write a .shendu zip under that name
FOREIGN_SUFFIXES = {".h5": "Keras HDF5", ".hdf5": "HDF5", ".pt": "PyTorch", ".pth": "PyTorch",
                    ".onnx": "ONNX", ".pkl": "pickle", ".pickle": "pickle", ".tflite": "TensorFlow Lite"}
#: Keras 3's model suffix: Keras programs save and reload under it (``model.save("m.keras")`` then
#: ``load_model("m.keras")``), so ``save`` writes shendu's format under that name and says so (loading reads the
#: format from the bytes); Keras itself cannot read such a file
KERAS_MODEL = ".keras"


# ---------------------------------------------------------------------------- weights
def weight_arrays(model: Any) -> dict[str, np.ndarray]:
    """The model's weights keyed ``"0003/dense_1/bias"`` (position in ``model.weights``, then the weight's path)."""
    return {f"{i:04d}/{p.name or 'weight'}": np.asarray(backend.to_numpy(p.data)) for i, p in enumerate(model.weights)}


def assign_weights(path: Any, model: Any, arrays: dict[str, np.ndarray], strict_dtype: bool = True) -> None:
    """Set ``model``'s weights from :func:`weight_arrays`-style keys, after checking count, shapes and dtypes."""
    params = model.weights
    by_index: dict[int, np.ndarray] = {}
    for key, array in arrays.items():
        head = key.split("/", 1)[0]
        if not (head.isdigit() and len(head) == 4) or int(head) in by_index:
            raise fail(path, f"weight name {key!r} does not start with a unique 4-digit position")
        by_index[int(head)] = array
    if sorted(by_index) != list(range(len(params))):
        raise fail(path, f"the file holds {len(arrays)} weights, model '{model.name}' has {len(params)}",
                   "was it saved from another architecture?")
    for i, p in enumerate(params):
        array = by_index[i]
        if tuple(array.shape) != tuple(p.shape):
            raise fail(path, f"weight {i} ({p.name}) has shape {tuple(array.shape)} in the file, the model expects "
                       f"{tuple(p.shape)}", "was it saved from another architecture?")
        if strict_dtype and np.dtype(array.dtype) != np.dtype(p.dtype):
            raise fail(path, f"weight {i} ({p.name}) has dtype {array.dtype} in the file, the model expects "
                       f"{np.dtype(p.dtype)}", "build the model with the same dtype")
        if array.dtype.kind not in "fiub":
            raise fail(path, f"weight {i} ({p.name}) has a non-numeric dtype {array.dtype}")
    model.set_weights([by_index[i] for i in range(len(params))])


def save_weights(model: Any, path: str | os.PathLike, overwrite: bool = True) -> None:
    """Write the weights to ``.safetensors``, ``.npz`` or Keras 3's ``.weights.h5`` (through h5py; Keras itself
    loads it into the equivalent Keras model, see :func:`shendu.interop.save_keras_weights`), atomically."""
    path = os.fspath(path)
    if not path.endswith((*WEIGHT_FORMATS, KERAS_WEIGHTS)):
        raise ValueError(f"save_weights: {path!r} must end with one of {WEIGHT_FORMATS} or {KERAS_WEIGHTS!r} (e.g. "
                         "'model.weights.safetensors', or 'model.weights.h5' for Keras's format); use "
                         "model.save('model.shendu') for the whole model")
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"save_weights: {path} exists; pass overwrite=True to replace it")
    if not model.built:
        raise ValueError(f"save_weights: model '{model.name}' is not built yet, so it has no weights; call it on "
                         "data or build(input_shape) first")
    if path.endswith(KERAS_WEIGHTS):
        atomic_write(path, lambda tmp: interop.save_keras_weights(model, tmp))
        return
    save_arrays(path, weight_arrays(model))


def load_weights(model: Any, path: str | os.PathLike, max_bytes: int | None = None) -> None:
    """Load weights into a built model from a ``.safetensors``, ``.npz`` or whole-model ``.shendu`` file, or from
    a Keras (``.h5``/``.keras``) or PyTorch (``.pt``/``.pth``) file through :mod:`shendu.interop`.

    The format is read from the file's first bytes (:func:`detect_format`), never from its name. ``max_bytes``
    raises the bound on what the file may declare (default :func:`shendu.utils.weights_io.byte_limit`).
    """
    path = os.fspath(path)
    kind = detect_format(path)
    if kind in ("hdf5", "keras"):
        interop.load_keras_weights(model, path)
        return
    if kind in ("torch", "pickle"):
        interop.load_torch_state_dict(model, path)
        return
    if kind == "unknown":
        raise fail(path, "not a weights file shendu can read (its first bytes match none of .shendu, .safetensors, "
                   ".npz, Keras .h5/.keras or PyTorch .pt)", "is the file complete, and is it a weights file?")
    if not model.built:
        raise ValueError(f"load_weights: model '{model.name}' is not built yet; call it on data or build(input_shape)"
                         " first, so it has weights to load into")
    if kind == "shendu":
        arrays = decode_arrays(path, "weights.safetensors", read_container(path, max_bytes)["weights.safetensors"])
    else:
        arrays = load_arrays(path, max_bytes)
    assign_weights(path, model, arrays)


# ---------------------------------------------------------------------------- training state
def _rng_states() -> dict[str, Any]:
    legacy = np.random.get_state()
    version, internal, gauss = py_random.getstate()
    return {"shendu": shendu_random.get_state(),
            "numpy_legacy": [legacy[0], legacy[1].tolist(), int(legacy[2]), int(legacy[3]), float(legacy[4])],
            "python": [version, list(internal), gauss]}


def _restore_rng(path: Any, states: Any) -> None:
    try:
        shendu_random.set_state(states["shendu"])
        name, keys, pos, has_gauss, cached = states["numpy_legacy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
        version, internal, gauss = states["python"]
        py_random.setstate((version, tuple(internal), gauss))
    except (KeyError, TypeError, ValueError, OverflowError) as e:
        raise fail(path, f"training.json: invalid random-generator state ({type(e).__name__}: {str(e)[:200]})"
                   ) from None


def _training_state(model: Any, data_loader: Any, epoch: int | None) -> dict[str, Any]:
    history = getattr(model, "history", None)
    epochs = list(getattr(history, "epoch", []) or [])
    if epoch is None:
        epoch = epochs[-1] + 1 if epochs else 0
    state = {"epoch": int(epoch),
             "iterations": int(getattr(model.optimizer, "iterations", 0)) if model.optimizer is not None else 0,
             "rng": _rng_states(),
             "history": {"epoch": epochs, "history": dict(getattr(history, "history", {}) or {})}}
    if data_loader is not None:
        state["data_loader"] = data_loader.state_dict()
    return state


# ---------------------------------------------------------------------------- whole models
def save_model(model: Any, path: str | os.PathLike, overwrite: bool = True, include_optimizer: bool = True,
               data_loader: Any = None, epoch: int | None = None) -> None:
    """Write ``model`` as one ``.shendu`` zip, atomically (see the module docstring).

    ``data_loader``: a ``shendu.data.DataLoader`` whose order state (epoch, permutation, generator) is stored too.
    ``epoch``: the number of completed epochs to record (default: from ``model.history``; callbacks that save
    during ``fit`` pass it, since History records an epoch only after the other callbacks have seen it).
    """
    path = os.fspath(path)
    if path.endswith((*WEIGHT_FORMATS, KERAS_WEIGHTS)):
        raise ValueError(f"save: {path!r} names a weights file; use model.save_weights for it, or a name ending "
                         "in '.shendu' for the whole model")
    suffix = os.path.splitext(path)[1].lower()
    if suffix in FOREIGN_SUFFIXES:
        raise ValueError(f"save: {path!r} ends in {suffix!r}, the suffix of {FOREIGN_SUFFIXES[suffix]} files, but "
                         "shendu writes its own safe format (a zip of JSON and safetensors); name the file "
                         f"{os.path.splitext(os.path.basename(path))[0] + '.shendu'!r}. Keras and PyTorch weights "
                         "can be read with model.load_weights (and save_weights writes Keras's .weights.h5)")
    if suffix == KERAS_MODEL:
        warnings.warn(f"save: {path!r} is written in shendu's own format (a zip of JSON and safetensors), not Keras's "
                      ".keras format: shendu.models.load_model reads it back, Keras cannot. For Keras, save the "
                      "weights with model.save_weights('...weights.h5')", UserWarning, stacklevel=3)
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"save: {path} exists; pass overwrite=True to replace it")
    if not model.built:
        raise ValueError(f"save: model '{model.name}' is not built yet; call it on data or build(input_shape) first")
    architecture = serialize_model(model)
    if architecture["config"] is None:
        warnings.warn(f"save: {architecture.get('reason')}; {path} will hold the weights (and training state) "
                      "only: rebuild the model in code and call load_weights", stacklevel=3)
    compile_config = None
    if getattr(model, "compiled", False) and model.optimizer is not None:
        try:
            compile_config = model.get_compile_config()
        except NotSerializable as e:
            warnings.warn(f"save: the compile arguments are not stored ({e}); compile the loaded model yourself",
                          stacklevel=3)
    entries = {
        "meta.json": encode_json({"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
                                  "shendu_version": __version__, "numpy_version": np.__version__,
                                  "created": datetime.datetime.now(datetime.timezone.utc).isoformat()}),
        "config.json": encode_json({"model": architecture, "compile": compile_config}),
        "weights.safetensors": encode_arrays(weight_arrays(model)),
    }
    optimizer = getattr(model, "optimizer", None)
    if include_optimizer and optimizer is not None and hasattr(optimizer, "state_dict"):
        state = optimizer.state_dict()
        slots = [list(slot) for slot in state["state"]]
        entries["optimizer.json"] = encode_json({"class_name": type(optimizer).__name__, "config": state["config"],
                                                 "iterations": state["iterations"],
                                                 "param_groups": state["param_groups"], "slots": slots})
        entries["optimizer.safetensors"] = encode_arrays({f"{i:04d}/{key}": np.asarray(value)
                                                          for i, slot in enumerate(state["state"])
                                                          for key, value in slot.items()})
    entries["training.json"] = encode_json(_training_state(model, data_loader, epoch), indent=None)
    write_container(path, entries)


def _read_meta(path: Any, entries: dict[str, bytes]) -> dict[str, Any]:
    meta = decode_json(path, "meta.json", entries["meta.json"])
    if meta.get("format") != FORMAT_NAME:
        raise fail(path, f"meta.json names format {meta.get('format')!r}, expected {FORMAT_NAME!r}",
                   "this is not a shendu model file")
    version = meta.get("format_version")
    if version not in READABLE_VERSIONS or type(version) is not int:
        raise fail(path, f"unknown format version {version!r} (this shendu reads {list(READABLE_VERSIONS)})",
                   "the file was written by a newer shendu: upgrade shendu to load it")
    return meta


def read_training_state(path: str | os.PathLike, max_bytes: int | None = None) -> dict[str, Any]:
    """The training state stored in a ``.shendu`` file: ``epoch`` (epochs completed: pass it as ``initial_epoch``),
    ``iterations``, ``rng``, ``history`` and, if saved, ``data_loader``. ``{}`` when the file has none."""
    entries = read_container(path, max_bytes)
    _read_meta(path, entries)
    if "training.json" not in entries:
        return {}
    return _check_training(path, decode_json(path, "training.json", entries["training.json"]))


def _check_training(path: Any, state: dict[str, Any]) -> dict[str, Any]:
    for key in ("epoch", "iterations"):
        if type(state.get(key)) is not int or state[key] < 0:
            raise fail(path, f"training.json: {key!r} must be a non-negative int, got {state.get(key)!r}")
    if not isinstance(state.get("rng"), dict) or not isinstance(state.get("history", {}), dict):
        raise fail(path, "training.json: 'rng' and 'history' must be objects")
    return state


def _load_optimizer(path: Any, optimizer: Any, entries: dict[str, bytes]) -> None:
    document = decode_json(path, "optimizer.json", entries["optimizer.json"])
    arrays = decode_arrays(path, "optimizer.safetensors", entries["optimizer.safetensors"])
    slots = document.get("slots")
    if document.get("class_name") != type(optimizer).__name__:
        raise fail(path, f"optimizer.json is for {document.get('class_name')!r}, the model is compiled with "
                   f"{type(optimizer).__name__}")
    if not isinstance(slots, list) or not all(isinstance(s, list) and all(isinstance(k, str) for k in s)
                                              for s in slots):
        raise fail(path, "optimizer.json: 'slots' must be a list of lists of names")
    expected = {f"{i:04d}/{key}" for i, slot in enumerate(slots) for key in slot}
    if set(arrays) != expected:
        raise fail(path, "optimizer.safetensors does not hold exactly the slots optimizer.json lists")
    state = {"config": document.get("config"), "iterations": document.get("iterations"),
             "param_groups": document.get("param_groups", []),
             "state": [{key: arrays[f"{i:04d}/{key}"] for key in slot} for i, slot in enumerate(slots)]}
    if type(state["iterations"]) is not int or not isinstance(state["config"], dict) or not isinstance(
            state["param_groups"], list):
        raise fail(path, "optimizer.json: malformed 'config', 'iterations' or 'param_groups'")
    try:
        optimizer.load_state_dict(state)
    except (ValueError, TypeError, KeyError) as e:
        raise fail(path, f"the optimizer state does not fit ({type(e).__name__}: {str(e)[:300]})") from None


def load_model_and_training_state(path: str | os.PathLike, compile: bool = True,  # noqa: A002 (Keras's name)
                                  custom_objects: dict[str, type] | None = None, data_loader: Any = None,
                                  max_bytes: int | None = None) -> tuple[Any, dict[str, Any]]:
    """:func:`load_model`, also returning the training state it restored (``{}`` when none or not compiled)."""
    entries = read_container(path, max_bytes)
    _read_meta(path, entries)
    config = decode_json(path, "config.json", entries["config.json"])
    weights = decode_arrays(path, "weights.safetensors", entries["weights.safetensors"])
    stored = sum(int(a.size) for a in weights.values())
    with weight_budget(path, sum(int(a.nbytes) for a in weights.values())):
        model = deserialize_model(path, config.get("model"), custom_objects, max(4096, stored), stored)
    assign_weights(path, model, weights)
    training: dict[str, Any] = {}
    if compile and config.get("compile") is not None:
        compile_from_config(path, model, config["compile"], custom_objects)
        training = _restore_training(path, model, entries, data_loader)
    elif data_loader is not None:
        _restore_loader(path, entries, data_loader)
    return model, training


def load_model(path: str | os.PathLike, compile: bool = True,  # noqa: A002 (Keras's name)
               custom_objects: dict[str, type] | None = None, data_loader: Any = None,
               max_bytes: int | None = None) -> Any:
    """Rebuild the model saved by ``model.save(path)``, with its weights.

    ``compile=True`` also compiles it as it was (optimizer, loss, metrics), restores the optimiser's state and
    the random generators (shendu's, NumPy's legacy one and Python's), so that
    ``fit(..., initial_epoch=read_training_state(path)["epoch"])`` continues the run exactly
    (``shendu.models.load_model`` also restores ``model.history``). ``custom_objects`` maps class names to your own
    Layer/Model/Loss/Metric classes (or register them with :func:`register_serializable`). ``data_loader``: a
    DataLoader to restore the stored data order into. ``max_bytes``: the most bytes the file may declare
    (default: scaled to its size, :func:`shendu.utils.weights_io.byte_limit`); raise it for a huge model.
    Raises :class:`FormatError` for damaged, unknown-version or hostile files.
    """
    return load_model_and_training_state(path, compile, custom_objects, data_loader, max_bytes)[0]


def _restore_training(path: Any, model: Any, entries: dict[str, bytes], data_loader: Any) -> dict[str, Any]:
    """Optimiser state, random generators, History and the DataLoader's order, from the file's entries."""
    if "optimizer.json" in entries and getattr(model, "optimizer", None) is not None:
        _load_optimizer(path, model.optimizer, entries)
    training = _restore_loader(path, entries, data_loader)
    if training:
        _restore_rng(path, training["rng"])
        _restore_history(model, training.get("history", {}))
    return training


def _restore_loader(path: Any, entries: dict[str, bytes], data_loader: Any) -> dict[str, Any]:
    if "training.json" not in entries:
        return {}
    training = _check_training(path, decode_json(path, "training.json", entries["training.json"]))
    if data_loader is not None and training.get("data_loader") is not None:
        data_loader.load_state_dict(training["data_loader"])
    return training


def restore(model: Any, path: str | os.PathLike, data_loader: Any = None,
            max_bytes: int | None = None) -> dict[str, Any]:
    """Resume into an existing (built, compiled or PyTorch-style) model: load the weights, the optimiser state
    (into ``model.optimizer`` when it has one), the random generators, the History (into ``model.history`` when
    it has one) and the data order; return the training state (``epoch``, ``iterations``, ``history``, ...)."""
    entries = read_container(path, max_bytes)
    _read_meta(path, entries)
    assign_weights(path, model, decode_arrays(path, "weights.safetensors", entries["weights.safetensors"]))
    return _restore_training(path, model, entries, data_loader)


def _restore_history(model: Any, saved: dict[str, Any]) -> None:
    """Refill the model's existing History, if it has one (``shendu.models.load_model`` gives a freshly loaded
    model a new History: ``History`` lives in ``shendu.callbacks``, which ranks above this package)."""
    history = getattr(model, "history", None)
    if history is not None and hasattr(history, "history") and hasattr(history, "epoch"):
        history.history = dict(saved.get("history", {}))
        history.epoch = list(saved.get("epoch", []))
