"""``clone_model``: a new model with the same architecture and fresh weights (Keras 3's ``keras.models.clone_model``).

Each layer is rebuilt from its config (``clone_function``, default ``type(layer).from_config(layer.get_config())``),
so weights are newly initialised, never shared; copy them with ``clone.set_weights(model.get_weights())``.

* A ``Sequential`` becomes a new ``Sequential`` of the cloned layers, starting from a new ``Input`` like the
  original's (or ``input_tensors``).
* A functional model's calls are replayed, in order, on the cloned layers (a shared layer is cloned once and
  stays shared), from new ``Input``s like the originals (or ``input_tensors``); ``call_function(layer, *args,
  **kwargs)`` may replace each call.
* A subclassed model is rebuilt with ``type(model).from_config(model.get_config())`` (``clone_function`` and
  ``input_tensors`` do not apply, as in Keras).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shendu.layers import Input, InputLayer, Layer, SymbolicTensor
from shendu.models.functional import FunctionalGraph
from shendu.models.model import Model
from shendu.models.sequential import Sequential
from shendu.utils.tree import flatten, map_structure

__all__ = ["clone_model"]


def _default_clone(layer: Layer) -> Layer:
    return type(layer).from_config(layer.get_config())


def clone_model(model: Model, input_tensors: Any = None, clone_function: Callable[[Layer], Layer] | None = None,
                call_function: Callable[..., Any] | None = None, recursive: bool = False,
                **kwargs: Any) -> Model:
    """A copy of ``model``'s architecture with new layers (same configs) and fresh weights (see the module
    docstring). ``recursive=True`` clones nested models with ``clone_model`` too (so ``clone_function`` reaches
    their layers). Keras's ``cache`` argument is accepted and ignored.

    >>> import numpy as np
    >>> from shendu.layers import Dense, Input
    >>> model = Sequential([Input(shape=(3,)), Dense(2)])
    >>> clone = clone_model(model)
    >>> clone.layers[0] is model.layers[0], clone.built, [w.shape for w in clone.weights]
    (False, True, [(3, 2), (2,)])
    """
    unknown = sorted(set(kwargs) - {"cache"})
    if unknown:
        raise TypeError(f"clone_model() got unexpected arguments {unknown}")
    clone = clone_function or _default_clone

    def clone_layer(layer: Layer) -> Layer:
        if recursive and isinstance(layer, Model):
            return clone_model(layer, clone_function=clone_function, call_function=call_function, recursive=True)
        new = clone(layer)
        if not isinstance(new, Layer):
            raise TypeError(f"clone_model: clone_function returned {type(new).__name__} for layer '{layer.name}'; "
                            "it must return a Layer")
        return new

    if isinstance(model, Sequential):
        return _clone_sequential(model, input_tensors, clone_layer)
    if isinstance(model, Model) and model.inputs is not None:
        return _clone_functional(model, input_tensors, clone_layer, call_function)
    if not isinstance(model, Model):
        raise TypeError(f"clone_model: expected a Model, got {type(model).__name__}")
    if input_tensors is not None or clone_function is not None or call_function is not None:
        raise ValueError(f"clone_model: model '{model.name}' is a subclassed model, which is cloned through "
                         "get_config()/from_config(); input_tensors, clone_function and call_function apply to "
                         "Sequential and functional models only")
    new = type(model).from_config(model.get_config())
    shape = getattr(model, "_build_input_shape", None)
    if model.built and not new.built and shape is not None:
        new.build(shape)
    return new


def _single_input(input_tensors: Any, name: str) -> SymbolicTensor:
    if isinstance(input_tensors, (list, tuple)):
        if len(input_tensors) != 1:
            raise ValueError(f"clone_model: Sequential '{name}' takes one input tensor, got {len(input_tensors)}")
        input_tensors = input_tensors[0]
    if not (isinstance(input_tensors, SymbolicTensor) and isinstance(input_tensors.node.layer, InputLayer)):
        raise TypeError("clone_model: input_tensors must come from shendu.layers.Input(...), got "
                        f"{type(input_tensors).__name__}")
    return input_tensors


def _clone_sequential(model: Sequential, input_tensors: Any, clone_layer: Callable[[Layer], Layer]) -> Sequential:
    layers = [clone_layer(layer) for layer in model.layers]
    new = Sequential(name=model.name)
    if input_tensors is not None:
        new.add(_single_input(input_tensors, model.name), rebuild=False)
    elif model._shapes.declared_input is not None:  # the original starts from an Input: so does the clone
        dtype = model.inputs[0].dtype if model.inputs else None
        new.add(Input(batch_shape=model._shapes.declared_input, dtype=dtype), rebuild=False)
    for layer in layers:
        new.add(layer, rebuild=False)
    new._maybe_build()
    if model.built and not new.built:
        new.build(model._build_input_shape)
    return new


def _clone_functional(model: Model, input_tensors: Any, clone_layer: Callable[[Layer], Layer],
                      call_function: Callable[..., Any] | None) -> Model:
    graph = FunctionalGraph(model.inputs, model.outputs)
    if input_tensors is None:
        new_inputs = [Input(batch_shape=t.shape, dtype=t.dtype, name=t.node.layer.name) for t in graph.input_list]
    else:
        new_inputs = flatten(input_tensors)
        if len(new_inputs) != len(graph.input_list):
            raise ValueError(f"clone_model: model '{model.name}' has {len(graph.input_list)} inputs, input_tensors "
                             f"holds {len(new_inputs)}")
        for t in new_inputs:
            if not (isinstance(t, SymbolicTensor) and isinstance(t.node.layer, InputLayer)):
                raise TypeError("clone_model: input_tensors must come from shendu.layers.Input(...)")
    values: dict[int, Any] = {id(old): new for old, new in zip(graph.input_list, new_inputs)}
    clones: dict[int, Layer] = {}

    def resolve(t: Any) -> Any:
        return values[id(t)] if isinstance(t, SymbolicTensor) else t

    for node, outputs in graph.plan:
        layer = node.layer
        if id(layer) not in clones:
            clones[id(layer)] = clone_layer(layer)
        new_layer = clones[id(layer)]
        inputs = map_structure(resolve, node.inputs)
        args = map_structure(resolve, list(node.args))
        call_kwargs = map_structure(resolve, node.kwargs)
        if call_function is not None:
            result = call_function(new_layer, inputs, *args, **call_kwargs)
        else:
            result = new_layer(inputs, *args, **call_kwargs)
        for old, new in zip(outputs, [result] if isinstance(result, SymbolicTensor) else flatten(result)):
            values[id(old)] = new
    struct_inputs = map_structure(resolve, model.inputs)
    return Model(inputs=struct_inputs, outputs=map_structure(resolve, model.outputs), name=model.name)
