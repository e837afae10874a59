"""NumPy's OpenBLAS, reached through ctypes: whether it takes a threads callback (:mod:`shendu.kernels.blas_threads`).

Found by the symbols NumPy's extension module links against, so nothing here starts a thread pool or
compiles anything.
"""

from __future__ import annotations

import ctypes
import os

from numpy._core import _multiarray_umath


class OpenBLAS:
    """NumPy's OpenBLAS, found through the symbols NumPy's extension module links against (the names carry a
    prefix and suffix that depend on the build: ``scipy_...64_`` in NumPy's wheels)."""

    def __init__(self) -> None:
        self.library = ctypes.CDLL(_multiarray_umath.__file__)
        for self.prefix, self.suffix in (("scipy_", "64_"), ("", "64_"), ("", "")):
            if hasattr(self.library, self.name("openblas_get_parallel")):
                break
        else:
            raise LookupError("NumPy's BLAS is not OpenBLAS")
        #: 0: single-threaded build, 1: pthreads, 2: OpenMP build (already OpenMP's pool)
        self.parallel = self.function("openblas_get_parallel")()
        self.pthreads = self.parallel == 1
        self.ilp64 = self.suffix == "64_"  # 64-bit integer arguments (cblas_* take int64 sizes)

    def name(self, symbol: str) -> str:
        return f"{self.prefix}{symbol}{self.suffix}"

    def function(self, symbol: str) -> ctypes._CFuncPtr:
        """The C function ``symbol`` of this build (AttributeError when it has none)."""
        return getattr(self.library, self.name(symbol))

    def set_callback(self, callback: int | None) -> None:
        """``openblas_set_threads_callback_function`` (OpenBLAS 0.3.27+; AttributeError when older)."""
        setter = self.function("openblas_set_threads_callback_function")
        setter.argtypes = [ctypes.c_void_p]
        setter(callback)

    def offers_callback(self) -> bool:
        return self.pthreads and hasattr(self.library, self.name("openblas_set_threads_callback_function"))


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
        return OpenBLAS().offers_callback()
    except (LookupError, OSError, ImportError):
        return False
