"""Turning what ``fit``/``evaluate``/``predict`` receive into batches ``(x, y, sample_weight)``.

Accepted inputs (Keras's): NumPy arrays (or Tensors); lists/tuples/dicts of them for models with several
inputs or outputs; a Python generator (or any iterator) yielding ``(x, y)``, ``(x, y, sample_weight)`` or ``x``;
a re-iterable loader with ``__len__`` such as ``shendu.data.DataLoader`` or ``torch.utils.data.DataLoader``
(iterated afresh every epoch), or a Keras-style ``Sequence`` (``__len__`` batches, ``seq[i]`` is batch i,
``on_epoch_end()`` between epochs). As in Keras, a batch that is a list (``[x, y]`` from a DataLoader) is read as a
tuple, and PyTorch tensors (in batches or given as arrays) become NumPy arrays.

Arrays are batched by one precomputed plan per epoch: with ``shuffle`` a permutation drawn from
``shendu.random.get_rng()`` (so ``shendu.seed`` makes the order reproducible), the last partial batch kept.
Small data sets are permuted once per epoch into reused buffers, so every batch is a cheap slice (a view);
large ones are gathered batch by batch with fancy indexing.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from shendu.autograd.tensor import Tensor
from shendu.backend import is_array
from shendu.random import get_rng
from shendu.utils import tree
from shendu.utils.batches import unpack_x_y_sample_weight

#: data sets up to this size are permuted once per epoch into reused buffers (batches are then views)
PERMUTE_IN_PLACE_BYTES = 64 * 2**20


def is_array_like(x: Any) -> bool:
    return is_array(x) or isinstance(x, Tensor)


def _to_array(x: Any) -> Any:
    return x.data if isinstance(x, Tensor) else x


def flatten(structure: Any) -> list[Any]:
    """The leaves of a nested list/tuple/dict structure, ``None`` dropped (it means "absent" in data)."""
    return tree.flatten(structure, none_is_leaf=False)


def map_structure(fn: Any, structure: Any) -> Any:
    """Apply ``fn`` to every leaf, keeping the nesting (``None`` stays ``None``)."""
    return tree.map_structure(fn, structure, none_is_leaf=False)


def check_data(caller: str, **named: Any) -> None:
    """Refuse data a model cannot take, with the argument's name, what was expected and a fix: Python numbers
    where arrays belong (a nested or ragged list), strings, object arrays. Called once per fit/evaluate/
    predict call on the whole arrays, never per step."""
    for name, structure in named.items():
        if structure is None or not isinstance(structure, (list, tuple, dict)) and not is_array_like(structure):
            continue
        for leaf in flatten(structure):
            if isinstance(leaf, (str, bytes)):
                raise TypeError(f"{caller}: {name} holds Python strings (e.g. {leaf!r}); a model takes numbers. "
                                + _STRING_HINT[name == "x"])
            scalar = isinstance(leaf, (int, float, complex, np.number, np.bool_))
            if scalar or (is_array_like(leaf) and leaf.ndim == 0):
                raise TypeError(f"{caller}: {name} is a {type(structure).__name__} of Python numbers, but a list "
                                f"is read as one array per model input, each with a batch axis. "
                                + _ragged_hint(name, structure))
            dtype = getattr(leaf, "dtype", None)
            if dtype is not None and dtype.kind in "US":
                raise TypeError(f"{caller}: {name} has dtype {dtype} (strings) with shape {leaf.shape}; expected a "
                                f"numeric array. " + _STRING_HINT[name == "x"])
            if dtype is not None and dtype.kind == "O":
                raise TypeError(f"{caller}: {name} has dtype object (Python objects: a ragged array, rows of different "
                                f"lengths?) with shape {leaf.shape}; expected a numeric array. Pad the rows to one "
                                "length (shendu.data.pad_sequences) and pass a numeric array.")


_STRING_HINT = {True: "Turn text into integer token ids first (shendu.data.Tokenizer, then pad_sequences).",
                False: "Encode labels as integers, e.g. classes, y = np.unique(y, return_inverse=True)."}


def _ragged_hint(name: str, structure: Any) -> str:
    try:
        shape = np.asarray(structure, dtype=float).shape
    except (ValueError, TypeError):
        lengths = [len(row) if isinstance(row, (list, tuple)) else 1 for row in structure]
        shown = str(lengths[:10]) + ("..." if len(lengths) > 10 else "")
        return (f"Its rows have different lengths ({shown}): pad them to one length "
                f"(shendu.data.pad_sequences) and pass np.asarray({name}, dtype='float32').")
    return f"Pass one array instead: np.asarray({name}, dtype='float32') (shape {shape})."


def _is_arrays(structure: Any) -> bool:
    leaves = flatten(structure)
    return bool(leaves) and all(is_array_like(a) or isinstance(a, (list, float, int)) for a in leaves)


def _from_foreign(leaf: Any) -> Any:
    """A foreign array (a PyTorch tensor from a ``torch.utils.data.DataLoader``, anything with ``__array__``) as a
    NumPy array; shendu's own arrays and Tensors pass unchanged."""
    if is_array_like(leaf) or not hasattr(leaf, "__array__") or isinstance(leaf, (str, bytes)):
        return leaf
    if hasattr(leaf, "detach"):  # a torch tensor: off the graph and onto the CPU first
        leaf = leaf.detach().cpu()
    return np.asarray(leaf)


