"""Shared helpers for the benchmarks: a careful timer and the thread settings every framework runs under.

Every ``benchmarks/bench_*.py`` module defines ``run(quick: bool) -> list[dict]``; each row is
``{"workload": str, "unit": "us/step" | "samples/s" | "%", "shendu": float, "torch": float | None,
"numpy": float | None, "target": str}``, plus optionally ``first_s`` (seconds of shendu's first step,
Numba compile or cache load included), ``wall_s`` (seconds of the whole shendu workload: building the
model, warm-up and timing) and ``key`` (a short stable name: the row is one of issue 8's target workloads,
shown in the summary table and compared with the committed 1-thread baseline). ``benchmarks/run.py``
collects the rows and prints the tables. For ``us/step`` and ``%`` lower is better, for ``samples/s``
higher is better.

All frameworks in one run use the same number of threads (set by ``run.py`` in the environment of the
fresh process each configuration runs in, before NumPy, Numba or PyTorch is imported), so the ratios
compare the libraries and not the thread pools. ``run.py`` times PyTorch in a process of its own
(``SHENDU_BENCH_FRAMEWORKS``): a process has one GNU OpenMP runtime, shared by PyTorch and shendu's Numba
kernels, whose wait policy is fixed by whichever library loads it first, so timing both in one process
would hand one of them the other's setting, which is not how either runs in a user's program.

The two processes of a configuration run in turns (:func:`take_turn`, :func:`pass_turn`): ``run.py`` starts
both and lets one work at a time, and each hands over after every round of :func:`interleaved`. So a ratio's two
sides are timed in alternating rounds, a few seconds apart, and the host's drift (this machine's speed moves by
1.5-2x for minutes at a time) hits both alike, while neither process shares a core with the other's work.
"""

from __future__ import annotations

import gc
import math
import os
import statistics
import time
from typing import Any, Callable

#: environment variables that size the BLAS/OpenMP thread pools; they take effect only before NumPy loads
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                   "NUMEXPR_NUM_THREADS", "NUMBA_NUM_THREADS")


def set_thread_env(threads: int) -> None:
    """Ask NumPy's BLAS, OpenMP and Numba for ``threads`` threads; call before NumPy is first imported."""
    for name in THREAD_ENV_VARS:
        os.environ[name] = str(threads)


def threads() -> int:
    """The thread count the benchmarks run with (from ``set_thread_env``; 1 when unset)."""
    return int(os.environ.get("OMP_NUM_THREADS", "1"))


def frameworks() -> set[str]:
    """The frameworks this process times: ``SHENDU_BENCH_FRAMEWORKS`` (comma-separated), default all three."""
    return set(os.environ.get("SHENDU_BENCH_FRAMEWORKS", "shendu,torch,numpy").split(","))


def _turn_pipes() -> tuple[int, int] | None:
    """The pipes ``run.py`` passes the turn through (``SHENDU_BENCH_TURNS="go,done"``), or None."""
    spec = os.environ.get("SHENDU_BENCH_TURNS")
    return None if not spec else tuple(int(fd) for fd in spec.split(","))  # type: ignore[return-value]


def take_turn() -> None:
    """Wait until ``run.py`` gives this process its turn (at once when no ``run.py`` runs it in turns)."""
    pipes = _turn_pipes()
    if pipes is not None and not os.read(pipes[0], 1):
        raise SystemExit("benchmarks/run.py, which gives the turns, has gone")


def pass_turn() -> None:
    """Hand the turn to the configuration's other process and wait for it to come back."""
    pipes = _turn_pipes()
    if pipes is not None:
        os.write(pipes[1], b"p")
        take_turn()


def setup_torch() -> Any:
    """Import PyTorch on the benchmark's thread count and return it, or None when it is not installed or
    this process does not time it (:func:`frameworks`)."""
    if "torch" not in frameworks():
        return None
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads())
    return torch


def keras_on_torch() -> Any:
    """Keras 3 on its PyTorch backend, or None without Keras, or outside the process that times PyTorch
    (:func:`frameworks`): Keras would import PyTorch into the process that times shendu, whose later workloads
    would then share their threads with PyTorch's."""
    if "torch" not in frameworks():
        return None
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ImportError:
        return None
    return keras if keras.backend.backend() == "torch" else None


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


def interleaved(steps: dict[str, Callable[[], Any] | None], rounds: int, number: int = 2) -> dict[str, float]:
    """Median seconds per call of each step (None: left out), timed in ``rounds`` rounds that take the
    steps in turn, so that a change of machine load mid-run hits every framework alike. A framework this
    process does not time (:func:`frameworks`) gets NaN; ``run.py`` takes its figure from the process that
    does, which times its rounds in turns with this one's (:func:`pass_turn` after each round)."""
    wanted = frameworks()
    times: dict[str, list[float]] = {name: [] for name, fn in steps.items() if fn is not None}
    for _ in range(rounds):
        for name in times:
            if name in wanted:
                times[name].append(median_time(steps[name], number=number, repeat=1))
        pass_turn()
    return {name: statistics.median(ts) if ts else math.nan for name, ts in times.items()}


def us(seconds: float) -> float:
    """Seconds to microseconds."""
    return seconds * 1e6


UNITS = ("us/step", "samples/s", "%")


def row(workload: str, unit: str, shendu: float, torch: float | None, numpy: float | None, target: str,
        key: str | None = None, tracked: Tracked | None = None) -> dict:
    """One result row in the shape ``run.py`` prints; ``tracked`` adds shendu's first-step and wall seconds."""
    if unit not in UNITS:
        raise ValueError(f"row {workload!r}: unit must be one of {UNITS}, got {unit!r}")
    r = {"workload": workload, "unit": unit, "shendu": shendu, "torch": torch, "numpy": numpy, "target": target}
    if key is not None:
        r["key"] = key
    if tracked is not None:
        r["first_s"], r["wall_s"] = tracked.first_s, tracked.wall_s
    return r


class Tracked:
    """A shendu step that keeps count of what it cost, compile time included.

    ``Tracked(build)`` calls ``build()`` (it makes the model and returns the step function) and times it.
    Calling the object runs the step; the first call's seconds are kept as ``first_s`` (that is where
    Numba compiles a kernel, or loads it from the cache), and ``wall_s`` adds up the build and every call,
    warm-up and timing runs alike. ``build`` may return ``(step, first)`` instead: ``first()`` then runs at
    once as the first step (for a step that is a whole ``fit``, ``first`` is a ``fit`` of one batch).
    """

    def __init__(self, build: Callable[[], Any]) -> None:
        start = time.perf_counter()
        built = build()
        self.wall_s = time.perf_counter() - start
        self.first_s: float | None = None
        self.step = built
        if isinstance(built, tuple):
            self.step, first = built
            start = time.perf_counter()
            first()
            self.first_s = time.perf_counter() - start
            self.wall_s += self.first_s

    def __call__(self) -> Any:
        start = time.perf_counter()
        out = self.step()
        elapsed = time.perf_counter() - start
        if self.first_s is None:
            self.first_s = elapsed
        self.wall_s += elapsed
        return out
