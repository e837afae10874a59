"""Losses with Keras 3 semantics: ``(y_true, y_pred)``, one loss per sample, and thin classes that reduce.

Three forms, as in Keras:

* functions (``mean_squared_error(y_true, y_pred)``) return one loss per sample (the mean over the last
  axis for elementwise losses);
* classes (``MeanSquaredError()``) are called as ``loss(y_true, y_pred, sample_weight=None)`` and reduce
  to a scalar Tensor: ``"sum_over_batch_size"`` (default: sum of weighted losses / their count), ``"sum"``,
  ``"mean_with_sample_weight"`` (divide by the sum of the weights) or ``"none"``;
* strings (``"mse"``, ``"categorical_crossentropy"``), resolved by :func:`get`.

``y_true`` may be a NumPy array; it takes ``y_pred``'s dtype. Probability inputs are clipped to
``[1e-7, 1 - 1e-7]`` as Keras does; ``from_logits=True`` paths use fused, stable ops instead. When nothing
needs weighting, the classes compute the scalar with one fused op (the seed's MSE costs a few µs).

>>> import numpy as np, shendu
>>> y_pred = shendu.tensor([[0.5], [1.0]], requires_grad=True)
>>> shendu.losses.MeanSquaredError()(np.array([0.0, 1.0]), y_pred)   # y_true (2,) meets y_pred (2, 1)
tensor(0.125, grad_fn=<MeanSquaredErrorOp>)
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from shendu import ops
from shendu.autograd.op import raw
from shendu.autograd.tensor import Tensor
from shendu.backend import as_array, get_array_module, is_array, to_numpy
from shendu.layers.masking import _MASKS, get_mask
from shendu.naming import snake_case
from shendu.ops import nn

EPSILON = 1e-7  # Keras's backend.epsilon()
_REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None)


# ------------------------------------------------------------------ helpers
def _to_tensor(y_pred: Any) -> Tensor:
    return y_pred if isinstance(y_pred, Tensor) else Tensor(y_pred)


def _like(y_true: Any, y_pred: Tensor, keep_integers: bool = False) -> Any:
    """y_true as an array (or Tensor) in y_pred's dtype (integer labels stay integers when asked)."""
    if isinstance(y_true, Tensor):
        if y_true.dtype == y_pred.dtype or (keep_integers and y_true.dtype.kind in "iu"):
            return y_true
        return ops.astype(y_true, y_pred.dtype)
    arr = y_true if is_array(y_true) else as_array(y_true)
    xp = get_array_module(y_pred.data)
    if xp is not np:  # pragma: no cover - GPU only
        arr = xp.asarray(arr)
    if keep_integers and arr.dtype.kind in "iub":
        return arr
    return arr.astype(y_pred.dtype, copy=False)


def _reshape(x: Any, shape: tuple[int, ...]) -> Any:
    return ops.reshape(x, shape) if isinstance(x, Tensor) else x.reshape(shape)


def squeeze_or_expand_to_same_rank(x1: Any, x2: Any, expand_rank_1: bool = True) -> tuple[Any, Any]:
    """Make ranks equal when they differ by one trailing axis of size 1 (Keras's rule: (n,) meets (n, 1))."""
    s1, s2 = raw(x1).shape, raw(x2).shape
    if len(s1) == len(s2) + 1 and s1[-1] == 1:
        if len(s2) == 1 and expand_rank_1:
            x2 = _reshape(x2, s2 + (1,))
        else:
            x1 = _reshape(x1, s1[:-1])
    elif len(s2) == len(s1) + 1 and s2[-1] == 1:
        if len(s1) == 1 and expand_rank_1:
            x1 = _reshape(x1, s1 + (1,))
        else:
            x2 = _reshape(x2, s2[:-1])
    return x1, x2


def _prepare(name: str, y_true: Any, y_pred: Any) -> tuple[Any, Tensor]:
    """Convert, align ranks and check that the shapes broadcast (naming the loss and both shapes)."""
    y_pred = _to_tensor(y_pred)
    data = y_pred.data
    if type(y_true) is type(data) and y_true.shape == data.shape and y_true.dtype is data.dtype:
        return y_true, y_pred  # the common case in fit: nothing to convert or align
    y_true, y_pred = squeeze_or_expand_to_same_rank(_like(y_true, y_pred), y_pred)
    st, sp = raw(y_true).shape, y_pred.shape
    if st != sp:
        try:
            np.broadcast_shapes(st, sp)
        except ValueError:
            raise ValueError(f"{name}: y_true of shape {st} and y_pred of shape {sp} do not match (and do not "
                             f"broadcast); they should have the same shape{_flatten_hint(st, sp)}") from None
    return y_true, y_pred


