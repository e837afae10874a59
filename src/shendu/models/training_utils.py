"""What ``Model``'s compile/fit/evaluate/predict are made of: the training state kept between steps (loss tracker,
compiled loss and metrics), the epoch loops of ``fit`` and ``evaluate``, the step function (built-in or a user's
``train_step``/``test_step``), Keras 3's log handling, and small helpers (argument checks, batch sizes,
conversions, the validation schedule, joining predictions)."""

from __future__ import annotations

import copy
import functools
import inspect
from typing import Any, Callable

import numpy as np

from shendu import backend
from shendu.autograd.grad_mode import no_grad
from shendu.autograd.tensor import Parameter, Tensor
from shendu.layers.tracking import structure_version
from shendu.metrics import Mean, Metric
from shendu.models.compile_utils import CompiledLoss, CompiledMetrics
from shendu.models.data_adapter import EpochIterator, check_data, flatten
from shendu.models.step_plan import StepPlans
from shendu.utils.batches import pack_x_y_sample_weight


class TrainingState:
    """What compile/fit keep between steps (a plain object, so the Layer registry does not walk it): Keras 3's loss
    tracker (a ``Mean`` named 'loss', weighted by batch size), the compiled loss (with its per-output trackers) and
    the compiled metrics (one ``CompiledMetrics`` named 'compile_metrics')."""

    def __init__(self) -> None:
        self.loss_identifier: Any = None
        self.loss_weights: Any = None
        self.metric_identifiers: tuple[Any, Any] = (None, None)
        self.compiled_loss: CompiledLoss | None = None
        self.compiled_metrics: CompiledMetrics | None = None
        self.loss_tracker: Mean | None = None
        self.resolved = False  # the loss and metrics are spread over the output names
        self.optimizer_ready = False
        self.output_names: list[str] | None = None
        self.distribution: Any = None  # the DataParallel of the fit/evaluate running now (None: one process)
        self.distribution_ready = False  # weights and optimiser state broadcast from rank 0 in this fit
        self.metrics_cache: tuple[int, list[Any]] | None = None  # (structure version, metrics held by the layers)
        self.plans = StepPlans()  # the built-in step recorded per batch shape, replayed (models/step_plan.py)

    def configure(self, loss: Any, loss_weights: Any, metrics: Any, weighted_metrics: Any) -> None:
        """What ``compile`` was given; the per-output parts are settled by :meth:`resolve`."""
        self.loss_identifier, self.loss_weights = loss, loss_weights
        self.metric_identifiers = (metrics, weighted_metrics)
        self.loss_tracker = Mean(name="loss")
        self.reset_compiled()

    def resolve(self, output_names: list[str]) -> None:
        """Spread the loss and the metrics over the outputs (at compile, or at the first batch)."""
        if self.loss_identifier is not None:
            self.compiled_loss = CompiledLoss(self.loss_identifier, self.loss_weights, output_names)
        if self.compiled_metrics is not None and self.compiled_metrics.output_names is None:
            self.compiled_metrics.configure(output_names)
        self.resolved = True

    def reset_compiled(self) -> None:
        """Forget what depends on the layers (after add/pop): resolved again at the next batch."""
        metrics, weighted = self.metric_identifiers
        self.compiled_loss = None
        self.compiled_metrics = None if metrics is None and weighted is None else CompiledMetrics(
            metrics, weighted, loss=self.loss_identifier)
        self.resolved = False
        self.optimizer_ready = False
        self.plans.reset()

    def track_loss(self, loss: Any, x: Any) -> None:
        """Add a batch's loss to the 'loss' tracker, weighted by the batch size (as Keras 3)."""
        n = x.shape[0] if type(x) is np.ndarray else (batch_size_of(x) if x is not None else 1)
        tracker = self.loss_tracker
        if tracker is not None:
            tracker.total += float(loss.data if isinstance(loss, Tensor) else loss) * n
            tracker.count += n


    def metrics(self, model: Any, model_cls: type) -> list[Any]:
        """A compiled model's ``metrics`` in Keras 3's order: the loss tracker, the compiled metrics, the per-output
        loss trackers, then the metrics its layers hold (that walk cached until the layer tree changes)."""
        out: list[Any] = [self.loss_tracker]
        if self.compiled_metrics is not None:
            out.append(self.compiled_metrics)
        if self.compiled_loss is not None:
            out.extend(self.compiled_loss.metrics)
        version = structure_version()
        if self.metrics_cache is None or self.metrics_cache[0] != version:
            self.metrics_cache = (version, tracked_metrics(model, model_cls))
        return out + self.metrics_cache[1]


