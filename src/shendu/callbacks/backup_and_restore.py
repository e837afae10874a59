"""``BackupAndRestore``: resume an interrupted ``fit`` where it stopped.

At the end of every epoch (or every ``save_freq`` batches) one file, ``<backup_dir>/backup.npz``, is written
atomically with the model's weights, the optimiser's state (``optimizer.state_dict()``), the epoch reached and
shendu's random-generator state (the training thread's generator, see :mod:`shendu.random`). When ``fit``
starts again with the same callback it loads them and continues from the next epoch, so shuffling and dropout
follow the same sequence as an uninterrupted run.
The file is deleted when training finishes (``delete_checkpoint=True``).

Under a distribution (:mod:`shendu.distribute`) only rank 0 writes and deletes the file; ranks that see it
(a shared file system) load it, and ``fit`` then gives every rank rank 0's weights, optimiser state, random
state and epoch, so a resume works with or without a shared file system.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from shendu import random as shendu_random
from shendu.callbacks.callback import Callback
from shendu.distribute import is_chief
from shendu.utils.weights_io import load_arrays, save_arrays


class BackupAndRestore(Callback):
    """Back up the training state to ``backup_dir`` and restore it when ``fit`` is called again."""

    def __init__(self, backup_dir: str | os.PathLike, save_freq: str | int = "epoch",
                 delete_checkpoint: bool = True) -> None:
        super().__init__()
        if not backup_dir:
            raise ValueError("BackupAndRestore: backup_dir is empty; give a directory for the backup")
        if save_freq != "epoch" and not (isinstance(save_freq, int) and save_freq > 0):
            raise ValueError(f"BackupAndRestore: save_freq must be 'epoch' or a positive int, got {save_freq!r}")
        self.backup_dir = os.fspath(backup_dir)
        self.save_freq = save_freq
        self.delete_checkpoint = delete_checkpoint
        self.path = os.path.join(self.backup_dir, "backup.npz")
        self._epoch = 0
        self._batches = 0

    def on_train_begin(self, logs=None):
        if os.path.exists(self.path):
            self._restore()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq != "epoch":
            self._batches += 1
            if self._batches % self.save_freq == 0:  # mid-epoch: resume by redoing this epoch
                self._backup(self._epoch - 1)

    def on_epoch_end(self, epoch, logs=None):
        self._backup(epoch)

    def on_train_end(self, logs=None):
        if self.delete_checkpoint and is_chief() and os.path.exists(self.path):  # an interrupted fit never gets here
            os.remove(self.path)

    def _backup(self, completed_epoch: int) -> None:
        if not is_chief():
            return
        arrays: dict[str, Any] = {f"weights/{i:04d}": w for i, w in enumerate(self.model.get_weights())}
        meta: dict[str, Any] = {"epoch": completed_epoch, "rng": shendu_random.get_state()}
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None and hasattr(optimizer, "state_dict"):
            state = optimizer.state_dict()
            meta["iterations"] = int(state.get("iterations", 0))
            meta["optimizer_slots"] = [sorted(slot) for slot in state.get("state", [])]
            for i, slot in enumerate(state.get("state", [])):
                for key, value in slot.items():
                    arrays[f"optimizer/{i:04d}/{key}"] = np.asarray(value)
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        save_arrays(self.path, arrays)

    def _restore(self) -> None:
        arrays = load_arrays(self.path)
        meta = json.loads(arrays["meta"].tobytes().decode())
        weights = [arrays[k] for k in sorted(k for k in arrays if k.startswith("weights/"))]
        self.model.set_weights(weights)
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None and "optimizer_slots" in meta:
            state = optimizer.state_dict()
            state["iterations"] = meta["iterations"]
            state["state"] = [{key: arrays[f"optimizer/{i:04d}/{key}"] for key in keys}
                              for i, keys in enumerate(meta["optimizer_slots"])]
            optimizer.load_state_dict(state)
        shendu_random.set_state(meta["rng"])
        self.model._initial_epoch = meta["epoch"] + 1
