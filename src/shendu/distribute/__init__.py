"""Data-parallel training over processes and machines with MPI (mpi4py, optional: ``pip install "shendu[mpi]"``).

Run a script under ``mpirun -n N python train.py``. Keras style: ``set_distribution(DataParallel())`` and an
unchanged ``model.fit(x, y, batch_size=B)`` (B is the global batch). PyTorch style: ``init()``,
``DataLoader(..., shard=dist)``, ``DistributedOptimizer``, ``broadcast_parameters``, ``allreduce``. See
``docs/distributed.md``. Importing this package never imports mpi4py; making a ``DataParallel`` does.
"""

from shendu.distribute.buckets import DEFAULT_BUCKET_BYTES, GradientBuckets
from shendu.distribute.communicator import INSTALL_HINT, Communicator, EveryRankError, mpi_available
from shendu.distribute.data_parallel import (
    DataParallel,
    DistributedOptimizer,
    active,
    get_distribution,
    init,
    is_chief,
    rank,
    set_distribution,
    shard_slice,
    world_size,
)
from shendu.distribute.sync_batch_norm import sync_batch_norm

__all__ = ["DEFAULT_BUCKET_BYTES", "INSTALL_HINT", "Communicator", "DataParallel", "DistributedOptimizer",
           "EveryRankError", "GradientBuckets", "active", "get_distribution", "init", "is_chief", "mpi_available",
           "rank", "set_distribution", "shard_slice", "sync_batch_norm", "world_size"]