def _flatten_hint(true_shape: tuple, pred_shape: tuple) -> str:
    """A hint for the classic mistake: Dense on convolutional (3-D/4-D) output acts on the last axis only."""
    if len(pred_shape) > 2 and len(pred_shape) > len(true_shape):
        return (f". Hint: the model's output is {len(pred_shape)}-D; a Dense layer applied to 3-D/4-D "
                "(convolutional or sequence) output works on the last axis only: add Flatten() (or "
                "GlobalAveragePooling2D()) before the Dense layers")
    return ""


def _check_same_shape(name: str, y_true: Any, y_pred: Tensor) -> None:
    st, sp = raw(y_true).shape, y_pred.shape
    if st == sp:
        return
    hint = ""
    labels_like = len(sp) >= 2 and sp[-1] > 1 and (st == sp[:-1] or st == sp[:-1] + (1,))
    if labels_like:
        hint = (f"; y_true looks like integer class labels: use sparse_categorical_crossentropy, or one-hot encode "
                f"them with shendu.utils.to_categorical(y, {sp[-1]})")
    raise ValueError(f"{name}: y_true and y_pred must have the same shape, got y_true {st} and y_pred {sp}"
                     f"{hint or _flatten_hint(st, sp)}")


def _class_axis_last(y_true: Any, y_pred: Tensor, axis: int) -> tuple[Any, Tensor]:
    nd = y_pred.ndim
    if axis % nd == nd - 1:
        return y_true, y_pred
    perm = tuple(i for i in range(nd) if i != axis % nd) + (axis % nd,)
    y_true = ops.transpose(y_true, perm) if isinstance(y_true, Tensor) else y_true.transpose(perm)
    return y_true, ops.transpose(y_pred, perm)


# ------------------------------------------------------------------ per-sample functions
def mean_squared_error(y_true: Any, y_pred: Any) -> Tensor:
    """mean((y_true - y_pred)^2, axis=-1)."""
    y_true, y_pred = _prepare("mean_squared_error", y_true, y_pred)
    return nn.mean_squared_error(y_pred, y_true, axis=-1)


def mean_absolute_error(y_true: Any, y_pred: Any) -> Tensor:
    """mean(|y_true - y_pred|, axis=-1)."""
    y_true, y_pred = _prepare("mean_absolute_error", y_true, y_pred)
    return ops.mean(ops.abs(y_true - y_pred), axis=-1)


def mean_absolute_percentage_error(y_true: Any, y_pred: Any) -> Tensor:
    """100 * mean(|(y_true - y_pred) / max(|y_true|, eps)|, axis=-1)."""
    y_true, y_pred = _prepare("mean_absolute_percentage_error", y_true, y_pred)
    diff = ops.abs((y_true - y_pred) / ops.maximum(ops.abs(y_true), EPSILON))
    return 100.0 * ops.mean(diff, axis=-1)


def mean_squared_logarithmic_error(y_true: Any, y_pred: Any) -> Tensor:
    """mean((log(max(y_pred, eps) + 1) - log(max(y_true, eps) + 1))^2, axis=-1)."""
    y_true, y_pred = _prepare("mean_squared_logarithmic_error", y_true, y_pred)
    first = ops.log1p(ops.maximum(y_pred, EPSILON))
    second = ops.log1p(ops.maximum(y_true, EPSILON))
    return nn.mean_squared_error(first, second, axis=-1)


def huber(y_true: Any, y_pred: Any, delta: float = 1.0) -> Tensor:
    """mean(0.5 e^2 if |e| <= delta else delta |e| - 0.5 delta^2, axis=-1), e = y_pred - y_true."""
    y_true, y_pred = _prepare("huber", y_true, y_pred)
    abs_error = ops.abs(y_pred - y_true)
    small = ops.minimum(abs_error, delta)
    return ops.mean(small * (abs_error - 0.5 * small), axis=-1)


def log_cosh(y_true: Any, y_pred: Any) -> Tensor:
    """mean(log(cosh(e)), axis=-1) = mean(e + softplus(-2e) - log 2, axis=-1), e = y_pred - y_true."""
    y_true, y_pred = _prepare("log_cosh", y_true, y_pred)
    error = y_pred - y_true
    return ops.mean(error + ops.softplus(-2.0 * error) - math.log(2.0), axis=-1)


