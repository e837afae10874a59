"""Objects <-> JSON configs for saving: layers, models (Sequential, functional, registered subclasses),
optimisers, losses and metrics. Never code, never pickle.

A config names a class; loading looks the name up among *known* classes only: shendu's own (classes defined
in a ``shendu.*`` module), those registered with :func:`register_serializable`, and ``custom_objects`` passed
to the loader. ``Lambda`` layers are refused (their function is code). A functional model is stored as its
layers plus the list of calls that connect them, each tensor referred to by its position in a flat table
(inputs first, then every call's outputs in order), so rebuilding it is a replay of those calls.
"""

from __future__ import annotations

from typing import Any

from shendu.layers.layer import LAYER_REGISTRY, InputLayer, Layer
from shendu.layers.symbolic import SymbolicTensor, flatten_structure
from shendu.saving.format import FormatError, fail

_REGISTERED: dict[str, type] = {}


class NotSerializable(ValueError):
    """An object that has no config (a Lambda, a custom function or an unregistered class)."""


def register_serializable(cls: type) -> type:
    """Class decorator: allow ``load_model`` to rebuild this (Layer, Model, Loss or Metric) class by name.

    >>> from shendu.layers import Layer
    >>> @register_serializable
    ... class DocTwice(Layer):
    ...     def call(self, x):
    ...         return x * 2
    >>> known_class("DocTwice", None) is DocTwice
    True
    """
    _REGISTERED[cls.__name__] = cls
    return cls


def known_class(name: Any, custom_objects: dict[str, type] | None) -> type | None:
    """The class for ``name`` from ``custom_objects``, the registered classes or shendu's own layers; else None."""
    if not isinstance(name, str):
        return None
    if custom_objects and name in custom_objects:
        return custom_objects[name]
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name in ("Model", "Functional", "Sequential"):
        from shendu.models import Model, Sequential

        return Sequential if name == "Sequential" else Model
    cls = LAYER_REGISTRY.get(name)
    if cls is not None and cls.__module__.startswith("shendu."):
        return cls
    return None


# ---------------------------------------------------------------------------- saving
def serialize_layer(layer: Layer) -> dict[str, Any]:
    """``{"class_name", "config"}`` of a layer (models recursively); raises NotSerializable where impossible."""
    from shendu.models import Model

    if isinstance(layer, Model):
        spec = serialize_model(layer)
        if spec.get("config") is None:
            raise NotSerializable(spec.get("reason", f"model '{layer.name}' has no config"))
        return spec
    if type(layer).__name__ == "Lambda":
        raise NotSerializable(f"layer '{layer.name}' is a Lambda layer: its function is code, which shendu never "
                              "stores; write a Layer subclass (with get_config) instead")
    try:
        config = layer.get_config()
    except (NotImplementedError, ValueError, TypeError) as e:
        raise NotSerializable(str(e)) from None
    return {"class_name": type(layer).__name__, "config": config}


def serialize_model(model: Any) -> dict[str, Any]:
    """The architecture of ``model``: ``{"class_name", "config", "build_input_shape"}``; ``config`` is None (with
    a ``reason``) for a model that cannot be described (subclassed without get_config, Lambda layers)."""
    from shendu.models import Sequential

    shape = model.__dict__.get("_build_input_shape")
    spec: dict[str, Any] = {"class_name": type(model).__name__, "config": None,
                            "build_input_shape": _shape_to_json(shape)}
    try:
        if isinstance(model, Sequential) and type(model).get_config is Sequential.get_config:
            layers = [serialize_layer(layer) for layer in model.layers]
            spec["config"] = {**model.get_config(), "layers": layers}
        elif model._graph is not None and type(model).get_config is Layer.get_config:
            spec["class_name"] = "Functional"
            spec["config"] = _serialize_graph(model)
        else:
            spec["config"] = model.get_config()
    except NotSerializable as e:
        spec["reason"] = str(e)
    except (NotImplementedError, TypeError, ValueError) as e:
        spec["reason"] = (f"model '{model.name}' ({type(model).__name__}) has no usable get_config ({e}); define "
                          "get_config()/from_config() and register the class with shendu.saving.register_serializable")
    return spec


