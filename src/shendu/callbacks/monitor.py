"""``MonitorCallback``: the shared "is this epoch's value an improvement?" logic of EarlyStopping,
ModelCheckpoint and ReduceLROnPlateau (monitor, mode, min_delta, baseline), as Keras 3 defines it."""

from __future__ import annotations

import operator
import warnings
from typing import Any

from shendu.callbacks.callback import Callback

_MAXIMISED = ("acc", "accuracy", "auc", "precision", "recall", "f1", "f1_score", "fbeta", "iou", "r2", "top_k")
_MINIMISED = ("loss", "error", "mse", "mae", "mape", "msle", "rmse", "crossentropy", "hinge", "divergence",
              "poisson", "mean_squared_error", "mean_absolute_error")


class MonitorCallback(Callback):
    """Watches ``logs[monitor]``; ``mode`` 'min', 'max' or 'auto' (from the name, as Keras: loss -> min,
    accuracy/auc/precision/recall -> max). A change smaller than ``min_delta`` is no improvement."""

    def __init__(self, monitor: str = "val_loss", mode: str = "auto", baseline: float | None = None,
                 min_delta: float = 0.0) -> None:
        super().__init__()
        if mode not in ("auto", "min", "max"):
            warnings.warn(f"{type(self).__name__}: mode {mode!r} is unknown, falling back to 'auto'", stacklevel=3)
            mode = "auto"
        self.monitor = monitor
        self.mode = mode
        self.baseline = baseline
        self.best: float | None = baseline
        self.min_delta = abs(min_delta)
        self.monitor_op: Any = None

    def _direction(self) -> str:
        if self.mode != "auto":
            return self.mode
        name = self.monitor.removeprefix("val_")
        for metric in getattr(self.model, "metrics", None) or []:
            direction = getattr(metric, "_direction", None)
            if getattr(metric, "name", None) == name and direction in ("up", "down"):
                return "max" if direction == "up" else "min"
        words = name.lower()
        if words.endswith(_MINIMISED) or "loss" in words:
            return "min"
        if words.endswith(_MAXIMISED) or "accuracy" in words:
            return "max"
        raise ValueError(f"{type(self).__name__}: cannot tell whether monitor={self.monitor!r} should be maximised "
                         "or minimised; pass mode='max' (for a score) or mode='min' (for an error)")

    def _set_monitor_op(self) -> None:
        self.monitor_op = operator.lt if self._direction() == "min" else operator.gt

    def _is_improvement(self, value: float, reference: float | None) -> bool:
        if self.monitor_op is None:
            self._set_monitor_op()
        if reference is None:
            return True
        delta = -self.min_delta if self.monitor_op is operator.lt else self.min_delta
        return bool(self.monitor_op(value - delta, reference))

    def get_monitor_value(self, logs: dict | None) -> float | None:
        value = (logs or {}).get(self.monitor)
        if value is None:
            warnings.warn(f"{type(self).__name__} is conditioned on {self.monitor!r}, which is not in the logs; "
                          f"available: {', '.join(logs or {}) or 'none'}", stacklevel=3)
            return None
        return float(value)