def _smooth_binary(y_true: Any, label_smoothing: float) -> Any:
    return y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing if label_smoothing else y_true


#: how far outside [0, 1] binary targets may stray: labels with a little added noise, the trick of Keras's GAN
#: examples (``labels += 0.05 * uniform(...)``), are accepted, as Keras accepts them
LABEL_NOISE_MARGIN = 0.1


def _check_binary_targets(name: str, y_true: Any) -> None:
    """Targets of a binary cross-entropy must be probabilities in [0, 1] (hard 0/1 labels or soft labels), up to
    :data:`LABEL_NOISE_MARGIN` outside for noisy labels.

    Keras accepts anything here, and a label of 2 or -1 then trains on a meaningless (even negative) loss;
    shendu refuses it. The check is one min and one max over the batch's targets (O(batch), a few µs), done
    before label smoothing (which maps [0, 1] into [s/2, 1 - s/2]). NaN fails it too.
    """
    values = raw(y_true)
    if values.size == 0:
        return
    low, high = values.min(), values.max()
    if low >= -LABEL_NOISE_MARGIN and high <= 1 + LABEL_NOISE_MARGIN:
        return
    values = np.asarray(to_numpy(values), dtype=np.float64)
    if np.isnan(values).any():
        raise ValueError(f"{name}: y_true must hold probabilities in [0, 1], got NaN in {int(np.isnan(values).sum())} "
                         f"of {values.size} targets. Hint: check the labels for missing values")
    bad = (values < 0) | (values > 1)
    low, high = float(values.min()), float(values.max())
    if set(np.unique(values).tolist()) <= {-1.0, 1.0}:
        hint = "labels in {-1, 1} are hinge labels: map them to {0, 1} with (y + 1) / 2, or use the hinge loss"
    elif low >= 0 and (values == np.round(values)).all():
        hint = ("integer labels of several classes need sparse_categorical_crossentropy (and one output unit per "
                "class with softmax)")
    else:
        hint = "binary cross-entropy needs 0/1 labels or probabilities; rescale the targets into [0, 1]"
    raise ValueError(f"{name}: y_true must hold probabilities in [0, 1], got values from {low:g} to {high:g} "
                     f"({int(bad.sum())} of {values.size} targets outside [0, 1]). Hint: {hint}")


def binary_crossentropy(y_true: Any, y_pred: Any, from_logits: bool = False, label_smoothing: float = 0.0,
                        axis: int = -1) -> Tensor:
    """mean(-(t log p + (1 - t) log(1 - p)), axis), p clipped to [eps, 1 - eps] (or sigmoid of logits, stably);
    label smoothing: t <- t (1 - s) + s / 2. Targets outside [0, 1] (by more than ``LABEL_NOISE_MARGIN``) raise a
    ValueError."""
    y_true, y_pred = _prepare("binary_crossentropy", y_true, y_pred)
    _check_binary_targets("binary_crossentropy", y_true)
    y_true = _smooth_binary(y_true, label_smoothing)
    if from_logits:
        y_true = y_true if raw(y_true).shape == y_pred.shape else ops.broadcast_to(y_true, y_pred.shape)
        return ops.mean(nn.sigmoid_binary_cross_entropy(y_pred, y_true, "none"), axis=axis)
    p = ops.clip(y_pred, EPSILON, 1.0 - EPSILON)
    return -ops.mean(y_true * ops.log(p) + (1.0 - y_true) * ops.log(1.0 - p), axis=axis)


def categorical_crossentropy(y_true: Any, y_pred: Any, from_logits: bool = False, label_smoothing: float = 0.0,
                             axis: int = -1) -> Tensor:
    """-sum(t log p, axis) with p = y_pred / sum(y_pred) clipped to [eps, 1 - eps] (or softmax of logits,
    fused); label smoothing: t <- t (1 - s) + s / K."""
    y_pred = _to_tensor(y_pred)
    y_true = _like(y_true, y_pred)
    _check_same_shape("categorical_crossentropy", y_true, y_pred)
    y_true, y_pred = _class_axis_last(y_true, y_pred, axis)
    if from_logits:
        return nn.softmax_cross_entropy(y_pred, y_true, label_smoothing, "none")
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + label_smoothing / y_pred.shape[-1]
    p = ops.clip(y_pred / ops.sum(y_pred, axis=-1, keepdims=True), EPSILON, 1.0 - EPSILON)
    return -ops.sum(y_true * ops.log(p), axis=-1)


