"""DataLoader: batches of a dataset, shuffled per epoch by its own generator, resumable exactly.

For a :class:`~shendu.data.TensorDataset` (or any dataset with ``__getitems__``) a batch is one
indexing call per array: a slice (a view, no copy) when not shuffling, fancy indexing when shuffling.
Other datasets are read sample by sample and stacked by :func:`default_collate`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from shendu.autograd.tensor import Tensor
from shendu.backend import is_array
from shendu.data.collate import default_collate
from shendu.data.dataset import TensorDataset
from shendu.distribute.data_parallel import shard_slice
from shendu.random import get_rng


def _read_only(array: Any) -> Any:
    """A read-only view of a NumPy array (other arrays as they are)."""
    if isinstance(array, np.ndarray):
        array = array.view()
        array.flags.writeable = False
    return array


class DataLoader:
    """Iterate over ``dataset`` in batches of ``batch_size``; ``len(loader)`` is the number of batches.

    Args:
        dataset: a dataset (``__len__`` and ``__getitem__``); an array or Tensor, or a tuple of them, is
            wrapped in a :class:`TensorDataset`.
        batch_size: samples per batch (the last one may be smaller unless ``drop_last``).
        shuffle: draw a new permutation at the start of every epoch.
        drop_last: drop the last, incomplete batch.
        seed: seeds the loader's own generator; when None, its seed is drawn from
            ``shendu.random.get_rng()`` at the first shuffled epoch, so ``shendu.seed(n)`` fixes the order.
        transform: applied to the inputs of every batch (the first field of a tuple batch, or the whole batch).
        target_transform: applied to the second field of a tuple batch (the targets).
        collate: turns a list of samples into a batch (default :func:`default_collate`); giving one makes
            the loader read samples one at a time.
        shard: for data-parallel training (PyTorch's ``DistributedSampler``): a
            :class:`shendu.distribute.DataParallel` or a ``(rank, world_size)`` pair. Every rank then walks the
            same global batches of ``batch_size`` (the GLOBAL batch size, as in ``fit``) and gets its own
            disjoint slice of each (``shard_slice``: the first ``batch_size % world_size`` ranks one sample
            more). ``len(loader)`` stays the number of global batches, so all ranks take the same number of
            steps. With a DataParallel and no ``seed``, the shuffling seed is rank 0's.

    Batches of an unshuffled TensorDataset are read-only views of its arrays: copy before changing them
    in place. :meth:`state_dict` / :meth:`load_state_dict` save and restore the epoch count, the
    generator and the current epoch's order and position, so a run resumes with the same batches.

    >>> import numpy as np
    >>> loader = DataLoader((np.arange(10), np.arange(10) % 2), batch_size=4, shuffle=True, seed=0)
    >>> len(loader), [x.shape[0] for x, y in loader]
    (3, [4, 4, 2])
    """

    def __init__(self, dataset: Any, batch_size: int = 32, shuffle: bool = False, drop_last: bool = False,
                 seed: int | None = None, transform: Callable | None = None,
                 target_transform: Callable | None = None, collate: Callable[[list], Any] | None = None,
                 shard: Any = None) -> None:
        if isinstance(dataset, (tuple, Tensor)) or is_array(dataset):
            dataset = TensorDataset(*(dataset if isinstance(dataset, tuple) else (dataset,)))
        if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
            raise TypeError(f"DataLoader: dataset must define __len__ and __getitem__ (a Dataset, an array or a "
                            f"tuple of arrays), got {type(dataset).__name__}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive integer, got {batch_size!r}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = seed
        self.transform = transform
        self.target_transform = target_transform
        self.collate = collate
        self.shard = shard
        self._shard_position = self._check_shard(shard)
        self.epoch = 0  # completed passes over the data
        self._rng: np.random.Generator | None = np.random.default_rng(seed) if seed is not None else None
        self._order: np.ndarray | None = None  # this epoch's permutation (None: in order)
        self._position = 0  # batches handed out in this epoch
        self._resume = False  # the next iteration continues a loaded, unfinished epoch

    def __len__(self) -> int:
        n, size = len(self.dataset), self.batch_size
        return n // size if self.drop_last else -(-n // size)

    def __iter__(self) -> Iterator[Any]:
        if self._resume:
            self._resume = False
        else:
            self._order = self._generator().permutation(len(self.dataset)) if self.shuffle else None
            self._position = 0
        order, n_batches, size = self._order, len(self), self.batch_size
        read = self._batch_reader(in_order=order is None)
        transforms = self.transform is not None or self.target_transform is not None
        for k in range(self._position, n_batches):
            start = k * size  # slices past the end stop at n
            if self._shard_position is not None:  # this rank's part of global batch k
                part = shard_slice(min(size, len(self.dataset) - start), *self._shard_position)
                start, size_k = start + part.start, part.stop - part.start
            else:
                size_k = size
            batch = read(slice(start, start + size_k) if order is None else order[start:start + size_k])
            if k + 1 < n_batches:
                self._position = k + 1
            else:  # the last batch is out: the epoch is over, even if the caller stops iterating here
                self._finish_epoch()
            yield self._apply_transforms(batch) if transforms else batch

    # ------------------------------------------------------------------ resume
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to hand out the same batches again: JSON-serialisable (plain ints and lists).

        ``order`` is the current epoch's permutation (None when not shuffling or between epochs),
        ``position`` the number of batches already handed out, ``rng`` the generator's state (None until
        a shuffled epoch has drawn its seed from the global generator).
        """
        order = self._order if self._position > 0 else None
        return {"epoch": self.epoch, "position": self._position,
                "order": None if order is None else order.tolist(),
                "rng": None if self._rng is None else self._rng.bit_generator.state,
                "num_samples": len(self.dataset), "batch_size": self.batch_size, "shuffle": self.shuffle}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output; the next iteration continues an unfinished epoch."""
        n = len(self.dataset)
        for key, mine in (("num_samples", n), ("batch_size", self.batch_size), ("shuffle", self.shuffle)):
            if state.get(key, mine) != mine:
                raise ValueError(f"DataLoader.load_state_dict: the state has {key}={state[key]!r} but this loader "
                                 f"has {key}={mine!r}; build the loader with the same dataset and arguments")
        order = state.get("order")
        if order is not None:
            order = np.asarray(order, dtype=np.int64)
            if order.shape != (n,) or not np.array_equal(np.sort(order), np.arange(n)):
                raise ValueError(f"DataLoader.load_state_dict: 'order' must be a permutation of {n} indices")
        if state.get("rng") is not None:
            self._rng = np.random.default_rng()
            self._rng.bit_generator.state = state["rng"]
        elif self.seed is None:
            self._rng = None
        self.epoch = int(state["epoch"])
        self._position = int(state.get("position", 0))
        self._order = order
        self._resume = self._position > 0

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _check_shard(shard: Any) -> tuple[int, int] | None:
        """(rank, world_size) from ``shard``, or None for no sharding."""
        if shard is None:
            return None
        if hasattr(shard, "rank") and hasattr(shard, "world_size"):
            rank, size = shard.rank, shard.world_size
        elif isinstance(shard, tuple) and len(shard) == 2:
            rank, size = shard
        else:
            raise TypeError(f"DataLoader: shard must be a shendu.distribute.DataParallel or a (rank, world_size) "
                            f"pair, got {type(shard).__name__}")
        if not (isinstance(size, int) and size >= 1 and isinstance(rank, int) and 0 <= rank < size):
            raise ValueError(f"DataLoader: shard needs 0 <= rank < world_size, got rank={rank!r}, "
                             f"world_size={size!r}")
        return rank, size

    def _generator(self) -> np.random.Generator:
        if self._rng is None:
            seed = int(get_rng().integers(2**63))
            comm = getattr(self.shard, "comm", None)
            if comm is not None:  # every rank must walk the same order: take rank 0's seed
                seed = comm.broadcast_object(seed)
            self._rng = np.random.default_rng(seed)
        return self._rng

    def _batch_reader(self, in_order: bool) -> Callable[[slice | np.ndarray], Any]:
        """The fastest way to read one batch given a slice (in order) or an index array (shuffled)."""
        dataset = self.dataset
        if self.collate is None and getattr(type(dataset), "__getitems__", None) is TensorDataset.__getitems__:
            arrays = dataset.arrays
            if in_order:  # slices of read-only views: no copy, and the dataset cannot be changed through them
                arrays = tuple(_read_only(a) for a in arrays)
            if len(arrays) == 2:  # (x, y): the common case, without a loop
                x, y = arrays
                return lambda indices: (x[indices], y[indices])
            return lambda indices: tuple([a[indices] for a in arrays])
        getitems = getattr(dataset, "__getitems__", None)
        if getitems is not None and self.collate is None:
            return getitems
        collate = self.collate or default_collate

        def read_samples(indices: slice | np.ndarray) -> Any:
            positions = range(*indices.indices(len(dataset))) if isinstance(indices, slice) else indices.tolist()
            return collate([dataset[i] for i in positions])

        return read_samples

    def _apply_transforms(self, batch: Any) -> Any:
        if self.transform is None and self.target_transform is None:
            return batch
        if not isinstance(batch, tuple):
            return self.transform(batch) if self.transform is not None else batch
        fields = list(batch)
        if self.transform is not None:
            fields[0] = self.transform(fields[0])
        if self.target_transform is not None and len(fields) > 1:
            fields[1] = self.target_transform(fields[1])
        return tuple(fields)

    def _finish_epoch(self) -> None:
        self.epoch += 1
        self._order = None
        self._position = 0

    def __repr__(self) -> str:
        return (f"DataLoader({type(self.dataset).__name__} of {len(self.dataset)}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last}, batches={len(self)})")
