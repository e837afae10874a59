"""``CSVLogger``: one CSV row per epoch (epoch, then the log keys in sorted order), as Keras writes it."""

from __future__ import annotations

import csv
import os

from shendu.callbacks.callback import Callback
from shendu.distribute import is_chief


class CSVLogger(Callback):
    """Stream epoch results to ``filename``; ``append=True`` continues an existing file. Under a distribution
    (:mod:`shendu.distribute`) only rank 0 writes (the logs are already averaged over the ranks)."""

    def __init__(self, filename: str | os.PathLike, separator: str = ",", append: bool = False) -> None:
        super().__init__()
        self.filename = os.fspath(filename)
        self.sep = separator
        self.append = append
        self.keys: list[str] | None = None
        self._file = None
        self._writer = None

    def on_train_begin(self, logs=None):
        if not is_chief():
            return
        exists = self.append and os.path.exists(self.filename) and os.path.getsize(self.filename) > 0
        self._append_header = not exists
        self._file = open(self.filename, "a" if self.append else "w", newline="", encoding="utf-8")  # noqa: SIM115
        self.keys = None
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        if self._file is None:  # not rank 0
            return
        logs = dict(logs or {})
        if self.keys is None:
            self.keys = sorted(logs)
            self._writer = csv.DictWriter(self._file, fieldnames=["epoch", *self.keys], delimiter=self.sep,
                                          extrasaction="ignore", restval="NA")
            if self._append_header:
                self._writer.writeheader()
        row = {"epoch": epoch}
        row.update({k: logs.get(k, "NA") for k in self.keys})
        self._writer.writerow(row)
        self._file.flush()

    def on_train_end(self, logs=None):
        if self._file is not None:
            self._file.close()
            self._file = None
            self._writer = None
