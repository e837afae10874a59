"""NumPy's own BLAS GEMM, callable from compiled kernels: ``C = A B`` on row-major blocks.

A recurrent layer's rows are independent of each other, so a kernel can split the batch over threads and
run the whole sequence on each part: per time step one small GEMM (``h_{t-1} U``) and the gate maths, with
no Python between the steps and no waiting between threads. The GEMM must then come from inside the kernel:
this module binds NumPy's OpenBLAS ``cblas_sgemm``/``cblas_dgemm`` (the 64-bit-integer build in NumPy's
wheels, ``scipy_cblas_?gemm64_``) under names of its own (``llvmlite.binding.add_symbol``), so the compiled
code finds them when it is linked and Numba's on-disk cache stays valid.

Such GEMMs must run on one thread each: a multi-threaded OpenBLAS call from inside a parallel region would
hand its jobs to the same pool (:mod:`shendu.kernels.blas_threads`) and wait on itself. OpenBLAS's thread
count is one number for the whole process, so :func:`one_thread_each` lowers it to 1 for the kernel's run
and puts it back after; calls from several Python threads at once are counted, and the last one out restores
it. Meanwhile any other BLAS call in the process runs on one thread too: still right, though its last bits
may round differently from a multi-threaded run.

OpenBLAS's AVX-512 kernel multiplies small blocks faster per flop than a recurrent step's whole product, so the
recurrent kernels split theirs (:func:`matmul_packed`, :func:`matmul_rows_summed`, :data:`BLOCK`).

>>> import numpy as np
>>> a, b = np.ones((2, 3), np.float32), np.ones((3, 4), np.float32)
>>> c = np.empty((2, 4), np.float32)
>>> if available():
...     with one_thread_each():
...         matmul_rows(a, b, c)
...     print(c[0])
[3. 3. 3. 3.]
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from shendu.kernels.jit import jit
from shendu.kernels.openblas import OpenBLAS

try:
    from llvmlite import binding
    from numba import types
except ImportError:  # pragma: no cover - no Numba: the kernels that need a GEMM are never called
    binding = types = None

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112
_SGEMM, _DGEMM = "shendu_cblas_sgemm", "shendu_cblas_dgemm"


def _find() -> tuple[Any, Any] | None:
    """NumPy's OpenBLAS GEMMs (64-bit integers) bound by name, and its thread-count getter and setter; None
    elsewhere (no Numba, another BLAS, 32-bit integers, an OpenMP build, which counts threads per region)."""
    if binding is None:
        return None
    try:
        blas = OpenBLAS()
        sgemm, dgemm = blas.function("cblas_sgemm"), blas.function("cblas_dgemm")
        get_threads, set_threads = blas.function("openblas_get_num_threads"), blas.function("openblas_set_num_threads")
    except (LookupError, OSError, AttributeError):
        return None
    if not blas.ilp64 or blas.parallel not in (0, 1):
        return None
    for name, function in ((_SGEMM, sgemm), (_DGEMM, dgemm)):
        binding.add_symbol(name, ctypes.cast(function, ctypes.c_void_p).value)
    get_threads.restype, set_threads.argtypes = ctypes.c_int, [ctypes.c_int]
    return get_threads, set_threads


_THREADS = _find()
if types is not None:
    _gemm_signature = types.void(types.intc, types.intc, types.intc, types.int64, types.int64, types.int64,
                                 types.float64, types.intp, types.int64, types.intp, types.int64, types.float64,
                                 types.intp, types.int64)
    _sgemm = types.ExternalFunction(_SGEMM, types.void(*[types.float32 if a == types.float64 else a
                                                         for a in _gemm_signature.args]))
    _dgemm = types.ExternalFunction(_DGEMM, _gemm_signature)


def available() -> bool:
    """Whether kernels may call :func:`matmul_rows` (NumPy's BLAS is an OpenBLAS this module can bind)."""
    return _THREADS is not None


_count_lock = threading.Lock()
_inside = [0, 0]  # [calls inside one_thread_each now, the thread count to restore]


@contextlib.contextmanager
def one_thread_each() -> Iterator[None]:
    """OpenBLAS on one thread per call while the block runs (see the module docstring)."""
    get_threads, set_threads = _THREADS
    with _count_lock:
        if _inside[0] == 0:
            _inside[1] = get_threads()
            set_threads(1)
        _inside[0] += 1
    try:
        yield
    finally:
        with _count_lock:
            _inside[0] -= 1
            if _inside[0] == 0:
                set_threads(_inside[1])


#: the recurrent kernels' GEMMs run in blocks of this many columns of B (:func:`pack_column_blocks`) or rows
#: of B (:func:`matmul_rows_summed`) where OpenBLAS runs its AVX-512 kernel, which multiplies such small blocks
#: 1.5-2x faster per flop than the whole (32, 192) x (192, 512) and (32, 512) x (512, 192) products of an
#: LSTM(128) step on a half-batch of 32 rows (36 against 57 us and 39 against 80 us, one thread). Its AVX2
#: kernel (``OPENBLAS_CORETYPE=Haswell``) ran the LSTM step slower in blocks, so there the products stay whole
#: (see :func:`recurrent_block`)
BLOCK = 64
_WHOLE = 1 << 62  # a block no product reaches: one GEMM
_AVX512_CORES = ("skylakex", "cooperlake", "sapphirerapids")


def _core_name() -> str:
    """The kernel family NumPy's OpenBLAS chose (``openblas_get_corename``), lower case; '' when unknown."""
    try:
        corename = OpenBLAS().function("openblas_get_corename")
    except (LookupError, OSError, AttributeError):
        return ""
    corename.restype = ctypes.c_char_p
    return (corename() or b"").decode(errors="replace").lower()


def recurrent_block() -> int:
    """The block width for :func:`matmul_packed` and :func:`matmul_rows_summed`: :data:`BLOCK` where NumPy's
    OpenBLAS runs an AVX-512 kernel, else a width no product reaches (each product one GEMM). A run-time value,
    passed to the kernels (a module constant would be frozen into Numba's on-disk cache)."""
    return BLOCK if _CORE in _AVX512_CORES else _WHOLE


_CORE = _core_name() if _THREADS is not None else ""


@jit(inline="always")
def gemm_at(m, n, k, a, lda, b, ldb, out, ldc, accumulate, itemsize, transpose_a=False):  # pragma: no cover
    """out (m, n) = a b (+ out when ``accumulate``) on row-major blocks given by address and leading dimension;
    a is (m, k), or (k, m) read as its transpose when ``transpose_a``. One thread: inside :func:`one_thread_each`."""
    trans_a = _TRANS if transpose_a else _NO_TRANS
    if itemsize == 4:
        _sgemm(_ROW_MAJOR, trans_a, _NO_TRANS, m, n, k, np.float32(1), a, lda, b, ldb,
               np.float32(1) if accumulate else np.float32(0), out, ldc)
    else:
        _dgemm(_ROW_MAJOR, trans_a, _NO_TRANS, m, n, k, 1.0, a, lda, b, ldb, 1.0 if accumulate else 0.0, out, ldc)


@jit(inline="always")
def matmul_rows(a, b, out):  # pragma: no cover - compiled
    """out = a @ b by NumPy's BLAS: a (m, k), b (k, n), out (m, n), C-ordered float32 or float64 arrays of one
    dtype (row blocks of larger ones too). Call it inside :func:`one_thread_each` only. (For a @ U^T pass a
    C-ordered copy of U^T: OpenBLAS's transposed-B path measured 1.5x slower at these sizes.)"""
    m, k = a.shape
    n = out.shape[1]
    gemm_at(m, n, k, a.ctypes.data, max(k, 1), b.ctypes.data, max(n, 1), out.ctypes.data, max(n, 1), False,
            a.itemsize)  # BLAS refuses a leading dimension of 0


@jit(inline="always")
def matmul_rows_summed(a, b, out, depth):  # pragma: no cover - compiled
    """out = a @ b as in :func:`matmul_rows`, summed over blocks of ``depth`` rows of b (d = depth):
    out = a[:, :d] b[:d] + a[:, d:2d] b[d:2d] + ..., each block added onto ``out`` by the GEMM itself."""
    m, k = a.shape
    n = out.shape[1]
    if k == 0 or n == 0:
        matmul_rows(a, b, out)
        return
    for first in range(0, k, depth):
        gemm_at(m, n, min(depth, k - first), a.ctypes.data + first * a.itemsize, k,
                b.ctypes.data + first * n * b.itemsize, n, out.ctypes.data, n, first > 0, a.itemsize)


def pack_column_blocks(b: np.ndarray, width: int) -> np.ndarray:
    """B (k, n) as its blocks of ``width`` columns one after another, each C-ordered (k, width), the last
    narrower when n is not a multiple: a flat array, the layout :func:`matmul_packed` reads (a view of a
    C-ordered B when one block takes every column)."""
    k, n = b.shape
    if width >= n and b.flags.c_contiguous:
        return b.reshape(-1)
    packed = np.empty(k * n, b.dtype)
    for first in range(0, n, width):
        columns = min(width, n - first)
        packed[k * first:k * (first + columns)].reshape(k, columns)[...] = b[:, first:first + columns]
    return packed


@jit(inline="always")
def matmul_packed(a, packed, out, width):  # pragma: no cover - compiled
    """out = a @ B as in :func:`matmul_rows`, from B packed by :func:`pack_column_blocks` in blocks of ``width``
    columns: one GEMM per block, each written into its columns of ``out``."""
    m, k = a.shape
    n = out.shape[1]
    for first in range(0, n, width):  # k = 0: BLAS writes zeros (an empty sum); it refuses a leading dimension of 0
        columns = min(width, n - first)
        gemm_at(m, columns, k, a.ctypes.data, max(k, 1), packed.ctypes.data + k * first * packed.itemsize, columns,
                out.ctypes.data + first * out.itemsize, n, False, a.itemsize)
