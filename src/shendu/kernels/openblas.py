"""NumPy's OpenBLAS, reached through ctypes: whether it takes a threads callback (:mod:`shendu.kernels.blas_threads`).

Found by the symbols NumPy's extension module links against, so nothing here starts a thread pool or
compiles anything.
"""

from __future__ import annotations

import ctypes
import os

from numpy._core import _multiarray_umath


class OpenBLAS:
    """NumPy's OpenBLAS, found through the symbols NumPy's extension module links against."""

    def __init__(self) -> None:
        library = ctypes.CDLL(_multiarray_umath.__file__)
        for prefix, suffix in (("scipy_", "64_"), ("", "64_"), ("", "")):
            try:
                self.set_callback = getattr(library, f"{prefix}openblas_set_threads_callback_function{suffix}")
                get_parallel = getattr(library, f"{prefix}openblas_get_parallel{suffix}")
                break
            except AttributeError:
                continue
        else:
            raise LookupError("NumPy's BLAS is not OpenBLAS 0.3.27 or later")
        self.set_callback.argtypes = [ctypes.c_void_p]
        self.pthreads = get_parallel() == 1  # 0: single-threaded build, 2: OpenMP build (already OpenMP's pool)


def blas_offers_callback() -> bool:
    """Whether NumPy's BLAS is a pthreads OpenBLAS that takes a threads callback (checked without starting
    any pool), on a POSIX system whose OpenMP gives a region every thread asked for (no ``OMP_DYNAMIC``,
    no ``OMP_THREAD_LIMIT``), and ``SHENDU_BLAS_THREADS`` does not say ``0``."""
    if os.environ.get("SHENDU_BLAS_THREADS", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if os.name != "posix":  # the callback's fallback threads are pthreads
        return False
    if os.environ.get("OMP_DYNAMIC", "").strip().lower() in ("true", "1") or "OMP_THREAD_LIMIT" in os.environ:
        return False  # OpenMP may then run a region on fewer threads than it has jobs that wait for each other
    try:
        return OpenBLAS().pthreads
    except (LookupError, OSError, ImportError):
        return False
