"""Stateful metrics with Keras 3 semantics, computed on NumPy arrays (no graph).

A metric accumulates over batches: ``update_state(y_true, y_pred, sample_weight=None)``, then
``result()`` (a Python float; an array for per-class results such as ``F1Score(average=None)``), and
``reset_state()`` between epochs. ``metric(y_true, y_pred)`` updates and returns the result, as in Keras.
``get("accuracy", loss=...)`` picks the accuracy that fits the loss, as ``compile`` does.

>>> import shendu
>>> m = shendu.metrics.SparseCategoricalAccuracy()
>>> m.update_state([[2], [1]], [[0.1, 0.6, 0.3], [0.05, 0.95, 0]])
>>> m.result()
0.5
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from shendu import backend, initializers
from shendu import losses as _losses
from shendu.autograd.grad_mode import no_grad
from shendu.autograd.op import raw
from shendu.autograd.tensor import Parameter
from shendu.naming import snake_case

EPSILON = _losses.EPSILON  # Keras's backend.epsilon()


def _np(x: Any, dtype: Any = None) -> np.ndarray:
    """Any array-like (Tensor, CuPy, list) as a NumPy array."""
    arr = np.asarray(backend.to_numpy(raw(x)))
    return arr if dtype is None else arr.astype(dtype, copy=False)


_same_rank = _losses.squeeze_or_expand_to_same_rank


# ------------------------------------------------------------------ per-sample metric functions
def accuracy(y_true: Any, y_pred: Any) -> np.ndarray:
    """mean(y_true == y_pred, axis=-1): exact matches."""
    y_pred = _np(y_pred)
    y_true, y_pred = _same_rank(_np(y_true, y_pred.dtype), y_pred)
    return np.mean(y_true == y_pred, axis=-1)


def binary_accuracy(y_true: Any, y_pred: Any, threshold: float = 0.5) -> np.ndarray:
    """mean(y_true == (y_pred > threshold), axis=-1)."""
    y_true, y_pred = _same_rank(_np(y_true), _np(y_pred))
    return np.mean(y_true == (y_pred > threshold), axis=-1)


def categorical_accuracy(y_true: Any, y_pred: Any) -> np.ndarray:
    """argmax(y_true) == argmax(y_pred) (one-hot targets)."""
    y_true, y_pred = _np(y_true), _np(y_pred)
    return (np.argmax(y_true, axis=-1) == np.argmax(y_pred, axis=-1)).astype(np.float64)


def sparse_categorical_accuracy(y_true: Any, y_pred: Any) -> np.ndarray:
    """y_true == argmax(y_pred) (integer labels, shape (n,) or (n, 1)); a label that names no class (such as an
    ``ignore_class`` marker) never matches, as in Keras."""
    y_true, y_pred = _np(y_true), _np(y_pred)
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    return (y_true == np.argmax(y_pred, axis=-1)).astype(np.float64)


def _in_top_k(labels: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    """True where the label's score is at least the k-th largest (ties count as in, as Keras).

    A label that names no class (< 0 or >= the number of classes, e.g. an ``ignore_class`` marker such as -1 or
    255) is never in the top k, as in TensorFlow's ``in_top_k`` and as ``sparse_categorical_accuracy`` counts it;
    plain indexing would read -1 as the last class and fail on 255.
    """
    scores = y_pred.reshape(-1, y_pred.shape[-1])
    labels = labels.reshape(-1).astype(np.int64)
    num_classes = scores.shape[-1]
    valid = (labels >= 0) & (labels < num_classes)
    if k >= num_classes:
        return valid
    kth = np.partition(scores, -k, axis=-1)[:, -k]
    return valid & (scores[np.arange(len(labels)), np.where(valid, labels, 0)] >= kth)


def top_k_categorical_accuracy(y_true: Any, y_pred: Any, k: int = 5) -> np.ndarray:
    """Whether argmax(y_true) is among the k highest scores of y_pred."""
    labels = np.argmax(_np(y_true), axis=-1)
    return _in_top_k(labels, _np(y_pred), k).reshape(labels.shape).astype(np.float64)


def sparse_top_k_categorical_accuracy(y_true: Any, y_pred: Any, k: int = 5) -> np.ndarray:
    """Whether the integer label is among the k highest scores of y_pred."""
    labels, y_pred = _np(y_true), _np(y_pred)
    if labels.ndim == y_pred.ndim and labels.shape[-1] == 1:
        labels = labels[..., 0]
    return _in_top_k(labels, y_pred, k).reshape(labels.shape).astype(np.float64)


def mean_absolute_error(y_true: Any, y_pred: Any) -> np.ndarray:
    """mean(|y_true - y_pred|, axis=-1)."""
    y_pred = _np(y_pred)
    y_true, y_pred = _same_rank(_np(y_true, y_pred.dtype), y_pred)
    return np.mean(np.abs(y_true - y_pred), axis=-1)


def mean_squared_error(y_true: Any, y_pred: Any) -> np.ndarray:
    """mean((y_true - y_pred)^2, axis=-1)."""
    y_pred = _np(y_pred)
    y_true, y_pred = _same_rank(_np(y_true, y_pred.dtype), y_pred)
    return np.mean(np.square(y_true - y_pred), axis=-1)


def _loss_as_metric(loss_fn: Callable[..., Any]) -> Callable[..., np.ndarray]:
    """A per-sample loss of shendu.losses evaluated on arrays, without recording a graph."""

    def fn(y_true: Any, y_pred: Any, **kwargs: Any) -> np.ndarray:
        with no_grad():
            return _np(loss_fn(y_true, _np(y_pred), **kwargs))

    fn.__name__ = loss_fn.__name__
    fn.__doc__ = loss_fn.__doc__
    return fn


AGGREGATIONS = ("sum", "mean", "none", "only_first_replica")  # Keras 3's names for combining state over replicas


# ------------------------------------------------------------------ base classes
class _MetricType(type):
    """Runs ``reset_state()`` once after construction for metrics that keep their state in plain attributes made
    by ``reset_state`` (shendu's built-ins); a metric whose state was made with ``add_variable`` in ``__init__``
    (Keras style) already has it, and ``reset_state`` is then never called before ``__init__`` has run."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        metric = super().__call__(*args, **kwargs)
        if not metric.__dict__.get("_variables"):
            metric.reset_state()
        return metric


class Metric(metaclass=_MetricType):
    """Base class: ``update_state``, ``result``, ``reset_state`` (Keras 3's API).

    State is either plain NumPy values that ``reset_state`` sets (shendu's built-ins), or variables made in
    ``__init__`` with ``add_variable(shape, initializer, dtype, name)`` / ``add_weight`` as in Keras: non-trainable
    ``Parameter``s (``assign``/``assign_add`` them in ``update_state``). The default ``reset_state`` sets every
    variable, and those of metrics held as attributes, to zero.
    """

    def __init__(self, name: str | None = None, dtype: Any = None) -> None:
        self.name = name or snake_case(type(self).__name__)
        self.dtype = dtype if dtype is not None else "float32"
        self._variables: list[Parameter] = []
        self._aggregations: list[str] = []

    def add_variable(self, shape: Any = (), initializer: Any = "zeros", dtype: Any = None, aggregation: str = "sum",
                     name: str | None = None) -> Parameter:
        """A state variable (a non-trainable Parameter) of ``shape`` filled by ``initializer``; Keras's signature.
        ``aggregation`` says how data-parallel training (``shendu.distribute``) combines it over the ranks:
        ``"sum"`` (counts and totals), ``"mean"``, or ``"none"``/``"only_first_replica"`` (left as each rank has it)."""
        if "_variables" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}: call super().__init__() before add_variable")
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"{type(self).__name__}.add_variable: aggregation must be one of {AGGREGATIONS}, "
                             f"got {aggregation!r}")
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        init = initializers.get(initializer if initializer is not None else "zeros")
        variable = Parameter(np.asarray(init(shape, dtype or self.dtype)), requires_grad=False,
                             name=f"{self.name}/{name}" if name else self.name)
        self._variables.append(variable)
        self._aggregations.append(aggregation)
        return variable

    def add_weight(self, shape: Any = (), initializer: Any = None, dtype: Any = None,
                   name: str | None = None) -> Parameter:
        """Keras's alias of :meth:`add_variable`."""
        return self.add_variable(shape=shape, initializer=initializer, dtype=dtype, name=name)

    @property
    def variables(self) -> list[Parameter]:
        """The variables made by ``add_variable``, then those of metrics held as attributes."""
        out = list(self.__dict__.get("_variables", ()))
        for value in self.__dict__.values():
            if isinstance(value, Metric) and value is not self:
                out.extend(value.variables)
        return out

    def variable_aggregations(self) -> list[tuple[Parameter, str]]:
        """Each variable of :attr:`variables` with its ``aggregation`` (how ranks combine it)."""
        out = list(zip(self.__dict__.get("_variables", ()), self.__dict__.get("_aggregations", ())))
        for value in self.__dict__.values():
            if isinstance(value, Metric) and value is not self:
                out.extend(value.variable_aggregations())
        return out

    def update_state(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError(f"{type(self).__name__} must define update_state")

    def result(self) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define result")

    def reset_state(self) -> None:
        """Set every state variable to zero and reset the metrics held as attributes (Keras's default; metrics
        with plain state override this)."""
        for variable in self.__dict__.get("_variables", ()):
            variable.data[...] = 0
        for value in list(self.__dict__.values()):
            if isinstance(value, Metric) and value is not self:
                value.reset_state()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.update_state(*args, **kwargs)
        return self.result()

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Metric:
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r}>"