def _sparse_labels(name: str, y_true: Any, y_pred: Tensor, ignore_class: int | None = None) -> Any:
    labels = _like(y_true, y_pred, keep_integers=True)
    labels = raw(labels)
    if labels.ndim == y_pred.ndim and labels.shape[-1] == 1:
        labels = labels.reshape(labels.shape[:-1])
    if labels.dtype.kind in "fb":
        if labels.dtype.kind == "f" and not (labels == labels.astype(np.int64)).all():
            raise ValueError(f"{name}: y_true must hold integer class labels, got non-integer values")
        labels = labels.astype(np.int64)
    if labels.shape != y_pred.shape[:-1]:
        hint = ("; y_true looks one-hot encoded: use categorical_crossentropy" if labels.shape == y_pred.shape
                else "")
        raise ValueError(f"{name}: integer labels of shape {labels.shape} do not fit y_pred of shape {y_pred.shape} "
                         f"(expected labels of shape {y_pred.shape[:-1]}){hint}")
    _check_class_labels(name, labels, y_pred.shape[-1], ignore_class)
    return labels


def _check_class_labels(name: str, labels: Any, num_classes: int, ignore_class: int | None) -> None:
    """Each label must name a class: 0 <= label < num_classes (or equal ``ignore_class``).

    Without it NumPy indexing reads a label of -1 as the last class (a silently wrong loss) and a label
    >= num_classes fails with an IndexError full of index arrays. One reduction per batch: viewed as unsigned,
    a negative label becomes huge, so ``max() < num_classes`` checks both ends (O(batch), about a µs).
    """
    if labels.size == 0:
        return
    unsigned = labels if labels.dtype.kind == "u" else labels.view(f"u{labels.dtype.itemsize}")
    if int(unsigned.max()) < num_classes:
        return
    values = to_numpy(labels)
    bad = (values < 0) | (values >= num_classes)
    if ignore_class is not None:
        bad &= values != ignore_class
    if not bad.any():
        return  # only ignored entries are out of range
    wrong = np.unique(values[bad])
    shown = ", ".join(str(v) for v in wrong[:5]) + (", ..." if len(wrong) > 5 else "")
    first = np.unravel_index(int(np.flatnonzero(bad)[0]), values.shape)
    where = first[0] if len(first) == 1 else tuple(int(i) for i in first)
    if wrong[0] < 0:
        hint = (f"class labels count from 0; to skip entries marked {wrong[0]} (padding), pass "
                f"ignore_class={wrong[0]} to the loss")
    else:
        hint = (f"the model's output has {num_classes} units, so the largest label it can learn is {num_classes - 1}; "
                f"give the last layer {int(wrong[-1]) + 1} units, or subtract 1 if the labels count from 1")
    raise ValueError(f"{name}: y_true must hold class labels in [0, {num_classes - 1}] ({num_classes} classes on "
                     f"y_pred's last axis), got {shown} ({int(bad.sum())} of {values.size} labels out of range, the "
                     f"first at index {where}). Hint: {hint}")


def sparse_categorical_crossentropy(y_true: Any, y_pred: Any, from_logits: bool = False,
                                    ignore_class: int | None = None, axis: int = -1) -> Tensor:
    """-log p[label] per sample (p normalised and clipped as in categorical_crossentropy, or the fused
    softmax cross-entropy of logits); labels equal to ``ignore_class`` give 0."""
    y_pred = _to_tensor(y_pred)
    if axis % y_pred.ndim != y_pred.ndim - 1:
        y_pred = ops.transpose(y_pred, tuple(i for i in range(y_pred.ndim) if i != axis % y_pred.ndim) +
                               (axis % y_pred.ndim,))
    labels = _sparse_labels("sparse_categorical_crossentropy", y_true, y_pred, ignore_class)
    if from_logits:
        return nn.softmax_cross_entropy(y_pred, labels, 0.0, "none", ignore_class)
    keep = None if ignore_class is None else labels != ignore_class
    safe = labels if keep is None else np.where(keep, labels, 0)
    p = ops.clip(y_pred / ops.sum(y_pred, axis=-1, keepdims=True), EPSILON, 1.0 - EPSILON)
    losses = nn.negative_log_likelihood(ops.log(p), safe, "sparse_categorical_crossentropy")
    return losses if keep is None else losses * keep


