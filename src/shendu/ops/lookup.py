"""Embedding lookup: rows of a weight matrix picked by integer ids.

Its gradient adds each output row's gradient into the row it came from. ``np.add.at`` does that one id at a
time; here the ids are sorted once and equal ids summed with one ``add.reduceat`` (faster). With NumPy float
arrays, one compiled loop of :mod:`shendu.kernels.lookup` adds the rows in place instead (faster again).

>>> import numpy as np, shendu
>>> w = shendu.tensor(np.arange(6.0, dtype=np.float32).reshape(3, 2), requires_grad=True)
>>> y = embedding_lookup(np.array([[2, 0, 2]]), w)
>>> y.sum().backward(); w.grad
tensor([[1., 1.],
        [0., 0.],
        [2., 2.]])
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shendu.autograd.op import Op, raw
from shendu.autograd.tensor import Tensor
from shendu.backend import get_array_module
from shendu.kernels import fast
from shendu.kernels.lookup import scatter_add_rows


def scatter_rows(ids: Any, rows: Any, num_rows: int) -> Any:
    """out (num_rows, d) with out[ids[i]] += rows[i] (ids 1-D, rows (len(ids), d))."""
    xp = get_array_module(rows)
    out = xp.zeros((num_rows,) + rows.shape[1:], dtype=rows.dtype)
    if ids.size == 0:
        return out
    if fast(rows):
        scatter_add_rows(out, np.ascontiguousarray(ids, dtype=np.intp), np.ascontiguousarray(rows))
        return out
    order = xp.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    starts = xp.flatnonzero(xp.concatenate([xp.ones(1, dtype=bool), sorted_ids[1:] != sorted_ids[:-1]]))
    if xp is np:
        out[sorted_ids[starts]] = xp.add.reduceat(rows[order], starts, axis=0)
    else:  # pragma: no cover - CuPy has no reduceat; its add.at is a fast atomic scatter
        xp.add.at(out, ids, rows)
    return out


class EmbeddingLookupOp(Op):
    """y = W[ids] (ids integer, any shape; W (num_rows, d));   dW[j] = sum of gy over the positions where ids == j"""

    def __init__(self, ids: Any) -> None:
        self.ids = ids

    def forward(self, w):
        ids = self.ids
        if ids.size and (ids.min() < 0 or ids.max() >= w.shape[0]):
            raise IndexError(f"embedding: ids must be in [0, {w.shape[0]}) for input_dim={w.shape[0]}, got values "
                             f"from {int(ids.min())} to {int(ids.max())}; raise input_dim or re-index the tokens")
        return w[ids]

    def backward(self, gy, w, y):
        if isinstance(gy, Tensor):  # create_graph: a differentiable scatter
            return EmbeddingGradOp(self.ids, raw(w).shape[0])(gy)
        return scatter_rows(self.ids.reshape(-1), gy.reshape(-1, w.shape[1]), w.shape[0])


class EmbeddingGradOp(Op):
    """y = zeros (num_rows, d) with gy rows added at ids (the gradient of the lookup);   dx = gy[ids]"""

    def __init__(self, ids: Any, num_rows: int) -> None:
        self.ids, self.num_rows = ids, num_rows

    def forward(self, rows):
        return scatter_rows(self.ids.reshape(-1), rows.reshape(-1, rows.shape[-1]), self.num_rows)

    def backward(self, gy, rows, y):
        return EmbeddingLookupOp(self.ids)(gy) if isinstance(gy, Tensor) else gy[self.ids]


def embedding_lookup(ids: Any, weight: Any) -> Any:
    """weight[ids] for integer ``ids`` of any shape (a Tensor, array or list): shape ids.shape + (d,)."""
    ids = raw(ids)
    xp = get_array_module(raw(weight))
    ids = xp.asarray(ids)
    if ids.dtype.kind not in "iu":
        if ids.dtype.kind == "f" and (ids == xp.round(ids)).all():
            ids = ids.astype(xp.int64)
        else:
            raise TypeError(f"embedding: ids must be integers, got dtype {ids.dtype}")
    return EmbeddingLookupOp(ids)(weight)
