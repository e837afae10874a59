"""Objects <-> JSON configs for saving: models, optimisers, losses and metrics. Never code, never pickle.

Each model class describes itself (``get_config``/``from_config``, as in Keras: ``Sequential`` lists its layers,
a functional ``Model`` its layers and the calls that connect them, a subclassed model its constructor
arguments); this module only wraps that config as ``{"class_name", "config", "build_input_shape"}`` and, before
anything is built from a file, checks it.

A config names a class; loading looks the name up among *known* classes only: shendu's own (classes defined
in a ``shendu.*`` module, found in ``shendu.layers.LAYER_REGISTRY``), those registered with
:func:`register_serializable`, and ``custom_objects`` passed to the loader. ``Lambda`` layers are refused
(their function is code).

How ``load_model`` finds ``Sequential`` and ``Model``: they register themselves in the layer registry when
``shendu.models`` is imported. ``saving`` ranks below ``models`` and never imports it in code; when a file names
one of shendu's model classes that is not registered yet (a fresh ``from shendu.saving import load_model``),
the loader imports the module that defines it *by name* (``importlib``, the table :data:`BUILTIN_MODELS`),
as Keras's deserialiser imports the module a config names. Nothing outside ``shendu`` is ever imported.
"""

from __future__ import annotations

import importlib
import inspect
import json
from typing import Any

import numpy as np

from shendu import activations, initializers, losses, metrics, optimizers, regularizers
from shendu.layers import LAYER_REGISTRY, Layer
from shendu.layers.registry import registered_name
from shendu.saving.budget import check_implied_weights
from shendu.saving.format import FormatError, fail
from shendu.utils.custom_objects import (
    custom_object_scope,
    get_registered_object,
    register_object,
    registered_name_of,
)

#: shendu's model classes (and the v1 alias "Functional") -> the module that defines and registers them
BUILTIN_MODELS = {"Sequential": "shendu.models", "Model": "shendu.models", "Functional": "shendu.models"}
#: config keys whose lists hold layer specs (Sequential's and a functional model's "layers")
_LAYER_LISTS = ("layers",)


class NotSerializable(ValueError):
    """An object that has no config (a Lambda, a custom function or an unregistered class)."""


def register_serializable(cls: type) -> type:
    """Class decorator: allow ``load_model`` to rebuild this (Layer, Model, Loss or Metric) class by name.

    It registers the class in the one registry of custom objects (:mod:`shendu.utils.custom_objects`, also filled by
    Keras's ``register_keras_serializable``) under its class name, or, for a layer named like one of shendu's
    own, under its ``'module>Name'`` key (a built-in is never replaced).

    >>> from shendu.layers import Layer
    >>> @register_serializable
    ... class DocTwice(Layer):
    ...     def call(self, x):
    ...         return x * 2
    >>> known_class("DocTwice", None) is DocTwice
    True
    """
    name = registered_name(cls) if isinstance(cls, type) and issubclass(cls, Layer) else cls.__name__
    return register_object(cls, name)


def known_class(name: Any, custom_objects: dict[str, type] | None) -> type | None:
    """The class for ``name`` from ``custom_objects``, the registered classes (and open ``custom_object_scope``s)
    or shendu's own layers and models; else None."""
    if not isinstance(name, str):
        return None
    found = get_registered_object(name, custom_objects)
    if isinstance(found, type):
        return found
    if name in BUILTIN_MODELS:
        name = "Model" if name == "Functional" else name
        if name not in LAYER_REGISTRY:
            importlib.import_module(BUILTIN_MODELS[name])  # registers Sequential/Model (see the module docstring)
    cls = LAYER_REGISTRY.get(name)
    if cls is not None and cls.__module__.startswith("shendu."):
        return cls
    return None


# ---------------------------------------------------------------------------- saving
def _refuse_lambdas(spec: Any) -> None:
    if isinstance(spec, dict):
        if spec.get("class_name") == "Lambda":
            name = spec.get("config", {}).get("name") if isinstance(spec.get("config"), dict) else None
            raise NotSerializable(f"layer {name!r} is a Lambda layer: its function is code, which shendu never "
                                  "stores; write a Layer subclass (with get_config) instead")
        for value in spec.values():
            _refuse_lambdas(value)
    elif isinstance(spec, list):
        for value in spec:
            _refuse_lambdas(value)