def _samplewise(values: np.ndarray, sample_weight: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """Keras's reduce_to_samplewise_values: weight, then average every axis after the first."""
    weight = None
    if sample_weight is not None:
        weight = _np(sample_weight, np.float64)
        values, weight = _same_rank(values, weight)
        if values.ndim > weight.ndim:
            values = values.mean(axis=tuple(range(weight.ndim, values.ndim)))
        weight = np.broadcast_to(weight, values.shape)
        values = values * weight
        if weight.ndim > 1:
            weight = weight.mean(axis=tuple(range(1, weight.ndim)))
    if values.ndim > 1:
        values = values.mean(axis=tuple(range(1, values.ndim)))
    return values, weight


class Sum(Metric):
    """The running (weighted) sum of the values."""

    def reset_state(self) -> None:
        self.total = 0.0

    def update_state(self, values: Any, sample_weight: Any = None) -> None:
        values, _ = _samplewise(_np(values, np.float64), sample_weight)
        self.total += float(values.sum())

    def result(self) -> float:
        return self.total


class Mean(Metric):
    """The running (weighted) mean: sum(w v) / sum(w); with no weights, the count of samples."""

    def reset_state(self) -> None:
        self.total = 0.0
        self.count = 0.0

    def update_state(self, values: Any, sample_weight: Any = None) -> None:
        values, weight = _samplewise(_np(values, np.float64), sample_weight)
        self.total += float(values.sum())
        if weight is not None:
            self.count += float(weight.sum())
        else:
            self.count += values.shape[0] if values.ndim else 1

    def result(self) -> float:
        return self.total / self.count if self.count else 0.0


class MeanMetricWrapper(Mean):
    """The mean of a per-sample function ``fn(y_true, y_pred, **kwargs)`` over every sample seen."""

    def __init__(self, fn: Callable[..., Any], name: str | None = None, dtype: Any = None, **kwargs: Any) -> None:
        self._fn = fn
        self._fn_kwargs = kwargs
        super().__init__(name or getattr(fn, "__name__", None), dtype)

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        super().update_state(_np(self._fn(y_true, y_pred, **self._fn_kwargs)), sample_weight)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), **self._fn_kwargs}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Metric:
        return cls(**config)


