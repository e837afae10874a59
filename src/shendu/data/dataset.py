"""Datasets: anything with ``__len__`` and ``__getitem__(i)`` returning one sample.

A dataset may also define ``__getitems__(indices)`` returning a whole collated batch at once (as in
PyTorch); :class:`TensorDataset` does, with one fancy-indexing call per array, and the
:class:`~shendu.data.DataLoader` uses it instead of a per-sample Python loop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from shendu.autograd.tensor import Tensor
from shendu.backend import is_array
from shendu.data.collate import default_collate
from shendu.random import get_rng


class Dataset:
    """Base class: subclasses define ``__len__`` and ``__getitem__(index)`` (one sample)."""

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define __len__")

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")


def _as_array(data: Any) -> Any:
    """A Tensor's ``.data``, an ndarray (NumPy or CuPy) as it is, anything else through ``np.asarray``."""
    if isinstance(data, Tensor):
        return data.data
    return data if is_array(data) else np.asarray(data)


class TensorDataset(Dataset):
    """Arrays sharing their first axis; sample ``i`` is ``(a[i], b[i], ...)``.

    >>> import numpy as np
    >>> ds = TensorDataset(np.arange(6).reshape(3, 2), np.array([0, 1, 0]))
    >>> len(ds), ds[1]
    (3, (array([2, 3]), np.int64(1)))
    >>> ds.__getitems__([2, 0])[1]
    array([0, 0])
    """

    def __init__(self, *arrays: Any) -> None:
        if not arrays:
            raise ValueError("TensorDataset needs at least one array")
        self.arrays = tuple(_as_array(a) for a in arrays)
        lengths = [a.shape[0] if a.ndim else None for a in self.arrays]
        if None in lengths or len(set(lengths)) != 1:
            shapes = ", ".join(str(a.shape) for a in self.arrays)
            raise ValueError(f"TensorDataset: every array needs the same first axis (the samples); got shapes "
                             f"{shapes}. Hint: x and y must hold one row per sample.")

    def __len__(self) -> int:
        return self.arrays[0].shape[0]

    def __getitem__(self, index: int) -> tuple:
        return tuple(a[index] for a in self.arrays)

    def __getitems__(self, indices: Any) -> tuple:
        """The batch at ``indices`` (an index array or a slice), one indexing call per array."""
        return tuple(a[indices] for a in self.arrays)


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order."""

    def __init__(self, dataset: Any, indices: Sequence[int] | np.ndarray) -> None:
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Any:
        return self.dataset[int(self.indices[index])]

    def __getitems__(self, indices: Any) -> Any:
        parent = self.dataset
        chosen = self.indices[indices]
        if hasattr(parent, "__getitems__"):
            return parent.__getitems__(chosen)
        return default_collate([parent[int(i)] for i in chosen])


def random_split(dataset: Any, lengths: Sequence[int | float], seed: int | None = None) -> list[Subset]:
    """Split ``dataset`` at random into non-overlapping :class:`Subset` s of the given lengths.

    ``lengths`` are sample counts summing to ``len(dataset)``, or fractions summing to 1 (the remainder
    of the rounding goes round-robin to the first parts, as in PyTorch). The permutation comes from a
    generator seeded with ``seed``, or from shendu's global one (so ``shendu.seed(n)`` fixes it).

    >>> import numpy as np
    >>> train, val = random_split(TensorDataset(np.arange(10)), [0.8, 0.2], seed=0)
    >>> len(train), len(val), sorted(set(train.indices) | set(val.indices)) == list(range(10))
    (8, 2, True)
    """
    n = len(dataset)
    counts = _split_counts(n, lengths)
    rng = np.random.default_rng(seed) if seed is not None else get_rng()
    order = rng.permutation(n)
    bounds = np.cumsum([0, *counts])
    return [Subset(dataset, order[start:stop]) for start, stop in zip(bounds[:-1], bounds[1:])]


def _split_counts(n: int, lengths: Sequence[int | float]) -> list[int]:
    if lengths and all(isinstance(f, float) for f in lengths) and math.isclose(sum(lengths), 1.0):
        if any(f < 0 for f in lengths):
            raise ValueError(f"random_split: fractions must be non-negative, got {list(lengths)}")
        counts = [int(math.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        return counts
    if any(int(k) != k or k < 0 for k in lengths) or sum(lengths) != n:
        raise ValueError(f"random_split: lengths must be non-negative counts summing to len(dataset) = {n}, or "
                         f"fractions summing to 1; got {list(lengths)}")
    return [int(k) for k in lengths]
