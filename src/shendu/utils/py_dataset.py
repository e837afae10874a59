"""``PyDataset``: Keras 3's base class for Python datasets that ``fit``/``evaluate``/``predict`` take as ``x``.

Subclass it, call ``super().__init__(**kwargs)``, and define ``__len__`` (the number of batches) and
``__getitem__(i)`` (batch ``i``: ``x``, ``(x, y)`` or ``(x, y, sample_weight)``); ``on_epoch_end`` runs between
epochs (shuffle there). shendu's data adapter reads batch ``i`` as ``dataset[i]`` for ``i`` in
``range(len(dataset))``, in the calling thread: ``workers``, ``use_multiprocessing`` and ``max_queue_size`` are
accepted and kept for Keras compatibility, but batches are not prefetched in parallel.

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
        """The ``workers`` given (kept for Keras compatibility; batches are read in the calling thread)."""
        return self.__dict__.get("_workers", 1)

    @workers.setter
    def workers(self, value: int) -> None:
        self._workers = value

    @property
    def use_multiprocessing(self) -> bool:
        """The ``use_multiprocessing`` given (kept for Keras compatibility)."""
        return self.__dict__.get("_use_multiprocessing", False)

    @use_multiprocessing.setter
    def use_multiprocessing(self, value: bool) -> None:
        self._use_multiprocessing = bool(value)

    @property
    def max_queue_size(self) -> int:
        """The ``max_queue_size`` given (kept for Keras compatibility)."""
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

    @property
    def num_batches(self) -> int | None:
        """The number of batches (``len(self)``), as Keras names it."""
        return len(self)

    def on_epoch_begin(self) -> None:
        """Keras's start-of-epoch hook, kept so Keras subclasses that override or call it work; shendu's data
        adapter calls only :meth:`on_epoch_end` (between epochs)."""

    def on_epoch_end(self) -> None:
        """Called between epochs (shuffle here); override it if needed."""


#: Keras 3 keeps ``keras.utils.Sequence`` as another name for ``PyDataset``
Sequence = PyDataset