def _wrapper_class(class_name: str, fn: Callable[..., Any], default_name: str, options: dict[str, Any] | None = None,
                   doc: str | None = None) -> type[MeanMetricWrapper]:
    options = options or {}

    def __init__(self, name: str = default_name, dtype: Any = None, **kwargs: Any) -> None:
        unknown = set(kwargs) - set(options)
        if unknown:
            raise TypeError(f"{class_name}() got unexpected arguments {sorted(unknown)}; valid: "
                            f"{['name', 'dtype', *options]}")
        MeanMetricWrapper.__init__(self, fn, name, dtype, **{**options, **kwargs})

    namespace = {"__init__": __init__, "__doc__": doc or fn.__doc__, "__module__": __name__}
    return type(class_name, (MeanMetricWrapper,), namespace)


Accuracy = _wrapper_class("Accuracy", accuracy, "accuracy")
CategoricalAccuracy = _wrapper_class("CategoricalAccuracy", categorical_accuracy, "categorical_accuracy")
SparseCategoricalAccuracy = _wrapper_class("SparseCategoricalAccuracy", sparse_categorical_accuracy,
                                           "sparse_categorical_accuracy")
TopKCategoricalAccuracy = _wrapper_class("TopKCategoricalAccuracy", top_k_categorical_accuracy,
                                         "top_k_categorical_accuracy", {"k": 5})