def kl_divergence(y_true: Any, y_pred: Any) -> Tensor:
    """sum(t log(t / p), axis=-1) with t and p clipped to [eps, 1]."""
    y_true, y_pred = _prepare("kl_divergence", y_true, y_pred)
    t = ops.clip(y_true, EPSILON, 1.0)
    p = ops.clip(y_pred, EPSILON, 1.0)
    return ops.sum(t * ops.log(t / p), axis=-1)


def poisson(y_true: Any, y_pred: Any) -> Tensor:
    """mean(y_pred - y_true log(y_pred + eps), axis=-1)."""
    y_true, y_pred = _prepare("poisson", y_true, y_pred)
    return ops.mean(y_pred - y_true * ops.log(y_pred + EPSILON), axis=-1)


def _hinge_labels(y_true: Any) -> Any:
    """Labels in {0, 1} become {-1, 1}, as Keras does; others are kept."""
    values = raw(y_true)
    if ((values == 0) | (values == 1)).all():
        return 2.0 * y_true - 1.0
    return y_true


def hinge(y_true: Any, y_pred: Any) -> Tensor:
    """mean(max(1 - t p, 0), axis=-1), labels {0, 1} mapped to {-1, 1}."""
    y_true, y_pred = _prepare("hinge", y_true, y_pred)
    return ops.mean(ops.relu(1.0 - _hinge_labels(y_true) * y_pred), axis=-1)


def squared_hinge(y_true: Any, y_pred: Any) -> Tensor:
    """mean(max(1 - t p, 0)^2, axis=-1), labels {0, 1} mapped to {-1, 1}."""
    y_true, y_pred = _prepare("squared_hinge", y_true, y_pred)
    margin = ops.relu(1.0 - _hinge_labels(y_true) * y_pred)
    return ops.mean(margin * margin, axis=-1)


def categorical_hinge(y_true: Any, y_pred: Any) -> Tensor:
    """max(max((1 - t) p) - sum(t p) + 1, 0) over the last axis (t one-hot)."""
    y_true, y_pred = _prepare("categorical_hinge", y_true, y_pred)
    pos = ops.sum(y_true * y_pred, axis=-1)
    neg = ops.max((1.0 - y_true) * y_pred, axis=-1)
    return ops.relu(neg - pos + 1.0)


def _l2_normalize(x: Any, axis: int) -> Any:
    return x / ops.sqrt(ops.maximum(ops.sum(x * x, axis=axis, keepdims=True), 1e-12))


def cosine_similarity(y_true: Any, y_pred: Any, axis: int = -1) -> Tensor:
    """-sum(l2_normalize(t) * l2_normalize(p), axis): -1 for parallel vectors (a loss to minimise)."""
    y_true, y_pred = _prepare("cosine_similarity", y_true, y_pred)
    return -ops.sum(_l2_normalize(y_true, axis) * _l2_normalize(y_pred, axis), axis=axis)


# ------------------------------------------------------------------ classes
class Loss:
    """Base class: subclasses define ``call(y_true, y_pred)`` returning per-sample losses.

    ``loss(y_true, y_pred, sample_weight=None)`` weights them (``sample_weight`` of shape (batch,) or
    the losses' shape) and reduces them with ``reduction``.
    """

    def __init__(self, name: str | None = None, reduction: str | None = "sum_over_batch_size",
                 dtype: Any = None) -> None:
        if reduction not in _REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        self.name = name or snake_case(type(self).__name__)
        self.reduction = reduction
        self.dtype = dtype

    def call(self, y_true: Any, y_pred: Any) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must define call(y_true, y_pred)")

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Tensor:
        prediction_mask = get_mask(y_pred) if _MASKS else None  # Keras weights losses by the output's mask
        y_pred = _to_tensor(y_pred)
        if self.dtype is not None:
            y_pred = ops.astype(y_pred, np.dtype(self.dtype))
        if sample_weight is None and prediction_mask is None and self.reduction in (
                "sum_over_batch_size", "mean", "mean_with_sample_weight"):
            fused = self._fused_mean(y_true, y_pred)
            if fused is not None:
                return fused
        losses, mask = self._call_with_mask(y_true, y_pred)
        if prediction_mask is not None:
            prediction_mask = raw(prediction_mask)
            mask = prediction_mask if mask is None else mask * prediction_mask
        return reduce_weighted_values(losses, sample_weight, mask, self.reduction)

    def _fused_mean(self, y_true: Any, y_pred: Tensor) -> Tensor | None:
        """The reduced loss in one fused op, or None where no fused form applies."""
        return None

    def _call_with_mask(self, y_true: Any, y_pred: Tensor) -> tuple[Tensor, Any]:
        return self.call(y_true, y_pred), None

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "reduction": self.reduction, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Loss:
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r}>"


