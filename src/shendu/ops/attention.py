"""Scaled dot-product attention as one fused op (PyTorch's ``F.scaled_dot_product_attention``).

    s = q k^T * scale (+ float mask; boolean mask False -> -inf-like);  p = softmax(s);  y = dropout(p) v

Boolean masks are True where a query may attend (PyTorch and Keras agree); a row with no allowed key gets
uniform weights instead of NaN (Keras's behaviour; a float mask of -inf still gives PyTorch's NaN).

>>> import numpy as np, shendu
>>> q = shendu.tensor(np.ones((1, 2, 4)))
>>> scaled_dot_product_attention(q, q, q, is_causal=True).shape
(1, 2, 4)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from shendu.autograd.op import Op, raw
from shendu.autograd.tensor import Tensor
from shendu.backend import get_array_module
from shendu.rng import get_rng


def _t(a: Any) -> Any:
    return a.swapaxes(-1, -2)


class ScaledDotProductAttentionOp(Op):
    """s = q k^T scale + m;  p = softmax(s) (last axis);  y = (p d) v with d the dropout mask (1 without);
    returns (y, p).   dv = (p d)^T gy;  dp = (gy v^T) d + gp;  ds = p (dp - sum(dp p));
    dq = ds k scale;  dk = ds^T q scale"""

    saves_output = True  # p is kept anyway; the engine needs it when the weights output is unused

    def __init__(self, mask: Any = None, dropout_p: float = 0.0, scale: float | None = None) -> None:
        self.mask, self.dropout_p, self.scale = mask, dropout_p, scale

    def forward(self, q, k, v):
        if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
            raise ValueError(f"scaled_dot_product_attention: query (..., L, E) {q.shape}, key (..., S, E) {k.shape} "
                             f"and value (..., S, Ev) {v.shape} do not fit: E and S must agree")
        xp = get_array_module(q)
        scale = self.scale = 1.0 / math.sqrt(q.shape[-1]) if self.scale is None else self.scale
        s = q @ _t(k)
        s *= scale
        mask = self.mask
        if mask is not None:
            if mask.dtype == bool:
                xp.copyto(s, np.finfo(s.dtype).min, where=~mask)
            else:
                s = s + mask.astype(s.dtype, copy=False)
        s -= s.max(axis=-1, keepdims=True)
        p = xp.exp(s, out=s)
        p /= p.sum(axis=-1, keepdims=True)
        self.p = p
        self.drop = None
        if self.dropout_p > 0:
            keep = get_rng().random(p.shape, dtype=p.dtype if p.dtype in (np.float32, np.float64) else np.float32)
            drop = (keep >= self.dropout_p).astype(p.dtype) * (1.0 / (1.0 - self.dropout_p))
            self.drop = xp.asarray(drop)  # drawn on the CPU
            return (p * self.drop) @ v, p
        return p @ v, p

    def backward(self, gys, q, k, v, y):
        gy, gp = gys
        if isinstance(gy, Tensor) or isinstance(q, Tensor):
            raise NotImplementedError("scaled_dot_product_attention: double backward (create_graph=True) is not "
                                      "implemented; compose matmul and softmax for higher-order gradients")
        p, drop, scale = self.p, self.drop, self.scale
        pd = p if drop is None else p * drop
        dv = _t(pd) @ gy if self.needs_grad[2] else None
        if not (self.needs_grad[0] or self.needs_grad[1]):
            return None, None, dv
        dp = gy @ _t(v)
        if drop is not None:
            dp *= drop
        dp += gp
        ds = dp
        ds -= (dp * p).sum(axis=-1, keepdims=True)
        ds *= p
        ds *= scale
        dq = ds @ k if self.needs_grad[0] else None
        dk = _t(ds) @ q if self.needs_grad[1] else None
        return dq, dk, dv


def causal_mask(length: int, source_length: int | None = None, xp: Any = np) -> Any:
    """Boolean (L, S) mask, True on and below the diagonal (query i sees keys 0..i)."""
    return xp.tril(xp.ones((length, length if source_length is None else source_length), dtype=bool))


def scaled_dot_product_attention(query: Any, key: Any, value: Any, attn_mask: Any = None, dropout_p: float = 0.0,
                                 is_causal: bool = False, scale: float | None = None, *,
                                 return_attention_weights: bool = False) -> Any:
    """softmax(q k^T * scale + mask) v over the last two axes, as ``torch.nn.functional.scaled_dot_product_attention``.

    ``attn_mask``: boolean (True = attend) or float (added to the scores), broadcastable to (..., L, S);
    ``is_causal`` adds the lower-triangular mask; ``scale`` defaults to 1/sqrt(E). With
    ``return_attention_weights=True`` returns ``(output, weights)`` (the weights before dropout).
    """
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"scaled_dot_product_attention: dropout_p must be in [0, 1), got {dropout_p}")
    mask = raw(attn_mask)
    if mask is not None and not hasattr(mask, "dtype"):
        mask = np.asarray(mask)
    if is_causal:
        q_shape, k_shape = raw(query).shape, raw(key).shape
        causal = causal_mask(q_shape[-2], k_shape[-2], get_array_module(raw(query)))
        if mask is None:
            mask = causal
        elif mask.dtype == bool:
            mask = mask & causal
        else:
            mask = get_array_module(mask).where(causal, mask, -np.inf)
    out, weights = ScaledDotProductAttentionOp(mask, dropout_p, scale)(query, key, value)
    return (out, weights) if return_attention_weights else out
