"""Data-parallel training under MPI (shendu.distribute), launched with ``mpiexec -n 2`` and ``-n 3`` from pytest.

Run as a script, this file is the worker: ``mpiexec -n N python tests/test_distribute.py SCENARIO OUTDIR``.
The tests compare the ranks' results with one process trained on the same global batches in the pytest
process itself.

Tolerance of the equivalence checks: rtol 2e-5, atol 2e-6 on weights after 3 epochs (21 SGD steps). One process
sums each gradient over the B samples of a batch in one matmul; N ranks sum over their shards, scale by n_r and
sum again in the all-reduce, so each gradient element is the same sum taken in another order: a relative
difference of a few float32 ulps (eps = 1.2e-7) per step. 21 momentum steps with learning rate 0.1 carry these
into the weights as some 1e-6 relative; 2e-5 leaves a margin of ten while any real error (a wrong weighting of
uneven shards, a sample counted twice or lost, an unsynchronised BatchNormalization) moves the weights by
1e-3 or more, which the tests also check where it applies.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import shendu
import shendu.functional as F
from shendu import distribute
from shendu.callbacks import BackupAndRestore, Callback, CSVLogger, EarlyStopping, ModelCheckpoint
from shendu.data import DataLoader
from shendu.layers import BatchNormalization, Dense, Input
from shendu.models import Sequential
from shendu.optimizers import SGD

RTOL, ATOL = 2e-5, 2e-6
EPOCHS, BATCH = 3, 8


# ---------------------------------------------------------------------------------------------- shared set-up
def data(n: int = 50) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, 6)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("int64") + (x[:, 2] > 1).astype("int64")
    return x, y


def make_model(units: int = 8, batch_norm: bool = False, synchronized: bool = False) -> Sequential:
    layers = [Input((6,)), Dense(units, activation="relu")]
    if batch_norm:
        layers.append(BatchNormalization(synchronized=synchronized))
    layers.append(Dense(3, activation="softmax"))
    model = Sequential(layers)
    model.compile(optimizer=SGD(0.1, momentum=0.9), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def fit_run(n: int = 50, batch_norm: bool = False, synchronized: bool = False, callbacks=None,
            epochs: int = EPOCHS) -> tuple[list[np.ndarray], dict]:
    x, y = data(n)
    model = make_model(batch_norm=batch_norm, synchronized=synchronized)
    history = model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=True, verbose=0,
                        validation_data=data(20), callbacks=callbacks or [])
    return model.get_weights(), history.history


def loop_run(shard=None, step_kwargs=None) -> tuple[list[np.ndarray], float]:
    """The PyTorch-style loop: shard=None is one process; shard=dist is data parallel."""
    x, y = data()
    model = make_model()
    params = model.parameters()
    opt = SGD(0.1, momentum=0.9, params=params)
    if shard is not None:
        shard.broadcast_parameters(params)
        opt = distribute.DistributedOptimizer(opt, shard)
    loader = DataLoader((x, y), batch_size=BATCH, shuffle=True, shard=shard)
    total = 0.0
    for _ in range(EPOCHS):
        for xb, yb in loader:
            if len(xb):
                loss = F.nll_loss(shendu.log(model(xb, training=True)), yb)
                loss.backward()
                total += float(loss) * len(xb)
            if shard is None:
                opt.step()
            else:
                opt.step(num_samples=len(xb))
            opt.zero_grad()
    if shard is not None:
        total = shard.allreduce(total, average=False)
    return model.get_weights(), total / (EPOCHS * len(x))


class StopAfter(Callback):
    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            self.model.stop_training = True


class StopAtBatch(Callback):
    def on_train_batch_end(self, batch, logs=None):
        self.model.stop_training = True


class RaiseOnRank(Callback):
    def __init__(self, rank: int) -> None:
        super().__init__()
        self.rank = rank

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1 and distribute.rank() == self.rank:
            raise RuntimeError(f"boom on rank {self.rank}")


# ---------------------------------------------------------------------------------------------- the worker
def worker(scenarios: list[str], out: Path) -> None:
    dist = distribute.init()
    r = dist.rank

    def save(name: str, weights: list[np.ndarray], extra: dict | None = None) -> None:
        everyone = dist.comm.allgather_object([w.tobytes() for w in weights])
        if r == 0:
            identical = all(theirs == everyone[0] for theirs in everyone)
            np.savez(out / f"{name}.npz", *weights)
            (out / f"{name}.json").write_text(json.dumps({"identical": identical, **(extra or {})}))

    for scenario in scenarios:
        shendu.seed(r)  # different seeds on purpose: fit must broadcast rank 0's weights and random state
        if scenario == "fit":
            weights, history = fit_run()
            save("fit", weights, {"history": history})
        elif scenario == "early":  # rank 1 alone wants to stop after epoch 1: rank 0's decision holds everywhere
            alone = [StopAfter(0)] if r == 1 else []
            weights, history = fit_run(callbacks=[EarlyStopping(monitor="val_loss", min_delta=1.0)] + alone, epochs=6)
            save("early", weights, {"epochs": [len(h) for h in dist.comm.allgather_object(history["loss"])]})
        elif scenario == "verbose":  # rank 0 alone prints (its bar listens to every batch); rank 1 alone stops
            x, y = data()
            model = make_model()
            history = model.fit(x, y, batch_size=BATCH, epochs=2, verbose=2,
                                callbacks=[StopAtBatch()] if r == 1 else [])
            save("verbose", model.get_weights(), {"epochs": len(history.history["loss"])})
        elif scenario == "loop":
            shendu.seed(0)  # the loop form: the user seeds alike (or broadcasts), as with torch.distributed
            weights, mean_loss = loop_run(shard=dist)
            save("loop", weights, {"loss": mean_loss})
        elif scenario == "syncbn":
            weights, _ = fit_run(n=48, batch_norm=True, synchronized=True)
            save("syncbn", weights)
            shendu.seed(r)
            weights, _ = fit_run(n=48, batch_norm=True, synchronized=False)
            save("localbn", weights)
        elif scenario in ("resume1", "resume2"):
            stop = [StopAfter(1)] if scenario == "resume1" else []
            callbacks = [BackupAndRestore(out / "backup", delete_checkpoint=False),
                         ModelCheckpoint(str(out / "ckpt-{epoch}.shendu"), save_best_only=False),
                         CSVLogger(out / f"{scenario}.csv")] + stop
            weights, history = fit_run(callbacks=callbacks, epochs=4)
            save(scenario, weights, {"history": history})
        elif scenario == "fault":
            fit_run(callbacks=[RaiseOnRank(1)], epochs=50)
        elif scenario == "mismatch":
            model = make_model(units=8 if r == 0 else 5)
            x, y = data()
            model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
        else:
            raise ValueError(f"unknown scenario {scenario!r}")


# ---------------------------------------------------------------------------------------------- launching
def find_mpiexec() -> str | None:
    here = Path(sys.executable).parent
    for name in ("mpiexec", "mpirun"):
        if (here / name).exists():
            return str(here / name)
    return shutil.which("mpiexec") or shutil.which("mpirun")


MPIEXEC = find_mpiexec()
needs_mpi = pytest.mark.skipif(not distribute.mpi_available() or MPIEXEC is None,
                               reason='needs mpi4py and mpiexec (pip install "shendu[mpi]")')


def launcher_flags() -> list[str]:
    """Open MPI refuses root without --allow-run-as-root and more ranks than cores without --oversubscribe;
    MPICH needs neither."""
    version = subprocess.run([MPIEXEC, "--version"], capture_output=True, text=True, timeout=30)
    if "open mpi" in (version.stdout + version.stderr).lower() or "openrte" in version.stdout.lower():
        return ["--oversubscribe"] + (["--allow-run-as-root"] if os.geteuid() == 0 else [])
    return []


def mpirun(n: int, scenarios: str, out: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    command = [MPIEXEC, *launcher_flags(), "-n", str(n), sys.executable, __file__, scenarios, str(out)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)


def check(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, f"mpiexec failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"


def load(out: Path, name: str) -> tuple[list[np.ndarray], dict]:
    with np.load(out / f"{name}.npz") as f:
        weights = [f[f"arr_{i}"] for i in range(len(f.files))]
    return weights, json.loads((out / f"{name}.json").read_text())


def assert_weights_close(got: list[np.ndarray], expected: list[np.ndarray], rtol: float = RTOL,
                         atol: float = ATOL) -> None:
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=rtol, atol=atol)


@pytest.fixture(scope="module")
def reference() -> dict:
    """One process on the same global batches."""
    shendu.seed(0)
    fit_weights, fit_history = fit_run()
    shendu.seed(0)
    loop_weights, loop_loss = loop_run()
    shendu.seed(0)
    bn_weights, _ = fit_run(n=48, batch_norm=True)
    shendu.seed(0)
    early_weights, early_history = fit_run(callbacks=[EarlyStopping(monitor="val_loss", min_delta=1.0)], epochs=6)
    assert len(early_history["loss"]) == 2
    return {"fit": (fit_weights, fit_history), "loop": (loop_weights, loop_loss), "bn": bn_weights,
            "early": early_weights}


@needs_mpi
@pytest.mark.parametrize("ranks", [2, 3])
def test_n_ranks_match_one_process(tmp_path, reference, ranks):
    """fit and the PyTorch-style loop on N ranks give one process's weights, metrics and History (n=3: shards
    of 3/3/2 samples and a last batch of 2 samples, so one rank gets none)."""
    result = mpirun(ranks, "fit,loop,early,verbose", tmp_path)
    check(result)
    assert result.stdout.count("Epoch 1/2") == 1 and result.stdout.count("Epoch 2/2") == 1  # rank 0 prints
    weights, info = load(tmp_path, "verbose")
    assert info["identical"] and info["epochs"] == 2  # rank 0 did not stop, so no rank did
    weights, info = load(tmp_path, "fit")
    assert info["identical"], "the ranks' weights differ"
    expected_weights, expected_history = reference["fit"]
    assert_weights_close(weights, expected_weights)
    assert sorted(info["history"]) == sorted(expected_history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    for key, values in expected_history.items():
        np.testing.assert_allclose(info["history"][key], values, rtol=1e-5, err_msg=key)
    weights, info = load(tmp_path, "loop")
    assert info["identical"]
    assert_weights_close(weights, reference["loop"][0])
    assert info["loss"] == pytest.approx(reference["loop"][1], rel=1e-5)
    weights, info = load(tmp_path, "early")  # EarlyStopping stops every rank after epoch 2, as in one process
    assert info["identical"] and info["epochs"] == [2] * ranks
    assert_weights_close(weights, reference["early"])


@needs_mpi
def test_synchronized_batch_norm_matches_one_process(tmp_path, reference):
    check(mpirun(2, "syncbn", tmp_path))
    synced, info = load(tmp_path, "syncbn")
    assert info["identical"]
    assert_weights_close(synced, reference["bn"])
    local, info = load(tmp_path, "localbn")  # per-rank statistics (the default) train another model
    assert info["identical"]
    assert max(np.abs(a - b).max() for a, b in zip(local, reference["bn"])) > 1e-3


@needs_mpi
def test_resume_from_a_two_rank_backup_matches_an_uninterrupted_run(tmp_path):
    check(mpirun(2, "resume1", tmp_path))
    assert sorted(p.name for p in tmp_path.glob("ckpt-*.shendu")) == ["ckpt-1.shendu", "ckpt-2.shendu"]
    assert (tmp_path / "backup" / "backup.npz").exists()
    check(mpirun(2, "resume2", tmp_path))
    weights, info = load(tmp_path, "resume2")
    assert info["identical"]
    assert len(info["history"]["loss"]) == 2  # epochs 3 and 4 only
    shendu.seed(0)
    expected, history = fit_run(epochs=4)
    assert_weights_close(weights, expected)
    np.testing.assert_allclose(info["history"]["loss"], history["loss"][2:], rtol=1e-5)
    rows = (tmp_path / "resume2.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,") and [row.split(",")[0] for row in rows[1:]] == ["2", "3"]
    loaded = shendu.models.load_model(tmp_path / "ckpt-4.shendu")
    assert_weights_close(loaded.get_weights(), weights, rtol=0, atol=0)


@needs_mpi
def test_a_rank_that_raises_stops_every_rank_with_its_error(tmp_path):
    start = time.perf_counter()
    result = mpirun(2, "fault", tmp_path, timeout=60)
    seconds = time.perf_counter() - start
    assert result.returncode != 0
    assert "boom on rank 1" in result.stderr + result.stdout
    assert "rank 1 of 2 raised RuntimeError" in result.stderr
    assert seconds < 30  # 50 epochs would take longer; rank 0 did not wait for rank 1 forever


@needs_mpi
def test_ranks_with_different_models_get_a_clear_error_at_start(tmp_path):
    result = mpirun(2, "mismatch", tmp_path, timeout=60)
    assert result.returncode != 0
    output = result.stderr + result.stdout
    assert "the ranks built different models" in output
    assert "rank 1 has" in output and "(6, 5)" in output


if __name__ == "__main__":
    worker(sys.argv[1].split(","), Path(sys.argv[2]))
