"""``export_onnx(model, filepath)``: a Sequential or functional model (nested ones included) as an ONNX file.

The model is walked, never run: a functional model's recorded calls in execution order (its graph's
``plan``), a Sequential's layers in turn. Each call goes to its layer's converter in
:data:`shendu.export.converters.CONVERTERS`. Inputs keep their names (a functional model's ``Input`` names;
``input`` for a Sequential) and their dtypes, with a dynamic batch axis; outputs take the model's
``output_names``. The file is written atomically.

This package sits below ``models`` in the house, so models are handled by what they expose (``_graph`` for
a functional model, the ``layers`` of a Sequential), not by their classes.
"""

from __future__ import annotations

import inspect
import os
from typing import Any

import numpy as np

from shendu.export.converters import CONVERTERS, register_onnx_converter, where
from shendu.export.graph import DEFAULT_OPSET, MIN_OPSET, GraphBuilder
from shendu.layers import SymbolicTensor, TimeDistributed
from shendu.utils.atomic import atomic_write_bytes
from shendu.utils.tree import flatten, map_structure


def _is_sequential(model: Any) -> bool:
    return any(cls.__name__ == "Sequential" for cls in type(model).__mro__) and hasattr(model, "_layers")


def _is_model(layer: Any) -> bool:
    return getattr(layer, "_graph", None) is not None or _is_sequential(layer)


