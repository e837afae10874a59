"""``DataParallel``: the one object ``fit`` and the PyTorch-style loop use to train on several processes.

Every rank holds the whole model; each takes its own slice of every global batch, computes gradients on it,
and the gradients are averaged over the ranks (weighted by samples, see :mod:`shendu.distribute.buckets`)
before the identical optimiser step on every rank. Parameters start equal (broadcast from rank 0) and stay
equal. ``batch_size`` is the GLOBAL batch: with N ranks, each one sees about ``batch_size / N`` samples.

Keras style (``keras.distribution.set_distribution(DataParallel())``)::

    distribute.set_distribution(distribute.DataParallel())
    model.fit(x, y, batch_size=256, epochs=5)              # unchanged; run with  mpirun -n 4 python train.py

PyTorch style (Horovod's ``DistributedOptimizer``)::

    dist = distribute.init()                                # DataParallel() made current
    loader = DataLoader((x, y), batch_size=256, shuffle=True, shard=dist)
    dist.broadcast_parameters(model.parameters())
    opt = distribute.DistributedOptimizer(SGD(0.1, params=model.parameters()))
    for xb, yb in loader:
        loss = F.cross_entropy(model(xb), yb); loss.backward()
        opt.step(num_samples=len(xb)); opt.zero_grad()

No layer, op or optimiser calls MPI: they reach the ranks only through this object.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import numpy as np

from shendu import random as shendu_random
from shendu.distribute.buckets import DEFAULT_BUCKET_BYTES, GradientBuckets
from shendu.distribute.communicator import Communicator, EveryRankError
from shendu.utils import tree

_current: DataParallel | None = None


def set_distribution(distribution: DataParallel | None) -> None:
    """Make ``distribution`` the one ``fit``/``evaluate`` and synchronised BatchNormalization use (None: none)."""
    global _current
    if distribution is not None and not isinstance(distribution, DataParallel):
        raise TypeError(f"set_distribution: expected a shendu.distribute.DataParallel or None, got "
                        f"{type(distribution).__name__}")
    _current = distribution


def get_distribution() -> DataParallel | None:
    """The distribution set by :func:`set_distribution` (or :func:`init`), else None."""
    return _current


def active() -> DataParallel | None:
    """The current distribution when it spans more than one rank, else None (one process: nothing to do)."""
    return _current if _current is not None and _current.world_size > 1 else None


def init(comm: Any = None, **kwargs: Any) -> DataParallel:
    """Make a :class:`DataParallel` over ``comm`` (MPI's world by default), set it current, and return it."""
    distribution = DataParallel(comm, **kwargs)
    set_distribution(distribution)
    return distribution


def rank() -> int:
    """This process's rank in the current distribution (0 without one)."""
    return 0 if _current is None else _current.rank


def world_size() -> int:
    """The number of ranks in the current distribution (1 without one)."""
    return 1 if _current is None else _current.world_size


def is_chief() -> bool:
    """Whether this process prints and writes files: rank 0, or any process without a distribution."""
    return rank() == 0


def shard_slice(n: int, rank: int, world_size: int) -> slice:
    """Rank ``rank``'s part of ``n`` samples: contiguous, the first ``n % world_size`` ranks one longer
    (``np.array_split``'s rule), so the parts are disjoint and cover all ``n``.

    >>> [shard_slice(10, r, 3) for r in range(3)]
    [slice(0, 4, None), slice(4, 7, None), slice(7, 10, None)]
    """
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (1 if rank < extra else 0))


