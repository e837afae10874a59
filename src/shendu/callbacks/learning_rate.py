"""Callbacks that change the optimiser's learning rate: ``LearningRateScheduler`` and ``ReduceLROnPlateau``.

Both write the rate into the epoch's logs, so ``History`` records it: under ``learning_rate`` (Keras 3's key)
and ``lr`` (Keras 2's key, the name the seed article uses).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from shendu.callbacks.callback import Callback
from shendu.callbacks.monitor import MonitorCallback


def _log_rate(logs: dict | None, rate: float) -> None:
    if logs is not None:
        logs["learning_rate"] = rate
        logs["lr"] = rate


class LearningRateScheduler(Callback):
    """At the start of each epoch set ``lr = schedule(epoch, lr)`` (or ``schedule(epoch)``).

    >>> sched = LearningRateScheduler(lambda epoch, lr: lr * 0.5 if epoch >= 1 else lr)
    """

    def __init__(self, schedule: Callable[..., float], verbose: int = 0) -> None:
        super().__init__()
        self.schedule = schedule
        self.verbose = verbose
        try:
            self._takes_lr = len(inspect.signature(schedule).parameters) >= 2
        except (TypeError, ValueError):
            self._takes_lr = True

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        rate = float(optimizer.learning_rate)
        new_rate = self.schedule(epoch, rate) if self._takes_lr else self.schedule(epoch)
        try:
            new_rate = float(new_rate)
        except (TypeError, ValueError):
            raise ValueError(f"LearningRateScheduler: the schedule must return a number, got {new_rate!r}") from None
        optimizer.learning_rate = new_rate
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {new_rate}.")

    def on_epoch_end(self, epoch, logs=None):
        _log_rate(logs, float(self.model.optimizer.learning_rate))


class ReduceLROnPlateau(MonitorCallback):
    """Multiply the rate by ``factor`` after ``patience`` epochs without improvement (never below ``min_lr``),
    then wait ``cooldown`` epochs before counting again. Keras 3 semantics (``min_delta`` defaults to 1e-4)."""

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10, verbose: int = 0,
                 mode: str = "auto", min_delta: float = 1e-4, cooldown: int = 0, min_lr: float = 0.0) -> None:
        super().__init__(monitor, mode, min_delta=min_delta)
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau: factor must be < 1.0 (the rate is multiplied by it), got {factor}")
        self.factor = factor
        self.patience = patience
        self.verbose = verbose
        self.cooldown = cooldown
        self.min_lr = min_lr
        self.wait = 0
        self.cooldown_counter = 0

    def on_train_begin(self, logs=None):
        self.best = None
        self.wait = 0
        self.cooldown_counter = 0

    def on_epoch_end(self, epoch, logs=None):
        optimizer = self.model.optimizer
        _log_rate(logs, float(optimizer.learning_rate))
        current = self.get_monitor_value(logs)
        if current is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best = current
            self.wait = 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience:
                old = float(optimizer.learning_rate)
                if old > self.min_lr:
                    optimizer.learning_rate = max(old * self.factor, self.min_lr)
                    if self.verbose > 0:
                        print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to "
                              f"{optimizer.learning_rate}.")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0