def reduce_weighted_values(losses: Tensor, sample_weight: Any = None, mask: Any = None,
                           reduction: str | None = "sum_over_batch_size") -> Tensor:
    """Weight per-sample losses (by ``sample_weight`` and a validity ``mask``) and reduce them, as Keras does:
    'sum_over_batch_size' = sum(w l) / count, 'sum' = sum(w l), 'mean_with_sample_weight' = sum(w l) / sum(w)."""
    shape = raw(losses).shape
    dtype = raw(losses).dtype
    xp = get_array_module(raw(losses))
    weight = None
    if sample_weight is not None:
        weight = xp.asarray(as_array(raw(sample_weight))).astype(dtype, copy=False)
        losses, weight = squeeze_or_expand_to_same_rank(losses, weight)
        shape = raw(losses).shape
        if 0 < weight.ndim < len(shape):  # per-sample weights for per-timestep losses
            weight = weight.reshape(weight.shape + (1,) * (len(shape) - weight.ndim))
        try:
            np.broadcast_shapes(weight.shape, shape)
        except ValueError:
            raise ValueError(f"sample_weight of shape {weight.shape} does not fit losses of shape {shape}; pass one "
                             "weight per sample (shape (batch,))") from None
    if mask is not None:
        mask = mask.astype(dtype).reshape(shape) if mask.size == math.prod(shape) else mask.astype(dtype)
        if reduction in ("sum_over_batch_size", "mean"):  # masked entries leave the count
            mask = mask * (mask.size / (float(mask.sum()) + EPSILON))
        weight = mask if weight is None else mask * weight
    if weight is not None:
        losses = losses * weight
    if reduction in (None, "none") or len(shape) == 0:
        return losses
    total = ops.sum(losses)
    if reduction == "sum":
        return total
    if reduction == "mean_with_sample_weight" and weight is not None:
        divisor = float(xp.broadcast_to(weight, shape).sum())
    else:
        divisor = float(math.prod(shape))
    return total / divisor if divisor else total * 0.0


class LossFunctionWrapper(Loss):
    """A Loss around a per-sample function ``fn(y_true, y_pred, **kwargs)``."""

    def __init__(self, fn: Callable[..., Any], reduction: str | None = "sum_over_batch_size",
                 name: str | None = None, dtype: Any = None, **kwargs: Any) -> None:
        super().__init__(name or getattr(fn, "__name__", None), reduction, dtype)
        self.fn = fn
        self._fn_kwargs = kwargs

    def call(self, y_true: Any, y_pred: Any) -> Tensor:
        return self.fn(y_true, y_pred, **self._fn_kwargs)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(self._fn_kwargs)
        if type(self) is LossFunctionWrapper:
            config["fn"] = getattr(self.fn, "__name__", repr(self.fn))
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Loss:
        if cls is LossFunctionWrapper:
            config = dict(config)
            config["fn"] = get(config["fn"])
        return cls(**config)


def _wrapper_class(class_name: str, fn: Callable[..., Any], doc: str, signature: dict[str, Any] | None = None,
                   fused: Callable[..., Any] | None = None) -> type[LossFunctionWrapper]:
    """A Keras-style loss class: ``__init__(*options, reduction=..., name=..., dtype=...)`` (Keras's order)."""
    defaults = {**(signature or {}), "reduction": "sum_over_batch_size", "name": fn.__name__, "dtype": None}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if len(args) > len(defaults):
            raise TypeError(f"{class_name}() takes at most {len(defaults)} arguments ({list(defaults)}), "
                            f"got {len(args)}")
        unknown = set(kwargs) - set(defaults)
        if unknown:
            raise TypeError(f"{class_name}() got unexpected arguments {sorted(unknown)}; valid: {list(defaults)}")
        values = {**defaults, **dict(zip(defaults, args)), **kwargs}
        reduction, name, dtype = values.pop("reduction"), values.pop("name"), values.pop("dtype")
        LossFunctionWrapper.__init__(self, fn, reduction, name, dtype, **values)

    namespace = {"__init__": __init__, "__doc__": doc, "__module__": __name__}
    if fused is not None:
        namespace["_fused_mean"] = lambda self, y_true, y_pred: fused(y_true, y_pred, **self._fn_kwargs)
    return type(class_name, (LossFunctionWrapper,), namespace)


