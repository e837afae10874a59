"""Synchronised batch normalisation: the batch moments over every rank's samples (PyTorch's SyncBatchNorm).

Written with shendu's differentiable ops plus one all-reduce op, so backward needs no formula of its own::

    mean = allreduce(sum(x)) / N          N: the reduced elements of all ranks together
    var  = allreduce(sum((x - mean)^2)) / N
    y    = gamma (x - mean) / sqrt(var + eps) + beta

The all-reduce op's backward is an all-reduce too: rank r's loss is its own batch mean, and data-parallel
training weights rank r by its batch size n_r, so ``dx_r = allreduce(n_r gy_r) / n_r``. With that, N ranks
with synchronised statistics give the gradient of one process on the whole global batch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shendu import ops
from shendu.autograd.op import Op


class _AllReduceSumOp(Op):
    """y = sum over ranks of x;   dx = sum over ranks of (n_r gy) / n_r   (n_r: this rank's batch size)"""

    def __init__(self, comm: Any, weight: float) -> None:
        self.comm, self.weight = comm, float(weight)

    def forward(self, x):
        return self.comm.allreduce_sum(x)

    def backward(self, gy, x, y):
        if not isinstance(gy, np.ndarray):
            raise NotImplementedError("synchronised BatchNormalization: higher-order gradients (create_graph) "
                                      "through the all-reduce are not supported")
        return self.comm.allreduce_sum(gy * self.weight) / self.weight


def sync_batch_norm(x: Any, gamma: Any, beta: Any, reduce_axes: tuple[int, ...], eps: float,
                    comm: Any) -> tuple[Any, np.ndarray, np.ndarray]:
    """(y, mean, var) of batch normalisation with the moments of all ranks' batches (see the module docstring).

    Every rank must have at least one sample: an empty shard has no batch mean to weight its gradient by."""
    rows = x.shape[0]
    if rows == 0:
        raise ValueError("synchronised BatchNormalization: this rank got an empty shard of the global batch; use a "
                         "batch size of at least the number of ranks for every batch (also the last: pick the "
                         "data size or drop the last batch)")
    local = int(np.prod([x.shape[a] for a in reduce_axes]))
    total = float(comm.allreduce_sum(np.asarray(local, dtype=np.float64)))
    mean = _AllReduceSumOp(comm, rows)(ops.reduce_sum(x, reduce_axes, keepdims=True)) / total
    centred = x - mean
    var = _AllReduceSumOp(comm, rows)(ops.reduce_sum(centred * centred, reduce_axes, keepdims=True)) / total
    y = centred / ops.sqrt(var + eps)
    if gamma is not None:
        y = y * gamma
    if beta is not None:
        y = y + beta
    return y, np.asarray(mean.data), np.asarray(var.data)