def serialize_model(model: Any) -> dict[str, Any]:
    """The architecture of ``model``: ``{"class_name", "config", "build_input_shape"}`` from the model's own
    ``get_config``; ``config`` is None (with a ``reason``) for a model that cannot be described (subclassed
    without usable get_config, Lambda layers)."""
    try:
        shape = model.input_shape
    except (AttributeError, ValueError):
        shape = None
    spec: dict[str, Any] = {"class_name": type(model).__name__, "config": None,
                            "build_input_shape": _shape_to_json(shape)}
    try:
        config = model.get_config()
        _refuse_lambdas(config)
        spec["config"] = config
        if _plain_functional(model, config):
            spec["class_name"] = "Functional"
    except NotSerializable as e:
        spec["reason"] = str(e)
    except (NotImplementedError, TypeError, ValueError) as e:
        spec["reason"] = (f"model '{model.name}' ({type(model).__name__}) has no usable get_config ({e}); define "
                          "get_config()/from_config() and register the class with shendu.saving.register_serializable")
    return spec


def _plain_functional(model: Any, config: Any) -> bool:
    """A functional model whose class adds nothing to Model's config: stored as "Functional" (as format version 1
    always did), so it loads as a plain Model without naming its class."""
    base = known_class("Model", None)
    cls = type(model)
    return (base is not None and isinstance(config, dict) and "calls" in config and "input_layers" in config
            and cls.get_config is base.get_config and cls.from_config.__func__ is base.from_config.__func__)


def _shape_to_json(shape: Any) -> Any:
    if isinstance(shape, tuple):
        return [None if d is None else int(d) for d in shape]
    if isinstance(shape, list):
        return [_shape_to_json(s) for s in shape]
    return None


def serialize_identifier(value: Any, what: str) -> Any:
    """A loss/metric identifier as JSON: names stay names, built-in functions become their names, built-in
    Loss/Metric objects become ``{"class_name", "config"}``; lists and dicts recursively."""

    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return [serialize_identifier(v, what) for v in value]
    if isinstance(value, dict):
        return {str(k): serialize_identifier(v, what) for k, v in value.items()}
    for module, base in ((losses, losses.Loss), (metrics, metrics.Metric)):
        registry = module._CLASSES
        if isinstance(value, type) and registry.get(value.__name__) is value:
            return value.__name__
        if isinstance(value, base) and registry.get(type(value).__name__) is type(value):
            return {"class_name": type(value).__name__, "config": value.get_config()}
        if isinstance(value, base) and registered_name_of(type(value)) is not None:
            return {"class_name": registered_name_of(type(value)), "config": value.get_config()}
        if callable(value) and module._FUNCTIONS.get(getattr(value, "__name__", None)) is value:
            return value.__name__
    if (isinstance(value, type) or callable(value)) and registered_name_of(value) is not None:
        return registered_name_of(value)  # a registered Loss/Metric class or function
    raise NotSerializable(f"the {what} {value!r} is not a built-in or registered one, so it cannot be stored")


def serialize_compile(optimizer: Any, loss: Any, loss_weights: Any, metrics: Any,
                      weighted_metrics: Any) -> dict[str, Any]:
    """What ``compile`` was given, as JSON (``Model.get_compile_config`` calls this); raises
    :class:`NotSerializable` for a loss or metric that is neither built in nor registered."""

    return {"optimizer": optimizers.serialize(optimizer),
            "loss": serialize_identifier(loss, "loss"),
            "loss_weights": loss_weights,
            "metrics": serialize_identifier(metrics, "metric"),
            "weighted_metrics": serialize_identifier(weighted_metrics, "metric")}


# ---------------------------------------------------------------------------- loading
def _check_ints(path: Any, value: Any, limit: int, where: str) -> None:
    """Reject integers above ``limit`` in a layer config (a hostile size would allocate before any check)."""
    if isinstance(value, dict):
        for k, v in value.items():
            if k != "seed":
                _check_ints(path, v, limit, where)
    elif isinstance(value, list):
        for v in value:
            _check_ints(path, v, limit, where)
    elif type(value) is int and value > limit:
        raise fail(path, f"{where}: the size {value} exceeds what the stored weights allow ({limit})",
                   "the config does not match the weights, or the file is hostile")


