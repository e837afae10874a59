"""The communicator: the only module of shendu that talks to MPI (through mpi4py, an optional dependency).

``Communicator`` wraps an ``mpi4py`` communicator (``MPI.COMM_WORLD`` by default) behind the few collectives
data-parallel training needs: in-place ``Allreduce`` of contiguous NumPy buffers, ``Bcast`` of arrays, and
small Python objects (a seed, a stop flag, an architecture summary) by ``bcast``/``allgather``. Everything
else in :mod:`shendu.distribute` is written against this object, so a test or another transport can stand in
for MPI by giving the same methods.

mpi4py is imported only when a ``Communicator`` is made: ``import shendu`` never needs it.
``pip install "shendu[mpi]"`` brings it together with the ``mpich`` wheel (``mpiexec``/``mpirun`` included).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import time
import traceback
from typing import Any

import numpy as np

INSTALL_HINT = ('pip install "shendu[mpi]" (mpi4py plus the mpich wheel), or pip install mpi4py against your '
                "site's MPI (see docs/distributed.md)")


def mpi_available() -> bool:
    """Whether mpi4py can be imported (without initialising MPI)."""
    try:
        return importlib.util.find_spec("mpi4py") is not None
    except (ImportError, ValueError):  # a broken or half-installed package
        return False


def load_mpi() -> Any:
    """``mpi4py.MPI`` (this initialises MPI), or an ImportError saying how to install it."""
    try:
        return importlib.import_module("mpi4py.MPI")
    except ImportError as e:
        raise ImportError(f"shendu.distribute needs mpi4py, which is not installed ({e}); {INSTALL_HINT}") from None


class EveryRankError(ValueError):
    """An error that every rank detects at the same point (the ranks disagree on the model): each raises it and
    exits on its own, so no abort is needed and every rank's message is printed."""


#: seconds the excepthook waits before ``MPI_Abort`` so that the launcher forwards the traceback first
ABORT_GRACE_SECONDS = 1.0


class Communicator:
    """A group of processes (ranks) that reduce and broadcast together.

    Args:
        comm: an ``mpi4py.MPI.Comm``; ``MPI.COMM_WORLD`` when None.
    """

    def __init__(self, comm: Any = None) -> None:
        self.MPI = load_mpi()
        self.comm = self.MPI.COMM_WORLD if comm is None else comm
        self.rank: int = self.comm.Get_rank()
        self.world_size: int = self.comm.Get_size()

    # ------------------------------------------------------------------ arrays
    def allreduce_(self, buffer: np.ndarray) -> np.ndarray:
        """Sum ``buffer`` (a contiguous NumPy array) over all ranks, in place; returns it."""
        if not buffer.flags.c_contiguous:
            raise ValueError(f"Communicator.allreduce_: buffer must be C-contiguous, got strides {buffer.strides}")
        if self.world_size > 1:
            self.comm.Allreduce(self.MPI.IN_PLACE, buffer, op=self.MPI.SUM)
        return buffer

    def allreduce_sum(self, array: Any) -> np.ndarray:
        """The sum over ranks of ``array`` (a new contiguous array; the input is left alone)."""
        return self.allreduce_(np.array(array, copy=True, order="C"))

    def broadcast_(self, buffer: np.ndarray, root: int = 0) -> np.ndarray:
        """Overwrite ``buffer`` on every rank with rank ``root``'s, in place; returns it."""
        if not buffer.flags.c_contiguous:
            raise ValueError(f"Communicator.broadcast_: buffer must be C-contiguous, got strides {buffer.strides}")
        if self.world_size > 1:
            self.comm.Bcast(buffer, root=root)
        return buffer

    # ------------------------------------------------------------------ small Python objects
    def broadcast_object(self, obj: Any, root: int = 0) -> Any:
        """Rank ``root``'s ``obj`` on every rank (small values only: seeds, flags, optimiser state)."""
        return self.comm.bcast(obj, root=root) if self.world_size > 1 else obj

    def allgather_object(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order."""
        return self.comm.allgather(obj) if self.world_size > 1 else [obj]

    def barrier(self) -> None:
        if self.world_size > 1:
            self.comm.Barrier()

    def abort(self, code: int = 1) -> None:
        """Stop every rank of the job now (``MPI_Abort``)."""
        self.comm.Abort(code)

    # ------------------------------------------------------------------ faults
    def install_excepthook(self) -> None:
        """On an uncaught exception in this rank: print it (with the rank), then abort the whole job, so the
        other ranks stop within seconds instead of waiting forever in their next collective."""
        previous = sys.excepthook
        if getattr(previous, "_shendu_abort", False):
            return

        def abort_on_error(kind: type, value: BaseException, tb: Any) -> None:
            if isinstance(value, EveryRankError):  # raised by all ranks alike: each one exits normally
                previous(kind, value, tb)
                return
            sys.stderr.write(f"[shendu.distribute] rank {self.rank} of {self.world_size} raised "
                             f"{kind.__name__}; aborting all ranks\n")
            sys.stderr.write("".join(traceback.format_exception(kind, value, tb)))
            sys.stderr.flush()
            sys.stdout.flush()
            if self.world_size > 1:
                time.sleep(ABORT_GRACE_SECONDS)
                self.abort(1)
            previous(kind, value, tb)

        abort_on_error._shendu_abort = True  # type: ignore[attr-defined]
        sys.excepthook = abort_on_error

    def __repr__(self) -> str:
        return f"Communicator(rank={self.rank}, world_size={self.world_size})"
