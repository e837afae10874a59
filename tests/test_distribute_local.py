"""shendu.distribute without mpiexec: sharding, buckets, metric reduction and rank-0-only writing, on a loopback
communicator that stands in for N ranks holding identical data (every sum is N times this rank's value)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import shendu
from shendu import distribute
from shendu.callbacks import CSVLogger, ModelCheckpoint
from shendu.data import DataLoader
from shendu.distribute import DataParallel, GradientBuckets, shard_slice
from shendu.distribute import communicator as communicator_module
from shendu.layers import Dense, Input
from shendu.metrics import Accuracy, Precision
from shendu.models import Sequential


class LoopbackComm:
    """N ranks with identical values: all-reduce multiplies by N, broadcasts change nothing; counts calls."""

    def __init__(self, rank: int = 0, world_size: int = 2) -> None:
        self.rank, self.world_size = rank, world_size
        self.allreduce_calls = 0

    def allreduce_(self, buffer):
        self.allreduce_calls += 1
        buffer *= self.world_size
        return buffer

    def allreduce_sum(self, array):
        return self.allreduce_(np.array(array, copy=True))

    def broadcast_(self, buffer, root=0):
        return buffer

    def broadcast_object(self, obj, root=0):
        return obj

    def allgather_object(self, obj):
        return [obj] * self.world_size


@pytest.fixture
def loopback():
    def make(rank: int = 0, world_size: int = 2) -> DataParallel:
        dist = DataParallel(LoopbackComm(rank, world_size), abort_on_error=False)
        distribute.set_distribution(dist)
        return dist

    yield make
    distribute.set_distribution(None)


@pytest.mark.parametrize("n, size", [(10, 3), (2, 3), (8, 2), (0, 2), (7, 7)])
def test_shards_are_disjoint_and_cover_the_batch(n, size):
    parts = [shard_slice(n, r, size) for r in range(size)]
    covered = np.concatenate([np.arange(n)[p] for p in parts])
    np.testing.assert_array_equal(covered, np.arange(n))
    lengths = [p.stop - p.start for p in parts]
    assert max(lengths) - min(lengths) <= 1


def test_sharded_loader_splits_each_global_batch():
    x = np.arange(23)
    whole = [b for b, _ in DataLoader((x, x), batch_size=8, shuffle=True, seed=3)]
    shards = [[b for b, _ in DataLoader((x, x), batch_size=8, shuffle=True, seed=3, shard=(r, 3))] for r in range(3)]
    assert [len(s) for s in shards] == [3, 3, 3]  # the same number of steps on every rank
    for k, batch in enumerate(whole):
        np.testing.assert_array_equal(np.concatenate([s[k] for s in shards]), batch)


def test_sharded_loader_rejects_a_bad_shard():
    with pytest.raises(ValueError, match="0 <= rank < world_size"):
        DataLoader(np.arange(4), shard=(2, 2))
    with pytest.raises(TypeError, match="shard must be"):
        DataLoader(np.arange(4), shard="rank0")


def test_gradients_travel_in_few_buckets_weighted_by_samples():
    comm = LoopbackComm(world_size=3)
    shapes = [(100, 50), (50,), (50, 50), (50,), (50, 10), (10,)]
    params = [shendu.Parameter(np.zeros(s, np.float32)) for s in shapes]
    params.append(shendu.Parameter(np.zeros(3, np.float64)))
    grads = [np.random.default_rng(i).normal(size=p.shape).astype(p.data.dtype) for i, p in enumerate(params)]
    for p, g in zip(params, grads):
        p.grad = shendu.Tensor(g.copy())
    params[3].grad = None  # no gradient on any rank: stays None (the optimiser skips it, as in one process)
    buckets = GradientBuckets(params, comm, bucket_bytes=30_000)
    assert len(buckets) == 3  # float32 split in two at 30 kB, float64 on its own
    total = buckets.allreduce(num_samples=5)
    assert total == 15 and comm.allreduce_calls == 3
    assert params[3].grad is None
    for i, (p, g) in enumerate(zip(params, grads)):
        if i != 3:
            np.testing.assert_allclose(p.grad.data, g, rtol=1e-6)
            assert p.grad.data.dtype == g.dtype


def test_buckets_refuse_bad_arguments():
    with pytest.raises(ValueError, match="bucket_bytes"):
        GradientBuckets([shendu.Parameter(np.zeros(2))], LoopbackComm(), bucket_bytes=0)
    with pytest.raises(ValueError, match="no parameters"):
        GradientBuckets([], LoopbackComm())


def test_metric_states_are_summed_over_ranks(loopback):
    dist = loopback(world_size=4)
    accuracy, precision = Accuracy(), Precision()
    accuracy.update_state(np.array([1, 2, 3]), np.array([1, 0, 3]))
    precision.update_state(np.array([1, 0, 1, 1]), np.array([0.9, 0.8, 0.2, 0.7]))
    before = accuracy.result(), precision.result()
    count, total, counts = accuracy.count, accuracy.total, precision.counts.copy()
    dist.reduce_metrics([accuracy, precision])
    assert (accuracy.count, accuracy.total) == (4 * count, 4 * total)
    np.testing.assert_array_equal(precision.counts, 4 * counts)
    assert precision.thresholds == Precision().thresholds  # hyper-parameters are not state
    assert (accuracy.result(), precision.result()) == pytest.approx(before)
    assert dist.allreduce(2.5) == 2.5 and dist.allreduce(2.5, average=False) == 10.0


def test_only_rank_zero_writes_files(loopback, tmp_path):
    loopback(rank=1, world_size=2)
    assert distribute.rank() == 1 and distribute.world_size() == 2 and not distribute.is_chief()
    shendu.seed(0)
    model = Sequential([Input((3,)), Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.ones((8, 3), np.float32), np.zeros((8, 2), np.float32)
    model.fit(x, y, batch_size=4, epochs=2, verbose=1, callbacks=[
        ModelCheckpoint(str(tmp_path / "ckpt-{epoch}.shendu")), CSVLogger(tmp_path / "log.csv")])
    model.save(tmp_path / "model.shendu")
    model.save_weights(tmp_path / "model.weights.npz")
    assert list(tmp_path.iterdir()) == []


def test_rank_zero_writes_and_logs_cover_all_ranks(loopback, tmp_path):
    loopback(rank=0, world_size=2)
    shendu.seed(0)
    model = Sequential([Input((3,)), Dense(2)])
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    x, y = np.ones((8, 3), np.float32), np.zeros((8, 2), np.float32)
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[CSVLogger(tmp_path / "log.csv")])
    assert (tmp_path / "log.csv").read_text().startswith("epoch,loss,mae")
    assert model.metrics[0].count == 8  # rank 0 saw 4 samples (2 of each global batch of 4); times 2 ranks
    assert np.isfinite(history.history["loss"][0])


def test_different_models_on_ranks_are_named(loopback):
    dist = loopback()
    model = Sequential([Input((3,)), Dense(2)])
    theirs = [type(model).__name__, ("kernel", (3, 4), "float32"), ("bias", (4,), "float32")]
    dist.comm.allgather_object = lambda mine: [mine, theirs]
    with pytest.raises(ValueError, match=r"ranks built different models \(weight 0: rank 0 has .*\(3, 2\).*rank 1 "
                                         r"has .*\(3, 4\)"):
        dist.check_same_model(model)


def test_clear_errors_without_a_distribution_or_mpi4py(monkeypatch):
    with pytest.raises(ValueError, match="no distribution; call shendu.distribute.init"):
        distribute.DistributedOptimizer(shendu.optimizers.SGD(0.1))
    with pytest.raises(TypeError, match="expected a shendu.distribute.DataParallel"):
        distribute.set_distribution("mpi")

    def no_mpi(name, *args):
        raise ImportError(f"No module named {name!r}")

    monkeypatch.setattr(communicator_module.importlib, "import_module", no_mpi)
    with pytest.raises(ImportError, match=r'needs mpi4py.*pip install "shendu\[mpi\]"'):
        distribute.Communicator()


def test_shendu_never_imports_mpi4py_by_itself():
    code = ("import sys, shendu, shendu.distribute, shendu.layers, shendu.models, shendu.callbacks, shendu.data; "
            "print('mpi4py' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "False"


def test_fit_refuses_a_loader_sharded_twice(loopback):
    dist = loopback(rank=0, world_size=2)
    model = Sequential([Input((3,)), Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    loader = DataLoader((np.ones((8, 3), np.float32), np.zeros((8, 2), np.float32)), batch_size=4, shard=dist)
    with pytest.raises(ValueError, match="fit: the DataLoader was built with shard=.*without shard"):
        model.fit(loader, epochs=1, verbose=0)
    plain = DataLoader((np.ones((8, 3), np.float32), np.zeros((8, 2), np.float32)), batch_size=4)
    assert np.isfinite(model.fit(plain, epochs=1, verbose=0).history["loss"][0])


class _KerasStyleMean(shendu.metrics.Metric):
    """A Keras-style metric: its state is made in __init__ with add_variable."""

    def __init__(self, name="keras_style_mean"):
        super().__init__(name=name)
        self.total = self.add_variable((), name="total")
        self.count = self.add_variable((), name="count")
        self.peak = self.add_variable((), name="peak", aggregation="mean")
        self.local = self.add_variable((), name="local", aggregation="none")

    def update_state(self, values):
        self.total.assign_add(float(np.sum(values)))
        self.count.assign_add(float(np.size(values)))
        self.peak.assign(float(np.max(values)))
        self.local.assign(1.0)

    def result(self):
        return self.total.numpy() / self.count.numpy()


def test_keras_style_metric_variables_are_combined_by_their_aggregation(loopback):
    """Variables made with add_variable were skipped: each rank reported its own shard's mean, silently."""
    dist = loopback(world_size=3)
    metric = _KerasStyleMean()
    metric.update_state(np.array([1.0, 2.0, 6.0]))
    dist.reduce_metrics([metric])
    assert (float(metric.total.numpy()), float(metric.count.numpy())) == (27.0, 9.0)  # summed over 3 ranks
    assert float(metric.peak.numpy()) == 6.0 and float(metric.local.numpy()) == 1.0  # mean; left alone
    assert metric.result() == pytest.approx(3.0)
    with pytest.raises(ValueError, match="aggregation must be one of"):
        metric.add_variable((), aggregation="max")