SparseTopKCategoricalAccuracy = _wrapper_class("SparseTopKCategoricalAccuracy", sparse_top_k_categorical_accuracy,
                                               "sparse_top_k_categorical_accuracy", {"k": 5})
MeanAbsoluteError = _wrapper_class("MeanAbsoluteError", mean_absolute_error, "mean_absolute_error")
MeanSquaredError = _wrapper_class("MeanSquaredError", mean_squared_error, "mean_squared_error")


class BinaryAccuracy(MeanMetricWrapper):
    """How often (y_pred > threshold) equals the binary label."""

    def __init__(self, name: str = "binary_accuracy", dtype: Any = None, threshold: float = 0.5) -> None:
        if not 0 < threshold < 1:
            raise ValueError(f"BinaryAccuracy: threshold must be in (0, 1), got {threshold}")
        super().__init__(binary_accuracy, name, dtype, threshold=threshold)


class RootMeanSquaredError(Mean):
    """sqrt(mean((y_true - y_pred)^2)) over every sample seen."""

    def __init__(self, name: str = "root_mean_squared_error", dtype: Any = None) -> None:
        super().__init__(name, dtype)

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        y_true, y_pred = _same_rank(_np(y_true, np.float64), _np(y_pred, np.float64))
        super().update_state(np.square(y_pred - y_true), sample_weight)

    def result(self) -> float:
        return float(np.sqrt(super().result()))


# ------------------------------------------------------------------ confusion-matrix metrics
def _confusion_counts(y_true: Any, y_pred: Any, thresholds: np.ndarray, sample_weight: Any = None,
                      class_id: int | None = None, top_k: int | None = None) -> np.ndarray:
    """Weighted (tp, fp, tn, fn) at each threshold, predictions counted positive when > threshold: shape (4, T)."""
    y_true, y_pred = _np(y_true, np.float64), _np(y_pred, np.float64)
    y_true, y_pred = _same_rank(y_true, y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"confusion metrics: y_true of shape {y_true.shape} and y_pred of shape {y_pred.shape} "
                         "must match")
    weight = np.ones(()) if sample_weight is None else _np(sample_weight, np.float64)
    if weight.ndim > y_pred.ndim and weight.shape[-1] == 1:  # (batch, 1) weights for (batch,) predictions
        weight = weight[..., 0]
    if 0 < weight.ndim < y_pred.ndim:  # (batch,) weights for (batch, classes) predictions
        weight = weight.reshape(weight.shape + (1,) * (y_pred.ndim - weight.ndim))
    try:
        weight = np.broadcast_to(weight, y_pred.shape)
    except ValueError:
        raise ValueError(f"sample_weight of shape {weight.shape} does not fit predictions of shape "
                         f"{y_pred.shape}; pass one weight per sample") from None
    if top_k is not None:
        order = np.argsort(-y_pred, axis=-1, kind="stable")
        outside = np.ones_like(y_pred, dtype=bool)
        np.put_along_axis(outside, order[..., :top_k], False, axis=-1)
        y_pred = np.where(outside, -np.inf, y_pred)
    if class_id is not None:
        y_true, y_pred, weight = y_true[..., class_id], y_pred[..., class_id], weight[..., class_id]
    labels = y_true.reshape(-1) > 0.5
    scores = y_pred.reshape(-1)
    w = weight.reshape(-1)
    predicted = scores[None, :] > thresholds[:, None]  # (T, N)
    pos_w, neg_w = w * labels, w * ~labels
    tp = predicted @ pos_w
    fp = predicted @ neg_w
    return np.stack([tp, fp, neg_w.sum() - fp, pos_w.sum() - tp])


