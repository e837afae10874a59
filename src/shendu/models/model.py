"""``Model``: a Layer that trains. Keras's ``compile``/``fit``/``evaluate``/``predict`` on shendu's autograd.

Three ways to make one, as in Keras:

* functional: ``Model(inputs, outputs)`` from ``Input`` and layer calls (several inputs/outputs, shared layers);
* ``Sequential([...])`` (see ``sequential.py``);
* subclassing: define layers in ``__init__`` and the forward pass in ``call(inputs, training=None)``.

A model is also an ordinary callable: ``model(x)`` returns a Tensor, ``model.parameters()`` feeds a
PyTorch-style optimiser loop.

``fit`` is one short loop (``training_utils.fit_epochs``); everything else (history, progress bar, early
stopping, checkpoints) is a callback. The built-in step on a batch ``(x, y, sample_weight)``::

    y_pred = model(x, training=True)
    loss = model.compute_loss(x, y, y_pred, sample_weight)   # compiled loss + sum(model.losses)
    loss.backward(); optimizer.step(); optimizer.zero_grad()

For a Sequential or functional model of known-pure layers, ``fit`` records the ops of that step once per batch
shape and replays their forward and backward directly on arrays for the next batches (bit-identical, about a
quarter less time per step for small models; see ``step_plan.py`` for when it applies; ``SHENDU_STEP_PLAN=0``).

As in Keras 3, an overridden ``train_step(data)``/``test_step(data)`` receives the data as the user passed it
(``x``, ``(x, y)`` or ``(x, y, sample_weight)``) and returns its logs; ``metrics`` lists the loss tracker, the
compiled metrics and the metrics held by the model and its layers (Keras 3's guide "Customizing what happens in
fit()" runs unchanged but for ``v.grad`` in place of ``v.value.grad``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shendu import distribute, optimizers, saving
from shendu.autograd.grad_mode import no_grad
from shendu.autograd.tensor import Tensor
from shendu.callbacks import CallbackList, History
from shendu.export import EXPORT_FORMATS, export_onnx
from shendu.layers.config import with_constructor_arguments
from shendu.layers.layer import Layer, unique_name
from shendu.metrics import Metric
from shendu.models.compile_utils import output_names_of
from shendu.models.data_adapter import EpochIterator, train_validation_split, unpack_batch
from shendu.models.functional import FunctionalGraph, graph_config, graph_from_config, is_graph_config
from shendu.models.summary import print_summary
from shendu.models.training_utils import (
    TrainingState,
    accepts_training,
    batch_size_of,
    concat,
    evaluate_batches,
    fit_epochs,
    flatten_logs,
    is_shape,
    leaf_metrics,
    metric_names_in_order,
    metric_states,
    metrics_result,
    one_batch,
    optimizer_params,
    prepare_distributed,
    reject_unknown,
    restore_metric_states,
    step_function,
    to_numpy,
    tracked_metrics,
    verbosity,
)
from shendu.utils.batches import pack_x_y_sample_weight, unpack_x_y_sample_weight

_FIT_ARGS = ("x", "y", "batch_size", "epochs", "verbose", "callbacks", "validation_split", "validation_data",
             "shuffle", "class_weight", "sample_weight", "initial_epoch", "steps_per_epoch", "validation_steps",
             "validation_batch_size", "validation_freq")


def _first_float_dtype(layer: Any) -> Any:
    """The dtype of the first float weight in ``layer.weights`` order (its own weights, then each sublayer's),
    found without listing them all: ``train_on_batch`` asks once per batch."""
    for p in layer._own_params():
        if p.data.dtype.kind == "f":
            return p.data.dtype
    for sublayer in layer._sublayers():
        dtype = _first_float_dtype(sublayer)
        if dtype is not None:
            return dtype
    return None


class Model(Layer):
    """A trainable network (see the module docstring). ``Model(inputs, outputs, name=None)`` is functional."""

    _autocast_floats = False  # float inputs pass on unchanged: each layer casts them to its own dtype (Keras)
    _attributes_change_maths = False  # stop_training, history, ...: the layers' attributes are what step plans watch

    def __init__(self, inputs: Any = None, outputs: Any = None, name: str | None = None, **kwargs: Any) -> None:
        if name is None and inputs is not None and type(self) is Model:
            name = unique_name("functional")  # Keras 3's default name for functional models
        super().__init__(name=name, **kwargs)
        self.optimizer: Any = None
        self.compiled = False
        self.stop_training = False
        self.history: History | None = None
        self._initial_epoch: int | None = None
        self._train = TrainingState()
        self._graph: FunctionalGraph | None = None
        if inputs is not None or outputs is not None:
            if inputs is None or outputs is None:
                raise ValueError("Model(inputs, outputs): a functional model needs both inputs and outputs")
            self._graph = FunctionalGraph(inputs, outputs)
            self._graph_layers = self._graph.layers  # tracked: the graph's layers own the weights
            shapes = [t.shape for t in self._graph.input_list]
            object.__setattr__(self, "_build_input_shape", shapes[0] if len(shapes) == 1 else shapes)
            self.built = True

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, Metric) and "_train" in self.__dict__:  # a new tracker: list the metrics afresh
            self._train.metrics_cache = None
        super().__setattr__(name, value)

    # ------------------------------------------------------------------ forward
    def call(self, inputs: Any, training: bool | None = None) -> Any:
        """The forward pass: the functional graph here; subclassed models override it."""
        if self._graph is None:
            raise NotImplementedError(f"model '{self.name}': a subclassed Model must define call(inputs), or build "
                                      "it functionally with Model(inputs, outputs)")
        return self._graph.run(inputs, training)

    def build(self, input_shape: Any = None) -> None:
        """Build a subclassed model by running it once on zeros of ``input_shape`` (batch axis None); the metrics its
        layers hold keep their state (that trial call is not counted, as in Keras)."""
        if self._graph is not None or input_shape is None or self.__dict__.get("_building"):
            return
        object.__setattr__(self, "_building", True)
        states = metric_states(tracked_metrics(self, Model))
        try:
            def zeros(shapes: Any) -> Any:  # one shape, a list of shapes, or a dict of them (named inputs)
                if is_shape(shapes):
                    return Tensor._wrap(np.zeros(tuple(1 if d is None else d for d in shapes), dtype=self._dtype))
                if isinstance(shapes, dict):
                    return {key: zeros(shape) for key, shape in shapes.items()}
                return [zeros(shape) for shape in shapes]

            with no_grad():
                self.call(zeros(input_shape))
        finally:
            restore_metric_states(states)
            object.__setattr__(self, "_building", False)

    @property
    def layers(self) -> list[Layer]:
        """The layers: the graph's (Inputs first) for a functional model, else the direct sublayers."""
        if self._graph is not None:
            return list(self._graph.layers)
        return self._sublayers()

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        """A layer by name or by index in ``layers``."""
        layers = self.layers
        if index is not None:
            return layers[index]
        for layer in layers:
            if layer.name == name:
                return layer
        raise ValueError(f"model '{self.name}' has no layer named {name!r}; layers: {[lyr.name for lyr in layers]}")

    @property
    def inputs(self) -> Any:
        return None if self._graph is None else self._graph.inputs

    @property
    def outputs(self) -> Any:
        return None if self._graph is None else self._graph.outputs

    @property
    def output_names(self) -> list[str]:
        """Names used for multi-output losses, metrics and logs (the output layers' names)."""
        if self._graph is not None:
            return self._graph.output_names
        return self._train.output_names or ["output"]

    # ------------------------------------------------------------------ compile
    def compile(self, optimizer: Any = "rmsprop", loss: Any = None, loss_weights: Any = None, metrics: Any = None,
                weighted_metrics: Any = None, run_eagerly: bool = False, steps_per_execution: int = 1,
                jit_compile: Any = "auto", auto_scale_loss: bool = True, **kwargs: Any) -> None:
        """Configure training: ``optimizer`` (string, class or instance), ``loss`` (string, class, instance or
        function; a list/dict for several outputs; None to train on ``add_loss`` losses alone), ``metrics`` and
        ``loss_weights`` as in Keras. (``run_eagerly``, ``jit_compile``, ``steps_per_execution`` and
        ``auto_scale_loss`` are accepted for Keras compatibility; shendu always runs eagerly, one step at a time.)"""
        reject_unknown("compile", kwargs, ("optimizer", "loss", "loss_weights", "metrics", "weighted_metrics",
                                           "run_eagerly", "steps_per_execution", "jit_compile", "auto_scale_loss"))
        if isinstance(optimizer, type):
            optimizer = optimizer()
        self.optimizer = optimizers.get(optimizer)
        self._train.configure(loss, loss_weights, metrics, weighted_metrics)
        self.compiled = True
        if self._graph is not None or self.built:
            self._resolve_compiled()

    def _resolve_compiled(self, y_pred: Any = None) -> None:
        """Resolve losses and metrics per output (needs the output names: at compile or at the first batch)."""
        names = self.output_names
        if self._graph is None and y_pred is not None and isinstance(y_pred, (list, tuple, dict)):
            names = output_names_of(y_pred, names)
            self._train.output_names = names
        self._train.resolve(names)

    def _assert_compiled(self, method: str) -> None:
        if not self.compiled:
            raise RuntimeError(f"model '{self.name}': call compile(optimizer=..., loss=...) before {method}()")

    # ------------------------------------------------------------------ metrics
    @property
    def metrics(self) -> list[Any]:
        """Keras 3's list: the loss tracker ('loss'), the compiled metrics (one 'compile_metrics' object whose
        ``result()`` is a dict), the per-output loss trackers, then the metrics held as attributes by the model and
        its layers. Override it to list your own trackers (they are then reset each epoch)."""
        return self._train.metrics(self, Model) if self.compiled else tracked_metrics(self, Model)

    @property
    def metrics_names(self) -> list[str]:
        """The names of the logs, in the order ``evaluate`` lists them: 'loss', the per-output losses, the compiled
        metrics, then the other metrics."""
        return metric_names_in_order(self.metrics)

    def reset_metrics(self) -> None:
        """Reset every metric in ``metrics`` (``fit`` and ``evaluate`` call it at the start of each epoch)."""
        for metric in self.metrics:
            metric.reset_state()

    def get_metrics_result(self) -> dict[str, Any]:
        """The results of ``metrics`` as the logs ``fit`` reports: a dict result (the compiled metrics) merged in,
        keys sorted and values as Python floats, as Keras 3 does."""
        return metrics_result(self.metrics)

    # ------------------------------------------------------------------ one step
    def compute_loss(self, x: Any = None, y: Any = None, y_pred: Any = None, sample_weight: Any = None,
                     training: bool = True) -> Tensor:
        """The compiled loss plus the losses of ``self.losses`` (regularisers, ``add_loss``). Keras 3's signature:
        override it (``super()`` not required); the step adds what it returns to the 'loss' tracker."""
        if not self._train.resolved:
            self._resolve_compiled(y_pred)
        loss = None
        if self._train.compiled_loss is not None:
            if y is None:
                raise ValueError(f"model '{self.name}': training and evaluation need targets y (fit(x, y), or "
                                 "batches (x, y) from the generator/loader)")
            loss = self._train.compiled_loss(y, y_pred, sample_weight)
        for extra in self.losses:  # weight penalties and the losses added in this forward pass
            loss = extra if loss is None else loss + extra
        if loss is None:
            raise ValueError(f"model '{self.name}': no loss to compute; pass loss=... to compile() (or add losses "
                             "with add_loss)")
        return loss

    def compute_metrics(self, x: Any, y: Any, y_pred: Any, sample_weight: Any = None) -> dict[str, Any]:
        """Update the compiled metrics with this batch and return ``get_metrics_result()`` (Keras 3)."""
        self._update_compiled_metrics(y, y_pred, sample_weight)
        return self.get_metrics_result()

    def _update_compiled_metrics(self, y: Any, y_pred: Any, sample_weight: Any) -> None:
        if not self._train.resolved:
            self._resolve_compiled(y_pred)
        cm = self._train.compiled_metrics
        if cm is not None and not cm.empty:
            cm.update_state(y, y_pred, sample_weight)

    def _step_metrics(self, x: Any, y: Any, y_pred: Any, sample_weight: Any) -> dict[str, Any] | None:
        """An overridden ``compute_metrics`` gives the step's logs; else None (logs are read lazily)."""
        if type(self).compute_metrics is not Model.compute_metrics:
            return self.compute_metrics(x, y, y_pred, sample_weight)
        self._update_compiled_metrics(y, y_pred, sample_weight)
        return None

    def _attach_optimizer(self) -> None:
        """Give the optimiser the model's trainable weights, unless it was created with some of them
        (PyTorch style, e.g. to train only part of the model)."""
        opt = self.optimizer
        mine = self.trainable_weights
        attached = {id(p) for p in optimizer_params(opt)}
        if not any(id(p) in attached for p in mine):  # a fresh optimiser, or one used with another model
            opt.add_params(mine)
        self._train.optimizer_ready = True

    def train_step(self, data: Any) -> dict[str, Any]:
        """One optimisation step on ``data`` as given to ``fit``: ``x``, ``(x, y)`` or ``(x, y, sample_weight)``;
        returns the logs (Keras 3). Override it to customise training."""
        logs = self._train_batch(*unpack_x_y_sample_weight(data))
        return logs if logs is not None else self.get_metrics_result()

    def _train_batch(self, x: Any, y: Any, sample_weight: Any) -> dict[str, Any] | None:
        """The built-in step (None unless ``compute_metrics`` is overridden: logs are then read lazily). Under a
        distribution the gradients are averaged over the ranks between backward and the step."""
        dist = self._train.distribution
        if dist is not None:
            if not self._train.distribution_ready:
                prepare_distributed(self, dist, x)
            if batch_size_of(x) == 0:  # an empty shard (a last batch smaller than the ranks): take part only
                dist.allreduce_gradients(optimizer_params(self.optimizer), 0)
                self.optimizer.step()
                self.optimizer.zero_grad()
                return None
        plans = self._train.plans  # the step recorded once per batch shape, then replayed (models/step_plan.py)
        key, plan = plans.lookup(self, Model, x, y, sample_weight) if dist is None else (None, None)
        if plan:
            y_pred, loss = plan.run(x, y, sample_weight)
        else:
            recording = key is not None and plan is False  # the first batch of these shapes
            with plans.recording(recording) as recorder:
                y_pred = self(x, training=True)
                loss = self._compute_loss(x, y, y_pred, sample_weight, True)
            if recording:
                plans.keep(key, recorder, self, x, y, sample_weight, y_pred, loss)
            loss.backward()
        self._train.track_loss(loss, x)
        if not self._train.optimizer_ready:  # after the first forward pass, which builds the weights
            self._attach_optimizer()
        if dist is not None:
            dist.allreduce_gradients(optimizer_params(self.optimizer), batch_size_of(x))
        self.optimizer.step()
        self.optimizer.zero_grad()
        return self._step_metrics(x, y, y_pred, sample_weight)

    def _compute_loss(self, x: Any, y: Any, y_pred: Any, sample_weight: Any, training: bool) -> Tensor:
        """``compute_loss`` called as Keras 3 calls it (an override without ``training`` still works)."""
        if type(self).compute_loss is Model.compute_loss or accepts_training(type(self).compute_loss):
            return self.compute_loss(x, y, y_pred, sample_weight, training=training)
        return self.compute_loss(x, y, y_pred, sample_weight)

    def _reduce_over_ranks(self) -> None:
        """Sum the metric states (the loss tracker's included) over the ranks: the logs then cover all shards."""
        if self._train.distribution is not None:
            self._train.distribution.reduce_metrics(leaf_metrics(self.metrics))

    def test_step(self, data: Any) -> dict[str, Any]:
        """The loss and metrics on ``data`` (``x``, ``(x, y)`` or ``(x, y, sample_weight)``); returns the logs."""
        logs = self._test_batch(*unpack_x_y_sample_weight(data))
        return logs if logs is not None else self.get_metrics_result()

    def _test_batch(self, x: Any, y: Any, sample_weight: Any) -> dict[str, Any] | None:
        if self._train.distribution is not None and batch_size_of(x) == 0:  # an empty shard: nothing to add
            return None
        y_pred = self(x, training=False)
        self._train.track_loss(self._compute_loss(x, y, y_pred, sample_weight, False), x)
        return self._step_metrics(x, y, y_pred, sample_weight)

    def predict_step(self, data: Any) -> Any:
        """The outputs on ``data`` (``x``, or ``(x,)`` when x is a tuple of inputs)."""
        x, _, _ = unpack_x_y_sample_weight(data)
        return self(x, training=False)

    # ------------------------------------------------------------------ fit / evaluate / predict
    def _float_dtype(self) -> Any:
        """The dtype float inputs are cast to once, up front (the weights' dtype; None before the model is built:
        each layer then casts what it receives)."""
        return _first_float_dtype(self)

    def fit(self, x: Any = None, y: Any = None, batch_size: int | None = None, epochs: int = 1,
            verbose: Any = "auto", callbacks: Any = None, validation_split: float = 0.0, validation_data: Any = None,
            shuffle: bool | str = True, class_weight: dict | None = None, sample_weight: Any = None,
            initial_epoch: int = 0, steps_per_epoch: int | None = None, validation_steps: int | None = None,
            validation_batch_size: int | None = None, validation_freq: int | list[int] = 1,
            **kwargs: Any) -> History:
        """Train for ``epochs`` epochs (Keras semantics: ``validation_split`` takes the last fraction of the
        data before shuffling; ``shuffle`` reshuffles each epoch; the last partial batch is kept).
        Returns the ``History`` (``history.history['loss']``, ``['val_loss']``, metrics...)."""
        reject_unknown("fit", kwargs, _FIT_ARGS)
        self._assert_compiled("fit")
        verbose = verbosity(verbose)
        dist = distribute.active()  # data parallel over ranks (shendu.distribute); None in one process
        if dist is not None and not dist.is_chief:
            verbose = 0  # only rank 0 prints
        if class_weight is not None and sample_weight is not None:
            raise ValueError("fit: give sample_weight or class_weight, not both")
        if validation_split and validation_data is None:
            (x, y, sample_weight), validation_data = train_validation_split(x, y, sample_weight, validation_split)
        dtype = self._float_dtype()
        iterator = EpochIterator(x, y, sample_weight, batch_size, shuffle, steps_per_epoch, class_weight, dtype,
                                 shard=dist)
        val_iterator = None
        if validation_data is not None:
            val_x, val_y, val_sw = (unpack_batch(tuple(validation_data)) if isinstance(validation_data, (tuple, list))
                                    else (validation_data, None, None))
            val_iterator = EpochIterator(val_x, val_y, val_sw, validation_batch_size or batch_size, False,
                                         validation_steps, None, dtype, caller="fit (validation_data)", shard=dist)
        callbacks = self._callback_list(callbacks, verbose, epochs, iterator.num_batches, add_history=True)
        self.stop_training = False
        begin_listeners = callbacks.listens("on_train_batch_begin")
        end_listeners = callbacks.listens("on_train_batch_end")
        callbacks.on_train_begin()
        start = self._initial_epoch if self._initial_epoch is not None else initial_epoch
        self._initial_epoch = None
        self._train.distribution, self._train.distribution_ready = dist, False
        agree_each_batch = False
        if dist is not None:  # rank 0's resume point and random state (so all ranks shuffle alike)
            start = dist.comm.broadcast_object(start)
            dist.sync_random_state()
            # batch callbacks differ between ranks (rank 0 alone has the progress bar): agree after every batch
            # when any rank listens, so every rank makes the same collective calls
            agree_each_batch = dist.allreduce(float(end_listeners), average=False) > 0
        try:
            epoch_logs = fit_epochs(self, callbacks, iterator, val_iterator, start, epochs, validation_freq,
                                    begin_listeners, end_listeners, agree_each_batch)
        finally:
            self._train.distribution = None
        callbacks.on_train_end(epoch_logs)
        if callbacks.history is not None:
            self.history = callbacks.history
        return self.history

    def _step_function(self, mode: str) -> Any:
        """What the loops call on each ``(x, y, sample_weight)`` batch (see :func:`step_function`)."""
        custom = getattr(type(self), f"{mode}_step") is not getattr(Model, f"{mode}_step")
        return step_function(getattr(self, f"{mode}_step") if custom else None,
                             self._train_batch if mode == "train" else self._test_batch)

    def _final_logs(self, logs: dict[str, Any] | None) -> dict[str, Any]:
        """The logs of an epoch (or an evaluation) after its last step: the metrics' results (summed over the ranks
        under a distribution), unless the step returned logs with other keys (a custom step): those, as Keras 3."""
        if logs is not None and set(logs) != set(self.get_metrics_result()):
            return dict(logs)
        self._reduce_over_ranks()
        return self.get_metrics_result()

    def _callback_list(self, callbacks: Any, verbose: int, epochs: int, steps: int | None,
                       add_history: bool = False) -> CallbackList:
        if isinstance(callbacks, CallbackList):
            return callbacks
        return CallbackList(callbacks, add_history=add_history, add_progbar=verbose != 0, model=self,
                            verbose=verbose, epochs=epochs, steps=steps)

    def evaluate(self, x: Any = None, y: Any = None, batch_size: int | None = None, verbose: Any = "auto",
                 sample_weight: Any = None, steps: int | None = None, callbacks: Any = None,
                 return_dict: bool = False, **kwargs: Any) -> Any:
        """The loss (and metrics) on the data: a float, a list ``[loss, *metrics]``, or a dict."""
        reject_unknown("evaluate", kwargs, ("x", "y", "batch_size", "verbose", "sample_weight", "steps",
                                            "callbacks", "return_dict"))
        self._assert_compiled("evaluate")
        dist = distribute.active()  # each rank evaluates its shard; the results cover all of them
        iterator = EpochIterator(x, y, sample_weight, batch_size, False, steps, None, self._float_dtype(),
                                 caller="evaluate", shard=dist)
        verbose = 0 if dist is not None and not dist.is_chief else verbosity(verbose)
        callbacks = self._callback_list(callbacks, verbose, 1, iterator.num_batches)
        self._train.distribution = dist
        try:
            logs = evaluate_batches(self, iterator, callbacks, caller="evaluate")
        finally:
            self._train.distribution = None
        return logs if return_dict else flatten_logs(logs, self.metrics_names)

    def predict(self, x: Any, batch_size: int | None = None, verbose: Any = "auto", steps: int | None = None,
                callbacks: Any = None, **kwargs: Any) -> Any:
        """The model's outputs on ``x`` as NumPy arrays (one per output for multi-output models)."""
        reject_unknown("predict", kwargs, ("x", "batch_size", "verbose", "steps", "callbacks"))
        iterator = EpochIterator(x, None, None, batch_size, False, steps, None, self._float_dtype(), caller="predict")
        callbacks = self._callback_list(callbacks, verbosity(verbose), 1, iterator.num_batches)
        callbacks.on_predict_begin()
        begin_listeners = callbacks.listens("on_predict_batch_begin")
        end_listeners = callbacks.listens("on_predict_batch_end")
        chunks: list[Any] = []
        with no_grad():
            for step, (xb, _, _) in iterator:
                if begin_listeners:
                    callbacks.on_predict_batch_begin(step)
                out = to_numpy(self.predict_step(pack_x_y_sample_weight(xb)))
                chunks.append(out)
                if end_listeners:
                    callbacks.on_predict_batch_end(step, {"outputs": out})
        callbacks.on_predict_end()
        if not chunks:
            raise ValueError("predict: the input produced no batches (empty data or an exhausted generator)")
        return concat(chunks)

    # ------------------------------------------------------------------ single batches
    def train_on_batch(self, x: Any, y: Any = None, sample_weight: Any = None, class_weight: dict | None = None,
                       return_dict: bool = False) -> Any:
        """One gradient step on exactly this batch; returns its loss (and metrics), metrics reset first."""
        self._assert_compiled("train_on_batch")
        if class_weight is not None and sample_weight is not None:
            raise ValueError("train_on_batch: give sample_weight or class_weight, not both")
        batch = one_batch(x, y, sample_weight, class_weight, self._float_dtype(), "train_on_batch")
        self.reset_metrics()
        logs = self._final_logs(self._step_function("train")(batch))
        return logs if return_dict else flatten_logs(logs, self.metrics_names)

    def test_on_batch(self, x: Any, y: Any = None, sample_weight: Any = None, return_dict: bool = False) -> Any:
        """The loss (and metrics) on exactly this batch, without training."""
        self._assert_compiled("test_on_batch")
        batch = one_batch(x, y, sample_weight, None, self._float_dtype(), "test_on_batch")
        self.reset_metrics()
        with no_grad():
            logs = self._final_logs(self._step_function("test")(batch))
        return logs if return_dict else flatten_logs(logs, self.metrics_names)

    def predict_on_batch(self, x: Any) -> Any:
        """The outputs on exactly this batch, as NumPy."""
        with no_grad():
            return to_numpy(self.predict_step((x,)))

    # ------------------------------------------------------------------ weights on disk, summary
    def get_config(self) -> dict[str, Any]:
        """A functional model: its layers and the calls between them (:func:`shendu.models.functional.graph_config`).
        A subclassed model: its constructor arguments when they are plain JSON values (as ``Layer.get_config``
        records them); override ``get_config``/``from_config`` for anything else, as in Keras."""
        if self._graph is not None:
            return graph_config(self._graph, self.name)
        return with_constructor_arguments(self, super().get_config(), Model, "model")

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: dict[str, type] | None = None) -> Model:
        """Rebuild from :meth:`get_config`'s dict: a functional model by replaying its calls (``custom_objects``:
        your layer classes by name), any other model as ``cls(**config)``."""
        if is_graph_config(config):
            return graph_from_config(config, cls, custom_objects)
        return cls(**config)

    def get_compile_config(self) -> dict[str, Any] | None:
        """What ``compile`` was given, as JSON (Keras 3's name); None before ``compile``. A loss or metric that is
        neither built in nor registered raises ``shendu.saving.NotSerializable``."""
        if not self.compiled or self.optimizer is None:
            return None
        metrics, weighted = self._train.metric_identifiers
        return saving.serialize_compile(self.optimizer, self._train.loss_identifier, self._train.loss_weights,
                                        metrics, weighted)

    def to_json(self, **kwargs: Any) -> str:
        """The architecture as a JSON string (Keras's ``to_json``); ``shendu.models.model_from_json`` rebuilds it."""
        return saving.model_to_json(self, **kwargs)

    def save(self, filepath: str, overwrite: bool = True, include_optimizer: bool = True,
             data_loader: Any = None) -> None:
        """Write the whole model (architecture, weights, optimiser and training state) as one safe ``.shendu``
        zip, atomically; ``shendu.models.load_model(filepath)`` rebuilds it. See ``shendu.saving``.
        Under a distribution (:mod:`shendu.distribute`) only rank 0 writes."""
        if not distribute.is_chief():
            return
        saving.save_model(self, filepath, overwrite=overwrite, include_optimizer=include_optimizer,
                          data_loader=data_loader)

    def save_weights(self, filepath: str, overwrite: bool = True) -> None:
        """Write the weights (``.safetensors`` or ``.npz``), atomically (only rank 0 under a distribution)."""
        if not distribute.is_chief():
            return
        saving.save_weights(self, filepath, overwrite=overwrite)

    def export(self, filepath: str, format: str = "onnx", verbose: bool | None = None,  # noqa: A002 - Keras's name
               input_signature: Any = None, **kwargs: Any) -> None:
        """Write the model for inference elsewhere (Keras 3's ``Model.export``); ``format="onnx"`` is the one
        format, written atomically with a dynamic batch axis. ``input_signature``: shapes (or objects with
        ``shape``/``dtype``/``name``) for the inputs, needed only when the model is not built; ``opset_version``
        picks the ONNX opset (default :data:`shendu.export.DEFAULT_OPSET`). See ``docs/onnx.md``."""
        if format != "onnx":
            raise ValueError(f"Model.export: format {format!r} is not supported; shendu exports {list(EXPORT_FORMATS)} "
                             "(Keras's 'tf_saved_model', 'openvino', 'litert' and 'torch' need their own runtimes)")
        unknown = sorted(set(kwargs) - {"opset_version"})
        if unknown:
            raise TypeError(f"Model.export(format='onnx') got unexpected arguments {unknown}; it takes opset_version")
        export_onnx(self, filepath, input_signature=input_signature, opset_version=kwargs.get("opset_version"),
                    verbose=verbose)

    def load_weights(self, filepath: str, max_bytes: int | None = None) -> None:
        """Load weights from ``save_weights`` (``.safetensors``/``.npz``) or a ``.shendu`` model file (same
        architecture: count, shapes and dtypes are checked); Keras ``.weights.h5``/``.keras``/``.h5`` files and
        PyTorch ``.pt``/``.pth`` state dicts go through :mod:`shendu.interop` (layouts converted). The format is
        read from the file's first bytes, never from its name. ``max_bytes`` raises the bound on what the file
        may declare (default: scaled to its size, see :func:`shendu.utils.weights_io.byte_limit`)."""
        saving.load_weights(self, filepath, max_bytes=max_bytes)

    def summary(self, line_length: int | None = None, positions: Any = None, print_fn: Any = None,
                expand_nested: bool = False, show_trainable: bool = False) -> None:
        """Print a table of the layers (name and type, output shape, parameter count) and the totals."""
        print_summary(self, line_length=line_length, print_fn=print_fn, show_trainable=show_trainable)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"
