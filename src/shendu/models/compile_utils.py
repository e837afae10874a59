"""What ``compile`` resolves: the loss of every output (with its weight) and the metrics of every output.

Keras's rules: ``loss`` is one identifier for every output, or a list (by position) / dict (by output name)
with one per output; ``loss_weights`` likewise; ``metrics`` is a list applied to every output, or a list of
lists / a dict per output. Identifiers are strings, classes, instances or plain functions
``fn(y_true, y_pred)``. Metric names are the strings given ('acc' stays 'acc'), prefixed with the output
name when the model has several outputs; 'accuracy' is resolved from the loss and output shape as Keras does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shendu import backend
from shendu import losses as losses_module
from shendu import metrics as metrics_module
from shendu.autograd.tensor import Tensor


def _per_output(value: Any, output_names: list[str], what: str) -> list[Any]:
    """Spread a compile argument over the outputs: one value for all, a list by position, a dict by name."""
    n = len(output_names)
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(output_names))
        if unknown:
            raise ValueError(f"compile: {what} has keys {unknown} that are not output names; the outputs are "
                             f"{output_names}")
        return [value.get(name) for name in output_names]
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"compile: {what} is a list of {len(value)} items but the model has {n} output(s) "
                             f"{output_names}; give one per output (or a dict keyed by output name)")
        return list(value)
    return [value] * n


def _name_of(identifier: Any, resolved: Any) -> str:
    if isinstance(identifier, str):
        return identifier
    name = getattr(resolved, "name", None) or getattr(identifier, "__name__", None)
    return name or type(resolved).__name__.lower()


class CompiledLoss:
    """The total training loss: ``sum_k weight_k * loss_k(y_true_k, y_pred_k, sample_weight_k)``."""

    def __init__(self, loss: Any, loss_weights: Any, output_names: list[str]) -> None:
        self.output_names = output_names
        identifiers = _per_output(loss, output_names, "loss")
        weights = _per_output(loss_weights, output_names, "loss_weights") if loss_weights is not None \
            else [None] * len(output_names)
        self.fns = [None if ident is None else losses_module.to_loss(ident) for ident in identifiers]
        self.identifiers = identifiers
        self.weights = [1.0 if w is None else float(w) for w in weights]
        if all(fn is None for fn in self.fns):
            raise ValueError("compile: no loss given for any output; pass loss='mse' (or a dict per output)")
        self.multi = len(output_names) > 1
        self.single_fn = self.fns[0] if not self.multi and self.weights[0] == 1.0 else None
        #: Keras's per-output loss trackers ('<output>_loss'), for models with several outputs
        self.metrics = [metrics_module.Mean(name=f"{name}_loss") for name, fn in zip(output_names, self.fns)
                        if fn is not None] if self.multi else []

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Tensor:
        """The total loss; with several outputs, each output's loss also updates its tracker in ``metrics``."""
        if self.single_fn is not None:
            return self.single_fn(y_true, y_pred, sample_weight)
        ys = split_outputs(y_true, self.output_names, "y")
        preds = split_outputs(y_pred, self.output_names, "model output")
        sws = split_outputs(sample_weight, self.output_names, "sample_weight", broadcast=True)
        total = None
        parts: list[Tensor | None] = []
        for fn, w, yt, yp, sw in zip(self.fns, self.weights, ys, preds, sws):
            if fn is None or yt is None:
                parts.append(None)
                continue
            value = fn(yt, yp, sw)
            parts.append(value)
            term = value if w == 1.0 else value * w
            total = term if total is None else total + term
        if total is None:
            raise ValueError("no output received both a loss and a target y; check y against the model's outputs "
                             f"{self.output_names}")
        n = _batch_size(preds)
        trackers = iter(self.metrics)
        for fn, part in zip(self.fns, parts):
            if fn is not None and self.multi:
                tracker = next(trackers)
                if part is not None:
                    tracker.total += float(part.data) * n
                    tracker.count += n
        return total


def split_outputs(value: Any, output_names: list[str], what: str, broadcast: bool = False) -> list[Any]:
    """One entry per output from a list/tuple (by position) or dict (by name); a single value for one output."""
    n = len(output_names)
    if value is None:
        return [None] * n
    if isinstance(value, dict):
        return [value.get(name) for name in output_names]
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{what}: got {len(value)} arrays for a model with {n} output(s) {output_names}")
        return list(value)
    if n == 1 or broadcast:
        return [value] * n
    raise ValueError(f"{what}: the model has {n} outputs {output_names}; pass a list or a dict keyed by output name")


