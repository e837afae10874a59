"""Data-parallel scaling on CPU: training throughput of the MNIST MLP (784-512-512-10, Adam, global batch 128).

* 1 process, 1 BLAS thread                  (the baseline)
* 2 MPI ranks, 1 BLAS thread each            (``mpiexec -n 2``, shendu.distribute.DataParallel)
* 1 process, 2 BLAS threads                  (the other way to use two cores)

Each configuration runs in a fresh process (thread counts are fixed when NumPy loads): one warm-up epoch, then
the best samples/s of the timed epochs of ``model.fit`` on synthetic MNIST-shaped data (the best, as timeit
takes the minimum: other processes on the machine only ever slow an epoch down). The 2-rank row also reports
the time of the gradient all-reduce alone, ranks lined up first (the figure behind not overlapping it with the
backward pass). Without mpi4py/mpiexec the 2-rank row is left out.

    python benchmarks/bench_distributed.py            # prints the three figures
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
from common import THREAD_ENV_VARS, row

import shendu
from shendu import distribute
from shendu.layers import Dense, Input
from shendu.models import Sequential

HERE = Path(__file__).resolve()
BATCH = 128


def _worker(samples: int, epochs: int) -> None:
    """Train and print one JSON line (rank 0 only) with the best samples/s and the all-reduce time."""
    dist = None
    if os.environ.get("SHENDU_BENCH_MPI"):
        dist = distribute.init()
    shendu.seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((samples, 784), dtype=np.float32)
    y = rng.integers(0, 10, samples)
    model = Sequential([Input((784,)), Dense(512, activation="relu"), Dense(512, activation="relu"),
                        Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)  # warm-up
    rates = []
    for _ in range(epochs):
        start = time.perf_counter()
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
        rates.append(samples / (time.perf_counter() - start))
    reduce_seconds = 0.0
    if dist is not None:  # the reduction alone (copies in and out included), the ranks lined up first
        params = model.trainable_weights
        for p in params:
            p.grad = shendu.Tensor(np.zeros_like(p.data))
        dist.allreduce_gradients(params, 1)
        dist.comm.comm.Barrier()
        start = time.perf_counter()
        for _ in range(20):
            dist.allreduce_gradients(params, 1)
        reduce_seconds = (time.perf_counter() - start) / 20
    if distribute.is_chief():
        best = max(rates)  # best epoch, as timeit takes the minimum: other processes only ever slow a run down
        print(json.dumps({"samples_per_s": best, "step_ms": 1e3 * BATCH / best, "allreduce_ms": 1e3 * reduce_seconds}))


def _mpiexec() -> str | None:
    here = Path(sys.executable).parent
    for name in ("mpiexec", "mpirun"):
        if (here / name).exists():
            return str(here / name)
    return shutil.which("mpiexec") or shutil.which("mpirun")


def _launch(ranks: int, threads: int, samples: int, epochs: int) -> dict | None:
    env = dict(os.environ, **{name: str(threads) for name in THREAD_ENV_VARS})
    command = [sys.executable, str(HERE), "--worker", str(samples), str(epochs)]
    if ranks > 1:
        mpiexec = _mpiexec()
        if mpiexec is None or not distribute.mpi_available():
            return None
        version = subprocess.run([mpiexec, "--version"], capture_output=True, text=True, timeout=30).stdout.lower()
        flags = (["--oversubscribe"] + (["--allow-run-as-root"] if os.geteuid() == 0 else [])
                 if "open mpi" in version else [])
        command = [mpiexec, *flags, "-n", str(ranks), *command]
        env["SHENDU_BENCH_MPI"] = "1"
    out = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(quick: bool) -> list[dict]:
    samples, epochs = (1024, 2) if quick else (8192, 5)
    rows = []
    base = _launch(1, 1, samples, epochs)
    rows.append(row("MLP fit, 1 process x 1 thread (samples/s)", "samples/s", base["samples_per_s"], None, None,
                    ""))
    two = _launch(2, 1, samples, epochs)
    if two is not None:
        rows.append(row(f"MLP fit, 2 MPI ranks x 1 thread (gradient all-reduce {two['allreduce_ms']:.2f} ms of a "
                        f"{two['step_ms']:.1f} ms step; {two['samples_per_s'] / base['samples_per_s']:.2f}x 1 rank)",
                        "samples/s",
                        two["samples_per_s"], None, None, ""))
    threaded = _launch(1, 2, samples, epochs)
    rows.append(row(f"MLP fit, 1 process x 2 threads ({threaded['samples_per_s'] / base['samples_per_s']:.2f}x "
                    "1 thread)", "samples/s", threaded["samples_per_s"], None, None, ""))
    return rows


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        _worker(int(sys.argv[2]), int(sys.argv[3]))
    else:
        for r in run(quick="--quick" in sys.argv):
            print(f"{r['workload']}: {r['shendu']:,.0f} {r['unit']}")
