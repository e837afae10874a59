"""Executing a functional graph: ``Model(inputs, outputs)`` built from ``Input`` and layer calls.

Every SymbolicTensor remembers the call that made it (``t.node``: layer, inputs, kwargs; see
``shendu.layers.layer``). :class:`FunctionalGraph` walks these records from the outputs back to the
inputs once, orders the calls topologically (iteratively, no recursion) and, on real data, replays them
in that order, feeding each call the values of the tensors it consumed. Shared layers appear once in
``layers`` and once per call in the plan.
"""

from __future__ import annotations

from typing import Any

from shendu.autograd.tensor import Tensor
from shendu.layers.layer import InputLayer, Layer, SymbolicTensor
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