class _ConfusionMetric(Metric):
    """Accumulates (tp, fp, tn, fn) at fixed thresholds."""

    def __init__(self, thresholds: Any = None, top_k: int | None = None, class_id: int | None = None,
                 name: str | None = None, dtype: Any = None) -> None:
        self.init_thresholds = thresholds
        self._scalar = thresholds is None or np.ndim(thresholds) == 0
        default = 0.5 if top_k is None else -np.inf  # top_k alone counts every kept prediction as positive
        self.thresholds = np.atleast_1d(np.asarray(default if thresholds is None else thresholds, np.float64))
        self.top_k, self.class_id = top_k, class_id
        super().__init__(name, dtype)

    def reset_state(self) -> None:
        self.counts = np.zeros((4, len(self.thresholds)))

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        self.counts += _confusion_counts(y_true, y_pred, self.thresholds, sample_weight, self.class_id, self.top_k)

    def _ratio(self, num: np.ndarray, den: np.ndarray) -> Any:
        value = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
        return float(value[0]) if self._scalar else value

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "thresholds": self.init_thresholds, "top_k": self.top_k,
                "class_id": self.class_id}


class Precision(_ConfusionMetric):
    """tp / (tp + fp) with predictions > threshold (0.5) counted positive; optional top_k and class_id."""

    def result(self) -> Any:
        tp, fp = self.counts[0], self.counts[1]
        return self._ratio(tp, tp + fp)


class Recall(_ConfusionMetric):
    """tp / (tp + fn) with predictions > threshold (0.5) counted positive; optional top_k and class_id."""

    def result(self) -> Any:
        tp, fn = self.counts[0], self.counts[3]
        return self._ratio(tp, tp + fn)


