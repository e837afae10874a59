"""``TensorBoard``: write the training curves as TensorBoard event files (Keras 3's callback and layout).

``log_dir/train`` gets ``epoch_<metric>`` scalars (and ``epoch_learning_rate``) every epoch, ``log_dir/validation``
the ``val_`` metrics under the same tags (``epoch_loss``, ...), so TensorBoard draws train and validation on one
chart; ``update_freq="batch"`` (or every N batches) adds ``batch_<metric>`` scalars; ``histogram_freq=N`` writes a
histogram of every weight every N epochs. Events are written with the ``tensorboard`` package
(``pip install tensorboard``), without TensorFlow. Not written: the graph, images, profiles and embeddings
(``write_graph`` is accepted and ignored; ``write_images``, ``profile_batch`` and ``embeddings_freq`` are refused).
Under a distribution (:mod:`shendu.distribute`) only rank 0 writes.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from shendu.callbacks.callback import Callback
from shendu.distribute import is_chief


def _tensorboard() -> tuple[Any, Any, Any]:
    """The event writer and the protos from the ``tensorboard`` package, or an ImportError with the fix."""
    try:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import HistogramProto, Summary
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
    except ImportError:
        raise ImportError("callbacks.TensorBoard writes event files with the tensorboard package, which is not "
                          "installed: pip install tensorboard (TensorFlow is not needed)") from None
    return EventFileWriter, Event, (Summary, HistogramProto)


class TensorBoard(Callback):
    """Log scalars (and weight histograms) for TensorBoard under ``log_dir`` (see the module docstring).

    ``update_freq``: ``"epoch"`` (default), ``"batch"`` or an integer N (every N training batches).
    """

    def __init__(self, log_dir: str | os.PathLike = "logs", histogram_freq: int = 0, write_graph: bool = True,
                 write_images: bool = False, write_steps_per_second: bool = False, update_freq: str | int = "epoch",
                 profile_batch: int = 0, embeddings_freq: int = 0, embeddings_metadata: Any = None) -> None:
        super().__init__()
        self._writer_cls, self._event_cls, (self._summary_cls, self._histogram_cls) = _tensorboard()
        if write_images or profile_batch or embeddings_freq or embeddings_metadata:
            raise ValueError("TensorBoard: shendu writes scalars and weight histograms only; write_images, "
                             "profile_batch and embeddings_freq are not supported (leave them at their defaults)")
        if update_freq not in ("epoch", "batch") and not (isinstance(update_freq, int) and update_freq > 0):
            raise ValueError(f"TensorBoard: update_freq must be 'epoch', 'batch' or a positive integer, got "
                             f"{update_freq!r}")
        if not isinstance(histogram_freq, int) or histogram_freq < 0:
            raise ValueError(f"TensorBoard: histogram_freq must be a non-negative integer, got {histogram_freq!r}")
        self.log_dir = os.fspath(log_dir)
        self.histogram_freq = histogram_freq
        self.write_graph = write_graph
        self.write_steps_per_second = write_steps_per_second
        self.update_freq = 1 if update_freq == "batch" else update_freq
        self._writers: dict[str, Any] = {}
        self._train_step = 0
        self._epoch_start = 0.0
        self._epoch_batches = 0

    # ------------------------------------------------------------------ writing
    def _writer(self, run: str) -> Any:
        if run not in self._writers:
            path = os.path.join(self.log_dir, run)
            os.makedirs(path, exist_ok=True)
            self._writers[run] = self._writer_cls(path)
        return self._writers[run]

    def _scalars(self, run: str, values: dict[str, float], step: int) -> None:
        summary = self._summary_cls(value=[self._summary_cls.Value(tag=tag, simple_value=float(value))
                                           for tag, value in values.items()])
        self._writer(run).add_event(self._event_cls(wall_time=time.time(), step=int(step), summary=summary))

    def _histograms(self, epoch: int) -> None:
        values = []
        for weight in self.model.weights:
            data = np.asarray(weight.numpy(), dtype=np.float64).ravel()
            if data.size == 0:
                continue
            counts, edges = np.histogram(data, bins=30)
            proto = self._histogram_cls(min=float(data.min()), max=float(data.max()), num=float(data.size),
                                        sum=float(data.sum()), sum_squares=float((data * data).sum()),
                                        bucket_limit=edges[1:].tolist(), bucket=counts.astype(float).tolist())
            values.append(self._summary_cls.Value(tag=f"{weight.name or 'weight'}/histogram", histo=proto))
        if values:
            self._writer("train").add_event(self._event_cls(wall_time=time.time(), step=int(epoch),
                                                            summary=self._summary_cls(value=values)))

    @staticmethod
    def _numbers(logs: dict | None) -> dict[str, float]:
        return {k: float(v) for k, v in (logs or {}).items() if np.ndim(v) == 0 and np.isreal(v)}

    # ------------------------------------------------------------------ hooks
    def on_train_begin(self, logs: dict | None = None) -> None:
        self._train_step = 0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch_start = time.perf_counter()
        self._epoch_batches = 0

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._train_step += 1
        self._epoch_batches += 1
        if is_chief() and self.update_freq != "epoch" and self._train_step % self.update_freq == 0:
            self._scalars("train", {f"batch_{k}": v for k, v in self._numbers(logs).items()}, self._train_step)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if not is_chief():
            return
        numbers = self._numbers(logs)
        train = {k: v for k, v in numbers.items() if not k.startswith("val_")}
        optimizer = getattr(self.model, "optimizer", None)
        if "learning_rate" not in train and optimizer is not None and hasattr(optimizer, "learning_rate"):
            try:
                train["learning_rate"] = float(optimizer.learning_rate)
            except (TypeError, ValueError):
                pass  # a schedule object: its value is not a plain number
        if self.write_steps_per_second:
            elapsed = time.perf_counter() - self._epoch_start
            train["steps_per_second"] = self._epoch_batches / elapsed if elapsed > 0 else 0.0
        self._scalars("train", {f"epoch_{k}": v for k, v in train.items()}, epoch)
        validation = {k[len("val_"):]: v for k, v in numbers.items() if k.startswith("val_")}
        if validation:
            self._scalars("validation", {f"epoch_{k}": v for k, v in validation.items()}, epoch)
        if self.histogram_freq and epoch % self.histogram_freq == 0:
            self._histograms(epoch)
        for writer in self._writers.values():
            writer.flush()

    def on_train_end(self, logs: dict | None = None) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers = {}