def output_names_of(y_pred: Any, default: list[str]) -> list[str]:
    """Output names from the structure of a subclassed model's output: dict keys, ``output_<i>`` for a
    list/tuple, else ``default``."""
    if isinstance(y_pred, dict):
        return list(y_pred)
    if isinstance(y_pred, (list, tuple)):
        return [f"output_{i}" for i in range(len(y_pred))]
    return default


class CompiledMetrics(metrics_module.Metric):
    """The metrics given to ``compile`` as one metric named 'compile_metrics' (Keras 3's ``CompileMetrics``):
    ``update_state(y, y_pred, sample_weight)`` updates each, ``result()`` is a dict of their results. The output
    names and the metric objects are settled at the first update (when the output shapes are known)."""

    def __init__(self, metrics: Any, weighted_metrics: Any, loss: Any = None,
                 output_names: list[str] | None = None) -> None:
        super().__init__(name="compile_metrics")
        self.identifiers = (metrics, weighted_metrics)
        self.loss = loss
        self.output_names: list[str] | None = None
        self.entries: list[tuple[int, bool, Any]] | None = None  # (output index, weighted, metric)
        self.empty = not _metric_list(metrics) and not _metric_list(weighted_metrics)  # a dict counts as given
        if output_names is not None:
            self.configure(output_names)

    def configure(self, output_names: list[str]) -> None:
        """Spread the metrics over the outputs (checks their structure against the output names)."""
        metrics, weighted = self.identifiers
        self.output_names = output_names
        self.specs = [_metric_list(m) for m in _per_output_metrics(metrics, output_names)]
        self.weighted_specs = [_metric_list(m) for m in _per_output_metrics(weighted, output_names)]
        self.loss_identifiers = _per_output(self.loss, output_names, "loss")
        self.empty = not any(self.specs) and not any(self.weighted_specs)

    @property
    def metrics(self) -> list[Any]:
        """The metric objects (empty before the first update)."""
        return [m for _, _, m in self.entries or ()]

    def build(self, y_pred_list: list[Any]) -> None:
        multi = len(self.output_names) > 1
        self.entries = []
        for weighted, specs in ((False, self.specs), (True, self.weighted_specs)):
            for k, identifiers in enumerate(specs):
                shape = tuple(y_pred_list[k].shape) if y_pred_list[k] is not None else None
                for ident in identifiers:
                    metric = metrics_module.get(ident, loss=self.loss_identifiers[k], output_shape=shape)
                    name = _name_of(ident, metric)
                    if multi:
                        name = f"{self.output_names[k]}_{name}"
                    if weighted and not multi and any(_name_of(i, None) == name for i in self.specs[k]):
                        name = f"weighted_{name}"
                    if getattr(metric, "name", None) != name:
                        try:
                            metric.name = name
                        except AttributeError:
                            pass
                    self.entries.append((k, weighted, metric))

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        if self.output_names is None:
            self.configure(output_names_of(y_pred, ["output"]))
        if self.empty:
            return
        preds = [_numpy(p) for p in split_outputs(y_pred, self.output_names, "model output")]
        if self.entries is None:
            self.build(preds)
        ys = split_outputs(y_true, self.output_names, "y")
        sws = split_outputs(sample_weight, self.output_names, "sample_weight", broadcast=True)
        for k, weighted, metric in self.entries:
            if ys[k] is not None:
                metric.update_state(_numpy(ys[k]), preds[k], _numpy(sws[k]) if weighted else None)

    def result(self) -> dict[str, Any]:
        return {m.name: m.result() for _, _, m in self.entries or ()}

    def reset_state(self) -> None:
        for _, _, metric in self.entries or ():
            metric.reset_state()


def _per_output_metrics(metrics: Any, output_names: list[str]) -> list[Any]:
    if metrics is None:
        return [[] for _ in output_names]
    if isinstance(metrics, dict):
        return _per_output(metrics, output_names, "metrics")
    if isinstance(metrics, (list, tuple)) and metrics and all(isinstance(m, (list, tuple)) or m is None
                                                              for m in metrics):
        if len(metrics) != len(output_names):
            raise ValueError(f"compile: metrics is a list of {len(metrics)} lists but the model has "
                             f"{len(output_names)} outputs {output_names}")
        return list(metrics)
    if not isinstance(metrics, (list, tuple)):
        raise TypeError(f"compile: metrics must be a list (e.g. metrics=['accuracy']) or a dict per output, "
                        f"got {type(metrics).__name__}")
    return [list(metrics) for _ in output_names]


def _metric_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _batch_size(preds: list[Any]) -> int:
    for p in preds:
        if p is not None and getattr(p, "ndim", 0):
            return int(p.shape[0])
    return 1


def _numpy(x: Any) -> Any:
    if isinstance(x, Tensor):
        x = x.data
    return x if x is None or isinstance(x, np.ndarray) else backend.to_numpy(x)
