"""PyTorch-style functions, used as ``import shendu.functional as F``.

Names, argument names and defaults follow ``torch.nn.functional`` (``input`` before ``target``, ``dim``,
``reduction='mean'``, class axis 1 for N-D inputs), with one shendu convention: ``linear``'s kernel is
``(in, out)`` as everywhere in shendu (a PyTorch weight ``(out, in)`` needs a ``.T``). The heavy paths
are single fused ops from :mod:`shendu.ops.nn`.

>>> import numpy as np, shendu, shendu.functional as F
>>> logits = shendu.tensor([[2.0, 0.0, -1.0]], requires_grad=True)
>>> loss = F.cross_entropy(logits, np.array([0]))
>>> round(loss.item(), 4)
0.1698
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shendu import ops
from shendu.autograd.op import raw
from shendu.autograd.tensor import Tensor
from shendu.backend import get_array_module
from shendu.ops import nn
from shendu.ops.attention import scaled_dot_product_attention
from shendu.ops.convolution import conv1d, conv2d, conv2d_transpose, depthwise_conv2d
from shendu.ops.elementwise import elu, relu, selu, sigmoid, silu, tanh
from shendu.ops.lookup import embedding_lookup as embedding
from shendu.ops.pool import avg_pool1d, avg_pool2d, max_pool1d, max_pool2d
from shendu.ops.rnn import gru, lstm, simple_rnn

__all__ = ["avg_pool1d", "avg_pool2d", "conv1d", "conv2d", "conv2d_transpose", "depthwise_conv2d", "embedding",
           "gru", "lstm", "max_pool1d", "max_pool2d", "scaled_dot_product_attention", "simple_rnn",
           "binary_cross_entropy", "binary_cross_entropy_with_logits", "cross_entropy", "dropout", "elu", "gelu",
           "hardtanh", "huber_loss", "l1_loss", "leaky_relu", "linear", "log_softmax", "logsigmoid", "mse_loss",
           "nll_loss", "one_hot", "relu", "relu6", "selu", "sigmoid", "silu", "smooth_l1_loss", "softmax",
           "softplus", "softsign", "tanh"]


# ------------------------------------------------------------------ layers and activations
def linear(x: Any, weight: Any, bias: Any = None) -> Tensor:
    """x @ weight + bias in one fused op; ``weight`` is ``(in, out)``.

    Dtypes follow every shendu op (see :mod:`shendu.ops.linalg`): integer data takes the weight's float dtype;
    float64 data with float32 weights computes in float64 (PyTorch would raise), with each gradient returned in
    its own input's dtype. Give the data the model's dtype to stay in float32."""
    return nn.linear(x, weight, bias)


def dropout(x: Any, p: float = 0.5, training: bool = True) -> Any:
    """Inverted dropout: zero elements with probability ``p``, scale the rest by 1/(1-p); identity if not training."""
    return nn.dropout(x, p, training)


def softmax(x: Any, dim: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) along ``dim``."""
    return ops.softmax(x, dim)


def log_softmax(x: Any, dim: int = -1) -> Tensor:
    """log(softmax(x)) along ``dim``, computed stably."""
    return ops.log_softmax(x, dim)


def gelu(x: Any, approximate: str = "none") -> Tensor:
    """x * Phi(x); ``approximate='tanh'`` uses the tanh approximation."""
    return ops.gelu(x, approximate == "tanh")


def leaky_relu(x: Any, negative_slope: float = 0.01) -> Tensor:
    """x if x > 0 else negative_slope * x (PyTorch's default slope, 0.01)."""
    return ops.leaky_relu(x, negative_slope)


def softplus(x: Any, beta: float = 1.0) -> Tensor:
    """log(1 + exp(beta x)) / beta, computed stably."""
    return ops.softplus(x) if beta == 1 else ops.softplus(x * beta) / beta


def logsigmoid(x: Any) -> Tensor:
    """log(sigmoid(x)) = -softplus(-x), stable."""
    return -ops.softplus(-x)


def softsign(x: Any) -> Tensor:
    """x / (1 + |x|)."""
    return x / (ops.abs(x) + 1)


def hardtanh(x: Any, min_val: float = -1.0, max_val: float = 1.0) -> Tensor:
    """x clamped to [min_val, max_val]."""
    return ops.clip(x, min_val, max_val)


def relu6(x: Any) -> Tensor:
    """min(max(x, 0), 6)."""
    return ops.clip(x, 0.0, 6.0)


# ------------------------------------------------------------------ losses
def _reduce(losses: Any, reduction: str, divisor: Any = None) -> Any:
    if reduction == "none":
        return losses
    if reduction == "sum":
        return ops.sum(losses)
    if reduction == "mean":
        return ops.mean(losses) if divisor is None else ops.sum(losses) / divisor
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _classes_last(x: Any) -> Any:
    """(N, C, d1, ...) -> (N, d1, ..., C): PyTorch's class axis 1 moved to shendu's last axis."""
    ndim = raw(x).ndim
    return x if ndim <= 2 else ops.transpose(x, (0, *range(2, ndim), 1))


def _as_labels(target: Any) -> Any:
    t = raw(target)
    return t if hasattr(t, "dtype") else np.asarray(t)