def unpack_batch(batch: Any) -> tuple[Any, Any, Any]:
    """``(x, y, sample_weight)`` from what a generator or loader yields (see :func:`unpack_x_y_sample_weight`),
    PyTorch tensors converted to NumPy arrays."""
    x, y, sample_weight = unpack_x_y_sample_weight(batch)
    return map_structure(_from_foreign, (x, y, sample_weight))


def class_weight_to_sample_weight(y: Any, class_weight: dict[int, float]) -> np.ndarray:
    """Per-sample weights ``class_weight[label]`` (labels: integers, or argmax of one-hot rows)."""
    y = np.asarray(_to_array(y))
    labels = y.argmax(axis=-1) if y.ndim > 1 and y.shape[-1] > 1 else y.reshape(len(y), -1)[:, 0]
    labels = np.round(labels).astype(np.int64)
    missing = sorted(set(np.unique(labels).tolist()) - set(class_weight))
    if missing:
        raise ValueError(f"class_weight has no entry for class(es) {missing}; give a weight for every class "
                         f"(got keys {sorted(class_weight)})")
    table = np.zeros(max(max(class_weight), labels.max(initial=0)) + 1, dtype=np.float32)
    for cls, weight in class_weight.items():
        table[int(cls)] = weight
    return table[labels]