def _fused_mse(y_true: Any, y_pred: Tensor) -> Tensor:
    y_true, y_pred = _prepare("mean_squared_error", y_true, y_pred)
    return nn.mean_squared_error(y_pred, y_true)


def _fused_binary(y_true: Any, y_pred: Tensor, from_logits: bool, label_smoothing: float, axis: int) -> Any:
    if not from_logits:
        return None
    y_true, y_pred = _prepare("binary_crossentropy", y_true, y_pred)
    _check_binary_targets("binary_crossentropy", y_true)
    y_true = _smooth_binary(y_true, label_smoothing)
    if raw(y_true).shape != y_pred.shape:
        y_true = ops.broadcast_to(y_true, y_pred.shape)
    return nn.sigmoid_binary_cross_entropy(y_pred, y_true)


def _fused_categorical(y_true: Any, y_pred: Tensor, from_logits: bool, label_smoothing: float, axis: int) -> Any:
    if not from_logits or axis % y_pred.ndim != y_pred.ndim - 1:
        return None
    y_true = _like(y_true, y_pred)
    _check_same_shape("categorical_crossentropy", y_true, y_pred)
    return nn.softmax_cross_entropy(y_pred, y_true, label_smoothing)


MeanSquaredError = _wrapper_class("MeanSquaredError", mean_squared_error,
                                  "mean((y_true - y_pred)^2) (one fused op when unweighted).", fused=_fused_mse)
MeanAbsoluteError = _wrapper_class("MeanAbsoluteError", mean_absolute_error, "mean(|y_true - y_pred|).")
MeanAbsolutePercentageError = _wrapper_class("MeanAbsolutePercentageError", mean_absolute_percentage_error,
                                             "100 mean(|(y_true - y_pred) / y_true|).")
MeanSquaredLogarithmicError = _wrapper_class("MeanSquaredLogarithmicError", mean_squared_logarithmic_error,
                                             "mean((log(1 + y_pred) - log(1 + y_true))^2).")
Huber = _wrapper_class("Huber", huber, "Quadratic for |error| <= delta, linear beyond.", {"delta": 1.0})
LogCosh = _wrapper_class("LogCosh", log_cosh, "mean(log(cosh(y_pred - y_true))).")
BinaryCrossentropy = _wrapper_class(
    "BinaryCrossentropy", binary_crossentropy, "Binary cross-entropy of probabilities, or of logits (fused).",
    {"from_logits": False, "label_smoothing": 0.0, "axis": -1}, fused=_fused_binary)
CategoricalCrossentropy = _wrapper_class(
    "CategoricalCrossentropy", categorical_crossentropy, "Cross-entropy against one-hot (or soft) targets.",
    {"from_logits": False, "label_smoothing": 0.0, "axis": -1}, fused=_fused_categorical)
KLDivergence = _wrapper_class("KLDivergence", kl_divergence, "sum(y_true log(y_true / y_pred)).")
Poisson = _wrapper_class("Poisson", poisson, "mean(y_pred - y_true log(y_pred)).")
Hinge = _wrapper_class("Hinge", hinge, "mean(max(1 - y_true y_pred, 0)).")
SquaredHinge = _wrapper_class("SquaredHinge", squared_hinge, "mean(max(1 - y_true y_pred, 0)^2).")
CategoricalHinge = _wrapper_class("CategoricalHinge", categorical_hinge, "max(neg - pos + 1, 0).")
CosineSimilarity = _wrapper_class("CosineSimilarity", cosine_similarity, "-cos(y_true, y_pred) along axis.",
                                  {"axis": -1})


class SparseCategoricalCrossentropy(LossFunctionWrapper):
    """Cross-entropy against integer labels; ``ignore_class`` entries are masked out of the mean."""

    def __init__(self, from_logits: bool = False, ignore_class: int | None = None,
                 reduction: str | None = "sum_over_batch_size", name: str | None = None, dtype: Any = None,
                 axis: int = -1) -> None:
        super().__init__(sparse_categorical_crossentropy, reduction, name or "sparse_categorical_crossentropy",
                         dtype, from_logits=from_logits, ignore_class=ignore_class, axis=axis)

    def _fused_mean(self, y_true: Any, y_pred: Tensor) -> Tensor | None:
        kw = self._fn_kwargs
        if not kw["from_logits"] or kw["axis"] % y_pred.ndim != y_pred.ndim - 1:
            return None
        labels = _sparse_labels(self.name, y_true, y_pred, kw["ignore_class"])
        return nn.softmax_cross_entropy(y_pred, labels, 0.0, "mean", kw["ignore_class"])

    def _call_with_mask(self, y_true: Any, y_pred: Tensor) -> tuple[Tensor, Any]:
        losses = self.call(y_true, y_pred)
        ignore = self._fn_kwargs["ignore_class"]
        if ignore is None:
            return losses, None
        labels = raw(y_true) if isinstance(y_true, Tensor) else np.asarray(y_true)
        return losses, labels.reshape(raw(losses).shape) != ignore


