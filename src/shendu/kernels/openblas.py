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
    any pool), on a POSIX system, and ``SHENDU_BLAS_THREADS`` does not say ``0``."""
    if os.environ.get("SHENDU_BLAS_THREADS", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if os.name != "posix":  # the callback's fallback threads are pthreads
        return False
    try:
        return OpenBLAS().pthreads
    except (LookupError, OSError, ImportError):
        return False