def _shape_to_json(shape: Any) -> Any:
    if isinstance(shape, tuple):
        return [None if d is None else int(d) for d in shape]
    if isinstance(shape, list):
        return [_shape_to_json(s) for s in shape]
    return None


def _serialize_graph(model: Any) -> dict[str, Any]:
    graph = model._graph
    table: dict[int, int] = {id(t): i for i, t in enumerate(graph.input_list)}

    def encode(value: Any) -> Any:
        if isinstance(value, SymbolicTensor):
            if id(value) not in table:
                raise NotSerializable(f"model '{model.name}': a call uses a tensor from outside the graph")
            return {"__tensor__": table[id(value)]}
        if isinstance(value, (list, tuple)):
            return [encode(v) for v in value]
        if isinstance(value, dict):
            return {str(k): encode(v) for k, v in value.items()}
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        raise NotSerializable(f"model '{model.name}': a layer call takes a {type(value).__name__} argument, which "
                              "cannot be stored as JSON")

    calls = []
    for node, outputs in graph.plan:
        calls.append({"layer": node.layer.name, "inputs": encode(node.inputs), "args": encode(list(node.args)),
                      "kwargs": encode(node.kwargs), "outputs": len(outputs)})
        for sym in outputs:
            table[id(sym)] = len(table)
    return {"name": model.name, "layers": [serialize_layer(layer) for layer in graph.layers],
            "input_layers": [t.node.layer.name for t in graph.input_list],
            "inputs": encode(graph.inputs), "calls": calls, "outputs": encode(graph.outputs)}


def serialize_identifier(value: Any, what: str) -> Any:
    """A loss/metric identifier as JSON: names stay names, built-in functions become their names, built-in
    Loss/Metric objects become ``{"class_name", "config"}``; lists and dicts recursively."""
    from shendu import losses, metrics

    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return [serialize_identifier(v, what) for v in value]
    if isinstance(value, dict):
        return {str(k): serialize_identifier(v, what) for k, v in value.items()}
    for module, base in ((losses, losses.Loss), (metrics, metrics.Metric)):
        registry = {**module._CLASSES, **{k: c for k, c in _REGISTERED.items() if issubclass(c, base)}}
        if isinstance(value, type) and registry.get(value.__name__) is value:
            return value.__name__
        if isinstance(value, base) and registry.get(type(value).__name__) is type(value):
            return {"class_name": type(value).__name__, "config": value.get_config()}
        if callable(value) and module._FUNCTIONS.get(getattr(value, "__name__", None)) is value:
            return value.__name__
    raise NotSerializable(f"the {what} {value!r} is not a built-in or registered one, so it cannot be stored")


def serialize_compile(model: Any) -> dict[str, Any] | None:
    """What ``compile`` was given, as JSON (None when something in it is not serialisable)."""
    from shendu import optimizers

    state = model._train
    metrics, weighted = state.metric_identifiers
    return {"optimizer": optimizers.serialize(model.optimizer),
            "loss": serialize_identifier(state.loss_identifier, "loss"),
            "loss_weights": state.loss_weights,
            "metrics": serialize_identifier(metrics, "metric"),
            "weighted_metrics": serialize_identifier(weighted, "metric")}


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