class DataParallel:
    """Data-parallel training over the ranks of an MPI communicator (see the module docstring).

    Args:
        comm: an ``mpi4py`` communicator or a :class:`Communicator` (``MPI.COMM_WORLD`` when None).
        bucket_bytes: the largest gradient bucket reduced in one ``Allreduce`` (25 MiB, as PyTorch DDP).
        abort_on_error: install an excepthook that aborts every rank when one raises (so none hangs).
    """

    def __init__(self, comm: Any = None, bucket_bytes: int = DEFAULT_BUCKET_BYTES,
                 abort_on_error: bool = True) -> None:
        self.comm = comm if hasattr(comm, "allreduce_") else Communicator(comm)
        self.rank: int = self.comm.rank
        self.world_size: int = self.comm.world_size
        self.bucket_bytes = bucket_bytes
        self._buckets: tuple[tuple[int, ...], GradientBuckets] | None = None
        if abort_on_error and self.world_size > 1:
            self.comm.install_excepthook()

    @property
    def is_chief(self) -> bool:
        return self.rank == 0

    # ------------------------------------------------------------------ data
    def shard(self, batch: Any) -> Any:
        """This rank's slice of a global batch (every array of the nested batch cut the same way on axis 0)."""
        leaves = tree.flatten(batch, none_is_leaf=False)
        if not leaves:
            return batch
        part = shard_slice(len(leaves[0]), self.rank, self.world_size)
        return tree.map_structure(lambda a: a[part], batch, none_is_leaf=False)

    # ------------------------------------------------------------------ gradients and parameters
    def allreduce_gradients(self, params: Iterable[Any], num_samples: float = 1.0) -> float:
        """Average the ``.grad`` of ``params`` over the ranks, weighted by ``num_samples`` (this rank's batch
        size; equal weights when every rank passes the same number). Returns the samples of all ranks."""
        params = list(params)
        key = tuple(id(p) for p in params)
        if self._buckets is None or self._buckets[0] != key:
            self._buckets = (key, GradientBuckets(params, self.comm, self.bucket_bytes))
        return self._buckets[1].allreduce(num_samples)

    def broadcast_parameters(self, params: Iterable[Any], root: int = 0) -> None:
        """Give every rank rank ``root``'s values of ``params`` (Tensors, written in place)."""
        for p in params:
            data = p.data
            if data.flags.c_contiguous:
                self.comm.broadcast_(data, root)
            else:
                data[...] = self.comm.broadcast_(np.ascontiguousarray(data), root)

    def broadcast_optimizer_state(self, optimizer: Any, root: int = 0) -> None:
        """Give every rank rank ``root``'s optimiser state (after a resume it holds the loaded moments)."""
        state = self.comm.broadcast_object(optimizer.state_dict(), root)  # MPI keeps only root's
        if self.rank != root:
            optimizer.load_state_dict(state)

    def sync_random_state(self, root: int = 0) -> None:
        """Give every rank rank ``root``'s shendu random state, so all draw the same shuffling order."""
        state = self.comm.broadcast_object(shendu_random.get_state(), root)
        shendu_random.set_state(state)

    def check_same_model(self, model: Any) -> None:
        """Raise on every rank, naming the rank and the weight, when the ranks built different models."""
        mine = [type(model).__name__] + [(w.name, tuple(w.shape), str(w.data.dtype)) for w in model.weights]
        everyone = self.comm.allgather_object(mine)
        for r, theirs in enumerate(everyone):
            if theirs == everyone[0]:
                continue
            if theirs[0] != everyone[0][0] or len(theirs) != len(everyone[0]):
                detail = (f"rank 0 has a {everyone[0][0]} with {len(everyone[0]) - 1} weights, rank {r} a "
                          f"{theirs[0]} with {len(theirs) - 1} weights")
            else:
                i = next(i for i, (a, b) in enumerate(zip(everyone[0], theirs)) if a != b)
                detail = f"weight {i - 1}: rank 0 has {everyone[0][i]}, rank {r} has {theirs[i]}"
            raise EveryRankError(f"DataParallel: the ranks built different models ({detail}); every rank must run the "
                             "same program and build the same architecture (check rank-dependent code or "
                             "arguments)")

    def prepare_model(self, model: Any) -> None:
        """Before the first step of ``fit``: the same architecture everywhere, then rank 0's weights and
        optimiser state on every rank."""
        self.check_same_model(model)
        self.broadcast_parameters(model.weights)
        if getattr(model, "optimizer", None) is not None and hasattr(model.optimizer, "state_dict"):
            self.broadcast_optimizer_state(model.optimizer)

    # ------------------------------------------------------------------ metrics and decisions
    def allreduce(self, value: Any, average: bool = True) -> Any:
        """The sum (or mean, ``average=True``) over ranks of a Python number or array: e.g. a metric."""
        array = np.asarray(value, dtype=np.float64)
        total = self.comm.allreduce_sum(array)
        if average:
            total = total / self.world_size
        return float(total) if array.ndim == 0 else total

    def reduce_metrics(self, metrics: Iterable[Any]) -> None:
        """Sum the states of ``metrics`` over the ranks, in place: each then reports the whole data set's result.

        A metric's state is what ``reset_state`` sets to zero (``total``/``count``, confusion counts...); the
        sums of these are exact for every shendu metric (means, confusion-based metrics, AUC). A Keras-style
        metric's variables (``add_variable``) are combined by their ``aggregation``: summed, averaged, or left
        as each rank has them (``"none"``, ``"only_first_replica"``)."""
        layout: list[tuple[Any, str, Any]] = []
        for metric in metrics:
            for name in _state_names(metric):
                layout.append((metric, name, np.shape(getattr(metric, name))))
        variables = [(v, a) for metric in metrics for v, a in getattr(metric, "variable_aggregations", list)()
                     if a in ("sum", "mean")]
        if not layout and not variables:
            return
        flat = np.concatenate([np.asarray(getattr(m, n), np.float64).reshape(-1) for m, n, _ in layout]
                              + [np.asarray(v.data, np.float64).reshape(-1) for v, _ in variables])
        self.comm.allreduce_(flat)
        offset = 0
        for metric, name, shape in layout:
            size = int(np.prod(shape))
            value = flat[offset:offset + size]
            offset += size
            setattr(metric, name, float(value[0]) if shape == () else value.reshape(shape).copy())
        for variable, aggregation in variables:
            size = variable.data.size
            value = flat[offset:offset + size].reshape(variable.data.shape)
            offset += size
            variable.data[...] = value / self.world_size if aggregation == "mean" else value

    def agree(self, flag: bool, root: int = 0) -> bool:
        """Rank ``root``'s decision on every rank (e.g. EarlyStopping's stop), so no rank leaves the loop alone."""
        return bool(self.comm.broadcast_object(bool(flag), root))

    def __repr__(self) -> str:
        return f"DataParallel(rank={self.rank}, world_size={self.world_size})"


