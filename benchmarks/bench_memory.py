"""Resident memory over a long training run: does each target workload's RSS stay flat (issue 8)?

Each workload trains for ``steps`` steps (10,000 by default) in this process; psutil samples the resident set
size (RSS) after every tenth of them (steps 1,000, 2,000, ... 10,000). The row's value is the growth from the
first sample to the largest later one, in percent of the first; the target is ``<= 5 %``. Warm-up, Numba's
compile and the first allocations of every buffer happen before the first sample, so a flat line after it is
what a leak-free loop shows.

* MNIST convnet ``train_on_batch``, batch 8 (64 in the timing rows: 10,000 steps at 64 would take hours here);
* Embedding-LSTM(128) ``train_on_batch``, length 80, batch 8 (64 in the timing rows);
* MLP 784-512-512-10 ``train_on_batch``, batch 128, Adam, eight different batches in turn;
* the seed program's ``fit`` (Dense(1), SGD momentum, batch 32), called once per tenth (250 epochs of 4 steps).

Not part of the default run: ``python benchmarks/run.py --memory [--memory-steps N]``, or on its own
``python benchmarks/bench_memory.py [STEPS]``.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable

from common import row

MEMORY_BATCH = 8
SAMPLES = 10
TARGET = "<= 5 %"


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def _convnet() -> Callable[[], Any]:
    import bench_conv

    return bench_conv.shendu_step(MEMORY_BATCH)


def _lstm() -> Callable[[], Any]:
    import bench_rnn

    return bench_rnn.shendu_step(MEMORY_BATCH)


def _mlp_steps() -> Callable[[], Any]:
    import bench_keras

    model, batch = bench_keras.mlp_model(), bench_keras.MLP_BATCH
    x, y = bench_keras._mlp_data(8)
    turn = [0]

    def step() -> Any:
        i = turn[0] % 8
        turn[0] += 1
        return model.train_on_batch(x[i * batch:(i + 1) * batch], y[i * batch:(i + 1) * batch])

    return step


def _seed(steps_per_call: int) -> Callable[[], Any]:
    import bench_keras

    epochs = max(1, steps_per_call // bench_keras._steps(1))
    fit, _ = bench_keras.seed_shendu(epochs)
    return fit


def measure(step: Callable[[], Any], steps: int, calls_per_sample: int) -> tuple[list[int], float]:
    """RSS after each of ``SAMPLES`` blocks of ``calls_per_sample`` calls, and the seconds it all took."""
    step()  # warm-up: compile, first allocations
    start = time.perf_counter()
    samples = []
    for _ in range(SAMPLES):
        for _ in range(calls_per_sample):
            step()
        samples.append(_rss())
    return samples, time.perf_counter() - start


def growth(samples: list[int]) -> float:
    """Growth from the first sample to the largest later one, in percent of the first."""
    return 100.0 * (max(samples) - samples[0]) / samples[0]


def run(quick: bool, steps: int = 10_000) -> list[dict]:
    if quick:
        steps = min(steps, 500)
    per_sample = max(1, steps // SAMPLES)
    seed_calls = 1
    workloads = [
        ("MNIST convnet train_on_batch, batch 8 (64 in the timing rows)", "convnet", _convnet, per_sample),
        ("Embedding-LSTM(128) train_on_batch, length 80, batch 8 (64 in the timing rows)", "lstm", _lstm,
         per_sample),
        ("MLP 784-512-512-10 train_on_batch, batch 128, Adam", "mlp", _mlp_steps, per_sample),
        ("seed fit (Dense(1), SGD momentum, batch 32), one fit per sample", "seed", lambda: _seed(per_sample),
         seed_calls),
    ]
    rows = []
    for name, key, build, calls in workloads:
        step = build()
        samples, seconds = measure(step, steps, calls)
        mib = [s / 2**20 for s in samples]
        total = per_sample * SAMPLES
        r = row(f"RSS over {total:,} steps: {name}; {mib[0]:.0f} MiB at step {per_sample:,}, "
                f"max {max(mib):.0f}, last {mib[-1]:.0f} MiB", "%", growth(samples), None, None, TARGET,
                key=f"memory-{key}")
        r["wall_s"] = seconds
        rows.append(r)
    return rows


if __name__ == "__main__":
    for r in run(quick=False, steps=int(sys.argv[1]) if len(sys.argv) > 1 else 10_000):
        print(f"{r['workload']}: growth {r['shendu']:.2f} % ({r['target']}), {r['wall_s']:.0f} s")
