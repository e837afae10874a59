"""The one place that knows whether Numba is here: the ``jit`` decorator, ``prange`` and the on/off switch.

Threads: Numba's pool has ``NUMBA_NUM_THREADS`` threads (default: every core), the same count NumPy's BLAS
uses by default; :func:`set_num_threads` lowers it at run time. The OpenMP threading layer is preferred
(a launch costs ~3 us against ~100 us for Numba's fallback "workqueue" pool), and it is safe to launch
kernels from several Python threads at once; see :func:`_first_launch` for when another library's OpenMP
comes first. Where only "workqueue" is available, launches are serialised by a lock, since that pool aborts
on concurrent launches.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
import types
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from shendu.kernels.openblas import blas_offers_callback

try:
    import numba as _numba

    _numba.config.THREADING_LAYER_PRIORITY = ["omp", "tbb", "workqueue"]
except ImportError:  # pragma: no cover - the fallback is tested with SHENDU_JIT=0 instead
    _numba = None

_ENV_ON = os.environ.get("SHENDU_JIT", "1").strip().lower() not in ("0", "false", "no", "off")
_state = threading.local()
_FAST_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


_AVAILABLE = _numba is not None and _ENV_ON


def available() -> bool:
    """True when Numba is installed and ``SHENDU_JIT`` does not turn the kernels off."""
    return _AVAILABLE


def enabled() -> bool:
    """True when kernels may run in this thread now (available, and not inside :func:`disabled`)."""
    return _AVAILABLE and not getattr(_state, "off", False)


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Run the NumPy references instead of the kernels in this thread (used by the tests to compare both)."""
    before = getattr(_state, "off", False)
    _state.off = True
    try:
        yield
    finally:
        _state.off = before


def fast(*arrays: Any) -> bool:
    """Whether these arrays may take the kernel path: kernels enabled, and every array a NumPy float32 or
    float64 array (CuPy arrays, integer and float16 arrays take the reference)."""
    if not enabled():
        return False
    for a in arrays:
        if type(a) is not np.ndarray or a.dtype not in _FAST_DTYPES:
            return False
    return True


def jit(parallel: bool = False, **options: Any) -> Callable[[Callable], Callable]:
    """``numba.njit(cache=True, nogil=True)`` (plus ``parallel=True`` when asked), or the plain Python
    function when Numba is missing (it is then never called by the ops: :func:`fast` says no)."""

    def decorate(function: Callable) -> Callable:
        if _numba is None:
            return function
        try:
            compiled = _numba.njit(cache=True, nogil=True, parallel=parallel, **options)(function)
        except RuntimeError:  # no file to cache next to (a function typed into a REPL): compile every run
            compiled = _numba.njit(nogil=True, parallel=parallel, **options)(function)
        if parallel:
            return _serialise_if_workqueue(compiled)
        return compiled

    return decorate


_launch_lock = threading.Lock()
_layer: list[str] = []  # the threading layer, once the first parallel launch has started the pool


def _serialise_if_workqueue(compiled: Callable) -> Callable:
    def launch(*args: Any) -> Any:
        if not _layer:
            return _first_launch(compiled, args)
        if _layer[0] != "workqueue":
            return compiled(*args)
        with _launch_lock:
            return compiled(*args)

    launch.py_func = compiled.py_func  # type: ignore[attr-defined]
    launch.compiled = compiled  # type: ignore[attr-defined]
    return launch


def _openmp_loaded_by_another() -> bool:
    """Whether another library (PyTorch, imported first) already loaded and started GNU OpenMP."""
    no_load = getattr(os, "RTLD_NOLOAD", None)  # POSIX only; GNU OpenMP is a Linux matter anyway
    if no_load is None:
        return False
    try:
        ctypes.CDLL("libgomp.so.1", mode=no_load)
    except OSError:
        return False
    return True