def _spec(path: Any, spec: Any, where: str) -> tuple[str, dict[str, Any]]:
    if (not isinstance(spec, dict) or not isinstance(spec.get("class_name"), str)
            or not isinstance(spec.get("config"), dict)):
        raise fail(path, f"{where}: expected {{'class_name': str, 'config': object}}, got {str(spec)[:100]}")
    return spec["class_name"], spec["config"]


def check_layer_spec(path: Any, spec: Any, custom_objects: dict[str, type] | None, limit: int,
                     kind: str = "layer") -> type:
    """Check one layer (or nested model) spec from a file before anything is built from it, and the layer specs
    it lists: known classes only, no Lambda, no size above ``limit``. Returns the class."""
    name, config = _spec(path, spec, "layer")
    if name == "Lambda":
        raise fail(path, f"layer {config.get('name')!r} is a Lambda layer, which shendu never loads (it would be "
                   "code)", "rebuild the model in Python and use load_weights")
    cls = known_class(name, custom_objects)
    if cls is None or not (isinstance(cls, type) and issubclass(cls, Layer)):
        raise fail(path, f"unknown {kind} class {name!r}", "only shendu's layers and classes registered with "
                   f"shendu.saving.register_serializable (or passed as custom_objects={{'{name}': {name}}}) are "
                   "loaded")
    for key, value in config.items():
        if key in _LAYER_LISTS and isinstance(value, list):
            for child in value:
                check_layer_spec(path, child, custom_objects, limit)
        else:
            _check_ints(path, value, limit, f"layer {config.get('name')!r} ({name})")
    return cls


def _from_config(cls: type, config: dict[str, Any], custom_objects: dict[str, type] | None) -> Any:
    """``cls.from_config(config)``, passing ``custom_objects`` when it takes them (shendu's models do)."""
    if "custom_objects" in inspect.signature(cls.from_config).parameters:
        return cls.from_config(config, custom_objects=custom_objects)
    return cls.from_config(config)


def deserialize_model(path: Any, spec: Any, custom_objects: dict[str, type] | None, limit: int,
                      stored_weights: int | None = None) -> Any:
    """Rebuild a model from :func:`serialize_model`'s dict (built, weights freshly initialised), after
    :func:`check_layer_spec` has checked the whole config and, given the number of ``stored_weights``,
    :func:`shendu.saving.budget.check_implied_weights` that it does not imply more."""
    if isinstance(spec, dict) and spec.get("config") is None:
        raise fail(path, f"the file stores weights only, no architecture: {spec.get('reason', 'no config')}",
                   "build the model in Python and call model.load_weights(path)")
    name, config = _spec(path, spec, "model")
    cls = check_layer_spec(path, spec, custom_objects, limit, kind="model")
    if stored_weights is not None:
        check_implied_weights(path, spec, stored_weights)
    shape = spec.get("build_input_shape")
    _check_ints(path, shape, limit, "model input shape")
    try:
        with custom_object_scope(custom_objects):  # activations and the like find your functions by name
            model = _from_config(cls, config, custom_objects)
        if not getattr(model, "built", True) and shape is not None:
            model.build(_json_to_shape(shape))
    except FormatError:
        raise
    except Exception as e:  # a config is data from the file: any failure to build from it is a format problem
        raise fail(path, f"model {name!r} cannot be rebuilt from its config ({type(e).__name__}: {str(e)[:300]})"
                   ) from None
    if not (isinstance(model, Layer) and hasattr(model, "compile")):
        raise fail(path, f"class {name!r} did not build a Model")
    return model


def _json_to_shape(shape: Any) -> Any:
    if isinstance(shape, list) and all(d is None or type(d) is int for d in shape):
        return tuple(shape)
    if isinstance(shape, list):
        return [_json_to_shape(s) for s in shape]
    raise ValueError(f"invalid shape {shape!r}")


