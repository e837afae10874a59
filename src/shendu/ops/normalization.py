"""Fused normalisation: one op for batch and layer normalisation (they differ only in the axes reduced).

``NormalizeOp(axes, eps)(x, gamma, beta)``: y = gamma * xhat + beta, xhat = (x - mean) / sqrt(var + eps),
mean and (biased) var over ``axes``. Batch norm reduces the batch (and spatial) axes, layer norm the
feature axes.
"""

from __future__ import annotations

from typing import Any

from shendu.autograd.op import Op, raw
from shendu.autograd.tensor import Tensor
from shendu.backend import get_array_module
from shendu.ops.elementwise import sqrt
from shendu.ops.reduce import mean, var
from shendu.ops.shaping import sum_keepdims, sum_to


def _mean(x: Any, axes: tuple[int, ...]) -> Any:
    s = sum_keepdims(x, axes)
    return s * (s.size / x.size)


class NormalizeOp(Op):
    """y = gamma xhat + beta,  xhat = (x - mean) / sqrt(var + eps) over ``axes``;
    dx = inv_std (g - mean(g) - xhat mean(g xhat)) with g = gy gamma,  dgamma = gy xhat,  dbeta = gy
    (means over ``axes``; the engine sums dgamma and dbeta to their shapes)"""

    def __init__(self, axes: tuple[int, ...], eps: float) -> None:
        self.axes, self.eps = tuple(axes), eps

    def forward(self, x, gamma=None, beta=None):
        xp = get_array_module(x)
        self.mean = _mean(x, self.axes)
        xc = x - self.mean
        self.var = _mean(xc * xc, self.axes)
        self.inv_std = 1.0 / xp.sqrt(self.var + self.eps)
        self.xhat = xc
        self.xhat *= self.inv_std
        # batch norm: gamma is constant over the reduced axes, which shortens backward
        self.per_feature = gamma is None or all(
            ((1,) * (x.ndim - gamma.ndim) + gamma.shape)[a] == 1 for a in self.axes)
        self.beta_shape = None if beta is None else beta.shape
        y = self.xhat if gamma is None else self.xhat * gamma
        if beta is not None:
            y = y + beta
        return y.copy() if y is self.xhat else y

    def _recompute(self, x):
        """xhat and 1/std from x with shendu functions (differentiable: used when building a graph)."""
        xc = x - mean(x, self.axes, keepdims=True)
        inv_std = 1.0 / sqrt(mean(xc * xc, self.axes, keepdims=True) + self.eps)
        return xc * inv_std, inv_std

    def backward(self, gy, x, gamma, beta, y):
        if not isinstance(x, Tensor):
            return self._backward_per_feature(gy, gamma) if self.per_feature else self._backward_arrays(gy, gamma)
        xhat, inv_std = self._recompute(x)  # building a graph (create_graph): differentiable recomputation
        dx = dgamma = None
        if self.needs_grad[0]:
            g = gy if gamma is None else gy * gamma
            dx = inv_std * (g - mean(g, self.axes, keepdims=True) - xhat * mean(g * xhat, self.axes, keepdims=True))
        if self.needs_grad[1]:
            dgamma = gy * xhat
        return dx, dgamma, (gy if self.needs_grad[2] else None)

    def _backward_arrays(self, gy, gamma):
        """Arrays only (layer norm): the rule of the docstring with in-place updates of two buffers."""
        xhat, axes = self.xhat, self.axes
        dx = None
        if self.needs_grad[0]:
            g = gy * gamma if gamma is not None else gy.copy()
            buffer = g * xhat
            m2 = _mean(buffer, axes)
            g -= _mean(g, axes)
            g -= get_array_module(g).multiply(xhat, m2, out=buffer)
            g *= self.inv_std
            dx = g
        dgamma = sum_to(gy * xhat, gamma.shape) if self.needs_grad[1] else None
        dbeta = sum_to(gy, self.beta_shape) if self.needs_grad[2] else None
        return dx, dgamma, dbeta

    def _backward_per_feature(self, gy, gamma):
        """Arrays only, gamma constant over ``axes`` (batch norm): with s1 = sum(gy), s2 = sum(gy xhat),
        dx = gamma inv_std / n (n gy - s1 - xhat s2),  dgamma = s2,  dbeta = s1 (sums over ``axes``)."""
        xhat = self.xhat
        s1 = sum_keepdims(gy, self.axes)
        s2 = sum_keepdims(gy * xhat, self.axes)
        dx = None
        if self.needs_grad[0]:
            n = xhat.size // s1.size
            dx = gy * n
            dx -= s1
            dx -= xhat * s2
            dx *= (self.inv_std if gamma is None else gamma * self.inv_std) * (1.0 / n)
        dgamma = sum_to(s2, gamma.shape) if self.needs_grad[1] else None  # sums any non-reduced axis too
        dbeta = s1 if self.needs_grad[2] else None
        return dx, dgamma, dbeta


def _feature_params(x: Any, gamma: Any, beta: Any) -> None:
    for name, p in (("gamma", gamma), ("beta", beta)):
        if p is not None and p.ndim > x.ndim:
            raise ValueError(f"normalize: {name} of shape {p.shape} does not broadcast against input {x.shape}")


def normalize(x: Any, gamma: Any = None, beta: Any = None, axes: Any = -1, eps: float = 1e-5) -> Any:
    """gamma * (x - mean) / sqrt(var + eps) + beta, statistics over ``axes`` (gamma, beta broadcast)."""
    axes = (axes,) if isinstance(axes, int) else tuple(axes)
    _feature_params(x, gamma, beta)
    return NormalizeOp(tuple(a % x.ndim for a in axes), eps)(x, gamma, beta)


def layer_norm(x: Any, gamma: Any, beta: Any, axes: Any = -1, eps: float = 1e-3) -> Any:
    """Layer normalisation: statistics over the feature ``axes`` of each sample."""
    return normalize(x, gamma, beta, axes, eps)


def batch_norm_train(x: Any, gamma: Any, beta: Any, reduce_axes: Any, eps: float = 1e-3) -> tuple[Any, Any, Any]:
    """Batch normalisation with batch statistics over ``reduce_axes``: (y, batch mean, batch var) (stats as arrays)."""
    axes = tuple(reduce_axes)
    _feature_params(x, gamma, beta)
    op = NormalizeOp(axes, eps)
    y = op(x, gamma, beta)
    return y, op.mean, op.var


def batch_norm_infer(x: Any, gamma: Any, beta: Any, moving_mean: Any, moving_var: Any, eps: float = 1e-3) -> Any:
    """y = (x - moving_mean) * gamma / sqrt(moving_var + eps) + beta (the statistics are constants)."""
    mm, mv = raw(moving_mean), raw(moving_var)
    inv_std = 1.0 / get_array_module(mv).sqrt(mv + eps)
    scale = inv_std if gamma is None else gamma * inv_std
    shift = -mm * scale if beta is None else beta - mm * scale
    return x * scale + shift


def variance_scaling(x: Any, gamma: Any, axes: Any = -1, eps: float = 1e-3) -> Any:
    """y = gamma * x / sqrt(var(x, axes) + eps): Keras's ``LayerNormalization(rms_scaling=True)`` (x is not
    centred, but it is divided by its standard deviation, not by its root mean square)."""
    axes = (axes,) if isinstance(axes, int) else tuple(axes)
    y = x / sqrt(var(x, axes, keepdims=True) + eps)
    return y if gamma is None else y * gamma
