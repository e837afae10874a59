"""Constructor arguments: recording them for ``get_config`` and the error for unknown keyword arguments.

``Layer.__new__`` calls :func:`capture_arguments`, so a subclass that does not define ``get_config`` still
serialises when its constructor arguments are plain JSON values (as Keras 3 does).
"""

from __future__ import annotations

import difflib
import inspect
import json
from typing import Any


def with_constructor_arguments(obj: Any, config: dict[str, Any], base: type, kind: str) -> dict[str, Any]:
    """``config`` plus the recorded constructor arguments of ``obj``, when its class subclasses ``base`` with an
    ``__init__`` of its own but inherits ``base.get_config`` (Keras 3's automatic config); else ``config``."""
    cls = type(obj)
    if cls.get_config is not base.get_config or cls.__init__ is base.__init__:
        return config
    arguments = obj.__dict__.get("_auto_config")  # recorded by Layer.__new__ (capture_arguments)
    if arguments is None:
        raise NotImplementedError(f"{kind} '{obj.name}' ({cls.__name__}) was built from arguments that are not "
                                  "plain JSON values; define get_config() (and from_config()) for it")
    return {**arguments, **config}


def capture_arguments(cls: type, args: tuple, kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """The constructor's arguments by name when all are plain JSON values, else None."""
    try:
        bound = inspect.signature(cls.__init__).bind(None, *args, **kwargs)
    except TypeError:
        return None
    arguments = dict(bound.arguments)
    arguments.pop(next(iter(arguments)))  # self
    for name, p in inspect.signature(cls.__init__).parameters.items():
        if p.kind is p.VAR_KEYWORD and name in arguments:
            arguments.update(arguments.pop(name))
        elif p.kind is p.VAR_POSITIONAL and arguments.pop(name, ()):
            return None
    try:
        return json.loads(json.dumps(arguments))
    except (TypeError, ValueError):
        return None


def unknown_kwargs_error(cls: type, kwargs: dict[str, Any]) -> TypeError:
    """A TypeError naming each unknown argument (with the closest valid one) and listing the valid ones."""
    valid: list[str] = []
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        for p in inspect.signature(init).parameters.values():
            if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name not in valid:
                valid.append(p.name)
    lines = []
    for key in kwargs:
        close = difflib.get_close_matches(key, valid, n=1)
        lines.append(f"'{key}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
    return TypeError(f"{cls.__name__}: unknown keyword argument(s) {', '.join(lines)}; "
                     f"valid arguments are: {', '.join(valid)}")
