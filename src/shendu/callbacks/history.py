"""``History``: the per-epoch logs of ``fit``, returned by it (``history.history['loss']``)."""

from __future__ import annotations

from shendu.callbacks.callback import Callback
from shendu.utils.plotting import plot_history


class History(Callback):
    """Records every epoch's logs: ``history[key]`` is a list with one value per epoch; ``epoch`` the indices.

    >>> h = History()
    >>> h.on_train_begin()
    >>> h.on_epoch_end(0, {"loss": 0.5})
    >>> h.on_epoch_end(1, {"loss": 0.25, "val_loss": 0.3})
    >>> h.history, h.epoch
    ({'loss': [0.5, 0.25], 'val_loss': [0.3]}, [0, 1])
    """

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)
        if self.model is not None:
            self.model.history = self

    def plot(self, path=None, metrics=None):
        """Learning curves (see :func:`shendu.utils.plot_history`); saved to ``path`` when given; returns the Figure."""
        return plot_history(self, path, metrics)
