"""Attribute tracking: the ordered registry of a layer's weights and sublayers, filled by ``__setattr__``.

An attribute is tracked when it holds a Parameter, a layer, or a list/tuple/dict that holds them (an empty
container is tracked too, since it is usually filled later). The order of assignment is kept, so weights,
checkpoint keys and initialisation are reproducible.

:func:`structure_version` changes whenever a tracked attribute is set or deleted, a weight is added or
``trainable`` changes anywhere; caches of a layer tree (``Layer.losses``) compare it to know when to look
again. (Containers mutated in place, ``self.blocks.append(layer)``, are seen by every walk but do not move
the version: assign a new container instead, as ``Sequential.add`` does, once the layer has been called.)
"""

from __future__ import annotations

import itertools
from typing import Any

from shendu.autograd.tensor import Parameter
from shendu.utils.tree import flatten

_VERSIONS = itertools.count(1)
_version = 0
_attributes_version = 0


def bump_version() -> None:
    """Record that some layer tree changed."""
    global _version
    _version = next(_VERSIONS)


def structure_version() -> int:
    """A number that changes whenever any layer tree changes (see the module docstring)."""
    return _version


def attributes_version() -> int:
    """A number that changes whenever any attribute of a layer (not of a model) is set or deleted, tracked or not
    (``dropout.rate = 0.2``, ``dense.activation = ...``): replayed training steps (``shendu.models.step_plan``)
    are recorded again when it moves."""
    return _attributes_version


class Trackable:
    """Base of ``Layer``: tracks weights and sublayers assigned as attributes (see the module docstring)."""

    #: whether setting an attribute may change what ``call`` computes (models say no: their layers do the maths)
    _attributes_change_maths = True

    def __setattr__(self, name: str, value: Any) -> None:
        if self._attributes_change_maths:
            global _attributes_version
            _attributes_version += 1
        tracked = self.__dict__.get("_tracked")
        if tracked is None:
            tracked = {}
            object.__setattr__(self, "_tracked", tracked)
        if isinstance(value, (Parameter, Trackable)) or (
                isinstance(value, (list, tuple, dict)) and _may_hold_layers(value)):
            tracked[name] = None
            bump_version()
        elif name in tracked:
            del tracked[name]
            bump_version()
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        if self._attributes_change_maths:
            global _attributes_version
            _attributes_version += 1
        tracked = self.__dict__.get("_tracked", {})
        if name in tracked:
            del tracked[name]
            bump_version()
        object.__delattr__(self, name)

    def _tracked_values(self) -> list[Any]:
        """The tracked Parameters and layers, in attribute order (containers flattened)."""
        out: list[Any] = []
        for name in self.__dict__.get("_tracked", ()):
            value = self.__dict__.get(name)
            if isinstance(value, (Parameter, Trackable)):
                out.append(value)
            elif isinstance(value, (list, tuple, dict)):
                out.extend(v for v in flatten(value) if isinstance(v, (Parameter, Trackable)))
        return out

    def _own_params(self) -> list[Parameter]:
        """This layer's weights: those made by ``add_weight`` first, then Parameters assigned as attributes."""
        params = list(self.__dict__.get("_own_weights", ()))
        seen = {id(p) for p in params}
        for v in self._tracked_values():
            if isinstance(v, Parameter) and id(v) not in seen:
                seen.add(id(v))
                params.append(v)
        return params

    def _sublayers(self) -> list[Any]:
        """Direct sublayers in attribute order (no duplicates, never self)."""
        seen = {id(self)}
        out = []
        for v in self._tracked_values():
            if isinstance(v, Trackable) and id(v) not in seen:
                seen.add(id(v))
                out.append(v)
        return out

    def children(self):
        """Direct sublayers (PyTorch's name)."""
        return iter(self._sublayers())

    def _all_layers(self) -> list[Any]:
        """This layer and every sublayer, depth first, without duplicates."""
        out, seen, stack = [], set(), [self]
        while stack:
            layer = stack.pop()
            if id(layer) not in seen:
                seen.add(id(layer))
                out.append(layer)
                stack.extend(reversed(layer._sublayers()))
        return out


def _may_hold_layers(container: Any) -> bool:
    """Track an empty container (filled later) or one holding layers or parameters; skip plain data."""
    leaves = flatten(container)
    return not leaves or any(isinstance(v, (Parameter, Trackable)) for v in leaves)