def _weighted_cross_entropy(log_probs: Any, labels: Any, weight: Any, ignore_index: int, reduction: str,
                            label_smoothing: float = 0.0) -> Any:
    """-sum_c w_c t_c log p_c per row (t one-hot or probabilities, smoothed); the mean divides by sum w[label]."""
    k = raw(log_probs).shape[-1]
    flat = ops.reshape(log_probs, (-1, k))
    xp = get_array_module(raw(flat))
    w = xp.ones(k, dtype=raw(flat).dtype) if weight is None else raw(weight)
    sparse = raw(labels).dtype.kind in "iu"
    divisor = None
    if sparse:
        y = raw(labels).reshape(-1)
        keep = y != ignore_index
        y = xp.where(keep, y, 0)
        t = xp.zeros(raw(flat).shape, dtype=raw(flat).dtype)
        t[xp.arange(len(y)), y] = 1
        row_weight = w[y] * keep
        divisor = row_weight.sum()
        t = ((1 - label_smoothing) * t + label_smoothing / k) * keep[:, None]
    else:
        t = ops.reshape(labels, (-1, k))
        t = (1 - label_smoothing) * t + label_smoothing / k if label_smoothing else t
    losses = -ops.sum(flat * (t * w), axis=1)
    out_shape = raw(log_probs).shape[:-1]
    return _reduce(ops.reshape(losses, out_shape), reduction, divisor if reduction == "mean" else None)


def cross_entropy(input: Any, target: Any, weight: Any = None, ignore_index: int = -100,  # noqa: A002
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Softmax cross-entropy of logits ``input`` (N, C[, d...]) against class indices or class probabilities."""
    logits = _classes_last(input)
    labels = _as_labels(target)
    sparse = labels.dtype.kind in "iu"
    if not sparse:
        labels = _classes_last(target)
    if weight is None:
        return nn.softmax_cross_entropy(logits, labels, label_smoothing, reduction, ignore_index if sparse else None)
    return _weighted_cross_entropy(ops.log_softmax(logits), labels, weight, ignore_index, reduction, label_smoothing)


def nll_loss(input: Any, target: Any, weight: Any = None, ignore_index: int = -100,  # noqa: A002
             reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of log-probabilities ``input`` (N, C[, d...]) at the integer labels ``target``."""
    return _weighted_cross_entropy(_classes_last(input), _as_labels(target), weight, ignore_index, reduction)


def mse_loss(input: Any, target: Any, reduction: str = "mean") -> Tensor:  # noqa: A002
    """(input - target)^2, averaged (one fused op), summed or per element."""
    if reduction == "mean":
        return nn.mean_squared_error(input, target)
    return _reduce((input - target) ** 2, reduction)


def l1_loss(input: Any, target: Any, reduction: str = "mean") -> Tensor:  # noqa: A002
    """|input - target|, reduced."""
    return _reduce(ops.abs(input - target), reduction)


def huber_loss(input: Any, target: Any, reduction: str = "mean", delta: float = 1.0) -> Tensor:  # noqa: A002
    """0.5 d^2 if |d| <= delta else delta (|d| - 0.5 delta), with d = input - target."""
    abs_diff = ops.abs(input - target)
    small = ops.minimum(abs_diff, delta)
    return _reduce(small * (abs_diff - 0.5 * small), reduction)


def smooth_l1_loss(input: Any, target: Any, reduction: str = "mean", beta: float = 1.0) -> Tensor:  # noqa: A002
    """Huber loss divided by ``beta``: 0.5 d^2 / beta if |d| < beta else |d| - 0.5 beta."""
    if beta == 0:
        return l1_loss(input, target, reduction)
    return huber_loss(input, target, reduction, beta) / beta


def binary_cross_entropy(input: Any, target: Any, weight: Any = None, reduction: str = "mean") -> Tensor:  # noqa: A002
    """-(t log p + (1 - t) log(1 - p)) for probabilities ``input``; each log is clamped at -100, as PyTorch."""
    with np.errstate(divide="ignore"):  # log(0) = -inf, then clamped
        losses = -(target * ops.clip(ops.log(input), -100.0) + (1 - target) * ops.clip(ops.log(1 - input), -100.0))
    return _reduce(losses if weight is None else losses * weight, reduction)


def binary_cross_entropy_with_logits(input: Any, target: Any, weight: Any = None,  # noqa: A002
                                     reduction: str = "mean", pos_weight: Any = None) -> Tensor:
    """Binary cross-entropy of sigmoid(input), stable from the logits; ``pos_weight`` scales the positive term."""
    if weight is None and pos_weight is None:
        target = target if raw(target).shape == raw(input).shape else ops.broadcast_to(target, raw(input).shape)
        return nn.sigmoid_binary_cross_entropy(input, target, reduction)
    log_weight = 1 if pos_weight is None else 1 + (pos_weight - 1) * target
    losses = (1 - target) * input + log_weight * ops.softplus(-input)
    return _reduce(losses if weight is None else losses * weight, reduction)


def one_hot(x: Any, num_classes: int = -1) -> Tensor:
    """Integer labels -> int64 one-hot tensor with a new last axis of ``num_classes`` (max label + 1 if -1)."""
    labels = _as_labels(x)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"one_hot: expects integer class labels, got dtype {labels.dtype}")
    xp = get_array_module(labels)
    k = int(labels.max()) + 1 if num_classes == -1 else num_classes
    if labels.size and (labels.min() < 0 or labels.max() >= k):
        raise ValueError(f"one_hot: labels must be in [0, {k}), got values from {int(labels.min())} to "
                         f"{int(labels.max())}")
    return Tensor._wrap((labels[..., None] == xp.arange(k)).astype(xp.int64))