def metrics_result(metrics: list[Any]) -> dict[str, Any]:
    """Keras 3's ``get_metrics_result``: each metric's result by name (a dict result merged in), pythonified."""
    logs: dict[str, Any] = {}
    for metric in metrics:
        result = metric.result()
        if isinstance(result, dict):
            logs.update(result)
        else:
            logs[metric.name] = result
    return pythonify_logs(logs)


def step_function(custom: Callable[[Any], Any] | None, built_in: Callable[..., Any]) -> Callable[[tuple], Any]:
    """What the loops call on each ``(x, y, sample_weight)`` batch: an overridden ``train_step``/``test_step``
    (``custom``) gets the data packed as the user passed it (Keras's ``pack_x_y_sample_weight``); else the built-in
    step runs on the three parts. Logs come back pythonified, or None (then read lazily from the metrics)."""
    if custom is None:
        def run_built_in(batch: tuple) -> dict[str, Any] | None:
            logs = built_in(*batch)
            return None if logs is None else pythonify_logs(logs)

        return run_built_in

    def run_custom(batch: tuple) -> dict[str, Any] | None:
        logs = custom(pack_x_y_sample_weight(*batch))
        return pythonify_logs(logs) if isinstance(logs, dict) else None

    return run_custom


def tracked_metrics(model: Any, model_cls: type) -> list[Any]:
    """The metrics held as attributes by ``model`` and its layers (Keras 3 reports them in the logs): the model's
    own first, then each sublayer's in depth-first order; nested models (``model_cls``) keep theirs."""
    found: list[Any] = []
    seen: set[int] = set()
    stack = [model]
    visited: set[int] = set()
    while stack:
        layer = stack.pop()
        if id(layer) in visited:
            continue
        visited.add(id(layer))
        if layer is model or not isinstance(layer, model_cls):
            for value in vars(layer).values():
                for item in (value if isinstance(value, (list, tuple)) else (value,)):
                    if isinstance(item, Metric) and id(item) not in seen:
                        seen.add(id(item))
                        found.append(item)
            stack.extend(reversed(list(layer.children())))
    return found


def metric_states(metrics: list[Any]) -> list[tuple[Any, dict[str, Any], list[Any]]]:
    """What ``metrics`` (and the metrics they hold) hold now, for :func:`restore_metric_states`: their plain
    attributes (copied) and their variables' values."""
    states = []
    for m in metrics:
        attrs = {k: copy.deepcopy(v) for k, v in vars(m).items() if not isinstance(v, (Parameter, Metric, list))}
        states.append((m, attrs, [v.data.copy() for v in m.variables]))
        states.extend(metric_states([v for v in vars(m).values() if isinstance(v, Metric) and v is not m]))
    return states


def restore_metric_states(states: list[tuple[Any, dict[str, Any], list[Any]]]) -> None:
    """Put back what :func:`metric_states` saw (variables written in place, so references to them stay valid)."""
    for m, attrs, values in states:
        m.__dict__.update(attrs)
        for variable, value in zip(m.variables, values):
            variable.data[...] = value


def leaf_metrics(metrics: list[Any]) -> list[Any]:
    """``metrics`` with the compiled-metrics container replaced by the metrics it holds."""
    out: list[Any] = []
    for m in metrics:
        out.extend(m.metrics if isinstance(m, CompiledMetrics) else [m])
    return out


