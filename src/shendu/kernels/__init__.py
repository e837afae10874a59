"""Compiled, multi-threaded CPU kernels (Numba) behind shendu's ops: the fast path, never the definition.

Each op in :mod:`shendu.ops` keeps its plain NumPy body as the readable reference. Where a profile showed
time going (convolution, pooling, recurrent cells, activations, dropout, optimiser updates), the op asks
:func:`shendu.kernels.fast` whether its arrays can take a kernel from this package instead; the tests tie
every kernel to its reference and gradient-check it.

The fast path is off (and every op runs its NumPy reference) when Numba is not installed, when the
environment sets ``SHENDU_JIT=0``, inside ``with shendu.kernels.disabled():``, and for CuPy arrays.
Kernels compile on first use and are cached on disk (``cache=True``), so a later run does not recompile.
Importing this package also keeps freed large blocks in the process (:mod:`shendu.kernels.allocator`), so the
same arrays allocated every step do not page-fault every step. When the first parallel kernel starts the thread
pool, NumPy's BLAS is given that pool for its threads too (:mod:`shendu.kernels.blas_threads`;
``SHENDU_BLAS_THREADS=0`` opts out), so GEMMs and kernels take turns on one set of threads.
"""

from shendu.kernels.allocator import retain_freed_memory
from shendu.kernels.jit import available, disabled, enabled, fast, get_num_threads, jit, prange, set_num_threads

retain_freed_memory()

__all__ = ["available", "disabled", "enabled", "fast", "get_num_threads", "jit", "prange", "retain_freed_memory",
           "set_num_threads"]
