"""Step plans: the built-in training step of a model whose graph does not change, recorded once and replayed.

A small model spends most of a training step in Python bookkeeping, not in NumPy: ``Layer.__call__`` at every
level, ``Op.__call__`` wrapping every result in a Tensor, the loss wrappers, the backward engine's heap. For the
seed program (``Dense(1)``, MSE, batch 32) that is about three quarters of the step. Yet from one batch to the
next the same ops run on the same weights in the same order. So ``fit`` records the ops of one step (the
forward pass and the loss) and, for the next batches of the same shapes, calls the recorded ops' own
``forward`` and ``backward`` directly on arrays: the same maths in the same order, bit for bit, without the
layers, the Tensors or the heap, through a function written out for the plan (``Plan.source`` shows it). The
optimiser, the metrics, the loss tracker and the callbacks run as before.

A plan is made only when replaying it is provably the same computation, and the normal step runs otherwise:

* the model is a ``Sequential`` or functional ``Model`` (its own ``call``), built only from layers whose
  ``call`` is a pure function of inputs and weights through ops (:data:`REPLAYABLE_LAYERS`, exact types, with
  built-in activations); ``compute_loss``/``compute_metrics``/``train_step`` are not overridden; no
  distribution, masks, ``add_loss`` or activity losses;
* every input of every recorded op is a model weight, the batch's ``x``/``y``/``sample_weight`` array, the
  output of an earlier recorded op, or an immutable Python constant. Anything else (an array made outside the
  ops, a Tensor that is not a weight) refuses the plan; so does an op that ran unrecorded (on raw arrays, or
  under ``no_grad``) while recording, or a tensor consumed more than twice (summing three gradients in another
  order could change the last bit);
* a plan is keyed by the shapes and dtypes of the batch (the last, smaller batch gets its own) and dropped
  when any layer tree changes (:func:`shendu.layers.tracking.structure_version`), when ``compile`` runs again,
  or when a weight's ``requires_grad`` changes. Weights are read afresh at each replay (``set_weights``, resumes
  and ``.data`` assignments are seen).

Randomness is unchanged: ops that draw (dropout) draw in their ``forward``, which replays in the same order.
``SHENDU_STEP_PLAN=0`` (or ``step_plan.enabled = False``) turns plans off.
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from shendu.autograd import engine
from shendu.autograd import op as op_module
from shendu.autograd.grad_mode import is_grad_enabled, swap_grad_enabled
from shendu.autograd.tensor import Tensor
from shendu.layers import masking, tracking
from shendu.layers.context import _CONTEXT

#: turn step plans off (for comparisons, or if you suspect one); also ``SHENDU_STEP_PLAN=0``
enabled = os.environ.get("SHENDU_STEP_PLAN", "1") != "0"

#: layer classes (exact types, by module and name) whose ``call`` only applies ops to its inputs and weights
REPLAYABLE_LAYERS = frozenset({
    ("shendu.layers.core", "Dense"), ("shendu.layers.core", "Activation"), ("shendu.layers.core", "Dropout"),
    ("shendu.layers.core", "Flatten"), ("shendu.layers.input_layer", "InputLayer"),
    ("shendu.layers.activation_layers", "ReLU"), ("shendu.layers.activation_layers", "LeakyReLU"),
    ("shendu.layers.activation_layers", "ELU"), ("shendu.layers.activation_layers", "Softmax"),
})
_CONSTANTS = (type(None), bool, int, float, str)
_MAX_PLANS = 8  # batch shapes kept per model (a fit has at most two: full batches and the last one)
_CONST, _WEIGHT, _X, _Y, _SW, _OUT = range(6)  # where an op's input comes from


class _Recorder:
    """Collects the ops called in this thread while a step is recorded (see ``Op.__call__``)."""

    def __init__(self) -> None:
        self.entries: list[tuple[Any, dict, tuple, Any, bool]] = []  # (op, config, inputs, outputs, in the graph)
        self.pure = True

    def add(self, op: Any, config: dict, inputs: tuple, outputs: Any, graph: bool) -> None:
        if not graph and not is_grad_enabled():
            self.pure = False  # under no_grad: a side computation (running statistics), not replayed
        self.entries.append((op, config, inputs, outputs, graph))

    def unrecorded(self) -> None:
        self.pure = False


class _Entry:
    __slots__ = ("cls", "config", "sources", "graph", "needs", "outputs")

    def __init__(self, cls: type, config: dict, sources: list, graph: bool, needs: list, outputs: int) -> None:
        self.cls, self.config, self.sources, self.graph, self.needs = cls, config, sources, graph, needs
        self.outputs = outputs  # how many outputs its forward returns as a tuple; 0: one array, not a tuple


class Plan:
    """The recorded ops of one step, in call order; ``run`` replays forward and backward.

    The replay is a Python function written for this plan when it is made (:attr:`source`; print it to read
    it): one line per op call and per gradient handed on, in the order the recorded step ran them, with no
    loop over entries and no tests of what each input is (the seed program's replay: 20-26 us as a loop that
    looked each input up, 14-16 us written out, best of 9 runs each; its 4 op calls alone take 8). It applies
    the engine's rules: the
    gradients an op's outputs got, summed in arrival order; a gradient summed back to its input's shape and
    dtype where they differ; a weight's first gradient stored as its ``.grad`` when the array is its own, else
    accumulated (``engine._accumulate``); the graph off while the backward rules run.
    """

    def __init__(self, entries: list[_Entry], weights: list[Any], y_pred: tuple[int, int], loss: tuple[int, int],
                 losses: list[tuple[Any, dict]]) -> None:
        self.entries = entries
        self.weights = weights  # (weight, its requires_grad when recorded)
        self.y_pred = y_pred
        self.loss = loss
        self.losses = losses  # (compiled loss, its settings when recorded)
        self.source, self._replay = _write_replay(entries, y_pred, loss)

    def current(self) -> bool:
        """Whether the weights' ``requires_grad`` and the losses' settings are still those recorded."""
        for w, wanted in self.weights:
            if w.requires_grad != wanted:
                return False
        for fn, settings in self.losses:
            if vars(fn) != settings:
                return False
        return True

    def run(self, x: Any, y: Any, sw: Any) -> tuple[Tensor, Tensor]:
        """Forward, loss and backward (gradients accumulated into the weights' ``.grad``, as ``backward()``
        does); returns ``(y_pred, loss)`` as Tensors."""
        return self._replay(x, y, sw)


def _write_replay(entries: list[_Entry], y_where: tuple[int, int], loss_where: tuple[int, int]) -> tuple[str, Any]:
    """The source of ``replay(x, y, sw)`` for these entries, and the function compiled from it."""
    names: dict[str, Any] = {"_new": object.__new__, "_wrap": Tensor._wrap, "_ones_like": engine._ones_like,
                             "_zeros_like": engine.zeros_like_array, "_unbroadcast": engine.unbroadcast_array,
                             "_accumulate": engine._accumulate, "_swap": swap_grad_enabled}
    weights: dict[int, int] = {}  # id(weight) -> j: w{j} is the weight, d{j} its array read at the start

    def output(m: int, k: int) -> str:
        return f"o{m}[{k}]" if entries[m].outputs else f"o{m}"

    def argument(i: int, p: int) -> str:
        kind, value, k = entries[i].sources[p]
        if kind == _OUT:
            return output(value, k)
        if kind == _WEIGHT:
            j = weights.setdefault(id(value), len(weights))
            names[f"w{j}"] = value
            return f"d{j}"
        if kind == _CONST:
            names[f"c{i}_{p}"] = value
            return f"c{i}_{p}"
        return ("x", "y", "sw")[kind - _X]

    forward: list[str] = []
    for i, e in enumerate(entries):
        names[f"cls{i}"], names[f"config{i}"], names[f"needs{i}"] = e.cls, e.config, e.needs
        forward.append(f"op{i} = _new(cls{i})")
        if e.config:
            forward.append(f"op{i}.__dict__.update(config{i})")
        if e.graph:
            forward.append(f"op{i}.needs_grad = needs{i}")
        args = ", ".join(argument(i, p) for p in range(len(e.sources)))
        forward.append(f"o{i} = op{i}.forward({args})  # {e.cls.__name__}")
    reads = [f"d{j} = w{j}.data" for j in range(len(weights))]

    receives = {loss_where}  # (entry, output) pairs that get a gradient: the loss, and any input an op wants one for
    for e in entries:
        for (kind, value, k), wanted in zip(e.sources, e.needs):
            if wanted and kind == _OUT:
                receives.add((value, k))
    gradients = [f"g{m}_{k} = None" for m, k in sorted(receives)]
    li, lk = loss_where
    backward = [f"seed = _ones_like({output(li, lk)})", "stored = {id(seed)}", f"g{li}_{lk} = seed"]
    for i in range(len(entries) - 1, -1, -1):
        e = entries[i]
        slots = [f"g{i}_{k}" if (i, k) in receives else "None" for k in range(max(e.outputs, 1))]
        if all(g == "None" for g in slots):
            continue  # no gradient reaches this op
        backward.append(f"if {' or '.join(f'{g} is not None' for g in slots if g != 'None')}:")
        if len(slots) == 1:
            gy = slots[0]
        elif e.cls.missing_grads_as_none:
            gy = f"({', '.join(slots)},)"
        else:
            gy = "(" + ", ".join(f"{g} if {g} is not None else _zeros_like(o{i}[{k}])" if g != "None" else
                                 f"_zeros_like(o{i}[{k}])" for k, g in enumerate(slots)) + ",)"
        args = "".join(f", {argument(i, p)}" for p in range(len(e.sources)))
        body = [f"gx = op{i}.backward({gy}{args}, {f'o{i}' if e.cls.saves_output else 'None'})  # {e.cls.__name__}",
                "if type(gx) is not tuple:", "    gx = (gx,)"]
        for p, ((kind, value, k), wanted) in enumerate(zip(e.sources, e.needs)):
            if not wanted or kind not in (_OUT, _WEIGHT):
                continue
            data = argument(i, p)
            body += [f"g = gx[{p}] if len(gx) > {p} else None", "if g is not None:",
                     f"    if g.shape != {data}.shape or g.dtype != {data}.dtype:",
                     f"        g = _unbroadcast(g, {data})"]
            if kind == _WEIGHT:
                w = f"w{weights[id(value)]}"
                body += [f"    if {w}.grad is None and g.base is None and id(g) not in stored:",
                         "        stored.add(id(g))", f"        {w}.grad = _wrap(g)",
                         "    else:", f"        _accumulate({w}, g, stored)"]
            else:
                target = f"g{value}_{k}"
                body.append(f"    {target} = g if {target} is None else {target} + g")
        backward += ["    " + line for line in body]
    yi, yk = y_where
    lines = (["def replay(x, y, sw):"] + ["    " + line for line in reads + forward + gradients]
             + ["    previous = _swap(False)", "    try:"] + ["        " + line for line in backward]
             + ["    finally:", "        _swap(previous)",
                f"    return _wrap({output(yi, yk)}), _wrap({output(li, lk)})"])
    source = "\n".join(lines) + "\n"
    exec(compile(source, "<step plan>", "exec"), names)  # noqa: S102 - our own source, from the recorded ops
    return source, names["replay"]


def _is_sequential(cls: type) -> bool:
    return (cls.__module__, cls.__name__) == ("shendu.models.sequential", "Sequential")


def eligible(model: Any, model_cls: type) -> bool:
    """Whether the built-in step of ``model`` may be planned (the static conditions of the module docstring)."""
    cls = type(model)  # exact types: a subclass may override call, train_step, compute_loss, ...
    if not _is_sequential(cls) and (cls is not model_cls or model._graph is None):
        return False
    if any(name in vars(model) for name in ("call", "train_step", "compute_loss", "compute_metrics")):
        return False  # replaced on the instance
    for layer in model._all_layers():
        if layer is model:
            continue
        kind = type(layer)
        if kind is model_cls or _is_sequential(kind):
            continue  # nested models are checked through their own layers (all of them are walked here)
        if (kind.__module__, kind.__name__) not in REPLAYABLE_LAYERS:
            return False
        if layer.activity_regularizer is not None:
            return False
        activation = getattr(layer, "activation", None)
        if activation is not None and not getattr(activation, "__module__", "").startswith("shendu."):
            return False
    return True


class StepPlans:
    """The plans of one model (by batch shapes), recorded on first use; kept in the model's TrainingState."""

    def __init__(self) -> None:
        self.version: tuple[int, int] = (-1, -1)
        self.plans: dict[tuple, Plan | None] = {}
        self.allowed: bool | None = None
        self.replayed = 0  # steps replayed (for tests and curiosity)

    def reset(self) -> None:
        self.plans.clear()
        self.allowed = None

    def lookup(self, model: Any, model_cls: type, x: Any, y: Any, sw: Any) -> Any:
        """``(key, plan)``: the plan for this batch (None when there is none yet or it was refused); ``key`` is
        None when no plan may be recorded for this step."""
        version = tracking._version, tracking._attributes_version
        if version != self.version:
            self.reset()
            self.version = version
        if self.allowed is None:
            self.allowed = eligible(model, model_cls)
        if not self.allowed or not enabled or masking._MASKS:
            return None, None
        if type(x) is np.ndarray and type(y) is np.ndarray and sw is None:  # the usual batch, keyed cheaply
            key: tuple = (x.shape, x.dtype, y.shape, y.dtype)
        else:
            key = (_signature(x), _signature(y), _signature(sw))
            if None in key:
                return None, None
        plan = self.plans.get(key, False)
        if plan:
            if plan.current():
                self.replayed += 1
            else:
                plan = False  # record it again
        return key, plan

    @contextlib.contextmanager
    def recording(self, on: bool) -> Iterator[_Recorder | None]:
        """Record this thread's ops inside the block when ``on`` (then :meth:`keep` makes the plan)."""
        if not on:
            yield None
            return
        recorder = _Recorder()
        op_module.start_recording(recorder)
        try:
            yield recorder
        finally:
            op_module.stop_recording()

    def keep(self, key: tuple, recorder: _Recorder, model: Any, x: Any, y: Any, sw: Any, y_pred: Any,
             loss: Any) -> None:
        """Keep the plan of the recorded step, or None when it cannot be replayed."""
        if len(self.plans) >= _MAX_PLANS:
            self.plans.clear()
        self.plans[key] = _build(recorder, model, x, y, sw, y_pred, loss)


