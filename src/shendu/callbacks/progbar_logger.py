"""``ProgbarLogger``: ``verbose=1`` draws a per-epoch bar, ``verbose=2`` prints one line per epoch.

The bar is :class:`shendu.utils.ProgressBar`: redrawn in place in terminals, with an ETA, every value wrapped to
the terminal's width; a tqdm widget in notebooks; plain lines, no carriage returns, when the output is a file.
Validation inside ``fit`` is silent, as in Keras; ``evaluate`` and ``predict`` on their own show a bar.
"""

from __future__ import annotations

import sys
from typing import IO

from shendu.callbacks.callback import Callback
from shendu.utils.progress import ProgressBar


class ProgbarLogger(Callback):
    """Prints progress to ``file`` (stdout by default)."""

    def __init__(self, file: IO[str] | None = None) -> None:
        super().__init__()
        self.file = file
        self.verbose = 1
        self.epochs = 1
        self.target: int | None = None
        self.bar: ProgressBar | None = None
        self._in_fit = False

    def set_params(self, params):
        super().set_params(params)
        verbose = params.get("verbose", 1)
        self.verbose = 1 if verbose == "auto" else int(verbose)
        self.epochs = params.get("epochs", 1)
        self.target = params.get("steps")

    def _out(self) -> IO[str]:
        return sys.stdout if self.file is None else self.file

    def _open(self) -> None:
        if self.verbose:
            mode = "plain" if self.verbose != 1 else None
            self.bar = ProgressBar(self.target, file=self._out(), mode=mode,
                                   log_interval=30.0 if self.verbose == 1 else float("inf"))

    def _update(self, batch: int, logs) -> None:
        if self.bar is not None:
            self.bar.update(batch + 1, logs)  # verbose=2: counts steps, prints only at the end

    def _close(self, logs) -> None:
        if self.bar is not None:
            self.bar.close(logs)
            self.bar = None

    def on_train_begin(self, logs=None):
        self._in_fit = True

    def on_train_end(self, logs=None):
        self._in_fit = False

    def on_epoch_begin(self, epoch, logs=None):
        if self.verbose and self.epochs > 1:
            print(f"Epoch {epoch + 1}/{self.epochs}", file=self._out(), flush=True)
        self._open()

    def on_train_batch_end(self, batch, logs=None):
        self._update(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._close(logs)

    def on_test_begin(self, logs=None):
        if not self._in_fit:
            self._open()

    def on_test_batch_end(self, batch, logs=None):
        if not self._in_fit:
            self._update(batch, logs)

    def on_test_end(self, logs=None):
        if not self._in_fit:
            self._close(logs)

    def on_predict_begin(self, logs=None):
        self._open()

    def on_predict_batch_end(self, batch, logs=None):
        self._update(batch, None)

    def on_predict_end(self, logs=None):
        self._close(None)