def deserialize_layer(path: Any, spec: Any, custom_objects: dict[str, type] | None, limit: int) -> Layer:
    """Rebuild one layer (or nested model) from ``{"class_name", "config"}``, known classes only."""
    name, config = _spec(path, spec, "layer")
    if name in ("Sequential", "Functional", "Model") or _is_model_class(known_class(name, custom_objects)):
        return deserialize_model(path, spec, custom_objects, limit)
    if name == "Lambda":
        raise fail(path, f"layer {config.get('name')!r} is a Lambda layer, which shendu never loads (it would be "
                   "code)", "rebuild the model in Python and use load_weights")
    cls = known_class(name, custom_objects)
    if cls is None or not (isinstance(cls, type) and issubclass(cls, Layer)):
        raise fail(path, f"unknown layer class {name!r}", "only shendu's layers and classes registered with "
                   "shendu.saving.register_serializable (or passed as custom_objects) are loaded")
    _check_ints(path, config, limit, f"layer {config.get('name')!r} ({name})")
    try:
        return cls.from_config(config)
    except FormatError:
        raise
    except Exception as e:  # a config is data from the file: any failure to build from it is a format problem
        raise fail(path, f"layer {config.get('name')!r} ({name}) cannot be built from its config "
                   f"({type(e).__name__}: {str(e)[:300]})") from None


def _is_model_class(cls: Any) -> bool:
    from shendu.models import Model

    return isinstance(cls, type) and issubclass(cls, Model)


def deserialize_model(path: Any, spec: Any, custom_objects: dict[str, type] | None, limit: int) -> Any:
    """Rebuild a model from :func:`serialize_model`'s dict (built, weights freshly initialised)."""
    from shendu.layers import Input
    from shendu.models import Model, Sequential

    if isinstance(spec, dict) and spec.get("config") is None:
        raise fail(path, f"the file stores weights only, no architecture: {spec.get('reason', 'no config')}",
                   "build the model in Python and call model.load_weights(path)")
    name, config = _spec(path, spec, "model")
    try:
        if name == "Sequential":
            model = Sequential(name=config.get("name"))
            layers = config.get("layers")
            if not isinstance(layers, list):
                raise fail(path, "Sequential config: 'layers' must be a list")
            shape = config.get("batch_input_shape")
            if shape is not None:
                _check_ints(path, shape, limit, "Sequential input shape")
                model.add(Input(batch_shape=tuple(shape)), rebuild=False)
            for layer_spec in layers:
                model.add(deserialize_layer(path, layer_spec, custom_objects, limit), rebuild=False)
            model._maybe_build()
        elif name in ("Functional", "Model"):
            model = _deserialize_graph(path, config, custom_objects, limit)
        else:
            cls = known_class(name, custom_objects)
            if not _is_model_class(cls):
                raise fail(path, f"unknown model class {name!r}", "register it with shendu.saving."
                           f"register_serializable or pass custom_objects={{'{name}': {name}}}")
            _check_ints(path, config, limit, f"model {name}")
            model = cls.from_config(config)
        shape = spec.get("build_input_shape")
        if not model.built and shape is not None:
            _check_ints(path, shape, limit, "model input shape")
            model.build(_json_to_shape(shape))
    except FormatError:
        raise
    except Exception as e:
        raise fail(path, f"model {name!r} cannot be rebuilt from its config ({type(e).__name__}: {str(e)[:300]})"
                   ) from None
    if not isinstance(model, Model):
        raise fail(path, f"class {name!r} did not build a Model")
    return model


def _json_to_shape(shape: Any) -> Any:
    if isinstance(shape, list) and all(d is None or type(d) is int for d in shape):
        return tuple(shape)
    if isinstance(shape, list):
        return [_json_to_shape(s) for s in shape]
    raise ValueError(f"invalid shape {shape!r}")