class AUC(Metric):
    """Area under the ROC (or PR) curve by a Riemann sum over ``num_thresholds`` fixed thresholds, as Keras:
    thresholds i / (num_thresholds - 1) plus -eps and 1 + eps; 'interpolation' uses trapezoids for ROC and the
    Davis & Goadrich interpolation for PR; 'minoring' / 'majoring' the lower / upper rectangles."""

    def __init__(self, num_thresholds: int = 200, curve: str = "ROC", summation_method: str = "interpolation",
                 name: str | None = None, dtype: Any = None, thresholds: Any = None,
                 from_logits: bool = False) -> None:
        if curve.upper() not in ("ROC", "PR"):
            raise ValueError(f"AUC: curve must be 'ROC' or 'PR', got {curve!r}")
        if summation_method not in ("interpolation", "minoring", "majoring"):
            raise ValueError(f"AUC: summation_method must be 'interpolation', 'minoring' or 'majoring', got "
                             f"{summation_method!r}")
        if thresholds is not None:
            inner = sorted(float(t) for t in thresholds)
            self.num_thresholds = len(inner) + 2
        else:
            if num_thresholds <= 1:
                raise ValueError(f"AUC: num_thresholds must be an integer > 1, got {num_thresholds}")
            self.num_thresholds = num_thresholds
            inner = [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
        self.init_thresholds = thresholds
        self.thresholds = np.array([0.0 - EPSILON] + inner + [1.0 + EPSILON])
        self.curve, self.summation_method, self.from_logits = curve.upper(), summation_method, from_logits
        super().__init__(name or "auc", dtype)

    def reset_state(self) -> None:
        self.counts = np.zeros((4, len(self.thresholds)))

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        y_pred = _np(y_pred, np.float64)
        if self.from_logits:
            y_pred = 0.5 * np.tanh(0.5 * y_pred) + 0.5
        self.counts += _confusion_counts(y_true, y_pred, self.thresholds, sample_weight)

    def result(self) -> float:
        tp, fp, tn, fn = self.counts
        if self.curve == "PR" and self.summation_method == "interpolation":
            return self._interpolate_pr_auc()
        recall = _divide_no_nan(tp, tp + fn)
        if self.curve == "ROC":
            x, y = _divide_no_nan(fp, fp + tn), recall
        else:
            x, y = recall, _divide_no_nan(tp, tp + fp)
        if self.summation_method == "interpolation":
            heights = (y[:-1] + y[1:]) / 2
        elif self.summation_method == "minoring":
            heights = np.minimum(y[:-1], y[1:])
        else:
            heights = np.maximum(y[:-1], y[1:])
        return float(np.sum((x[:-1] - x[1:]) * heights))

    def _interpolate_pr_auc(self) -> float:
        tp, fp, _, fn = self.counts
        dtp = tp[:-1] - tp[1:]
        p = tp + fp
        dp = p[:-1] - p[1:]
        slope = _divide_no_nan(dtp, np.maximum(dp, 0))
        intercept = tp[1:] - slope * p[1:]
        both = (p[:-1] > 0) & (p[1:] > 0)
        ratio = np.where(both, _divide_no_nan(p[:-1], np.maximum(p[1:], 0)), 1.0)
        increment = _divide_no_nan(slope * (dtp + intercept * np.log(ratio)), np.maximum(tp[1:] + fn[1:], 0))
        return float(np.sum(increment))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_thresholds": self.num_thresholds, "curve": self.curve,
                "summation_method": self.summation_method, "thresholds": self.init_thresholds,
                "from_logits": self.from_logits}


def _divide_no_nan(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros_like(a, dtype=np.float64), where=b != 0)


class FBetaScore(Metric):
    """Per-class F-beta = (1 + b^2) P R / (b^2 P + R) from accumulated tp/fp/fn (epsilon-guarded, as Keras);
    ``average`` None (per class), 'micro', 'macro' or 'weighted'; ``threshold`` None marks each row's max."""

    def __init__(self, average: str | None = None, beta: float = 1.0, threshold: float | None = None,
                 name: str = "fbeta_score", dtype: Any = None) -> None:
        if average not in (None, "micro", "macro", "weighted"):
            raise ValueError(f"{type(self).__name__}: average must be None, 'micro', 'macro' or 'weighted', got "
                             f"{average!r}")
        if beta <= 0:
            raise ValueError(f"{type(self).__name__}: beta must be > 0, got {beta}")
        if threshold is not None and not 0 < threshold <= 1:
            raise ValueError(f"{type(self).__name__}: threshold must be in (0, 1], got {threshold}")
        self.average, self.beta, self.threshold = average, beta, threshold
        super().__init__(name, dtype)

    def reset_state(self) -> None:
        self.true_positives = self.false_positives = self.false_negatives = self.intermediate_weights = 0.0

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        y_true, y_pred = _np(y_true, np.float64), _np(y_pred, np.float64)
        if y_pred.ndim != 2 or y_true.shape != y_pred.shape:
            raise ValueError(f"{type(self).__name__}: y_true and y_pred must both be (batch, classes), got "
                             f"{y_true.shape} and {y_pred.shape}")
        if self.threshold is None:
            predicted = (y_pred >= y_pred.max(axis=-1, keepdims=True)) & (np.abs(y_pred) > 1e-9)
        else:
            predicted = y_pred > self.threshold
        predicted = predicted.astype(np.float64)
        weight = 1.0 if sample_weight is None else _np(sample_weight, np.float64).reshape(-1, 1)
        axis = None if self.average == "micro" else 0
        self.true_positives = self.true_positives + np.sum(predicted * y_true * weight, axis=axis)
        self.false_positives = self.false_positives + np.sum(predicted * (1 - y_true) * weight, axis=axis)
        self.false_negatives = self.false_negatives + np.sum((1 - predicted) * y_true * weight, axis=axis)
        self.intermediate_weights = self.intermediate_weights + np.sum(y_true * weight, axis=axis)

    def result(self) -> Any:
        tp = np.asarray(self.true_positives, np.float64)
        precision = tp / (tp + self.false_positives + EPSILON)
        recall = tp / (tp + self.false_negatives + EPSILON)
        b2 = self.beta**2
        score = (1 + b2) * precision * recall / (b2 * precision + recall + EPSILON)
        if self.average == "weighted":
            weights = self.intermediate_weights / (np.sum(self.intermediate_weights) + EPSILON)
            return float(np.sum(score * weights))
        if self.average is not None:
            return float(np.mean(score))
        return score

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "average": self.average, "beta": self.beta, "threshold": self.threshold}


