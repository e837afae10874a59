"""Gradient all-reduce in a few large contiguous buckets (Horovod's tensor fusion, PyTorch DDP's buckets).

One ``Allreduce`` per bucket instead of one per parameter: the parameters are grouped by dtype, in their
attached order, into flat buffers of at most ``bucket_bytes`` (a larger parameter gets a bucket to itself).
Each step copies every ``.grad`` into its slice of a bucket, reduces the buckets, and copies back.

The average is weighted by samples, so that N ranks on one global batch give the gradient of that batch::

    g = sum_r n_r * g_r / sum_r n_r        g_r: rank r's gradient of its mean loss over its n_r samples

The counts ``n_r`` (and a has-gradient flag per parameter) travel in the first bucket, so they cost no extra
call. A parameter that got no gradient on any rank keeps ``.grad = None`` (the optimiser skips it, as it would
in one process); one that got a gradient on some ranks only counts as zero on the others.

Overlap with the backward pass is not done: on CPU every core computes during backward, so none is free to
progress a non-blocking reduction (MPICH advances an ``Iallreduce`` only inside MPI calls, or on a thread of its
own that needs a core), and the benchmark measures the reduction alone at a fraction of a step (see
docs/distributed.md, "Scaling on one machine").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from shendu.autograd.tensor import Tensor

#: largest bucket, in bytes (PyTorch DDP's default bucket_cap_mb is 25)
DEFAULT_BUCKET_BYTES = 25 * 2**20


class GradientBuckets:
    """Sample-weighted gradient averaging over the ranks of ``comm`` for a fixed list of parameters."""

    def __init__(self, params: Sequence[Any], comm: Any, bucket_bytes: int = DEFAULT_BUCKET_BYTES) -> None:
        if not isinstance(bucket_bytes, int) or bucket_bytes < 1:
            raise ValueError(f"GradientBuckets: bucket_bytes must be a positive int, got {bucket_bytes!r}")
        self.params = list(params)
        if not self.params:
            raise ValueError("GradientBuckets: no parameters to reduce (an optimiser with no attached parameters?)")
        self.comm = comm
        by_dtype: dict[Any, list[int]] = {}
        for i, p in enumerate(self.params):
            by_dtype.setdefault(p.data.dtype, []).append(i)
        plans: list[tuple[Any, list[int]]] = []
        for dtype, indices in by_dtype.items():
            current: list[int] = []
            size = 0
            for i in indices:
                nbytes = self.params[i].data.nbytes
                if current and size + nbytes > bucket_bytes:
                    plans.append((dtype, current))
                    current, size = [], 0
                current.append(i)
                size += nbytes
            plans.append((dtype, current))
        self.buckets: list[np.ndarray] = []
        self.views: list[np.ndarray | None] = [None] * len(self.params)
        n_meta = len(self.params) + 1  # one has-gradient flag per parameter, then the sample count
        for k, (dtype, indices) in enumerate(plans):
            sizes = [self.params[i].data.size for i in indices]
            buffer = np.zeros(sum(sizes) + (n_meta if k == 0 else 0), dtype=dtype)
            offset = 0
            for i, s in zip(indices, sizes):
                self.views[i] = buffer[offset:offset + s]
                offset += s
            self.buckets.append(buffer)
        self.meta = self.buckets[0][-n_meta:]

    def __len__(self) -> int:
        return len(self.buckets)

    def allreduce(self, num_samples: float = 1.0) -> float:
        """Replace every ``.grad`` by the sample-weighted average over the ranks; returns the total samples.

        ``num_samples``: how many samples this rank's gradients average over (0 for a rank without data in this
        step: it contributes nothing but still takes part, so no rank waits).
        """
        if num_samples < 0:
            raise ValueError(f"GradientBuckets.allreduce: num_samples must be >= 0, got {num_samples}")
        meta = self.meta
        for i, (p, view) in enumerate(zip(self.params, self.views)):
            grad = p.grad
            if grad is None or num_samples == 0:
                view[...] = 0
                meta[i] = 0
            else:
                np.multiply(grad.data.reshape(-1), num_samples, out=view, casting="same_kind")
                meta[i] = 1
        meta[-1] = num_samples
        for buffer in self.buckets:
            self.comm.allreduce_(buffer)
        total = float(meta[-1])
        if total <= 0:
            raise RuntimeError("GradientBuckets.allreduce: no rank had any sample in this step; every step needs "
                               "data on at least one rank")
        scale = 1.0 / total
        for i, (p, view) in enumerate(zip(self.params, self.views)):
            if meta[i] == 0:
                p.grad = None
                continue
            if p.grad is None:
                p.grad = Tensor(np.empty_like(p.data))
            np.multiply(view.reshape(p.data.shape), scale, out=p.grad.data, casting="same_kind")
        return total

