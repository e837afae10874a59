"""The one registry of user objects (classes and functions) that configs may name, as Keras 3 keeps it.

``@register_keras_serializable(package="Custom", name=None)`` records a class or function under
``'package>name'`` (Keras's *registered name*); :func:`get_custom_objects` is the global dict itself (adding
``get_custom_objects()["my_fn"] = my_fn`` registers ``my_fn`` under that bare name, as in Keras);
``with custom_object_scope({...}):`` adds names for the current thread only. Every lookup by name in shendu
(layers, activations, losses, metrics and models in saved files) goes through :func:`get_registered_object`:
the ``custom_objects`` passed to the call first, then the open scopes (innermost first), then the global dict.
``shendu.saving.register_serializable`` is this registry with the bare class name as the registered name.

>>> @register_keras_serializable(package="Doc")
... def double(x):
...     return x * 2
>>> get_registered_name(double), get_registered_object("Doc>double") is double
('Doc>double', True)
>>> with custom_object_scope({"twice": double}):
...     get_registered_object("twice") is double
True
>>> get_registered_object("twice") is None
True
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

__all__ = ["CustomObjectScope", "custom_object_scope", "get_custom_objects", "get_registered_name",
           "get_registered_object", "register_keras_serializable", "register_object", "registered_name_of"]

_GLOBAL_CUSTOM_OBJECTS: dict[str, Any] = {}
_GLOBAL_CUSTOM_NAMES: dict[int, tuple[Any, str]] = {}  # id(obj) -> (obj, registered name); obj kept alive
_LOCAL = threading.local()


def register_object(obj: Any, registered_name: str) -> Any:
    """Record ``obj`` (a class or function) under ``registered_name`` in the global registry; returns ``obj``."""
    _GLOBAL_CUSTOM_OBJECTS[registered_name] = obj
    _GLOBAL_CUSTOM_NAMES[id(obj)] = (obj, registered_name)
    return obj


def register_keras_serializable(package: str = "Custom", name: str | None = None) -> Callable[[Any], Any]:
    """Decorator: make a class (with ``get_config``) or a function loadable by its registered name
    ``'package>name'`` (``name`` defaults to ``obj.__name__``), as ``keras.saving.register_keras_serializable``."""
    if not isinstance(package, str) or ">" in package:
        raise ValueError(f"register_keras_serializable: package must be a string without '>', got {package!r}")

    def decorator(obj: Any) -> Any:
        serialized = name if name is not None else getattr(obj, "__name__", None)
        if not isinstance(serialized, str) or not serialized:
            raise ValueError(f"register_keras_serializable: cannot name {obj!r}; pass name=...")
        if isinstance(obj, type) and not hasattr(obj, "get_config"):
            raise ValueError(f"register_keras_serializable: class {obj.__name__} has no get_config() method, so it "
                             "cannot be serialised")
        return register_object(obj, f"{package}>{serialized}")

    return decorator


def get_custom_objects() -> dict[str, Any]:
    """The global registry itself (a dict you may edit, as in Keras): registered name -> class or function."""
    return _GLOBAL_CUSTOM_OBJECTS


def _scopes() -> list[dict[str, Any]]:
    stack = getattr(_LOCAL, "scopes", None)
    if stack is None:
        stack = _LOCAL.scopes = []
    return stack


class CustomObjectScope:
    """``with CustomObjectScope({"MyLayer": MyLayer}, ...):`` names resolve to these objects in this thread
    (Keras's ``custom_object_scope``); scopes nest, the innermost wins."""

    def __init__(self, *custom_objects: dict[str, Any] | None) -> None:
        merged: dict[str, Any] = {}
        for objects in custom_objects:
            if objects is None:
                continue
            if not isinstance(objects, dict):
                raise TypeError(f"custom_object_scope: expected dicts of name -> object, got "
                                f"{type(objects).__name__}")
            merged.update(objects)
        self.custom_objects = merged

    def __enter__(self) -> CustomObjectScope:
        _scopes().append(self.custom_objects)
        return self

    def __exit__(self, *exc: Any) -> None:
        _scopes().pop()


custom_object_scope = CustomObjectScope


def _find(name: str, table: dict[str, Any]) -> Any:
    if name in table:
        return table[name]
    if ">" in name:  # 'package>Name' given as {'Name': obj}
        return table.get(name.rsplit(">", 1)[1])
    return None


def get_registered_object(name: Any, custom_objects: dict[str, Any] | None = None,
                          module_objects: dict[str, Any] | None = None) -> Any:
    """The object registered as ``name``: from ``custom_objects``, the open scopes (innermost first), the global
    registry, then ``module_objects``; None when unknown."""
    if not isinstance(name, str):
        return None
    for table in (custom_objects or {}, *reversed(_scopes()), _GLOBAL_CUSTOM_OBJECTS, module_objects or {}):
        found = _find(name, table)
        if found is not None:
            return found
    return None


def get_registered_name(obj: Any) -> str:
    """The name ``obj`` is registered under, else its ``__name__`` (Keras's rule)."""
    entry = _GLOBAL_CUSTOM_NAMES.get(id(obj))
    if entry is not None and entry[0] is obj:
        return entry[1]
    return getattr(obj, "__name__", type(obj).__name__)


def registered_name_of(obj: Any) -> str | None:
    """The name that finds ``obj`` again through :func:`get_registered_object` (registered, or put in the global
    dict or an open scope under its ``__name__``); None when ``obj`` is not registered."""
    name = get_registered_name(obj)
    return name if get_registered_object(name) is obj else None