def _call_arguments(layer: Any, x: Any, args: tuple, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The call's arguments beyond the input, by name, leaving out ``training`` and those left at their default."""
    signature = inspect.signature(layer.call)
    try:
        bound = signature.bind(x, *args, **kwargs)
    except TypeError as err:
        raise ValueError(f"ONNX export: {where(layer)} was called with arguments its call() does not take: {err}") \
            from err
    params = list(signature.parameters.values())
    extra: dict[str, Any] = {}
    for param in params[1:]:
        if param.name not in bound.arguments or param.name == "training":
            continue
        value = bound.arguments[param.name]
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            extra.update({k: v for k, v in value.items() if k != "training"})
        elif param.kind is inspect.Parameter.VAR_POSITIONAL:
            if value:
                extra[param.name] = value
        elif not (value is param.default or (isinstance(value, (bool, int, float)) and value == param.default)):
            extra[param.name] = value
    return extra


def convert_layer(b: GraphBuilder, layer: Any, x: Any, args: tuple = (), kwargs: dict[str, Any] | None = None) -> Any:
    """The ONNX output name(s) of ``layer(x, *args, **kwargs)``; a nested model is inlined."""
    kwargs = {k: v for k, v in (kwargs or {}).items() if k != "training"}
    if _is_model(layer):
        if args or any(v is not None for v in kwargs.values()):
            raise NotImplementedError(f"ONNX export: nested model {where(layer)} is called with extra arguments")
        return convert_model(b, layer, flatten(x))
    converter = CONVERTERS.get(type(layer))
    if converter is None:
        known = sorted({cls.__name__ for cls in CONVERTERS})
        raise NotImplementedError(
            f"ONNX export: {where(layer)} has no ONNX converter (converters exist for {', '.join(known)}). Hint: "
            f"register one with shendu.export.register_onnx_converter({type(layer).__name__}, fn), where "
            "fn(b, layer, x) emits the layer's nodes with the GraphBuilder b and returns the output name")
    extra = _call_arguments(layer, x, args, kwargs)
    accepted = {p.name for p in list(inspect.signature(converter).parameters.values())[3:]}
    refused = sorted(set(extra) - accepted)
    if refused:
        raise NotImplementedError(f"ONNX export: {where(layer)} is called with {', '.join(refused)}, which its ONNX "
                                  f"converter does not support" + (f" (it takes {sorted(accepted)})" if accepted
                                                                   else ""))
    return converter(b, layer, x, **extra)


@register_onnx_converter(TimeDistributed)
def time_distributed(b: GraphBuilder, layer: TimeDistributed, x: str) -> str:
    """(batch, time, ...) folded to (batch * time, ...), the wrapped layer's converter, unfolded again (it is
    registered here because it converts another layer)."""
    shape = b.op("Shape", [x], "shape")
    rest = b.op("Slice", [shape, b.ints([2]), b.ints([np.iinfo(np.int64).max])], "rest")
    folded = b.op("Reshape", [x, b.op("Concat", [b.ints([-1]), rest], axis=0)], "folded")
    inner = layer.layer
    shape_in = b.shape_of(x)
    if shape_in is not None:
        b.shapes[folded] = (None, *shape_in[2:])
    y = convert_layer(b, inner, folded)
    if not isinstance(y, str):
        raise NotImplementedError(f"ONNX export: {where(layer)} wraps a layer with several outputs")
    out_rest = inner.compute_output_shape((None, *(shape_in[2:] if shape_in is not None else ())))[1:] \
        if shape_in is not None else None
    if out_rest is None or sum(d is None for d in out_rest) > 1:
        raise NotImplementedError(f"ONNX export: {where(layer)} needs the static output shape of its layer")
    batch_time = b.op("Slice", [shape, b.ints([0]), b.ints([2])], "batch_time")
    target = b.op("Concat", [batch_time, b.ints([-1 if d is None else d for d in out_rest])], axis=0)
    return b.op("Reshape", [y, target], layer.name)


def convert_model(b: GraphBuilder, model: Any, inputs: list[str]) -> Any:
    """The output structure (ONNX names) of a functional or Sequential ``model`` applied to ``inputs``."""
    graph = getattr(model, "_graph", None)
    if graph is not None:
        if len(inputs) != len(graph.input_list):
            raise ValueError(f"ONNX export: model '{model.name}' takes {len(graph.input_list)} inputs, got "
                             f"{len(inputs)}")
        values: dict[int, str] = {}
        for sym, name in zip(graph.input_list, inputs):
            values[id(sym)] = name

        def resolve(t: Any) -> Any:
            return values[id(t)] if isinstance(t, SymbolicTensor) else t

        for node, outputs in graph.plan:
            result = convert_layer(b, node.layer, map_structure(resolve, node.inputs),
                                   tuple(map_structure(resolve, list(node.args))), map_structure(resolve, node.kwargs))
            names = flatten(result)
            if len(names) != len(outputs):
                raise RuntimeError(f"ONNX export: the converter of {where(node.layer)} gave {len(names)} outputs, "
                                   f"the layer has {len(outputs)}")
            for sym, name in zip(outputs, names):
                values[id(sym)] = name
                b.shapes.setdefault(name, tuple(sym.shape))
        return map_structure(lambda t: values[id(t)], graph.outputs)
    if _is_sequential(model):
        if len(inputs) != 1:
            raise ValueError(f"ONNX export: Sequential '{model.name}' takes one input, got {len(inputs)}")
        x: Any = inputs[0]
        shapes = list(getattr(getattr(model, "_shapes", None), "outputs", None) or [])
        for i, layer in enumerate(model.layers):
            x = convert_layer(b, layer, x)
            if i < len(shapes) and isinstance(x, str) and isinstance(shapes[i], tuple):
                b.shapes.setdefault(x, tuple(shapes[i]))
        return x
    raise NotImplementedError(f"ONNX export: model '{model.name}' ({type(model).__name__}) is a subclassed model "
                              "whose forward pass is Python code; only Sequential and functional models (and such "
                              "models nested as layers) can be exported. Hint: rebuild it with the functional API")


def _input_specs(model: Any, input_signature: Any) -> list[tuple[str, tuple, np.dtype]]:
    """(name, shape with batch axis, dtype) of each model input."""
    graph = getattr(model, "_graph", None)
    if graph is not None:
        specs = [(name, tuple(t.shape), np.dtype(t.dtype)) for name, t in zip(graph.input_names, graph.input_list)]
    elif _is_sequential(model):
        shape = getattr(model, "_build_input_shape", None) if model.built else None
        layers = model.layers
        dtype = np.int64 if layers and getattr(layers[0], "_keeps_integers", False) else np.dtype(model.dtype)
        specs = [("input", None if shape is None else tuple(shape), np.dtype(dtype))]
    else:
        specs = []
    if input_signature is not None:
        given = list(input_signature) if isinstance(input_signature, (list, tuple)) and input_signature and \
            not isinstance(input_signature[0], (int, type(None))) else [input_signature]
        if specs and len(given) != len(specs):
            raise ValueError(f"ONNX export: input_signature describes {len(given)} inputs, the model has {len(specs)}")
        out = []
        for i, spec in enumerate(given):
            shape = tuple(spec) if isinstance(spec, (list, tuple)) else tuple(getattr(spec, "shape", None) or ())
            name = getattr(spec, "name", None)
            base = specs[i] if specs else (f"input_{i}", shape, np.dtype(model.dtype))
            dtype = getattr(spec, "dtype", None)
            out.append((name if isinstance(name, str) and name else base[0], shape,
                        np.dtype(str(dtype).replace("torch.", "")) if dtype is not None else base[2]))
        specs = out
    for _, shape, _ in specs:
        if shape is None:
            raise ValueError(f"ONNX export: model '{model.name}' is not built, so its input shape is unknown. Hint: "
                             "call the model on data (or build(input_shape)) first, or pass input_signature=[shape]")
    return specs


def build_onnx_model(model: Any, input_signature: Any = None, opset_version: int | None = None) -> Any:
    """The ``onnx.ModelProto`` of ``model`` (checked with ``onnx.checker``)."""
    opset = DEFAULT_OPSET if opset_version is None else int(opset_version)
    if opset < MIN_OPSET:
        raise ValueError(f"ONNX export: opset_version must be at least {MIN_OPSET}, got {opset}")
    if input_signature is not None and _is_sequential(model) and not model.built:
        first = input_signature[0] if isinstance(input_signature, (list, tuple)) and input_signature and \
            not isinstance(input_signature[0], (int, type(None))) else input_signature
        model.build(tuple(first) if isinstance(first, (list, tuple)) else tuple(first.shape))
    specs = _input_specs(model, input_signature)
    b = GraphBuilder(opset, np.dtype(model.dtype))
    helper, onnx = b.onnx.helper, b.onnx
    inputs = []
    for name, shape, dtype in specs:
        onnx_name = b.fresh(name)
        b.shapes[onnx_name] = (None, *shape[1:])
        dims = ["batch", *(f"{onnx_name}_dim{i}" if d is None else int(d) for i, d in enumerate(shape[1:], 1))]
        inputs.append(helper.make_tensor_value_info(onnx_name, helper.np_dtype_to_tensor_dtype(dtype), dims))
    output_names = list(getattr(model, "output_names", None) or [])
    reserved = [b.fresh(n) for n in output_names]
    results = flatten(convert_model(b, model, [i.name for i in inputs]))
    if len(reserved) != len(results):
        reserved = [b.fresh(f"output_{i}") for i in range(len(results))]
    outputs = []
    for name, result in zip(reserved, results):
        b.op("Identity", [result], outputs=[name])
        shape = b.shape_of(result)
        dims = None if shape is None else ["batch", *(f"{name}_dim{i}" if d is None else int(d)
                                                      for i, d in enumerate(shape[1:], 1))]
        outputs.append(helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(b.dtype), dims))
    graph = helper.make_graph(b.nodes, model.name, inputs, outputs, b.initializers)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="shendu")
    proto.ir_version = min(proto.ir_version, 10)  # readable by onnxruntime releases of the last two years
    onnx.checker.check_model(proto)
    return proto


def export_onnx(model: Any, filepath: str | os.PathLike, input_signature: Any = None, opset_version: int | None = None,
                verbose: bool | None = None) -> None:
    """Write ``model`` to ``filepath`` as ONNX (atomically). See :mod:`shendu.export`."""
    proto = build_onnx_model(model, input_signature, opset_version)
    atomic_write_bytes(filepath, proto.SerializeToString())
    if verbose:
        print(f"Saved artifact at '{os.fspath(filepath)}'.")