def _state_names(metric: Any) -> list[str]:
    """The attributes that ``reset_state`` sets to numeric zeros: a metric's summable state. A Keras-style metric
    keeps its state in variables instead (combined by their aggregation in ``reduce_metrics``)."""
    if getattr(metric, "variables", None):
        return []
    fresh = copy.deepcopy(metric)
    fresh.reset_state()
    names = []
    for name, value in sorted(vars(fresh).items()):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.ndarray, np.number)):
            continue
        if isinstance(value, np.ndarray) and value.dtype.kind not in "fiu":
            continue
        if np.all(np.asarray(value) == 0):
            names.append(name)
    return names


class DistributedOptimizer:
    """Horovod's wrapper: ``step()`` first averages the gradients over the ranks, then steps ``optimizer``.

    Everything else (``zero_grad``, ``learning_rate``, ``state_dict``...) is the wrapped optimiser's.
    ``step(num_samples=len(batch))`` weights each rank by its batch size, which makes uneven shards exact;
    without it every rank counts the same.
    """

    def __init__(self, optimizer: Any, distribution: DataParallel | None = None) -> None:
        distribution = distribution if distribution is not None else get_distribution()
        if distribution is None:
            raise ValueError("DistributedOptimizer: no distribution; call shendu.distribute.init() first or pass "
                             "distribution=DataParallel()")
        self.optimizer = optimizer
        self.distribution = distribution

    def step(self, closure: Any = None, num_samples: float = 1.0) -> Any:
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        self.distribution.allreduce_gradients(params, num_samples)
        return self.optimizer.step(closure)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["optimizer"], name)