# ------------------------------------------------------------------ names
_PAIRS = [(mean_squared_error, MeanSquaredError), (mean_absolute_error, MeanAbsoluteError),
          (mean_absolute_percentage_error, MeanAbsolutePercentageError),
          (mean_squared_logarithmic_error, MeanSquaredLogarithmicError), (huber, Huber), (log_cosh, LogCosh),
          (binary_crossentropy, BinaryCrossentropy), (categorical_crossentropy, CategoricalCrossentropy),
          (sparse_categorical_crossentropy, SparseCategoricalCrossentropy), (kl_divergence, KLDivergence),
          (poisson, Poisson), (hinge, Hinge), (squared_hinge, SquaredHinge), (categorical_hinge, CategoricalHinge),
          (cosine_similarity, CosineSimilarity)]
_FUNCTIONS = {fn.__name__: fn for fn, _ in _PAIRS}
_CLASSES = {cls.__name__: cls for _, cls in _PAIRS}
_CLASS_OF_FUNCTION = dict(_PAIRS)
_ALIASES = {"mse": "mean_squared_error", "mae": "mean_absolute_error", "mape": "mean_absolute_percentage_error",
            "msle": "mean_squared_logarithmic_error", "bce": "binary_crossentropy", "kld": "kl_divergence",
            "kullback_leibler_divergence": "kl_divergence", "logcosh": "log_cosh", "huber_loss": "huber"}
_ALIASES.update({k.upper(): v for k, v in list(_ALIASES.items()) if len(k) <= 4})

mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error
mape = MAPE = mean_absolute_percentage_error
msle = MSLE = mean_squared_logarithmic_error
kld = KLD = kl_divergence
logcosh = log_cosh


def get(identifier: Any) -> Any:
    """Resolve a loss as Keras does: a name (function, alias or class name), a config dict, a class
    (instantiated), a Loss instance or a function (returned as they are); None gives None.

    >>> get("mse").__name__, type(get("CategoricalCrossentropy")).__name__
    ('mean_squared_error', 'CategoricalCrossentropy')
    """
    if identifier is None:
        return None
    obj = identifier
    if isinstance(identifier, dict):
        cls = _CLASSES.get(identifier.get("class_name"))
        if cls is None:
            raise ValueError(f"Could not interpret loss config {identifier}; class_name must be one of "
                             f"{sorted(_CLASSES)}")
        return cls.from_config(identifier.get("config", {}))
    if isinstance(identifier, str):
        name = _ALIASES.get(identifier, identifier)
        obj = _FUNCTIONS.get(name) or _CLASSES.get(name)
        if obj is None:
            raise ValueError(f"Unknown loss {identifier!r}; valid names: {sorted(_FUNCTIONS)} and aliases "
                             f"{sorted(_ALIASES)} (or a Loss class/instance or a function)")
    if isinstance(obj, type):
        return obj()
    if callable(obj):
        return obj
    raise ValueError(f"Could not interpret loss identifier: {identifier!r}")


def to_loss(identifier: Any) -> Loss:
    """A Loss object for ``identifier`` (what ``compile`` needs): names and the built-in functions map to their
    classes (so the fused paths apply), other functions are wrapped in LossFunctionWrapper."""
    obj = get(identifier)
    if obj is None or isinstance(obj, Loss):
        return obj
    cls = _CLASS_OF_FUNCTION.get(obj)
    return cls() if cls is not None else LossFunctionWrapper(obj)


def serialize(loss: Loss) -> dict[str, Any]:
    """{'class_name', 'config'} of a built-in Loss (what :func:`get` accepts back)."""
    return {"class_name": type(loss).__name__, "config": loss.get_config()}


def deserialize(config: dict[str, Any]) -> Loss:
    """The Loss described by :func:`serialize`'s dict."""
    return get(config)
