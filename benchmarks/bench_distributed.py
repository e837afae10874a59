"""Data-parallel scaling on CPU: training throughput of the MNIST MLP (784-512-512-10, Adam, global batch 128).

* 1 process, 1 BLAS thread                  (the baseline)
* 2 MPI ranks, 1 BLAS thread each            (``mpiexec -n 2``, shendu.distribute.DataParallel)
* 1 process, 2 BLAS threads                  (the other way to use two cores)

Each configuration runs in a fresh process (thread counts are fixed when NumPy loads): one warm-up epoch, then
the median samples/s of timed epochs of ``model.fit`` on synthetic MNIST-shaped data. The 2-rank row also
reports the share of a step spent in the gradient all-reduce (the figure behind not overlapping it with the
backward pass). Without mpi4py/mpiexec the 2-rank row is left out.

    python benchmarks/bench_distributed.py            # prints the three figures
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
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
    """Train and print one JSON line (rank 0 only) with samples/s and the all-reduce share."""
    dist = None
    if os.environ.get("SHENDU_BENCH_MPI"):
        dist = distribute.init()
    comm_seconds = [0.0]
    if dist is not None:
        reduce = dist.allreduce_gradients

        def timed(params, num_samples=1.0):
            start = time.perf_counter()
            total = reduce(params, num_samples)
            comm_seconds[0] += time.perf_counter() - start
            return total

        dist.allreduce_gradients = timed
    shendu.seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((samples, 784), dtype=np.float32)
    y = rng.integers(0, 10, samples)
    model = Sequential([Input((784,)), Dense(512, activation="relu"), Dense(512, activation="relu"),
                        Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)  # warm-up
    rates, shares = [], []
    for _ in range(epochs):
        comm_seconds[0] = 0.0
        start = time.perf_counter()
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
        seconds = time.perf_counter() - start
        rates.append(samples / seconds)
        shares.append(comm_seconds[0] / seconds)
    if distribute.is_chief():
        print(json.dumps({"samples_per_s": statistics.median(rates), "allreduce_share": statistics.median(shares)}))


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
        rows.append(row(f"MLP fit, 2 MPI ranks x 1 thread (allreduce {100 * two['allreduce_share']:.0f}% of the "
                        f"time; {two['samples_per_s'] / base['samples_per_s']:.2f}x 1 rank)", "samples/s",
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
