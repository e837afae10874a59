"""One pool of threads for NumPy's BLAS and the kernels.

NumPy's OpenBLAS (its pthreads build, the one in NumPy's wheels) runs a GEMM on worker threads of its own,
and after each GEMM they keep spinning, without yielding, for about 0.1 s in case another one comes. In a
training step the next GEMM always comes sooner, so a parallel kernel between two GEMMs (im2col, ReLU,
pooling, Adam) shared its cores with spinning BLAS workers and ran at its 1-thread speed, and the kernels'
own idle threads, had they spun too, would have starved the next GEMM.

OpenBLAS 0.3.27 and later let the caller run its threads (``openblas_set_threads_callback_function``): a
parallel BLAS call hands over ``count`` jobs, and the callback must run ``job(i, data + i * size,
job_data)`` for every ``i`` at the same time, one job per thread (the jobs of a GEMM wait for each other's
packed panels, so running them one after another would never finish). :func:`install` gives it
:func:`_blas_threads`, which runs the jobs on Numba's OpenMP pool, the pool the kernels run on: one set of
threads takes GEMMs and kernels in turn, and may spin between them without starving anyone. When the
calling thread's pool has fewer threads than jobs (``numba.set_num_threads`` lowered, or OpenBLAS given
more threads than cores), the jobs run on threads started for the call instead (pthreads: slower to start,
never short of threads).

Installed by :mod:`shendu.kernels.jit` when the pool starts, where NumPy's BLAS offers the callback, Numba's
pool is OpenMP, and ``SHENDU_BLAS_THREADS`` is not ``0``. A forked child process runs BLAS on OpenBLAS's
own threads again (an OpenMP pool does not survive ``fork``).
"""

from __future__ import annotations

import atexit
import ctypes
import os

import numpy as np
from llvmlite import binding, ir
from numba import carray, cfunc, njit, types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.ufunc.parallel import _iget_num_threads as _pool_threads  # by symbol: cacheable

from shendu.kernels.jit import prange
from shendu.kernels.openblas import OpenBLAS, blas_offers_callback

# addresses the compiled code finds by name (binding.add_symbol), so that Numba's on-disk cache stays valid
_THREAD_MAIN = "shendu_blas_thread_main"  # _thread_main, for _run_jobs_on_new_threads
_LOCK = "shendu_blas_lock"  # a pthread mutex: one BLAS call on the pool at a time


@intrinsic
def _call_job(typingctx, job, index, data, job_data):
    """Call the C function at address ``job`` as ``void job(int index, void *data, int job_data)``."""
    def codegen(context, builder, signature, args):
        i32, pointer = ir.IntType(32), ir.IntType(8).as_pointer()
        function = builder.inttoptr(args[0], ir.FunctionType(ir.VoidType(), [i32, pointer, i32]).as_pointer())
        index32 = context.cast(builder, args[1], signature.args[1], types.int32)
        job_data32 = context.cast(builder, args[3], signature.args[3], types.int32)
        builder.call(function, [index32, builder.inttoptr(args[2], pointer), job_data32])
        return context.get_dummy_value()

    return types.void(job, index, data, job_data), codegen


@intrinsic
def _address_of(typingctx, name):
    """The address of the function named by the literal string ``name``, resolved when the code is linked
    (a compile-time constant would go stale in Numba's on-disk cache)."""
    if not isinstance(name, types.StringLiteral):
        return None
    symbol = name.literal_value

    def codegen(context, builder, signature, args):
        function = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []), symbol)
        return builder.ptrtoint(function, ir.IntType(64))

    return types.intp(name), codegen


_pthread_create = types.ExternalFunction("pthread_create", types.intc(types.intp, types.intp, types.intp, types.intp))
_pthread_join = types.ExternalFunction("pthread_join", types.intc(types.uint64, types.intp))
_mutex_lock = types.ExternalFunction("pthread_mutex_lock", types.intc(types.intp))
_mutex_unlock = types.ExternalFunction("pthread_mutex_unlock", types.intc(types.intp))
_set_parallel_chunksize = types.ExternalFunction("set_parallel_chunksize", types.uintp(types.uintp))  # Numba's pool


