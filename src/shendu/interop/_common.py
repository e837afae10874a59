"""What the PyTorch and Keras loaders share: the model's layers in order, and matching weight groups to them.

A loader turns a file into an ordered list of :class:`Group` (one per source module/layer: a key such as
``'features.0'`` or ``'layers/dense_1'``, the source layer's name when the file records one, and its arrays).
:func:`load_groups` walks the shendu model's layers that own weights, in order, and gives each the first
unused group that ``convert(layer, group)`` accepts and whose converted shapes equal the layer's weight
shapes (a group named like the layer is preferred). So models whose source file lists modules in another
order (safetensors sorts its keys) still load when the shapes tell the layers apart; ``mapping`` settles
the rest explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np


class Incompatible(Exception):
    """Raised by a converter: this group cannot hold this layer's weights (the message says why)."""


@dataclass
class Group:
    """The arrays of one source module, by their names in the file, in file order."""

    key: str
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    name: str | None = None  # the source layer's own name, when the file records it
    kind: str | None = None  # the source layer's class in snake case (Keras files), when known

    def describe(self) -> str:
        shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in self.arrays.items())
        return f"'{self.key}' ({shapes})"


def leaf_layers(model: Any) -> list[Any]:
    """Every layer of ``model`` in execution order, nested models flattened (a plain layer gives [layer])."""
    if not hasattr(model, "layers"):
        return [model]
    out: list[Any] = []
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        out.extend(leaf_layers(layer) if hasattr(layer, "layers") else [layer])
    return out


def _shapes(arrays: list[np.ndarray]) -> list[tuple]:
    return [tuple(a.shape) for a in arrays]


def load_groups(model: Any, groups: list[Group], convert: Callable[[Any, Group], list[np.ndarray]],
                source: str, strict: bool = True, mapping: dict[str, str] | None = None,
                ignore: Callable[[Group], bool] | None = None) -> dict[str, str]:
    """Set the weights of every weighted layer of ``model`` from ``groups``; returns {layer name: group key}.

    ``mapping`` ({shendu layer name: group key}) fixes pairs by hand. ``strict`` makes unused groups (other
    than those ``ignore`` accepts) an error, as PyTorch's ``load_state_dict(strict=True)`` does.
    """
    layers = [layer for layer in leaf_layers(model) if layer.weights or not layer.built]
    unbuilt = [layer.name for layer in layers if not layer.built]
    if unbuilt:
        raise ValueError(f"load from {source}: layer(s) {unbuilt} are not built, so they have no weights to set. "
                         "Hint: build the model first (give the first layer input_shape=..., or call it on data)")
    by_key = {g.key: g for g in groups}
    mapping = dict(mapping or {})
    names = {layer.name for layer in layers}
    strangers = [name for name in mapping if name not in names]
    if strangers:
        raise KeyError(f"load from {source}: mapping names layer(s) {strangers} that the model has no weighted "
                       f"layer called so; its layers with weights are {sorted(names)}")
    unknown = [k for k in mapping.values() if k not in by_key]
    if unknown:
        raise KeyError(f"load from {source}: mapping names group(s) {unknown} that are not in the file; "
                       f"the file has {list(by_key)}")
    used: set[str] = set()
    result: dict[str, str] = {}
    planned: list[tuple[Any, list[np.ndarray]]] = []
    for layer in layers:
        expected = [tuple(p.shape) for p in layer.weights]
        if layer.name in mapping:
            candidates = [by_key[mapping[layer.name]]]
        else:
            named = [g for g in groups if g.name == layer.name and g.key not in used]
            candidates = named + [g for g in groups if g.key not in used and g not in named]
        reasons = []
        for group in candidates:
            try:
                arrays = convert(layer, group)
            except Incompatible as e:
                reasons.append(f"{group.key}: {e}")
                continue
            if _shapes(arrays) == expected:
                used.add(group.key)
                result[layer.name] = group.key
                planned.append((layer, arrays))
                break
            reasons.append(f"{group.key}: shapes {_shapes(arrays)} after conversion")
        else:
            tried = "; ".join(reasons[:4]) or "no unused groups left"
            raise ValueError(f"load from {source}: no weights in the file fit layer '{layer.name}' "
                             f"({type(layer).__name__}, weight shapes {expected}); tried {tried}. Hint: check that "
                             "the shendu model has the same architecture, or pass mapping={'layer_name': 'key'}")
    left = [g for g in groups if g.key not in used and g.arrays and not (ignore and ignore(g))]
    if strict and left:
        raise ValueError(f"load from {source}: the file holds weights no layer of the model took: "
                         + ", ".join(g.describe() for g in left[:6])
                         + ". Hint: the shendu model lacks these layers; pass strict=False to ignore them")
    for layer, arrays in planned:
        layer.set_weights(arrays)
    return result