def _num_classes_in(y: np.ndarray) -> int | None:
    """How many classes a label array holds (None for regression targets)."""
    if y.ndim > 1 and y.shape[-1] > 1:
        if np.all((y == 0) | (y == 1)):
            return len(np.unique(y.argmax(axis=-1)))
        return None
    if y.dtype.kind in "iub" or (y.size and np.all(y == np.round(y)) and len(np.unique(y)) <= max(2, y.size // 10)):
        return len(np.unique(y))
    return None


def train_validation_split(x: Any, y: Any, sample_weight: Any, validation_split: float) -> tuple[tuple, tuple]:
    """Keras's split: the LAST ``validation_split`` fraction of the samples, taken before any shuffling.

    Warns when the validation slice holds a single class while the training part holds several (sorted
    labels are the usual cause: shuffle the data before calling fit).
    """
    if not 0.0 < validation_split < 1.0:
        raise ValueError(f"validation_split must be in (0, 1), got {validation_split}")
    leaves = flatten((x, y, sample_weight))
    if not leaves or not all(is_array_like(a) for a in leaves):
        raise ValueError("validation_split works only with arrays; for generators or loaders pass "
                         "validation_data=(x_val, y_val) instead")
    n = len(leaves[0])
    split_at = int(math.floor(n * (1.0 - validation_split)))
    if split_at == 0 or split_at == n:
        raise ValueError(f"validation_split={validation_split} leaves an empty training or validation set with "
                         f"{n} samples; provide more data or another validation_split")
    train = map_structure(lambda a: a[:split_at], (x, y, sample_weight))
    val = map_structure(lambda a: a[split_at:], (x, y, sample_weight))
    for y_leaf in flatten(y):
        labels = np.asarray(_to_array(y_leaf))
        val_classes = _num_classes_in(labels[split_at:])
        if val_classes == 1 and (_num_classes_in(labels[:split_at]) or 0) > 1:
            warnings.warn(f"validation_split={validation_split}: the validation slice (the last {n - split_at} "
                          "samples, taken before shuffling, as in Keras) holds a single class; your data looks "
                          "sorted by label. Shuffle x and y together before fit, or pass validation_data.",
                          stacklevel=3)
    return train, val


class _ArrayPlan:
    """Batches of in-memory arrays for one epoch after another (see the module docstring)."""

    def __init__(self, data: tuple, batch_size: int, shuffle: bool | str) -> None:
        self.data = data
        self.leaves = [_to_array(a) for a in flatten(data)]
        self.n = len(self.leaves[0])
        for a in self.leaves:
            if len(a) != self.n:
                shapes = ", ".join(str(a.shape) for a in self.leaves)
                raise ValueError(f"fit/evaluate: all inputs, targets and sample weights need the same number of "
                                 f"samples (first axis); got shapes {shapes}")
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.num_batches = math.ceil(self.n / batch_size)
        self.starts = list(range(0, self.n, batch_size))
        self._buffers: list[Any] | None = None
        nbytes = sum(a.nbytes for a in self.leaves)
        self._permute_whole = shuffle is True and nbytes <= PERMUTE_IN_PLACE_BYTES
        self._rebuild = self._make_rebuild(data)

    @staticmethod
    def _make_rebuild(data: tuple) -> Any:
        """A function turning the list of batch leaves back into ``(x, y, sample_weight)``."""
        x, y, sw = data
        if is_array_like(x) and (y is None or is_array_like(y)) and (sw is None or is_array_like(sw)):
            iy = 1 if y is not None else None  # the common case, kept cheap: plain arrays
            isw = (2 if y is not None else 1) if sw is not None else None
            return lambda b: (b[0], None if iy is None else b[iy], None if isw is None else b[isw])

        def rebuild(b: list[Any]) -> tuple:
            leaves = iter(b)
            return map_structure(lambda _: next(leaves), data)

        return rebuild

    def epoch(self) -> Iterator[tuple]:
        """The batches of one epoch (a list of views when possible, else a generator of gathered batches)."""
        bs, leaves, rebuild, starts = self.batch_size, self.leaves, self._rebuild, self.starts
        if not self.shuffle:
            return [rebuild([a[s:s + bs] for a in leaves]) for s in starts]
        rng = get_rng()
        if self.shuffle == "batch":  # Keras's shuffle='batch': keep batches contiguous, shuffle their order
            return [rebuild([a[starts[i]:starts[i] + bs] for a in leaves]) for i in rng.permutation(len(starts))]
        perm = rng.permutation(self.n)
        if not self._permute_whole:
            return (rebuild([a[perm[s:s + bs]] for a in leaves]) for s in starts)
        if self._buffers is None:
            self._buffers = [np.empty_like(a) if isinstance(a, np.ndarray) else None for a in leaves]
        sources = []
        for a, buf in zip(leaves, self._buffers):
            if buf is None:
                sources.append(a[perm])
            else:
                a.take(perm, axis=0, out=buf)  # the method: no Python wrapper
                sources.append(buf)
        return [rebuild([a[s:s + bs] for a in sources]) for s in starts]


class EpochIterator:
    """Yields ``(step, (x, y, sample_weight))`` for one epoch each time it is iterated.

    ``num_batches`` is the number of steps per epoch (None when unknown: a generator without
    ``steps_per_epoch``). With ``steps_per_epoch`` the underlying iterator carries over from one epoch to the
    next, as in Keras, and restarts once the data are exhausted.

    ``shard`` (a :class:`shendu.distribute.DataParallel`): every rank walks the same global batches and yields
    only its own slice of each (``batch_size`` stays the global batch size).
    """

    def __init__(self, x: Any, y: Any = None, sample_weight: Any = None, batch_size: int | None = 32,
                 shuffle: bool | str = False, steps_per_epoch: int | None = None,
                 class_weight: dict[int, float] | None = None, float_dtype: Any = None, caller: str = "fit",
                 shard: Any = None) -> None:
        self.steps_per_epoch = steps_per_epoch
        self.shard = shard
        self._plan: _ArrayPlan | None = None
        self._loader = None
        self._iterator: Iterator | None = None
        self._exhausted_warned = False
        self._epochs_started = False
        batch_size = 32 if batch_size is None else batch_size
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        x, y, sample_weight = map_structure(_from_foreign, (x, y, sample_weight))  # PyTorch tensors: arrays
        check_data(caller, x=x, y=y, sample_weight=sample_weight)
        if _is_arrays(x):
            x, y, sample_weight = map_structure(lambda a: _as_float(a, float_dtype), (x, y, sample_weight))
            if class_weight:
                cw = class_weight_to_sample_weight(flatten(y)[0], class_weight)
                sample_weight = cw if sample_weight is None else np.asarray(_to_array(sample_weight)) * cw
            self._plan = _ArrayPlan((x, y, sample_weight), batch_size, shuffle)
            if self._plan.n == 0:
                shapes = ", ".join(str(a.shape) for a in self._plan.leaves)
                raise ValueError(f"{caller}: x has 0 samples (shapes {shapes}); there is nothing to "
                                 f"{'train on' if caller == 'fit' else 'compute'} and the loss would be "
                                 "meaningless. Pass at least one sample (check the filtering or split that made x).")
            self.num_batches = self._plan.num_batches if steps_per_epoch is None else steps_per_epoch
        else:
            if y is not None or sample_weight is not None:
                raise ValueError(f"with a generator or data loader as x, y and sample_weight must come from it "
                                 f"(yield (x, y) or (x, y, sample_weight)); got y={type(y).__name__}, "
                                 f"sample_weight={type(sample_weight).__name__}")
            if class_weight:
                raise ValueError("class_weight is supported only with array inputs; with a generator, yield "
                                 "(x, y, sample_weight) batches instead")
            if isinstance(x, Iterator):
                self._iterator = x
                self.num_batches = steps_per_epoch
            elif hasattr(x, "__len__") and (hasattr(x, "__iter__") or hasattr(x, "__getitem__")):
                if shard is not None and getattr(x, "shard", None) is not None:
                    raise ValueError(f"{caller}: the DataLoader was built with shard=...; under a distribution "
                                     f"{caller} shards every global batch itself. Build the loader without shard "
                                     "(its batch_size is then the global batch size)")
                self._loader = x  # a DataLoader, or a Keras-style Sequence/PyDataset (x[i] is batch i)
                self.num_batches = steps_per_epoch or len(x)
            else:
                raise TypeError(f"unsupported input data of type {type(x).__name__}: pass NumPy arrays (or a list/"
                                "dict of them), a Python generator, or a shendu.data.DataLoader")
        self.num_samples = self._plan.n if self._plan is not None else None

    def _batches(self) -> Iterator[tuple] | list[tuple]:
        if self._plan is not None:
            return self._plan.epoch()
        loader = self._loader
        if hasattr(loader, "__iter__"):
            return (unpack_batch(b) for b in iter(loader))
        if hasattr(loader, "on_epoch_end") and self._epochs_started:  # Keras Sequence: reshuffle between epochs
            loader.on_epoch_end()
        self._epochs_started = True
        return (unpack_batch(loader[i]) for i in range(len(loader)))

    def __iter__(self) -> Iterator[tuple[int, tuple]]:
        if self.shard is not None:
            shard = self.shard.shard
            return ((step, shard(batch)) for step, batch in self._global_batches())
        return self._global_batches()

    def _global_batches(self) -> Iterator[tuple[int, tuple]]:
        if self.steps_per_epoch is None:
            if self._iterator is not None:
                return enumerate(unpack_batch(b) for b in self._iterator)
            return enumerate(self._batches())
        return self._steps()

    def _steps(self) -> Iterator[tuple[int, tuple]]:
        """Exactly ``steps_per_epoch`` batches, continuing the data from the previous epoch."""
        if self._iterator is None:
            self._iterator = iter(self._batches())
        raw = self._plan is None and self._loader is None  # a user generator: batches still to unpack
        for step in range(self.steps_per_epoch):
            try:
                batch = next(self._iterator)
            except StopIteration:
                if raw:  # a one-shot generator: nothing more
                    self._warn_exhausted(step)
                    return
                self._iterator = None
                if step == 0:  # exhausted exactly at an epoch boundary: restart
                    self._iterator = iter(self._batches())
                    batch = next(self._iterator)
                else:
                    self._warn_exhausted(step)
                    return
            yield step, (unpack_batch(batch) if raw else batch)

    def _warn_exhausted(self, step: int) -> None:
        if not self._exhausted_warned:
            self._exhausted_warned = True
            warnings.warn(f"Your input ran out of data after {step} of steps_per_epoch={self.steps_per_epoch} "
                          "steps; make sure the data can produce steps_per_epoch * epochs batches "
                          "(a generator must repeat itself)", stacklevel=3)


def _as_float(a: Any, float_dtype: Any) -> Any:
    """Arrays of float64 become ``float_dtype`` once, up front (Keras casts inputs to floatx too)."""
    if isinstance(a, (list, float, int)) and not isinstance(a, bool):
        a = np.asarray(a)
    if float_dtype is not None and isinstance(a, np.ndarray) and a.dtype.kind == "f" and a.dtype != float_dtype:
        return a.astype(float_dtype)
    return a