def _signature(a: Any) -> Any:
    """(shape, dtype, type) of an array batch, () for None; None for anything else (no plan)."""
    if a is None:
        return ()
    shape = getattr(a, "shape", None)
    if shape is None or isinstance(a, Tensor):
        return None
    return (shape, a.dtype.str, type(a))


def _build(recorder: _Recorder, model: Any, x: Any, y: Any, sw: Any, y_pred: Any, loss: Any) -> Plan | None:
    if not recorder.pure or not isinstance(y_pred, Tensor) or not isinstance(loss, Tensor) or loss.data.size != 1:
        return None
    if loss.creator is None or not loss.requires_grad:
        return None
    call_id = _CONTEXT.call_id
    for layer in model._all_layers():  # add_loss / activity losses of this forward pass: not replayed
        if layer._call_losses_id == call_id and layer._call_losses:
            return None
    if any(getattr(w, "regularizer", None) is not None for w in model.weights):
        return None  # a regulariser object's settings are not watched
    compiled = model._train.compiled_loss
    loss_fns = [fn for fn in (compiled.fns if compiled is not None else []) if fn is not None]
    if not all(_builtin_loss(fn) for fn in loss_fns):
        return None  # a user's loss may branch on values or draw random numbers
    weights = {id(w): w for w in model.weights}
    where: dict[int, tuple[int, int]] = {}  # id(output tensor) -> (entry, output index)
    uses: dict[Any, int] = {}
    used_weights: dict[int, Any] = {}
    entries: list[_Entry] = []
    for index, (op, config, inputs, outputs, graph) in enumerate(recorder.entries):
        sources = []
        for value in inputs:
            if isinstance(value, Tensor):
                source = where.get(id(value))
                if source is not None:
                    sources.append((_OUT, source[0], source[1]))
                    key: Any = source
                elif id(value) in weights and value.creator is None:
                    sources.append((_WEIGHT, value, 0))
                    used_weights[id(value)] = value
                    key = id(value)
                else:
                    kind = _batch_kind(value.data, x, y, sw)
                    if kind is None or value.requires_grad:
                        return None
                    sources.append((kind, None, 0))
                    continue
                if graph and value.requires_grad:
                    uses[key] = uses.get(key, 0) + 1
            elif isinstance(value, _CONSTANTS) or _is_shape(value):
                sources.append((_CONST, value, 0))
            else:
                kind = _batch_kind(value, x, y, sw)
                if kind is None:
                    return None
                sources.append((kind, None, 0))
        if not all(_is_constant(v) for v in config.values()):
            return None  # an op argument that may hold this batch's data (an index array, a mask)
        for k, out in enumerate(outputs if type(outputs) is tuple else (outputs,)):
            where[id(out)] = (index, k)
        needs = list(op.needs_grad) if graph else [False] * len(inputs)
        entries.append(_Entry(type(op), config, sources, graph, needs,
                              len(outputs) if type(outputs) is tuple else 0))
    if any(n > 2 for n in uses.values()):  # three or more gradients summed: keep the engine's order
        return None
    y_where, loss_where = where.get(id(y_pred)), where.get(id(loss))
    if y_where is None or loss_where is None or not entries[loss_where[0]].graph:
        return None
    return Plan(entries, [(w, w.requires_grad) for w in used_weights.values()], y_where, loss_where,
                [(fn, copy.deepcopy(vars(fn))) for fn in loss_fns])


def _builtin_loss(fn: Any) -> bool:
    inner = getattr(fn, "fn", None)  # a LossFunctionWrapper's function
    return type(fn).__module__ == "shendu.losses" and (inner is None or getattr(inner, "__module__", "") ==
                                                        "shendu.losses")


def _batch_kind(data: Any, x: Any, y: Any, sw: Any) -> int | None:
    if data is x:
        return _X
    if data is y:
        return _Y
    if sw is not None and data is sw:
        return _SW
    return None


def _is_constant(value: Any) -> bool:
    """An op argument that is the same at every step: a Python scalar or string, a dtype, a slice or tuple of those,
    or a random generator (shared, so its draws continue from one step to the next as they would)."""
    if isinstance(value, (*_CONSTANTS, np.dtype, np.random.Generator)):
        return True
    if type(value) in (tuple, list):
        return all(_is_constant(v) for v in value)
    if type(value) is slice:
        return all(_is_constant(v) for v in (value.start, value.stop, value.step))
    return False


def _is_shape(value: Any) -> bool:
    return type(value) is tuple and all(type(v) is int for v in value)