def deserialize_identifier(path: Any, value: Any, custom_objects: dict[str, type] | None, kind: str) -> Any:
    """Undo :func:`serialize_identifier`: names stay names, ``{"class_name", "config"}`` become objects.

    ``kind`` is ``"loss"`` or ``"metric"``: the name is looked up among that kind's classes first, since a
    loss and a metric may share a class name (``MeanSquaredError``) but not their behaviour."""

    if value is None:
        return value
    if isinstance(value, str):  # a built-in name stays a name; a registered function or class becomes itself
        builtin = any(value in (m._FUNCTIONS, m._CLASSES, m._ALIASES)[i] for m in (losses, metrics) for i in range(3))
        found = None if builtin else get_registered_object(value, custom_objects)
        return value if found is None else found
    if isinstance(value, list):
        return [deserialize_identifier(path, v, custom_objects, kind) for v in value]
    if isinstance(value, dict) and "class_name" in value:
        name, config = _spec(path, value, "loss/metric")
        tables = (losses._CLASSES, metrics._CLASSES) if kind == "loss" else (metrics._CLASSES, losses._CLASSES)
        cls = get_registered_object(name, custom_objects) or tables[0].get(name) or tables[1].get(name)
        if cls is None:
            raise fail(path, f"unknown {kind} class {name!r}", "register it or pass custom_objects")
        return cls.from_config(config)
    if isinstance(value, dict):
        return {k: deserialize_identifier(path, v, custom_objects, kind) for k, v in value.items()}
    raise fail(path, f"invalid {kind} identifier {str(value)[:100]}")


def compile_from_config(path: Any, model: Any, config: Any, custom_objects: dict[str, type] | None) -> None:
    """``model.compile(...)`` with what :func:`serialize_compile` stored."""

    if not isinstance(config, dict) or not isinstance(config.get("optimizer"), dict):
        raise fail(path, "training config: 'optimizer' must be an object")
    try:
        optimizer = optimizers.deserialize(config["optimizer"], custom_objects)
        kwargs = {key: deserialize_identifier(path, config.get(key), custom_objects, kind)
                  for key, kind in (("loss", "loss"), ("metrics", "metric"), ("weighted_metrics", "metric"))}
        model.compile(optimizer=optimizer, loss_weights=config.get("loss_weights"), **kwargs)
    except FormatError:
        raise
    except Exception as e:
        raise fail(path, f"cannot compile the model from the stored training config ({type(e).__name__}: "
                   f"{str(e)[:300]})", "load with compile=False to get the bare model") from None



# ---------------------------------------------------------------------------- Keras 3's generic (de)serialisation
def serialize_keras_object(obj: Any) -> Any:
    """``obj`` as JSON in Keras 3's format: an object with ``get_config`` becomes ``{"module", "class_name",
    "config", "registered_name"}``, a function ``{"module": "builtins", "class_name": "function", "config": its
    registered name (or ``__name__``), "registered_name": "function"}``, an array ``{"class_name": "__numpy__",
    ...}``; plain values, lists and dicts are kept (their items serialised).

    >>> serialize_keras_object(activations.relu)["config"]
    'relu'
    """
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return {"class_name": "__numpy__", "config": {"value": obj.tolist(), "dtype": str(obj.dtype)}}
    if isinstance(obj, (list, tuple)):
        return type(obj)(serialize_keras_object(v) for v in obj)
    if isinstance(obj, dict):
        return {str(k): serialize_keras_object(v) for k, v in obj.items()}
    if not isinstance(obj, type) and hasattr(obj, "get_config"):
        cls = type(obj)
        registered = registered_name_of(cls)
        return {"module": None if registered is not None else cls.__module__, "class_name": cls.__name__,
                "config": obj.get_config(), "registered_name": registered}
    if callable(obj) and not isinstance(obj, type) and hasattr(obj, "__name__"):
        name = registered_name_of(obj) or _builtin_function_name(obj)
        if name is None:
            raise NotSerializable(f"the function {obj.__name__!r} is neither built in nor registered; decorate it "
                                  "with @shendu.saving.register_keras_serializable()")
        return {"module": "builtins", "class_name": "function", "config": name, "registered_name": "function"}
    raise NotSerializable(f"cannot serialise {obj!r}: it has no get_config() and is not a function")


def _builtin_function_name(fn: Any) -> str | None:
    """The name of one of shendu's activation, loss or metric functions, else None."""
    name = getattr(fn, "__name__", None)
    for table in (activations._BY_NAME, losses._FUNCTIONS, metrics._FUNCTIONS):
        if table.get(name) is fn:
            return name
    return None


