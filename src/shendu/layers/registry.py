"""Every Layer subclass, by name, for ``shendu.layers.deserialize`` (filled as classes are defined).

Keys are bare class names ('Dense'). shendu's own layers are never replaced: a class from outside shendu
named like one of them (``class Dense(Layer)`` in a script) is registered under its qualified name
``'module>Qualname'`` (Keras keys custom objects ``'package>Name'`` the same way), and :func:`serialize`
writes that key, so a file that says ``'Dense'`` still means shendu's Dense and the user's class comes back
as itself. Among classes from outside shendu, a later class of the same name replaces the earlier one (a
re-run notebook cell, a module imported twice), as Keras's registration does.

>>> import shendu.layers
>>> class Dense(shendu.layers.Layer):
...     pass
>>> LAYER_REGISTRY["Dense"] is shendu.layers.Dense
True
>>> registered_name(Dense)
'shendu.layers.registry>Dense'
>>> get_layer_class('shendu.layers.registry>Dense') is Dense
True
"""

from __future__ import annotations

import threading
from typing import Any

from shendu.utils.custom_objects import get_registered_object, registered_name_of

#: every Layer subclass by its registered name (see the module docstring)
LAYER_REGISTRY: dict[str, type] = {}
_LOCK = threading.Lock()


def _is_builtin(cls: type) -> bool:
    return cls.__module__ == "shendu" or cls.__module__.startswith("shendu.")


def register_layer_class(cls: type) -> str:
    """Register ``cls`` under its class name, or under ``'module>Qualname'`` when that name belongs to one of
    shendu's own layers (see the module docstring); returns the key."""
    with _LOCK:
        name = cls.__name__
        existing = LAYER_REGISTRY.get(name)
        if existing is not None and _is_builtin(existing) and not (
                existing.__module__ == cls.__module__ and existing.__qualname__ == cls.__qualname__):  # a reload
            name = f"{cls.__module__}>{cls.__qualname__}"
        LAYER_REGISTRY[name] = cls
        cls._registered_name = name
    return name


def registered_name(cls: type) -> str:
    """What ``serialize`` writes for ``cls``: its registered name among the custom objects when it has one
    (``'package>Name'``), else the key it is found under in :data:`LAYER_REGISTRY`."""
    custom = registered_name_of(cls)
    if custom is not None:
        return custom
    name = cls.__dict__.get("_registered_name")
    return name if name is not None and LAYER_REGISTRY.get(name) is cls else cls.__name__


def get_layer_class(name: Any, custom_objects: dict[str, type] | None = None) -> type | None:
    """The class for ``name``: from ``custom_objects`` first (``'module>Name'`` also as ``{'Name': cls}``), then
    the registered custom objects and open ``custom_object_scope``s, else the registry; None when unknown."""
    if not isinstance(name, str):
        return None
    found = get_registered_object(name, custom_objects)
    if isinstance(found, type):
        return found
    return LAYER_REGISTRY.get(name)


def serialize(layer: Any) -> dict[str, Any]:
    """``{'class_name': registered name, 'config': layer.get_config()}`` (JSON-safe)."""
    return {"class_name": registered_name(type(layer)), "config": layer.get_config()}


def deserialize(config: dict[str, Any], custom_objects: dict[str, type] | None = None) -> Any:
    """Rebuild a layer from :func:`serialize`'s output (custom classes by name in ``custom_objects``)."""
    name = config.get("class_name")
    cls = get_layer_class(name, custom_objects)
    if cls is None:
        raise ValueError(f"unknown layer class {name!r}; pass it in custom_objects={{'{name}': {name}}} "
                         "(known: " + ", ".join(sorted(LAYER_REGISTRY)) + ")")
    return cls.from_config(dict(config.get("config", {})))
