"""``PyDataset``: Keras 3's base class for Python datasets that ``fit``/``evaluate``/``predict`` take as ``x``.

Subclass it, call ``super().__init__(**kwargs)``, and define ``__len__`` (the number of batches) and
``__getitem__(i)`` (batch ``i``: ``x``, ``(x, y)`` or ``(x, y, sample_weight)``). Iterating it (what the data
adapter does once per epoch) calls ``on_epoch_begin()``, yields batches ``0 .. len - 1`` in order and then calls
``on_epoch_end()`` (shuffle there), as Keras does. With ``workers > 1`` the batches are read by that many threads,
at most ``max_queue_size`` ahead of the consumer (so ``__getitem__`` must be thread-safe, as in Keras);
``use_multiprocessing=True`` is accepted and also uses threads (shendu never pickles a dataset into processes).

>>> import numpy as np
>>> class Squares(PyDataset):
...     def __init__(self, n, batch_size, **kwargs):
...         super().__init__(**kwargs)
...         self.x = np.arange(n, dtype="float32")[:, None]
...         self.batch_size = batch_size
...     def __len__(self):
...         return -(-len(self.x) // self.batch_size)
...     def __getitem__(self, i):
...         x = self.x[i * self.batch_size:(i + 1) * self.batch_size]
...         return x, x ** 2
>>> data = Squares(10, 4, workers=2)
>>> len(data), data.num_batches, data[2][1].ravel().tolist(), data.workers
(3, 3, [64.0, 81.0], 2)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

__all__ = ["PyDataset", "Sequence"]


class PyDataset:
    """Base class for a dataset of batches, indexed by batch number (see the module docstring)."""

    def __init__(self, workers: int = 1, use_multiprocessing: bool = False, max_queue_size: int = 10) -> None:
        for name, value in (("workers", workers), ("max_queue_size", max_queue_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"PyDataset: {name} must be a positive integer, got {value!r}")
        self._workers = workers
        self._use_multiprocessing = bool(use_multiprocessing)
        self._max_queue_size = max_queue_size

    @property
    def workers(self) -> int:
        """How many threads read batches (1: the calling thread)."""
        return self.__dict__.get("_workers", 1)

    @workers.setter
    def workers(self, value: int) -> None:
        self._workers = value

    @property
    def use_multiprocessing(self) -> bool:
        """The ``use_multiprocessing`` given (accepted; shendu reads batches with threads either way)."""
        return self.__dict__.get("_use_multiprocessing", False)

    @use_multiprocessing.setter
    def use_multiprocessing(self, value: bool) -> None:
        self._use_multiprocessing = bool(value)

    @property
    def max_queue_size(self) -> int:
        """How many batches the worker threads may read ahead of the consumer."""
        return self.__dict__.get("_max_queue_size", 10)

    @max_queue_size.setter
    def max_queue_size(self, value: int) -> None:
        self._max_queue_size = value

    def __getitem__(self, index: int) -> Any:
        """Batch ``index``: ``x``, ``(x, y)`` or ``(x, y, sample_weight)``."""
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__(index) returning batch index")

    def __len__(self) -> int:
        """The number of batches in an epoch."""
        raise NotImplementedError(f"{type(self).__name__} must define __len__() returning the number of batches")

    def __iter__(self) -> Iterator[Any]:
        """One epoch: ``on_epoch_begin()``, every batch in order (read by ``workers`` threads when more than one),
        then ``on_epoch_end()``."""
        self.on_epoch_begin()
        n = len(self)
        if self.workers <= 1:
            for i in range(n):
                yield self[i]
        else:
            with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="PyDataset") as pool:
                ahead = max(self.max_queue_size, self.workers)
                pending: deque = deque(pool.submit(self.__getitem__, i) for i in range(min(ahead, n)))
                submitted = len(pending)
                while pending:
                    batch = pending.popleft().result()
                    if submitted < n:
                        pending.append(pool.submit(self.__getitem__, submitted))
                        submitted += 1
                    yield batch
        self.on_epoch_end()

    @property
    def num_batches(self) -> int | None:
        """The number of batches (``len(self)``), as Keras names it."""
        return len(self)

    def on_epoch_begin(self) -> None:
        """Called at the start of every epoch (when iteration begins); override it if needed."""

    def on_epoch_end(self) -> None:
        """Called at the end of every epoch (after the last batch); shuffle here."""


#: Keras 3 keeps ``keras.utils.Sequence`` as another name for ``PyDataset``
Sequence = PyDataset