def metric_names_in_order(metrics: list[Any]) -> list[str]:
    """The names evaluate's list follows (Keras 3's order): the loss, the per-output losses, the compiled metrics,
    then the others."""
    first = [m.name for m in metrics if m.name == "loss" and isinstance(m, Mean)][:1]
    losses = [m.name for m in metrics if m.name.endswith("_loss") and isinstance(m, Mean)]
    names = first + losses
    for m in leaf_metrics(metrics):
        if m.name not in names:
            names.append(m.name)
    return names


def pythonify_logs(logs: dict[str, Any]) -> dict[str, Any]:
    """Keras's ``pythonify_logs``: nested dicts flattened, keys sorted, scalars (Tensors, arrays) as floats."""
    out: dict[str, Any] = {}
    for key, value in sorted(logs.items()):
        if type(value) is float:  # the common case, kept cheap: the loggers ask for logs after every batch
            out[key] = value
            continue
        if isinstance(value, dict):
            out.update(pythonify_logs(value))
            continue
        if isinstance(value, Tensor):
            value = backend.to_numpy(value.data)
        if isinstance(value, (np.ndarray, np.generic, int, float)) and np.ndim(value) == 0:
            value = float(value)
        out[key] = value
    return out


@functools.cache  # called per step with a class's function: inspect.signature runs once per override
def accepts_training(fn: Any) -> bool:
    """Whether ``fn`` takes a ``training`` argument (``compute_loss`` overrides written before Keras 3.3 do not)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return True
    return "training" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def reject_unknown(method: str, kwargs: dict[str, Any], valid: tuple[str, ...]) -> None:
    if kwargs:
        raise TypeError(f"{method}() got unexpected keyword argument(s) {sorted(kwargs)}; "
                        f"valid arguments are: {', '.join(valid)}")


def verbosity(verbose: Any) -> int:
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2, True, False):
        raise ValueError(f"verbose must be 'auto', 0, 1 or 2, got {verbose!r}")
    return int(verbose)


def batch_size_of(x: Any) -> int:
    if isinstance(x, (np.ndarray, Tensor)):
        return x.shape[0]
    leaves = flatten(x)
    return leaves[0].shape[0] if leaves and hasattr(leaves[0], "shape") else len(leaves[0])


def to_numpy(y: Any) -> Any:
    if isinstance(y, Tensor):
        return backend.to_numpy(y.data)
    if isinstance(y, dict):
        return {k: to_numpy(v) for k, v in y.items()}
    if isinstance(y, (list, tuple)):
        return [to_numpy(v) for v in y]
    return y


def optimizer_params(opt: Any) -> list[Any]:
    groups = getattr(opt, "param_groups", None)
    if groups is not None:
        return [p for g in groups for p in g.get("params", ())]
    return list(getattr(opt, "params", None) or ())


def no_batches(caller: str) -> ValueError:
    return ValueError(f"{caller}: the data produced no batches (a generator or loader that yielded nothing: 0 "
                      "samples), so there is no loss to report. Pass data with at least one sample; a generator "
                      "must yield (x, y) batches (and repeat itself when steps_per_epoch spans several epochs).")


def should_validate(epoch: int, freq: int | list[int]) -> bool:
    if isinstance(freq, int):
        return (epoch + 1) % freq == 0
    if isinstance(freq, (list, tuple, set)):
        return (epoch + 1) in freq
    raise ValueError(f"validation_freq must be an int or a list of epochs (1-based), got {freq!r}")


def is_shape(x: Any) -> bool:
    return isinstance(x, tuple) and all(d is None or isinstance(d, int) for d in x)


def concat(chunks: list[Any]) -> Any:
    first = chunks[0]
    if isinstance(first, dict):
        return {k: np.concatenate([c[k] for c in chunks]) for k in first}
    if isinstance(first, list):
        return [np.concatenate([c[i] for c in chunks]) for i in range(len(first))]
    return np.concatenate(chunks)


def prepare_distributed(model: Any, dist: Any, x: Any) -> None:
    """Before the first distributed step: build the weights (from this batch's shapes), attach the optimiser,
    check every rank built the same model, and broadcast rank 0's weights and optimiser state."""
    if not model.built or not model.weights:
        with no_grad():
            model(x, training=False)
    if not model._train.optimizer_ready:
        model._attach_optimizer()
    dist.prepare_model(model)
    model._train.distribution_ready = True


def fit_epochs(model: Any, callbacks: Any, iterator: EpochIterator, val_iterator: EpochIterator | None, start: int,
               epochs: int, validation_freq: Any, begin_listeners: bool, end_listeners: bool,
               agree_each_batch: bool = False) -> dict[str, Any]:
    """The epochs of ``Model.fit`` (one loop: the rest is callbacks); returns the last epoch's logs. Per-batch
    hooks are called only when some callback listens (``begin_listeners``/``end_listeners``)."""
    step_fn = model._step_function("train")
    dist = model._train.distribution
    epoch_logs: dict[str, Any] = {}
    for epoch in range(start, epochs):
        model.reset_metrics()
        callbacks.on_epoch_begin(epoch)
        logs = None
        step = -1
        for step, batch in iterator:
            if begin_listeners:
                callbacks.on_train_batch_begin(step)
            logs = step_fn(batch)
            if end_listeners:
                callbacks.on_train_batch_end(step, logs if logs is not None else model.get_metrics_result())
            if agree_each_batch:  # a batch callback may stop: every rank leaves at the same step
                model.stop_training = dist.agree(model.stop_training)
            if model.stop_training:
                break
        if step < 0 and epoch == start:
            raise no_batches("fit")
        if dist is not None:  # per-rank buffers (BatchNormalization's moving statistics): rank 0's, as
            dist.broadcast_parameters(model.non_trainable_weights)  # PyTorch DDP's broadcast_buffers
        epoch_logs = model._final_logs(logs)
        if val_iterator is not None and should_validate(epoch, validation_freq):
            val_logs = evaluate_batches(model, val_iterator, callbacks)
            epoch_logs.update({f"val_{k}": v for k, v in val_logs.items()})
        callbacks.on_epoch_end(epoch, epoch_logs)
        if dist is not None:  # EarlyStopping and friends: rank 0's decision holds on every rank
            model.stop_training = dist.agree(model.stop_training)
        if model.stop_training:
            break
    return epoch_logs


def evaluate_batches(model: Any, iterator: EpochIterator, callbacks: Any, caller: str | None = None) -> dict[str, Any]:
    """Run the test step over the iterator with the ``on_test_*`` hooks; returns the logs. With ``caller``, no batch
    at all is an error."""
    model.reset_metrics()
    callbacks.on_test_begin()
    end_listeners = callbacks.listens("on_test_batch_end")
    begin_listeners = callbacks.listens("on_test_batch_begin")
    step_fn = model._step_function("test")
    logs = None
    step = -1
    with no_grad():
        for step, batch in iterator:
            if begin_listeners:
                callbacks.on_test_batch_begin(step)
            logs = step_fn(batch)
            if end_listeners:
                callbacks.on_test_batch_end(step, logs if logs is not None else model.get_metrics_result())
    if step < 0 and caller is not None:
        raise no_batches(caller)
    logs = model._final_logs(logs)
    callbacks.on_test_end(logs)
    return logs


def one_batch(x: Any, y: Any, sample_weight: Any, class_weight: Any, float_dtype: Any, caller: str) -> tuple:
    """``(x, y, sample_weight)`` of exactly the data given (``train_on_batch``/``test_on_batch``), checked and cast
    as ``fit`` does."""
    check_data(caller, x=x, y=y, sample_weight=sample_weight)  # before the batch size is read from x
    size = batch_size_of(x) if flatten(x) else 1
    it = EpochIterator(x, y, sample_weight, max(size, 1), False, None, class_weight, float_dtype, caller=caller)
    return next(iter(it))[1]


def flatten_logs(logs: dict[str, Any], names: list[str]) -> Any:
    """``evaluate``'s list: the values in the order of ``names``, then the other keys sorted; one value alone."""
    order = [k for k in names if k in logs] + sorted(k for k in logs if k not in names)
    values = [logs[k] for k in order]
    return values[0] if len(values) == 1 else values