def _deserialize_graph(path: Any, config: dict[str, Any], custom_objects: dict[str, type] | None,
                       limit: int) -> Any:
    from shendu.models import Model

    layer_specs, calls = config.get("layers"), config.get("calls")
    input_names = config.get("input_layers")
    if not (isinstance(layer_specs, list) and isinstance(calls, list) and isinstance(input_names, list)):
        raise fail(path, "functional config: 'layers', 'calls' and 'input_layers' must be lists")
    layers: dict[str, Layer] = {}
    for layer_spec in layer_specs:
        layer = deserialize_layer(path, layer_spec, custom_objects, limit)
        if layer.name in layers:
            raise fail(path, f"functional config: two layers are named {layer.name!r}")
        layers[layer.name] = layer

    def layer_named(name: Any) -> Layer:
        if not isinstance(name, str) or name not in layers:
            raise fail(path, f"functional config refers to an unknown layer {name!r}")
        return layers[name]

    table: list[SymbolicTensor] = []
    for name in input_names:
        layer = layer_named(name)
        if not isinstance(layer, InputLayer):
            raise fail(path, f"functional config: input {name!r} is not an InputLayer")
        table.append(layer.output)

    def decode(value: Any) -> Any:
        if isinstance(value, dict) and "__tensor__" in value:
            index = value["__tensor__"]
            if type(index) is not int or not 0 <= index < len(table) or len(value) != 1:
                raise fail(path, f"functional config refers to tensor {index!r}, which does not exist (yet)")
            return table[index]
        if isinstance(value, list):
            return [decode(v) for v in value]
        if isinstance(value, dict):
            return {k: decode(v) for k, v in value.items()}
        return value

    for call in calls:
        if not isinstance(call, dict) or not isinstance(call.get("args", []), list) or not isinstance(
                call.get("kwargs", {}), dict):
            raise fail(path, f"functional config: malformed call {str(call)[:100]}")
        layer = layer_named(call.get("layer"))
        outputs = flatten_structure(layer(decode(call.get("inputs")), *decode(call.get("args", [])),
                                          **decode(call.get("kwargs", {}))))
        if len(outputs) != call.get("outputs"):
            raise fail(path, f"functional config: layer {layer.name!r} gave {len(outputs)} outputs, the file says "
                       f"{call.get('outputs')!r}")
        table.extend(outputs)
    return Model(inputs=decode(config.get("inputs")), outputs=decode(config.get("outputs")), name=config.get("name"))


def deserialize_identifier(path: Any, value: Any, custom_objects: dict[str, type] | None) -> Any:
    """Undo :func:`serialize_identifier`: names stay names, ``{"class_name", "config"}`` become objects."""
    from shendu import losses, metrics

    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):
        return [deserialize_identifier(path, v, custom_objects) for v in value]
    if isinstance(value, dict) and "class_name" in value:
        name, config = _spec(path, value, "loss/metric")
        cls = (custom_objects or {}).get(name) or _REGISTERED.get(name) or losses._CLASSES.get(name) \
            or metrics._CLASSES.get(name)
        if cls is None:
            raise fail(path, f"unknown loss/metric class {name!r}", "register it or pass custom_objects")
        return cls.from_config(config)
    if isinstance(value, dict):
        return {k: deserialize_identifier(path, v, custom_objects) for k, v in value.items()}
    raise fail(path, f"invalid loss/metric identifier {str(value)[:100]}")


def compile_from_config(path: Any, model: Any, config: Any, custom_objects: dict[str, type] | None) -> None:
    """``model.compile(...)`` with what :func:`serialize_compile` stored."""
    from shendu import optimizers

    if not isinstance(config, dict) or not isinstance(config.get("optimizer"), dict):
        raise fail(path, "training config: 'optimizer' must be an object")
    try:
        optimizer = optimizers.deserialize(config["optimizer"], custom_objects)
        kwargs = {key: deserialize_identifier(path, config.get(key), custom_objects)
                  for key in ("loss", "metrics", "weighted_metrics")}
        model.compile(optimizer=optimizer, loss_weights=config.get("loss_weights"), **kwargs)
    except FormatError:
        raise
    except Exception as e:
        raise fail(path, f"cannot compile the model from the stored training config ({type(e).__name__}: "
                   f"{str(e)[:300]})", "load with compile=False to get the bare model") from None

