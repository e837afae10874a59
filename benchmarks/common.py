"""Shared helpers for the benchmarks: a careful timer and the thread settings every framework runs under.

Every ``benchmarks/bench_*.py`` module defines ``run(quick: bool) -> list[dict]``; each row is
``{"workload": str, "unit": "us/step" | "samples/s", "shendu": float, "torch": float | None,
"numpy": float | None, "target": str}``. ``benchmarks/run.py`` collects the rows and prints one table.
For ``us/step`` lower is better, for ``samples/s`` higher is better.

All frameworks run with the same number of threads (1 by default, set by ``run.py --threads`` before
NumPy is imported), so the ratios compare the libraries and not the thread pools.
"""

from __future__ import annotations

import gc
import os
import statistics
import time
from typing import Any, Callable

#: environment variables that size the BLAS/OpenMP thread pools; they take effect only before NumPy loads
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                   "NUMEXPR_NUM_THREADS")


def set_thread_env(threads: int) -> None:
    """Ask NumPy's BLAS (and OpenMP) for ``threads`` threads; call before NumPy is first imported."""
    for name in THREAD_ENV_VARS:
        os.environ[name] = str(threads)


def threads() -> int:
    """The thread count the benchmarks run with (from ``set_thread_env``; 1 when unset)."""
    return int(os.environ.get("OMP_NUM_THREADS", "1"))


def setup_torch() -> Any:
    """Import PyTorch on the benchmark's thread count and return it, or None when it is not installed."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads())
    return torch


def torch_adam_step(torch: Any, model: Any, loss_fn: Callable[[Any, Any], Any], x: Any, y: Any) -> Callable[[], None]:
    """One hand-written PyTorch training step on ``(x, y)``: Adam(1e-3, eps=1e-7, Keras's defaults)."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)

    def step() -> None:
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()

    return step


def profile_if_asked(step: Callable[[], Any], name: str, lines: int = 15) -> None:
    """With ``SHENDU_PROFILE`` set, print a cProfile of five calls of ``step`` (after one warm-up call)."""
    if not os.environ.get("SHENDU_PROFILE"):
        return
    import cProfile
    import pstats

    step()
    out = f"/tmp/{name}.prof"
    cProfile.runctx("for _ in range(5): step()", globals(), {"step": step}, out)
    pstats.Stats(out).sort_stats("tottime").print_stats(lines)


def median_time(fn: Callable[[], Any], number: int | None = None, repeat: int = 7,
                min_time: float = 0.05) -> float:
    """Median seconds per call of ``fn()`` over ``repeat`` runs of ``number`` calls each.

    ``fn`` is called once to warm up. Without ``number``, it is calibrated so that one run lasts at
    least ``min_time`` seconds. The garbage collector is off while timing (as in ``timeit``); it is
    collected between runs so one workload's garbage does not land in another's timing.
    """
    fn()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        if number is None:
            number = 1
            while True:
                start = time.perf_counter()
                for _ in range(number):
                    fn()
                elapsed = time.perf_counter() - start
                if elapsed >= min_time:
                    break
                number = max(number * 2, int(number * min_time / max(elapsed, 1e-9) * 1.2))
        times = []
        for _ in range(repeat):
            gc.collect()
            start = time.perf_counter()
            for _ in range(number):
                fn()
            times.append((time.perf_counter() - start) / number)
    finally:
        if was_enabled:
            gc.enable()
    return statistics.median(times)


def us(seconds: float) -> float:
    """Seconds to microseconds."""
    return seconds * 1e6


def row(workload: str, unit: str, shendu: float, torch: float | None, numpy: float | None, target: str) -> dict:
    """One result row in the shape ``run.py`` prints."""
    if unit not in ("us/step", "samples/s"):
        raise ValueError(f"row {workload!r}: unit must be 'us/step' or 'samples/s', got {unit!r}")
    return {"workload": workload, "unit": unit, "shendu": shendu, "torch": torch, "numpy": numpy, "target": target}