def _builtin_class(name: str, module: Any) -> type | None:
    """One of shendu's classes named ``name`` (layers and models, losses, metrics, initializers, regularizers);
    ``module`` settles a name that is both a loss and a metric."""
    layer = known_class(name, None)
    if layer is not None:
        return layer
    tables = [losses._CLASSES, metrics._CLASSES]
    if isinstance(module, str) and "metrics" in module:
        tables.reverse()
    for table in (*tables, initializers._CLASSES, regularizers._CLASSES):
        if name in table:
            return table[name]
    return None


def deserialize_keras_object(config: Any, custom_objects: dict[str, Any] | None = None, safe_mode: bool = True,
                             **kwargs: Any) -> Any:
    """Undo :func:`serialize_keras_object` (Keras 3's ``deserialize_keras_object``): classes are looked up by
    ``registered_name`` then ``class_name`` among ``custom_objects``, the registered objects and shendu's own
    classes, and rebuilt with ``from_config`` inside ``custom_object_scope(custom_objects)``; a string that names a
    registered object becomes that object, any other string stays a string. Never imports modules named in the
    config; ``safe_mode`` is accepted for Keras compatibility (shendu never deserialises code)."""
    if config is None or isinstance(config, (bool, int, float)):
        return config
    if isinstance(config, str):
        found = get_registered_object(config, custom_objects)
        return config if found is None else found
    if isinstance(config, (list, tuple)):
        return type(config)(deserialize_keras_object(v, custom_objects) for v in config)
    if not isinstance(config, dict):
        raise TypeError(f"deserialize_keras_object: cannot read a {type(config).__name__}")
    if "class_name" not in config:
        return {k: deserialize_keras_object(v, custom_objects) for k, v in config.items()}
    name, inner = config["class_name"], config.get("config")
    if name == "__numpy__":
        return np.asarray(inner["value"], dtype=inner["dtype"])
    if name == "function":
        fn = get_registered_object(inner, custom_objects)
        if fn is None and isinstance(inner, str):
            fn = activations._BY_NAME.get(inner) or losses._FUNCTIONS.get(inner) or metrics._FUNCTIONS.get(inner)
        if fn is None:
            raise ValueError(f"deserialize_keras_object: unknown function {inner!r}; register it with "
                             "@shendu.saving.register_keras_serializable() or pass custom_objects")
        return fn
    cls = None
    for key in (config.get("registered_name"), name):
        if isinstance(key, str):
            found = get_registered_object(key, custom_objects)
            cls = found if isinstance(found, type) else None
        if cls is not None:
            break
    module = config.get("module")
    if cls is None and isinstance(name, str):
        cls = _builtin_class(name, module)
    if cls is None and isinstance(module, str) and "optimizers" in module:
        return optimizers.deserialize({"class_name": name, "config": inner, "module": module}, custom_objects)
    if cls is None:
        raise ValueError(f"deserialize_keras_object: unknown class {name!r}; register it with "
                         "@shendu.saving.register_keras_serializable() or pass custom_objects={'"
                         f"{name}': {name}}}")
    if not isinstance(inner, dict):
        raise ValueError(f"deserialize_keras_object: the config of {name!r} must be a dict, got {inner!r}")
    with custom_object_scope(custom_objects):
        return _from_config(cls, inner, custom_objects)


# ---------------------------------------------------------------------------- JSON architecture
def model_to_json(model: Any, **kwargs: Any) -> str:
    """The architecture of ``model`` as a JSON string (``Model.to_json``; weights are not included); ``kwargs``
    go to ``json.dumps`` (``indent=2``). Raises :class:`NotSerializable` for a model without a usable config."""
    spec = serialize_model(model)
    if spec["config"] is None:
        raise NotSerializable(spec.get("reason", f"model '{model.name}' has no config"))
    return json.dumps(spec, **kwargs)


def model_from_json(json_string: str, custom_objects: dict[str, Any] | None = None) -> Any:
    """A new model (fresh weights) from :func:`model_to_json`'s string, as ``keras.models.model_from_json``; your
    classes and functions by name in ``custom_objects`` (or registered). The same checks as a file's
    architecture: known classes only, no ``Lambda``."""
    try:
        spec = json.loads(json_string)
    except (TypeError, ValueError) as e:
        raise ValueError(f"model_from_json: not a JSON string ({e})") from None
    return deserialize_model("<json>", spec, custom_objects, limit=1 << 40)
