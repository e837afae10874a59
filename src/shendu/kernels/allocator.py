"""Keep freed host memory in the process: glibc's ``malloc`` returns every large block to the kernel on ``free``.

A training step allocates the same large arrays (activations, gradients, im2col matrices) step after step.
glibc serves blocks above its mmap threshold (128 KiB, raised adaptively up to 32 MiB) with a fresh ``mmap``
and unmaps them on free, so each step touches new pages: the MNIST convnet step took ~1,440 page faults, about
a tenth of its time (61 -> 56 ms at 2 threads with the faults gone). Raising the mmap and trim thresholds keeps
freed blocks in the heap for the next step, as LD_PRELOADing jemalloc or tcmalloc does for PyTorch CPU
training. The resident size then stays at the step's high-water mark instead of shrinking between steps
(``benchmarks/bench_memory.py`` checks that it stays flat over 10,000 steps).

Applied once when shendu is imported, on Linux with glibc only; ``SHENDU_MALLOC=system`` leaves malloc as it is.
"""

from __future__ import annotations

import ctypes
import os
import platform

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: blocks up to this size come from the heap and are reused (glibc refuses more than HEAP_MAX_SIZE / 2 on
#: some versions; 32 MiB is then used)
MMAP_THRESHOLD = 1 << 30
#: the heap is trimmed (memory returned to the kernel) only when this much is free at its top
TRIM_THRESHOLD = 1 << 30

applied = False


def retain_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds (see the module docstring); True when applied."""
    global applied
    if applied:
        return True
    if os.environ.get("SHENDU_MALLOC", "").strip().lower() == "system" or platform.system() != "Linux":
        return False
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # pragma: no cover - not glibc after all
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    if not (mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) or mallopt(_M_MMAP_THRESHOLD, 32 << 20)):
        return False  # pragma: no cover
    applied = bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return applied
