"""Weight regularizers: ``regularizer(w) -> scalar Tensor`` added to the training loss (Keras semantics).

``L1``: l1 * sum(|w|);  ``L2``: l2 * sum(w^2) (no 1/2, as Keras);  ``L1L2``: both.

>>> import shendu
>>> w = shendu.tensor([[1.0, -2.0], [3.0, 0.0]])
>>> round(float(L1L2(l1=0.1, l2=0.01)(w)), 6)   # 0.1 * 6 + 0.01 * 14
0.74
"""

from __future__ import annotations

from typing import Any, Callable

from shendu import ops


class Regularizer:
    """Base class: ``__call__(w)`` returns a scalar Tensor; ``get_config()`` its arguments."""

    def __call__(self, w: Any) -> Any:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Regularizer:
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _check_factor(name: str, value: float) -> float:
    value = float(value)
    if value < 0:
        raise ValueError(f"regularizer: {name} must be >= 0, got {value}")
    return value


class L1L2(Regularizer):
    """penalty = l1 * sum(|w|) + l2 * sum(w^2)"""

    def __init__(self, l1: float = 0.0, l2: float = 0.0) -> None:
        self.l1, self.l2 = _check_factor("l1", l1), _check_factor("l2", l2)

    def __call__(self, w):
        penalty = None
        if self.l1:
            penalty = ops.sum(ops.abs(w)) * self.l1
        if self.l2:
            l2 = ops.sum(w * w) * self.l2
            penalty = l2 if penalty is None else penalty + l2
        return ops.sum(w * 0) if penalty is None else penalty

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    """penalty = l1 * sum(|w|)"""

    def __init__(self, l1: float = 0.01) -> None:
        super().__init__(l1=l1)

    def get_config(self):
        return {"l1": self.l1}


class L2(L1L2):
    """penalty = l2 * sum(w^2)"""

    def __init__(self, l2: float = 0.01) -> None:
        super().__init__(l2=l2)

    def get_config(self):
        return {"l2": self.l2}


def l1(l1: float = 0.01) -> L1:
    """L1 penalty l1 * sum(|w|)."""
    return L1(l1)


def l2(l2: float = 0.01) -> L2:
    """L2 penalty l2 * sum(w^2)."""
    return L2(l2)


def l1_l2(l1: float = 0.01, l2: float = 0.01) -> L1L2:
    """Both penalties (Keras 2's defaults, 0.01 each)."""
    return L1L2(l1=l1, l2=l2)


_CLASSES = {"L1": L1, "L2": L2, "L1L2": L1L2}
_ALIASES: dict[str, Callable[[], Regularizer]] = {"l1": l1, "l2": l2, "l1_l2": l1_l2}


def get(identifier: Any) -> Callable | None:
    """A regularizer from a name ('l2'), a config dict, an instance or a callable; None stays None."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str):
        make = _ALIASES.get(identifier) or _CLASSES.get(identifier)
        if make is None:
            raise ValueError(f"unknown regularizer {identifier!r}; choose one of {sorted(_ALIASES)}")
        return make()
    if isinstance(identifier, dict):
        cls = _CLASSES.get(identifier.get("class_name"))
        if cls is None:
            raise ValueError(f"unknown regularizer config {identifier!r}; class_name must be one of {sorted(_CLASSES)}")
        return cls.from_config(identifier.get("config", {}))
    if callable(identifier):
        return identifier
    raise ValueError(f"could not interpret regularizer {identifier!r}: give a name, a config dict or a callable")


def serialize(regularizer: Any) -> dict[str, Any] | None:
    """``{'class_name': ..., 'config': ...}`` (JSON-safe); None stays None."""
    if regularizer is None:
        return None
    if not isinstance(regularizer, Regularizer):
        raise ValueError(f"cannot serialise the regularizer {regularizer!r}: subclass "
                         "shendu.regularizers.Regularizer and define get_config()")
    return {"class_name": type(regularizer).__name__, "config": regularizer.get_config()}


def deserialize(config: Any) -> Callable | None:
    """The inverse of :func:`serialize`."""
    return get(config)