@njit(parallel=True, cache=True, nogil=True)  # called from C: not jit's Python-side launch wrapper
def _run_jobs(job, count, size, data, job_data):
    """Jobs ``0 .. count-1`` on the OpenMP pool, one per thread (chunks of one job: ``count`` <= threads)."""
    before = _set_parallel_chunksize(0)
    for i in prange(count):
        _call_job(job, i, data + i * size, job_data)
    _set_parallel_chunksize(before)


def _thread_main(args):
    """A started thread's body: ``args`` holds (job, index, data, job_data)."""
    job = carray(args, 4)
    _call_job(job[0], job[1], job[2], job[3])
    return 0


@njit(cache=True, nogil=True)
def _run_jobs_on_new_threads(job, count, size, data, job_data):
    """Jobs ``1 .. count-1`` on threads started now, job 0 on this thread, then wait for all."""
    jobs = np.empty((count, 4), np.int64)
    threads = np.zeros(count, np.uint64)
    started = np.zeros(count, np.bool_)
    for i in range(1, count):
        jobs[i, 0], jobs[i, 1], jobs[i, 2], jobs[i, 3] = job, i, data + i * size, job_data
        started[i] = _pthread_create(threads.ctypes.data + 8 * i, 0, _address_of("shendu_blas_thread_main"),
                                     jobs.ctypes.data + 32 * i) == 0
        if not started[i]:  # no thread to be had: run it here, though a GEMM job then waits for jobs not yet
            # started and never returns; a system out of threads fails elsewhere first
            _call_job(job, i, data + i * size, job_data)
    _call_job(job, 0, data, job_data)
    for i in range(1, count):
        if started[i]:
            _pthread_join(threads[i], 0)


def _blas_threads(sync, job, count, size, data, job_data):
    """OpenBLAS's threads callback: run ``job(i, data + i*size, job_data)`` for ``i < count`` at once, and
    return when all are done (``sync``, 1 for every call OpenBLAS 0.3.31 makes, is treated alike when 0).

    One call at a time: the jobs of calls made at once from several threads would share OpenBLAS's scratch
    buffers (measured: garbage products), which OpenBLAS's own threads serialise."""
    lock = _address_of("shendu_blas_lock")
    _mutex_lock(lock)
    if count <= _pool_threads():
        _run_jobs(job, count, np.intp(size), data, job_data)
    else:
        _run_jobs_on_new_threads(job, count, np.intp(size), data, job_data)
    _mutex_unlock(lock)


_installed: list[OpenBLAS] = []
_callback: list[int] = []  # the compiled callback's address


def _compile() -> int:
    """Compile (or load from Numba's cache) the C callbacks; done on first :func:`install`, never on import,
    since compiling ``_run_jobs`` starts Numba's pool, which :mod:`shendu.kernels.jit` starts on its terms."""
    if not _callback:
        libc = ctypes.CDLL(None)
        mutex = ctypes.create_string_buffer(256)  # larger than any pthread_mutex_t
        if libc.pthread_mutex_init(mutex, None) != 0:
            raise OSError("pthread_mutex_init failed")
        binding.add_symbol(_LOCK, ctypes.addressof(mutex))
        thread_main = cfunc(types.intp(types.CPointer(types.int64)), cache=True)(_thread_main)
        binding.add_symbol(_THREAD_MAIN, thread_main.address)
        callback = cfunc(types.void(types.intc, types.intp, types.intc, types.uintp, types.intp, types.intc),
                         cache=True)(_blas_threads)
        _callback.extend([callback.address, thread_main, callback, mutex])  # kept alive with the code
    return _callback[0]


def install() -> bool:
    """Run NumPy's BLAS threads on the kernels' OpenMP pool (see the module docstring). True if installed."""
    if _installed:
        return True
    if not blas_offers_callback():
        return False
    blas = OpenBLAS()
    blas.set_callback(_compile())
    _installed.append(blas)
    return True


def uninstall() -> None:
    """Give NumPy's BLAS its own threads back."""
    if _installed:
        _installed.pop().set_callback(None)


def installed() -> bool:
    """Whether NumPy's BLAS runs on the kernels' pool now."""
    return bool(_installed)


os.register_at_fork(after_in_child=uninstall)
atexit.register(uninstall)