class F1Score(FBetaScore):
    """F-beta with beta = 1: the harmonic mean of precision and recall."""

    def __init__(self, average: str | None = None, threshold: float | None = None, name: str = "f1_score",
                 dtype: Any = None) -> None:
        super().__init__(average, 1.0, threshold, name, dtype)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        del config["beta"]
        return config


# ------------------------------------------------------------------ names and resolution
_LOSS_METRICS = {fn.__name__: _loss_as_metric(fn) for fn in (
    _losses.binary_crossentropy, _losses.categorical_crossentropy, _losses.sparse_categorical_crossentropy,
    _losses.kl_divergence, _losses.poisson, _losses.hinge, _losses.squared_hinge, _losses.categorical_hinge,
    _losses.log_cosh, _losses.mean_absolute_percentage_error, _losses.mean_squared_logarithmic_error)}
MeanAbsolutePercentageError = _wrapper_class("MeanAbsolutePercentageError",
                                             _LOSS_METRICS["mean_absolute_percentage_error"],
                                             "mean_absolute_percentage_error")
MeanSquaredLogarithmicError = _wrapper_class("MeanSquaredLogarithmicError",
                                             _LOSS_METRICS["mean_squared_logarithmic_error"],
                                             "mean_squared_logarithmic_error")
LogCoshError = _wrapper_class("LogCoshError", _LOSS_METRICS["log_cosh"], "logcosh")
Poisson = _wrapper_class("Poisson", _LOSS_METRICS["poisson"], "poisson")
KLDivergence = _wrapper_class("KLDivergence", _LOSS_METRICS["kl_divergence"], "kl_divergence")
Hinge = _wrapper_class("Hinge", _LOSS_METRICS["hinge"], "hinge")
SquaredHinge = _wrapper_class("SquaredHinge", _LOSS_METRICS["squared_hinge"], "squared_hinge")
CategoricalHinge = _wrapper_class("CategoricalHinge", _LOSS_METRICS["categorical_hinge"], "categorical_hinge")
_FUNCTIONS = {fn.__name__: fn for fn in (
    accuracy, binary_accuracy, categorical_accuracy, sparse_categorical_accuracy, top_k_categorical_accuracy,
    sparse_top_k_categorical_accuracy, mean_absolute_error, mean_squared_error)}
_FUNCTIONS.update(_LOSS_METRICS)
_CLASSES = {c.__name__: c for c in (
    Mean, Sum, MeanMetricWrapper, Accuracy, BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy,
    TopKCategoricalAccuracy, SparseTopKCategoricalAccuracy, MeanAbsoluteError, MeanSquaredError,
    RootMeanSquaredError, Precision, Recall, AUC, FBetaScore, F1Score, MeanAbsolutePercentageError,
    MeanSquaredLogarithmicError, LogCoshError, Poisson, KLDivergence, Hinge, SquaredHinge, CategoricalHinge)}
_ALIASES = {"mse": "mean_squared_error", "mae": "mean_absolute_error", "mape": "mean_absolute_percentage_error",
            "msle": "mean_squared_logarithmic_error", "bce": "binary_crossentropy", "kld": "kl_divergence",
            "rmse": "RootMeanSquaredError", "root_mean_squared_error": "RootMeanSquaredError", "auc": "AUC",
            "precision": "Precision", "recall": "Recall", "f1_score": "F1Score", "top_k": "top_k_categorical_accuracy"}
