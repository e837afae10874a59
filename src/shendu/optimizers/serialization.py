"""Optimisers by name, class or config: ``get``, ``serialize`` and ``deserialize`` (Keras's layout).

Names resolve through :data:`~shendu.optimizers.optimizer.REGISTRY`, which keys every ``Optimizer`` subclass by
its qualified name, so a user class never silently replaces a built-in of the same name:

1. ``custom_objects`` first (``{"Name": cls}``, matched case-insensitively);
2. a config whose ``module`` is the user's (``serialize`` writes it for classes outside shendu) names exactly
   that class, or fails saying which module to import;
3. otherwise the built-in of that name, then the one user class of that name (several: an error listing them).
"""

from __future__ import annotations

from typing import Any

from shendu.optimizers.optimizer import REGISTRY, Optimizer

_BUILTIN_MODULE = "shendu.optimizers"


def _is_builtin(cls: type) -> bool:
    return cls.__module__.startswith(_BUILTIN_MODULE + ".")


def _resolve(name: str, module: Any, custom_objects: dict[str, type] | None) -> type[Optimizer]:
    """The optimiser class a serialised ``class_name`` (and ``module``) stands for (see the module docstring)."""
    for key, cls in (custom_objects or {}).items():
        if key.lower() == name.lower():
            return cls
    if isinstance(module, str) and module.split(".")[0] not in ("shendu", "keras"):
        exact = [cls for cls in REGISTRY.values() if cls.__module__ == module and cls.__name__ == name]
        if not exact:
            raise ValueError(f"optimizer {name!r} was saved from module {module!r}, which defines no such "
                             f"Optimizer in this process; import {module} first or pass "
                             f"custom_objects={{{name!r}: YourClass}}")
        return exact[-1]  # the latest definition
    matches = [cls for cls in REGISTRY.values() if cls.__name__.lower() == name.lower()]
    builtin = [cls for cls in matches if _is_builtin(cls)]
    if builtin:
        return builtin[0]
    if len(matches) == 1:
        return matches[0]
    if matches:
        where = ", ".join(sorted(f"{cls.__module__}.{cls.__qualname__}" for cls in matches))
        raise ValueError(f"optimizer name {name!r} is ambiguous: several classes have it ({where}); pass "
                         f"custom_objects={{{name!r}: TheClass}}")
    known = sorted({cls.__name__.lower() for cls in REGISTRY.values()} | {k.lower() for k in custom_objects or {}})
    raise ValueError(f"unknown optimizer {name!r}; known: {known}")


def get(identifier: Any) -> Optimizer | None:
    """An optimiser from a name (``"adam"``, ``"SGD"``), a class, a config dict or an instance (returned as is)."""
    if identifier is None or isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Optimizer):
        return identifier()
    if isinstance(identifier, str):
        return deserialize({"class_name": identifier, "config": {}})
    if isinstance(identifier, dict):
        return deserialize(identifier)
    raise ValueError(f"Could not interpret optimizer identifier: {identifier!r}; pass a name such as 'adam', "
                     "an Optimizer class or instance, or a config dict")


def serialize(optimizer: Optimizer) -> dict[str, Any]:
    """``{"module", "class_name", "config"}`` describing ``optimizer``; ``module`` is ``shendu.optimizers`` for
    the built-ins and the defining module for any other class (so loading finds that exact class)."""
    cls = type(optimizer)
    module = _BUILTIN_MODULE if _is_builtin(cls) else cls.__module__
    return {"module": module, "class_name": cls.__name__, "config": optimizer.get_config()}


def deserialize(config: dict[str, Any], custom_objects: dict[str, type] | None = None) -> Optimizer:
    """Rebuild an optimiser from :func:`serialize`'s dict; ``class_name`` is matched case-insensitively."""
    cls = _resolve(str(config.get("class_name", "")), config.get("module"), custom_objects)
    return cls.from_config(config.get("config", {}), custom_objects)
