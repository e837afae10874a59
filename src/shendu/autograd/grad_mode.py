"""Thread-local gradient mode: ``no_grad()``, ``enable_grad()`` and ``set_grad_enabled(mode)``.

Each is a context manager and a decorator (``@no_grad`` or ``@no_grad()``), as in PyTorch. The mode
belongs to the current thread: a ``no_grad`` block in one thread never turns recording off in another.
"""

from __future__ import annotations

import functools
import threading
from typing import Any, Callable


class _State(threading.local):
    enabled = True  # every new thread starts with recording on


_state = _State()


def is_grad_enabled() -> bool:
    """True when operations are being recorded for backward (the default, per thread)."""
    return _state.enabled


def swap_grad_enabled(mode: bool) -> bool:
    """Set the current thread's mode and return the previous one (for the engine's try/finally)."""
    previous = _state.enabled
    _state.enabled = mode
    return previous


def _decorate(func: Callable, make_mode: Callable[[], Any]) -> Callable:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with make_mode():
            return func(*args, **kwargs)

    return wrapper


class _GradMode:
    """Sets the mode on ``__enter__`` and restores the previous one on ``__exit__``."""

    enabled: bool

    def __new__(cls, func: Callable | None = None) -> Any:
        self = super().__new__(cls)
        return self if func is None else self(func)  # bare @no_grad decorates directly

    def __enter__(self) -> None:
        self._previous = _state.enabled
        _state.enabled = self.enabled

    def __exit__(self, *exc: Any) -> None:
        _state.enabled = self._previous

    def __call__(self, func: Callable) -> Callable:
        return _decorate(func, type(self))


class no_grad(_GradMode):
    """Do not record operations: results have ``requires_grad=False``.

    >>> import shendu
    >>> w = shendu.ones(2, requires_grad=True)
    >>> with shendu.no_grad():
    ...     (w * 2).requires_grad
    False
    >>> @shendu.no_grad
    ... def predict(x):
    ...     return x * w
    >>> predict(shendu.ones(2)).requires_grad
    False
    """

    enabled = False


class enable_grad(_GradMode):
    """Record operations again inside a ``no_grad`` block."""

    enabled = True


class set_grad_enabled(_GradMode):
    """Turn recording on or off: at once for the current thread, and as a context manager that restores
    the previous mode on exit (PyTorch's ``torch.set_grad_enabled``).

    >>> import shendu
    >>> with shendu.set_grad_enabled(False):
    ...     shendu.is_grad_enabled()
    False
    >>> shendu.is_grad_enabled()
    True
    """

    def __new__(cls, mode: bool) -> set_grad_enabled:
        return object.__new__(cls)

    def __init__(self, mode: bool) -> None:
        self.enabled = bool(mode)
        self._previous = _state.enabled
        _state.enabled = self.enabled

    def __enter__(self) -> None:
        pass  # the mode was already set by the constructor

    def __call__(self, func: Callable) -> Callable:
        _state.enabled = self._previous  # decorating a function must not change the mode now
        return _decorate(func, functools.partial(set_grad_enabled, self.enabled))