_ALIASES.update({k.upper(): v for k, v in list(_ALIASES.items()) if len(k) <= 4})


def _loss_kind(loss: Any) -> str | None:
    """'binary', 'sparse' or 'categorical' for the cross-entropy losses (any of their forms), else None."""
    if loss is None:
        return None
    try:
        resolved = _losses.get(loss)
    except ValueError:
        return None
    fn = getattr(resolved, "fn", resolved)
    kinds = {_losses.binary_crossentropy: "binary", _losses.sparse_categorical_crossentropy: "sparse",
             _losses.categorical_crossentropy: "categorical"}
    return kinds.get(fn)


def get(identifier: Any, loss: Any = None, output_shape: tuple[int | None, ...] | None = None,
        target_shape: tuple[int | None, ...] | None = None) -> Metric | None:
    """A Metric for ``identifier`` (a name, alias, class, instance or function), as ``compile`` resolves it.

    'accuracy' / 'acc' become binary accuracy for binary_crossentropy (or a single output unit), sparse
    categorical accuracy for sparse_categorical_crossentropy (or integer targets, when ``target_shape`` says
    so), and categorical accuracy otherwise; the metric keeps the name given ('acc' reports as 'acc').

    >>> get("acc", loss="sparse_categorical_crossentropy")
    <SparseCategoricalAccuracy name='acc'>
    >>> get("accuracy", output_shape=(None, 1)).name, type(get("mae")).__name__
    ('accuracy', 'MeanMetricWrapper')
    """
    if identifier is None:
        return None
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if isinstance(identifier, dict):
        cls = _CLASSES.get(identifier.get("class_name"))
        if cls is None:
            raise ValueError(f"Could not interpret metric config {identifier}; class_name must be one of "
                             f"{sorted(_CLASSES)}")
        return cls.from_config(identifier.get("config", {}))
    if isinstance(identifier, str):
        if identifier.lower() in ("accuracy", "acc"):
            return _accuracy_for(identifier, loss, output_shape, target_shape)
        name = _ALIASES.get(identifier, identifier)
        if name in _CLASSES:
            return _CLASSES[name]()
        fn = _FUNCTIONS.get(name)
        if fn is None:
            raise ValueError(f"Unknown metric {identifier!r}; valid names: 'accuracy', 'acc', "
                             f"{sorted(_FUNCTIONS)}, {sorted(_CLASSES)} and aliases {sorted(_ALIASES)}")
        return MeanMetricWrapper(fn, name=identifier)
    if callable(identifier):  # a function, or a Loss object (named by its .name, e.g. 'mean_squared_error')
        name = getattr(identifier, "__name__", None) or getattr(identifier, "name", None)
        return MeanMetricWrapper(identifier, name=name if isinstance(name, str) else None)
    raise ValueError(f"Could not interpret metric identifier: {identifier!r}")


def _accuracy_for(name: str, loss: Any, output_shape: Any, target_shape: Any) -> Metric:
    kind = _loss_kind(loss)
    last = output_shape[-1] if output_shape else None
    if kind is None:
        sparse_target = (target_shape is not None and output_shape is not None and last not in (None, 1) and
                         (len(target_shape) < len(output_shape) or
                          (len(target_shape) == len(output_shape) and target_shape[-1] == 1)))
        kind = "binary" if last == 1 else "sparse" if sparse_target else "categorical"
    cls = {"binary": BinaryAccuracy, "sparse": SparseCategoricalAccuracy, "categorical": CategoricalAccuracy}[kind]
    return cls(name=name)


def serialize(metric: Metric) -> dict[str, Any]:
    """{'class_name', 'config'} of a built-in Metric."""
    return {"class_name": type(metric).__name__, "config": metric.get_config()}


def deserialize(config: dict[str, Any]) -> Metric:
    """The Metric described by :func:`serialize`'s dict."""
    return get(config)
