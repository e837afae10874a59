"""``ModelCheckpoint``: save the model (or its weights) during training, optionally only when it improves."""

from __future__ import annotations

import os
import warnings

from shendu.callbacks.monitor import MonitorCallback
from shendu.distribute import is_chief
from shendu.saving import save_model


class ModelCheckpoint(MonitorCallback):
    """Save at the end of every epoch (or every ``save_freq`` batches) to ``filepath``.

    ``filepath`` may hold ``str.format`` fields filled from the epoch (1-based) and the logs:
    ``"ckpt/w-{epoch:02d}-{val_loss:.3f}.weights.npz"``. ``save_best_only``: save only when ``monitor``
    improves (the file is then overwritten if the name has no fields). ``save_weights_only``: write
    ``model.save_weights`` (``.npz`` or ``.safetensors``, written atomically: temp file, then ``os.replace``);
    otherwise ``model.save``. ``initial_value_threshold``: the value to beat from the start.
    Under a distribution (:mod:`shendu.distribute`) every rank decides alike (the logs are averaged over the
    ranks) and only rank 0 prints and writes.
    """

    def __init__(self, filepath: str | os.PathLike, monitor: str = "val_loss", verbose: int = 0,
                 save_best_only: bool = False, save_weights_only: bool = False, mode: str = "auto",
                 save_freq: str | int = "epoch", initial_value_threshold: float | None = None) -> None:
        super().__init__(monitor, mode, baseline=initial_value_threshold)
        self.filepath = os.fspath(filepath)
        self.verbose = verbose
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only
        if save_freq != "epoch" and not (isinstance(save_freq, int) and save_freq > 0):
            raise ValueError(f"ModelCheckpoint: save_freq must be 'epoch' or a positive number of batches, "
                             f"got {save_freq!r}")
        self.save_freq = save_freq
        self._batches_seen = 0
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        self._batches_seen += 1
        if self._batches_seen % self.save_freq == 0:
            self._save(self._epoch, logs, batch=batch)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, logs)

    def format_path(self, epoch: int, logs: dict | None, batch: int | None = None) -> str:
        fields = dict(logs or {})
        fields.update(epoch=epoch + 1, batch=None if batch is None else batch + 1)
        try:
            return self.filepath.format(**fields)
        except KeyError as e:
            raise KeyError(f"ModelCheckpoint: filepath {self.filepath!r} uses the field {e}, which is not in the "
                           f"logs; available: epoch, batch, {', '.join(logs or {})}") from None

    def _save(self, epoch: int, logs: dict | None, batch: int | None = None) -> None:
        path = self.format_path(epoch, logs, batch)
        if self.save_best_only:
            current = self.get_monitor_value(logs)
            if current is None:
                return
            if not self._is_improvement(current, self.best):
                if self.verbose > 0 and is_chief():
                    print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {self.best}")
                return
            if self.verbose > 0 and is_chief():
                print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {self.best} to {current}, saving to {path}")
            self.best = current
        elif self.verbose > 0 and is_chief():
            print(f"\nEpoch {epoch + 1}: saving model to {path}")
        if not is_chief():
            return
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        save = getattr(self.model, "save", None)
        if self.save_weights_only or save is None:
            if not self.save_weights_only:
                warnings.warn("ModelCheckpoint: this model has no save(); writing its weights only", stacklevel=2)
            self.model.save_weights(path)
        elif getattr(self.model, "compile", None) is not None and hasattr(self.model, "get_config"):
            # a shendu Model: record the epochs completed (History hears of this one only later)
            save_model(self.model, path, epoch=epoch + 1 if batch is None else epoch)
        else:
            save(path)
