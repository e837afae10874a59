"""Fused hot paths of neural networks: one op where a chain of small ops would cost allocations.

* ``LinearOp``: y = x @ W + b (the kernel is ``(in, out)``, as Dense's); dx is skipped when x needs no
  gradient (a first layer's input). ``LinearReluOp``: the same with the ReLU of ``Dense(activation='relu')``
  fused in (bias and ReLU in one pass over y, see :mod:`shendu.ops.bias`).
* ``SoftmaxCrossEntropyOp``: softmax and cross-entropy together; the backward is one expression,
  (softmax(z) - t) / n, with softmax reused from the forward.
* ``SigmoidBinaryCrossEntropyOp``: binary cross-entropy from logits, stable for any |z|.
* ``MeanSquaredErrorOp``: mean((p - t)^2) in one op (the loss of the seed program: a few microseconds).
* ``DropoutOp``: inverted dropout, the mask hashed from one key drawn from ``shendu.rng.get_rng()`` (fused
  with its apply in one parallel pass for large arrays).

Backward rules run on raw arrays in an ordinary backward. With ``create_graph=True`` the engine passes
Tensors; the rules are then the same formulas written with differentiable shendu ops (the cross-entropy
recomputes softmax instead of reusing the saved one), so every op here has a second derivative.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Sequence

import numpy as np

from shendu import backend, kernels
from shendu.autograd.op import Op, raw
from shendu.autograd.tensor import Tensor
from shendu.backend import get_array_module
from shendu.kernels import dropout as hashed
from shendu.kernels import elementwise as fused
from shendu.ops.bias import ReluEnd, add_bias, check_activation
from shendu.ops.elementwise import match_dtypes, sigmoid
from shendu.ops.reduce import log_softmax, softmax
from shendu.ops.shaping import expand_dims, reshape
from shendu.rng import get_rng

_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(op: str, reduction: str) -> str:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    return reduction


def _check_labels(op: str, labels: Any, k: int) -> None:
    """Integer class labels must lie in [0, k): NumPy would read -1 as the last class (a silently wrong loss)."""
    if labels.size and (labels.min() < 0 or labels.max() >= k):
        raise ValueError(f"{op}: labels must be in [0, {k}) for {k} classes, got values from {int(labels.min())} "
                         f"to {int(labels.max())}")


class LinearOp(Op):
    """y = x @ W + b (x (..., in), W (in, out), b (out,) or None; dtypes as matmul's, see shendu.ops.linalg);
    dx = gy @ W^T,  dW = x^T @ gy (summed over all leading axes),  db = sum(gy) over the leading axes"""

    relu = False  # LinearReluOp

    def forward(self, x, w, b=None):
        if x.shape[-1:] != w.shape[:1] or w.ndim != 2:
            raise ValueError(f"linear: input of shape {x.shape} does not fit a kernel of shape {w.shape}; the kernel "
                             f"is (in, out) = ({x.shape[-1] if x.ndim else '?'}, units) (a PyTorch-style weight of "
                             "shape (out, in) needs a .T)")
        x, w = match_dtypes(x, w)  # the dtype rule of every product (see shendu.ops.linalg)
        y = x @ w
        if b is not None and b.dtype != y.dtype:
            y, b = match_dtypes(y, b)
            y, b = y + b, None
        return add_bias(y, b, self.relu)

    def backward(self, gy, x, w, b, y):
        n_in, n_out = w.shape
        dx = gy @ w.T if self.needs_grad[0] else None
        flat_gy = gy if gy.ndim == 2 else gy.reshape(-1, n_out)
        dw = None
        if self.needs_grad[1]:
            flat_x = x if x.ndim == 2 else x.reshape(-1, n_in)
            dw = flat_x.T @ flat_gy
        db = flat_gy.sum(axis=0) if self.needs_grad[2] else None
        return dx, dw, db


class LinearReluOp(ReluEnd, LinearOp):
    """y = max(x @ W + b, 0) (Dense with activation='relu'; bias and ReLU in one pass, see shendu.ops.bias);
    dz = gy * (y > 0), then LinearOp's rules with dz: dx = dz @ W^T, dW = x^T @ dz, db = sum(dz)"""


class SoftmaxCrossEntropyOp(Op):
    """Cross-entropy of softmax(z) (classes on the last axis) against integer labels or probabilities t;
    with label smoothing s, t <- (1 - s) t + s / K.   l_i = logsumexp(z_i) sum_k t_ik - sum_k t_ik z_ik,
    y = mean(l) | sum(l) | l;   dz = (softmax(z) sum_k t_k - t) * gy / n,  dt = -(1 - s) log_softmax(z) * gy / n

    Rows whose label equals ``ignore_index`` contribute nothing, and the mean is over the others (as PyTorch).
    """

    def __init__(self, label_smoothing: float = 0.0, reduction: str = "mean", ignore_index: int | None = None):
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"softmax_cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
        self.smoothing = float(label_smoothing)
        self.reduction = _check_reduction("softmax_cross_entropy", reduction)
        self.ignore_index = ignore_index

    def forward(self, z, target):
        xp = get_array_module(z)
        k = z.shape[-1]
        self.sparse = target.dtype.kind in "iu"
        expected = z.shape[:-1] if self.sparse else z.shape
        if target.shape != expected:
            kind = "integer labels" if self.sparse else "probability targets"
            raise ValueError(f"softmax_cross_entropy: logits of shape {z.shape} need {kind} of shape {expected}, "
                             f"got {target.shape}" + (" (for integer labels pass an integer dtype)"
                                                      if not self.sparse and target.shape == z.shape[:-1] else ""))
        z2 = z.reshape(-1, k)
        n = z2.shape[0]
        shifted = z2 - z2.max(axis=1, keepdims=True)
        s = self.smoothing
        if self.sparse:
            labels = target.reshape(-1)
            self.keep = None
            if self.ignore_index is not None and (labels == self.ignore_index).any():
                self.keep = labels != self.ignore_index
                labels = xp.where(self.keep, labels, 0)
            _check_labels("softmax_cross_entropy", labels, k)
            self.labels = labels
            dot = shifted[xp.arange(n), labels]  # sum_k t_ik shifted_ik for one-hot t
            if s:
                dot = (1 - s) * dot + (s / k) * shifted.sum(axis=1)
            t_total = 1.0
        else:
            t = target.astype(z.dtype, copy=False).reshape(-1, k)
            if s:
                t = (1 - s) * t + s / k
            dot = (t * shifted).sum(axis=1)
            t_total = t.sum(axis=1)
        e = xp.exp(shifted, out=shifted)
        total = e.sum(axis=1, keepdims=True)
        losses = xp.log(total[:, 0]) * t_total - dot
        self.p = xp.divide(e, total, out=e)  # softmax, kept for backward
        self.n = n
        if self.sparse and self.keep is not None:
            losses *= self.keep
            self.n = max(int(self.keep.sum()), 1)
        if self.reduction == "none":
            return losses.reshape(z.shape[:-1])
        total_loss = losses.sum()
        return total_loss / self.n if self.reduction == "mean" else total_loss

    def backward(self, gy, z, target, y):
        k = raw(z).shape[-1]
        scale = reshape(gy, (-1, 1)) if self.reduction == "none" else (gy / self.n if self.reduction == "mean" else gy)
        dz = dt = None
        if self.needs_grad[0]:
            if isinstance(gy, Tensor) or isinstance(z, Tensor):  # create_graph: the rule with differentiable ops
                t = self._dense_target(target, z)
                p = softmax(reshape(z, (-1, k)))
                dz = reshape((p * t.sum(axis=1, keepdims=True) - t) * scale, raw(z).shape)
            else:
                dz = self._fast_dz(scale, target, z)
        if self.needs_grad[1]:
            dt = reshape(-log_softmax(reshape(z, (-1, k))) * scale * (1 - self.smoothing), raw(target).shape)
        return dz, dt

    def _fast_dz(self, scale, target, z):
        """(p * sum_k t_k - t) * scale on arrays; for labels one allocation and a scatter."""
        s, k = self.smoothing, z.shape[-1]
        if not self.sparse:
            t = self._dense_target(target, z)
            dz = self.p * t.sum(axis=1, keepdims=True)
            dz -= t
            dz *= scale
            return dz.reshape(z.shape)
        xp = get_array_module(z)
        if self.keep is not None:
            scale = scale * self.keep[:, None]
        dz = self.p * scale
        dz[xp.arange(len(self.labels)), self.labels] -= (1 - s) * (scale.reshape(-1) if scale.ndim else scale)
        if s:
            dz -= (s / k) * scale
        return dz.reshape(z.shape)

    def _dense_target(self, target, z):
        """The (smoothed) target as an (n, K) array, or tensor for a target that is one."""
        k = raw(z).shape[-1]
        s = self.smoothing
        if self.sparse:
            xp = get_array_module(raw(z))
            t = xp.zeros((len(self.labels), k), dtype=raw(z).dtype)
            t[xp.arange(len(self.labels)), self.labels] = 1
            if s:
                t = (1 - s) * t + s / k
            if self.keep is not None:
                t *= self.keep[:, None]
            return t
        t = reshape(target, (-1, k))
        return (1 - s) * t + s / k if s else t


class NegativeLogLikelihoodOp(Op):
    """y_i = -log_p[i, t_i] for integer labels t (classes on the last axis, one loss per label: PyTorch's
    ``nll_loss(reduction="none")``);   dlog_p[i, k] = -gy_i where k = t_i, else 0.

    The labels are an input, not a setting, so a step plan replays the op on each batch's own labels; they are
    checked on every call: integers in [0, K), shaped like ``log_p`` without its last axis. ``name`` is the
    function its errors name."""

    def __init__(self, name: str = "negative_log_likelihood") -> None:
        self.name = name

    def forward(self, log_p, labels):
        k = log_p.shape[-1]
        if labels.dtype.kind not in "iu" or labels.shape != log_p.shape[:-1]:
            raise ValueError(f"{self.name}: log-probabilities of shape {log_p.shape} need integer labels of shape "
                             f"{log_p.shape[:-1]}, got {labels.dtype} labels of shape {labels.shape}")
        flat = labels.reshape(-1)
        _check_labels(self.name, flat, k)
        xp = get_array_module(log_p)
        return -log_p.reshape(-1, k)[xp.arange(flat.size), flat].reshape(labels.shape)

    def backward(self, gy, log_p, labels, y):
        xp = get_array_module(log_p)
        k, flat = log_p.shape[-1], labels.reshape(-1)
        rows = xp.arange(flat.size)
        if isinstance(gy, Tensor):  # create_graph: linear in gy, through ops
            one_hot = xp.zeros((flat.size, k), dtype=log_p.dtype)
            one_hot[rows, flat] = 1
            return expand_dims(-gy, -1) * one_hot.reshape(log_p.shape), None
        g = xp.zeros((flat.size, k), dtype=log_p.dtype)
        g[rows, flat] = -gy.reshape(-1)
        return g.reshape(log_p.shape), None


class SigmoidBinaryCrossEntropyOp(Op):
    """l = max(z, 0) - z t + log(1 + exp(-|z|))  (= -t log sigmoid(z) - (1 - t) log(1 - sigmoid(z)), stable);
    y = mean(l) | sum(l) | l;   dz = (sigmoid(z) - t) * gy / N,  dt = -z * gy / N"""

    def __init__(self, reduction: str = "mean") -> None:
        self.reduction = _check_reduction("sigmoid_binary_cross_entropy", reduction)

    def forward(self, z, t):
        if z.shape != t.shape:
            raise ValueError(f"binary_cross_entropy_with_logits: logits of shape {z.shape} and targets of shape "
                             f"{t.shape} differ; reshape the targets to {z.shape}")
        xp = get_array_module(z)
        losses = xp.abs(z)  # then log(1 + exp(-|z|)) in place
        xp.negative(losses, out=losses)
        xp.exp(losses, out=losses)
        xp.log1p(losses, out=losses)
        losses += xp.maximum(z, 0)
        losses -= z * t
        if self.reduction == "none":
            return losses
        total = losses.sum()
        return total / losses.size if self.reduction == "mean" else total

    def backward(self, gy, z, t, y):
        scale = gy / raw(z).size if self.reduction == "mean" else gy
        dz = (sigmoid(z) - t) * scale if self.needs_grad[0] else None
        dt = -z * scale if self.needs_grad[1] else None
        return dz, dt


class MeanSquaredErrorOp(Op):
    """y = mean((p - t)^2, axis) (axis None: one scalar; -1: one loss per sample, as Keras);
    dp = 2 (p - t) gy / n,  dt = -dp"""

    def __init__(self, axis: int | None = None) -> None:
        self.axis = axis

    def forward(self, p, t):
        self.diff = d = p - t  # reused by backward
        if self.axis is not None:
            return (d * d).mean(axis=self.axis)
        return get_array_module(d).vdot(d, d) / d.size  # vdot: one BLAS call over the flattened array

    def backward(self, gy, p, t, y):
        graph = isinstance(gy, Tensor)  # create_graph: recompute p - t differentiably
        d = p - t if graph else self.diff
        if self.axis is not None:
            dp = d * expand_dims(gy * (2.0 / raw(d).shape[self.axis]), self.axis)
        else:  # a scalar loss: a Python float scale is the cheapest multiply (and keeps float32)
            dp = d * (gy * (2.0 / raw(d).size) if graph else float(gy) * (2.0 / d.size))
        return dp, (-dp if self.needs_grad[1] else None)


class DropoutOp(Op):
    """y = x * m / (1 - rate), m ~ Bernoulli(1 - rate) shaped ``noise_shape`` and broadcast;   dx = gy * m / (1 - rate)

    m is a hash of one 64-bit key drawn per call from ``rng`` (default: ``shendu.rng.get_rng()``) and of each
    element's index (:func:`dropout_mask`), so it depends on the seed only (not on threads or on the path taken).
    For a large array of the mask's own shape a fused parallel kernel (``shendu.kernels.dropout``) hashes and
    applies the mask in one pass, and backward hashes again instead of keeping it; otherwise the mask is made
    (by the kernel, or by the NumPy reference :func:`dropout_mask`: bit-identical) and kept for backward."""

    def __init__(self, rate: float, noise_shape: Sequence[int] | None = None,
                 rng: np.random.Generator | None = None) -> None:
        self.rate = rate
        self.noise_shape = noise_shape
        self.rng = rng

    def forward(self, x):
        rng = get_rng() if self.rng is None else self.rng
        self.key = np.uint64(rng.bit_generator.random_raw())
        self.shape = x.shape if self.noise_shape is None else tuple(x.shape[i] if n is None else n
                                                                    for i, n in enumerate(self.noise_shape))
        self.dtype = x.dtype if x.dtype.kind == "f" else np.dtype(backend.default_float_dtype())
        self.threshold, self.scale = _mask_constants(self.rate, self.dtype)
        self.mask = None  # made only where the fused kernel cannot apply the mask itself
        return self._masked(x)

    def backward(self, gy, x, y):
        return self._masked(gy)

    def _masked(self, a):
        """a * m / (1 - rate): fused for a large C-contiguous float array of the mask's shape and dtype, else by
        multiplying with the mask (made once, kept for backward: for small arrays cheaper than hashing twice)."""
        if self.mask is None and a.size >= fused.MIN_SIZE and self.shape == a.shape and a.dtype == self.dtype \
                and kernels.fast(a) and a.flags.c_contiguous:
            return hashed.apply(a, self.key, self.threshold, self.scale)
        if self.mask is None:
            if kernels.enabled():
                mask = hashed.mask(self.key, self.shape, self.threshold, self.scale)
            else:
                mask = dropout_mask(self.key, self.shape, self.rate, self.dtype)
            self.mask = get_array_module(raw(a)).asarray(mask)  # the mask is computed on the CPU
        return a * self.mask


def _keep_scale(rate: float) -> float:
    return 0.0 if rate >= 1 else 1.0 / (1.0 - rate)


@functools.lru_cache(maxsize=64)
def _mask_constants(rate: float, dtype: np.dtype) -> tuple[np.uint64, Any]:
    """The kernel's keep threshold and scale (a scalar of ``dtype``) for ``rate``."""
    return hashed.keep_threshold(rate), dtype.type(_keep_scale(rate))


def dropout_mask(key: np.uint64, shape: tuple, rate: float, dtype: Any) -> np.ndarray:
    """The mask of inverted dropout for ``key``: 1 / (1 - rate) where splitmix64(key, i) >> 11, a uniform 53-bit
    integer, is at least rate * 2**53 (probability 1 - rate), else 0; element i in C order over ``shape``."""
    keep = (hashed.splitmix64(key, math.prod(shape)) >> np.uint64(11)) >= hashed.keep_threshold(rate)
    mask = keep.reshape(shape).astype(dtype)
    mask *= _keep_scale(rate)
    return mask


def linear(x: Any, kernel: Any, bias: Any = None, activation: str | None = None) -> Any:
    """x @ kernel + bias in one op; the kernel is (in, out). ``activation='relu'`` fuses max(., 0) into the op
    (:class:`LinearReluOp`)."""
    return (LinearReluOp() if check_activation("linear", activation) else LinearOp())(x, kernel, bias)


def softmax_cross_entropy(logits: Any, target: Any, label_smoothing: float = 0.0, reduction: str = "mean",
                          ignore_index: int | None = None) -> Any:
    """Cross-entropy of softmax(logits) (classes last) against integer labels or probabilities."""
    return SoftmaxCrossEntropyOp(label_smoothing, reduction, ignore_index)(logits, target)


def negative_log_likelihood(log_p: Any, labels: Any, name: str = "negative_log_likelihood") -> Any:
    """-log_p[..., label] for each integer label (classes last), one loss per label, in one op."""
    return NegativeLogLikelihoodOp(name)(log_p, labels)


def sigmoid_binary_cross_entropy(logits: Any, target: Any, reduction: str = "mean") -> Any:
    """Binary cross-entropy of sigmoid(logits) against targets in [0, 1], computed stably from the logits."""
    return SigmoidBinaryCrossEntropyOp(reduction)(logits, target)


def mean_squared_error(prediction: Any, target: Any, axis: int | None = None) -> Any:
    """mean((prediction - target)^2) over ``axis`` (all axes when None) in one op."""
    return MeanSquaredErrorOp(axis)(prediction, target)


def dropout(x: Any, rate: float, training: bool = True, noise_shape: Sequence[int] | None = None,
            rng: np.random.Generator | None = None) -> Any:
    """Inverted dropout: zero each element with probability ``rate`` and scale the rest by 1/(1 - rate);
    the identity when not training (or rate == 0). The mask's key comes from ``rng`` (default: shendu's)."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"dropout: rate must be in [0, 1], got {rate}")
    if not training or rate == 0:
        return x
    return DropoutOp(rate, noise_shape, rng)(x)
