"""Executing a functional graph: ``Model(inputs, outputs)`` built from ``Input`` and layer calls.

Every SymbolicTensor remembers the call that made it (``t.node``: layer, inputs, kwargs; see
``shendu.layers.layer``). :class:`FunctionalGraph` walks these records from the outputs back to the
inputs once, orders the calls topologically (iteratively, no recursion) and, on real data, replays them
in that order, feeding each call the values of the tensors it consumed. Shared layers appear once in
``layers`` and once per call in the plan.

A functional model's config (:func:`graph_config`, :func:`graph_from_config`) is its layers plus the list of
calls that connect them, each tensor referred to by its position in a flat table (inputs first, then every
call's outputs in order), so rebuilding it is a replay of those calls.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from shendu.autograd.tensor import Tensor
from shendu.layers import InputLayer, Layer, SymbolicTensor, get_layer_class, serialize
from shendu.models.data_adapter import flatten, map_structure


def _node_outputs(node: Any) -> list[SymbolicTensor]:
    """The SymbolicTensors a node produced (a layer keeps one output structure per call)."""
    layer = node.layer
    if isinstance(layer, InputLayer):
        return [layer.output]
    for n, outs in zip(layer.inbound_nodes, layer._symbolic_outputs):
        if n is node:
            return flatten(outs)
    raise RuntimeError(f"functional graph: layer '{layer.name}' lost the record of one of its calls")


class FunctionalGraph:
    """The calls between ``inputs`` and ``outputs`` in execution order, and the layers they use."""

    def __init__(self, inputs: Any, outputs: Any) -> None:
        self.inputs = inputs
        self.outputs = outputs
        self.input_list: list[SymbolicTensor] = flatten(inputs)
        self.output_list: list[SymbolicTensor] = flatten(outputs)
        for what, tensors in (("inputs", self.input_list), ("outputs", self.output_list)):
            if not tensors:
                raise ValueError(f"Model({what}=...): give at least one SymbolicTensor")
            for t in tensors:
                if not isinstance(t, SymbolicTensor):
                    raise TypeError(f"Model({what}=...): expected SymbolicTensors (from shendu.layers.Input and "
                                    f"layer calls), got {type(t).__name__}")
        for t in self.input_list:
            if not isinstance(t.node.layer, InputLayer):
                raise ValueError(f"Model(inputs=...): {t} is not an Input; inputs must come from "
                                 "shendu.layers.Input(shape=...)")
        self.nodes = self._topological_nodes()
        self.plan = [(node, _node_outputs(node)) for node in self.nodes]
        layers: list[Layer] = [t.node.layer for t in self.input_list]
        seen = {id(layer) for layer in layers}
        for node in self.nodes:
            if id(node.layer) not in seen:
                seen.add(id(node.layer))
                layers.append(node.layer)
        self.layers = layers
        self.input_names = [t.node.layer.name for t in self.input_list]
        self.output_names = _unique([t.node.layer.name for t in self.output_list])

    def _topological_nodes(self) -> list[Any]:
        """Depth-first post-order from the outputs (an explicit stack), stopping at the inputs."""
        input_ids = {id(t) for t in self.input_list}
        order: list[Any] = []
        done: set[int] = set()
        on_path: set[int] = set()
        stack: list[tuple[Any, bool]] = [(t.node, False) for t in reversed(self.output_list)]
        while stack:
            node, expanded = stack.pop()
            if id(node) in done:
                continue
            if expanded:
                on_path.discard(id(node))
                done.add(id(node))
                order.append(node)
                continue
            if isinstance(node.layer, InputLayer):
                if not any(id(t) in input_ids for t in _node_outputs(node)):
                    raise ValueError(f"Model: the outputs depend on Input '{node.layer.name}', which is not in "
                                     "inputs; add it to Model(inputs=[...])")
                done.add(id(node))
                continue
            on_path.add(id(node))
            stack.append((node, True))
            for parent in reversed(node.parents):
                if id(parent) in input_ids:
                    continue
                if id(parent.node) in on_path:
                    raise ValueError("Model: the graph has a cycle")
                stack.append((parent.node, False))
        return order

    def run(self, inputs: Any, training: bool | None = None) -> Any:
        """Replay the graph on real inputs (matched to the Inputs by position, or by name for a dict)."""
        values: dict[int, Any] = {}
        for sym, value in zip(self.input_list, self._match_inputs(inputs)):
            values[id(sym)] = value
        for node, outputs in self.plan:
            result = node.replay(values, training)
            if len(outputs) == 1 and isinstance(result, Tensor):
                values[id(outputs[0])] = result
            else:
                for sym, value in zip(outputs, flatten(result)):
                    values[id(sym)] = value
        return map_structure(lambda t: values[id(t)], self.outputs)

    def _match_inputs(self, inputs: Any) -> list[Any]:
        n = len(self.input_list)
        if isinstance(inputs, dict):
            missing = [name for name in self.input_names if name not in inputs]
            if missing:
                raise ValueError(f"model inputs: the dict has no entry for input(s) {missing}; its keys are "
                                 f"{sorted(inputs)} and the model's inputs are {self.input_names}")
            return [inputs[name] for name in self.input_names]
        listed = isinstance(inputs, (list, tuple)) and (n > 1 or len(inputs) == 1)
        given = list(inputs) if listed else [inputs]
        if len(given) != n:
            raise ValueError(f"the model has {n} inputs {self.input_names} but received {len(given)}; pass a list "
                             "in that order or a dict keyed by input name")
        return given


def _unique(names: list[str]) -> list[str]:
    out: list[str] = []
    for name in names:
        candidate, k = name, 1
        while candidate in out:
            candidate, k = f"{name}_{k}", k + 1
        out.append(candidate)
    return out


# ---------------------------------------------------------------------------- config
def deserialize_layer(spec: dict[str, Any], custom_objects: dict[str, type] | None = None) -> Layer:
    """A layer (or nested model) from ``{"class_name", "config"}``; ``custom_objects`` reach nested models.

    ``"Functional"`` (how format version 1 named a functional model) means ``Model``.
    """
    name = "Model" if spec["class_name"] == "Functional" else spec["class_name"]
    cls = get_layer_class(name, custom_objects)
    if cls is None:
        raise ValueError(f"unknown layer class {name!r}; pass it in custom_objects={{'{name}': {name}}}")
    if "custom_objects" in inspect.signature(cls.from_config).parameters:
        return cls.from_config(spec["config"], custom_objects=custom_objects)
    return cls.from_config(spec["config"])


def graph_config(graph: FunctionalGraph, name: str) -> dict[str, Any]:
    """The JSON config of a functional model: its layers, its inputs and every call in execution order."""
    table: dict[int, int] = {id(t): i for i, t in enumerate(graph.input_list)}

    def encode(value: Any) -> Any:
        if isinstance(value, SymbolicTensor):
            if id(value) not in table:
                raise ValueError(f"model '{name}': a call uses a tensor from outside the graph")
            return {"__tensor__": table[id(value)]}
        if isinstance(value, (list, tuple)):
            return [encode(v) for v in value]
        if isinstance(value, dict):
            return {str(k): encode(v) for k, v in value.items()}
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        raise ValueError(f"model '{name}': a layer call takes a {type(value).__name__} argument, which cannot be "
                         "stored as JSON")

    calls = []
    for node, outputs in graph.plan:
        calls.append({"layer": node.layer.name, "inputs": encode(node.inputs), "args": encode(list(node.args)),
                      "kwargs": encode(node.kwargs), "outputs": len(outputs)})
        for sym in outputs:
            table[id(sym)] = len(table)
    return {"name": name, "layers": [_layer_spec(layer) for layer in graph.layers],
            "input_layers": [t.node.layer.name for t in graph.input_list],
            "inputs": encode(graph.inputs), "calls": calls, "outputs": encode(graph.outputs)}


def _layer_spec(layer: Layer) -> dict[str, Any]:
    """``{"class_name", "config"}``, plus ``"name"`` when the layer's ``get_config`` leaves its name out (Keras
    tolerates that; the calls refer to layers by name)."""
    spec = serialize(layer)
    if not isinstance(spec["config"], dict) or spec["config"].get("name") != layer.name:
        spec["name"] = layer.name
    return spec


def is_graph_config(config: Any) -> bool:
    """Whether ``config`` is one :func:`graph_config` wrote."""
    return isinstance(config, dict) and "calls" in config and "input_layers" in config


def graph_from_config(config: dict[str, Any], make_model: Callable[..., Any],
                      custom_objects: dict[str, type] | None = None) -> Any:
    """Replay :func:`graph_config`'s calls on fresh layers, then ``make_model(inputs=, outputs=, name=)``
    (while a file loads, each new weight is charged against its budget: :mod:`shendu.utils.weight_budget`)."""
    layer_specs, calls, input_names = config.get("layers"), config.get("calls"), config.get("input_layers")
    if not (isinstance(layer_specs, list) and isinstance(calls, list) and isinstance(input_names, list)):
        raise ValueError("functional config: 'layers', 'calls' and 'input_layers' must be lists")
    layers: dict[str, Layer] = {}
    for spec in layer_specs:
        layer = deserialize_layer(spec, custom_objects)
        key = spec.get("name", layer.name)  # "name": the layer's get_config() left its name out
        if key in layers:
            raise ValueError(f"functional config: two layers are named {key!r}")
        layers[key] = layer

    def layer_named(name: Any) -> Layer:
        if not isinstance(name, str) or name not in layers:
            raise ValueError(f"functional config refers to an unknown layer {name!r}")
        return layers[name]

    table: list[SymbolicTensor] = []
    for name in input_names:
        layer = layer_named(name)
        if not isinstance(layer, InputLayer):
            raise ValueError(f"functional config: input {name!r} is not an InputLayer")
        table.append(layer.output)

    def decode(value: Any) -> Any:
        if isinstance(value, dict) and "__tensor__" in value:
            index = value["__tensor__"]
            if type(index) is not int or not 0 <= index < len(table) or len(value) != 1:
                raise ValueError(f"functional config refers to tensor {index!r}, which does not exist (yet)")
            return table[index]
        if isinstance(value, list):
            return [decode(v) for v in value]
        if isinstance(value, dict):
            return {k: decode(v) for k, v in value.items()}
        return value

    for call in calls:
        if not isinstance(call, dict) or not isinstance(call.get("args", []), list) or not isinstance(
                call.get("kwargs", {}), dict):
            raise ValueError(f"functional config: malformed call {str(call)[:100]}")
        layer = layer_named(call.get("layer"))
        outputs = flatten(layer(decode(call.get("inputs")), *decode(call.get("args", [])),
                                **decode(call.get("kwargs", {}))))
        if len(outputs) != call.get("outputs"):
            raise ValueError(f"functional config: layer {layer.name!r} gave {len(outputs)} outputs, the config "
                             f"says {call.get('outputs')!r}")
        table.extend(outputs)
    return make_model(inputs=decode(config.get("inputs")), outputs=decode(config.get("outputs")),
                      name=config.get("name"))