def _first_launch(compiled: Callable, args: tuple) -> Any:
    """Start Numba's thread pool, on terms that keep it from fighting NumPy's BLAS for the cores.

    Idle OpenMP workers spin for a while after each kernel, and NumPy's OpenBLAS (pthreads) keeps its own
    idle workers spinning for ~0.1 s after each GEMM; two pools that spin on the same cores starve each other
    (measured: the MNIST convnet step at 2 threads on 2 cores, 113 ms with both spinning, 54 ms with
    OpenMP's workers passive). GNU OpenMP reads its wait policy once, when it loads, and there is one GNU
    OpenMP per process, shared by every library that uses it. So:

    * NumPy's BLAS takes a threads callback (OpenBLAS 0.3.27+, see :mod:`shendu.kernels.blas_threads`): BLAS
      runs its jobs on this pool too, and the pool keeps OpenMP's default (a short spin, then sleep): one
      pool, nothing to starve (convnet step 51-54 ms against 64-73 ms for two pools, in alternating runs);
    * otherwise ``OMP_WAIT_POLICY=PASSIVE`` is set while Numba's OpenMP layer loads, then removed, unless
      the user set a policy. A library loaded later (PyTorch imported after shendu) shares that runtime;
    * GNU OpenMP already loaded by another library (PyTorch imported first): with the BLAS callback the pool
      is that runtime too (its default policy is the one above), so BLAS, the kernels and PyTorch take turns
      on one set of threads. Measured at 2 threads, PyTorch imported and run first: MNIST convnet step 52-58
      ms there, 72-77 ms on Numba's own "workqueue" pool beside OpenBLAS's spinning threads, 52-54 ms with
      no PyTorch; Embedding-LSTM step 30-40, 40-47 and 29-34 ms; PyTorch's own steps as before. Without the
      callback two pools would spin against each other, and Numba's "workqueue" pool is used instead,
      leaving the other library's runtime as it was.

    In every case the runtime's nesting level is put back after Numba's OpenMP layer starts (see
    :func:`_openmp_nesting`), so a library sharing the runtime keeps its speed.
    """
    with _launch_lock:
        if _layer:
            return compiled(*args)
        user_policy = "OMP_WAIT_POLICY" in os.environ
        one_pool = _numba.config.THREADING_LAYER_PRIORITY[0] == "omp" and blas_offers_callback()
        if (not user_policy and not one_pool and _openmp_loaded_by_another()
                and _numba.config.THREADING_LAYER == "default"):
            _numba.config.THREADING_LAYER_PRIORITY = ["tbb", "workqueue", "omp"]
        passive = not user_policy and not one_pool
        if passive:
            os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        nesting = _openmp_nesting() if _numba.config.THREADING_LAYER_PRIORITY[0] == "omp" else None
        levels_before = nesting[0]() if nesting is not None else None
        try:
            if _threads_before_start:
                _numba.set_num_threads(_threads_before_start.pop())  # starts the pool, under the policy above
            result = compiled(*args)
            try:
                _layer.append(_numba.threading_layer())
            except ValueError:  # pragma: no cover - the launch above started a pool
                _layer.append("workqueue")
            if nesting is not None and _layer[0] == "omp":
                nesting[1](levels_before)
            if one_pool and _layer[0] == "omp":
                _install_blas_threads()
        finally:
            if passive:
                os.environ.pop("OMP_WAIT_POLICY", None)
        return result


def _openmp_nesting() -> tuple[Callable[[], int], Callable[[int], None]] | None:
    """``omp_get_max_active_levels`` and ``omp_set_max_active_levels`` of the OpenMP runtime that Numba's "omp"
    layer links (None where that layer cannot load). Loading the layer's module does not start its pool.

    When that pool starts, Numba turns nested parallel regions on (``omp_set_nested(1)``: up to 255 levels),
    for the whole runtime, which every library in the process that uses OpenMP shares. PyTorch's element-wise
    kernels call MKL's vector maths inside their own parallel regions; with nesting on, each of those opens a
    team of its own, and the threads outnumber the cores (measured at 2 threads, PyTorch imported after the
    kernels ran: ``x.exp()`` on 1M floats 1.9-3.7 ms against 0.2 ms, an MLP train step 11.2 ms against 2.9).
    :func:`_first_launch` puts the level back as it was. The kernels need no nesting: none opens a parallel
    region inside another, and NumPy's BLAS runs on the pool from the calling thread only (GEMMs called
    inside a kernel run on one thread, :mod:`shendu.kernels.gemm`)."""
    try:
        from numba.np.ufunc import omppool

        runtime = ctypes.CDLL(omppool.__file__)
        get_levels, set_levels = runtime.omp_get_max_active_levels, runtime.omp_set_max_active_levels
    except (ImportError, OSError, AttributeError):  # pragma: no cover - no OpenMP layer: Numba picks another
        return None
    get_levels.restype, set_levels.argtypes = ctypes.c_int, [ctypes.c_int]
    return get_levels, set_levels


def _install_blas_threads() -> None:
    try:
        from shendu.kernels import blas_threads  # Numba's internals (some private): loaded when the pool starts

        blas_threads.install()
    except Exception as error:  # pragma: no cover - a Numba or OpenBLAS this code does not know
        warnings.warn(f"shendu: NumPy's BLAS keeps its own threads ({error!r}); its spinning workers and the "
                      "kernels' pool will share the cores. Set SHENDU_BLAS_THREADS=0 to start the pool passive "
                      "instead.", RuntimeWarning, stacklevel=3)


