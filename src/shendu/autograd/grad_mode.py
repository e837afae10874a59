"""Thread-local gradient mode: ``no_grad()`` and ``enable_grad()``, as context managers or decorators."""

from __future__ import annotations

import functools
import threading
from typing import Any, Callable

_state = threading.local()


def is_grad_enabled() -> bool:
    """True when operations are being recorded for backward (the default, per thread)."""
    return getattr(_state, "enabled", True)


def set_grad_enabled(mode: bool) -> None:
    """Turn recording on or off for the current thread."""
    _state.enabled = bool(mode)


class _GradMode:
    enabled: bool

    def __enter__(self) -> None:
        self._previous = is_grad_enabled()
        set_grad_enabled(self.enabled)

    def __exit__(self, *exc: Any) -> None:
        set_grad_enabled(self._previous)

    def __call__(self, func: Callable) -> Callable:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self.__class__():
                return func(*args, **kwargs)

        return wrapper


class no_grad(_GradMode):
    """Do not record operations: results have ``requires_grad=False``.

    >>> import shendu
    >>> w = shendu.ones(2, requires_grad=True)
    >>> with shendu.no_grad():
    ...     (w * 2).requires_grad
    False
    """

    enabled = False


class enable_grad(_GradMode):
    """Record operations again inside a ``no_grad`` block."""

    enabled = True