class Kernel:
    """One loop (written with ``prange``) compiled twice, each on first use: serial for arrays under
    ``parallel_min`` elements, parallel from there. ``kernel(*args)`` picks by the size of its last argument
    (the output); ``kernel.pick(size)`` returns the build for another size. ``options`` go to both builds."""

    def __init__(self, function: Callable, parallel_min: int = 1 << 16, **options: Any) -> None:
        self.serial = jit(**options)(function)
        self.parallel = jit(parallel=True, **options)(_renamed(function, "_parallel"))
        self.parallel_min = parallel_min
        self.__doc__, self.__name__ = function.__doc__, function.__name__

    def pick(self, size: int) -> Callable:
        return self.parallel if size >= self.parallel_min else self.serial

    def __call__(self, *args: Any) -> Any:
        return self.pick(args[-1].size)(*args)


def _renamed(function: Callable, suffix: str) -> Callable:
    """A copy of ``function`` under another name: Numba's on-disk cache keys a function by its name and code,
    not by its compile options, so the parallel build needs a name of its own."""
    copy = types.FunctionType(function.__code__, function.__globals__, function.__name__ + suffix,
                              function.__defaults__, function.__closure__)
    copy.__qualname__ = function.__qualname__ + suffix
    return copy


if _numba is not None:
    prange = _numba.prange
else:  # pragma: no cover
    prange = range


# ---------------------------------------------------------------- arrays by address
# One kernel call can walk through many arrays (every parameter of a model) when it is given their addresses:
# a column of integers, the same type whatever the count, so nothing recompiles per model.
def array_at(addresses: Any, i: int, start: int, size: int, like: Any) -> Any:
    """Inside a kernel: elements ``start`` to ``start + size`` of the array of ``like``'s dtype at
    ``addresses[i]``, as a 1-d C-ordered array; None when ``addresses`` is None (an array the rule does not
    use, compiled away). (A loop over ``range(size)`` of this view vectorises; one over ``range(start, stop)``
    of the whole array measured 4x slower: Numba cannot tell that its index is not negative.)"""
    raise TypeError("array_at is only callable from compiled kernels")


@jit()
def address(array):  # pragma: no cover - compiled
    """Where ``array``'s first element lies in memory (an integer; read it only while the array lives)."""
    return array.ctypes.data


if _numba is not None:
    from numba.core import cgutils as _cgutils
    from numba.core import types as _types
    from numba.extending import intrinsic as _intrinsic
    from numba.extending import overload as _overload

    @_intrinsic
    def _void_pointer(typingctx: Any, address: Any) -> Any:  # pragma: no cover - compiled
        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            return builder.inttoptr(args[0], _cgutils.voidptr_t)

        return _types.voidptr(_types.intp), codegen

    @_overload(array_at, inline="always")
    def _array_at(addresses: Any, i: Any, start: Any, size: Any, like: Any) -> Any:  # pragma: no cover
        # chosen by type when the kernel compiles: a None column gives None, not an optional array
        def unused(addresses: Any, i: Any, start: Any, size: Any, like: Any) -> Any:
            return None

        def view(addresses: Any, i: Any, start: Any, size: Any, like: Any) -> Any:
            return _numba.carray(_void_pointer(addresses[i] + start * like.itemsize), size, like.dtype)

        return unused if isinstance(addresses, _types.NoneType) else view


_threads_before_start: list[int] = []  # a count asked for before the pool started, applied when it starts


def set_num_threads(n: int) -> None:
    """Threads for the parallel kernels (1 to ``NUMBA_NUM_THREADS``, the pool's size). Before the first parallel
    kernel the count is kept and applied when the pool starts (:func:`_first_launch` starts it on its terms;
    ``numba.set_num_threads`` would start it at once)."""
    if _numba is None:
        return
    n = int(n)
    if not 1 <= n <= _numba.config.NUMBA_NUM_THREADS:
        raise ValueError(f"set_num_threads: the kernels' pool has 1 to {_numba.config.NUMBA_NUM_THREADS} threads "
                         f"(NUMBA_NUM_THREADS), got {n}")
    with _launch_lock:
        if not _layer:
            _threads_before_start[:] = [n]
            return
    _numba.set_num_threads(n)


def get_num_threads() -> int:
    """Threads the parallel kernels use now (1 when Numba is missing); starts no pool."""
    if _numba is None:
        return 1
    if not _layer:
        return _threads_before_start[0] if _threads_before_start else _numba.config.NUMBA_NUM_THREADS
    return int(_numba.get_num_threads())
