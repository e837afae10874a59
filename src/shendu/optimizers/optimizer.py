"""The optimiser base class: one object serves Keras-style and PyTorch-style training.

Keras style::

    opt = Adam(learning_rate=1e-3)
    opt.apply_gradients(zip(grads, params))          # grads: Tensors or arrays

PyTorch style::

    opt = SGD(0.1, params=model.parameters())
    loss.backward(); opt.step(); opt.zero_grad()

A new optimiser declares its hyper-parameters (``hyper``: name -> Keras default) and two small methods:
``init_state(param) -> dict`` (its buffers, e.g. ``{"momentum": zeros_like(w)}``) and
``update(param, grad, state, lr)``, which changes ``param.data`` in place (``out=`` into preallocated
buffers; :meth:`Optimizer.scratch` lends a temporary). The base does the rest: parameter groups,
gradient clipping, decoupled weight decay, learning-rate schedules, ``iterations``, configs and
``state_dict``. State lives in ``self.state``, a dict keyed by the parameter (never ``id()``), in the
order the parameters were attached.

One step, as Keras 3 does it: clip the gradients (``clipnorm`` per parameter, ``global_clipnorm`` over all,
or ``clipvalue``: at most one of them), decay the weights (``w -= lr * weight_decay * w``), apply the
optimiser's rule with ``lr = learning_rate(iterations)``, then ``iterations += 1``.

An ``update`` that declares a ``decay`` argument (Adam, SGD, RMSprop) is given the decay factor
``1 - lr * weight_decay`` (1.0 when none) and decays ``w *= decay`` itself first: their fused kernels
(:mod:`shendu.kernels.optim`) then decay and update in one pass over the weights.

Those three also write ``update_all``: the same rule on *every* parameter in one kernel call, through a
table of the parameters' arrays (:class:`shendu.kernels.optim.Table`, built once and checked each step to
still hold the parameters' own arrays). Steps take it whenever the kernels can (NumPy float arrays of one
dtype, C-ordered); otherwise, or when a subclass overrides ``update`` alone, they call ``update`` per
parameter. Both give the same bits.
"""

from __future__ import annotations

import inspect
import math
import operator
import re
import warnings
from collections.abc import Callable, Iterable
from numbers import Real
from typing import Any

import numpy as np

from shendu import backend
from shendu.autograd.grad_mode import enable_grad
from shendu.autograd.tensor import Tensor
from shendu.kernels import enabled as kernels_enabled
from shendu.kernels import optim
from shendu.naming import snake_case
from shendu.optimizers import schedules
from shendu.optimizers.schedules import LearningRateSchedule

_BASE_ARGUMENTS = ("learning_rate", "params", "lr", "clipnorm", "clipvalue", "global_clipnorm", "weight_decay",
                   "name", "decay")
_GROUP_KEYS = ("params", "learning_rate", "weight_decay")
# Keras 3 config entries shendu does not implement: accepted by from_config only at their neutral value.
_KERAS_ONLY = {"use_ema": False, "ema_momentum": None, "ema_overwrite_frequency": None,
               "loss_scale_factor": None, "gradient_accumulation_steps": None}
#: every Optimizer subclass, keyed by its qualified name ``module.QualName``, so a user class that shares a
#: built-in's name never replaces it; :mod:`shendu.optimizers.serialization` resolves bare names
REGISTRY: dict[str, type[Optimizer]] = {}


class Optimizer:
    """Base class of all optimisers (see the module docstring for the two-method subclass API).

    Args:
        learning_rate: a float, a :class:`~shendu.optimizers.schedules.LearningRateSchedule` (called with
            ``iterations``) or a callable without arguments. Defaults to the optimiser's Keras default.
        params: the parameters to train (PyTorch style): Tensors, or parameter-group dicts
            ``{"params": [...], "learning_rate": ..., "weight_decay": ...}``. Keras-style training attaches them
            later (``apply_gradients`` or ``add_params``).
        lr: the Keras 2 name of ``learning_rate`` (the seed program writes ``SGD(lr=0.01, momentum=0.9)``).
        clipnorm: clip each gradient to this L2 norm: ``g * clipnorm / max(||g||, clipnorm)``.
        clipvalue: clip each gradient element to ``[-clipvalue, clipvalue]``.
        global_clipnorm: scale all gradients by ``clipnorm / max(global_norm, clipnorm)``.
        weight_decay: decoupled weight decay, applied before the update: ``w -= lr * weight_decay * w``.
        name: a name for the optimiser (its snake_case class name by default).
        decay: Keras 2's time-based decay, ``lr / (1 + decay * iterations)``; kept so classic programs
            (``SGD(lr=0.01, decay=1e-6)``) run, and implemented as an ``InverseTimeDecay`` schedule.
        **hyper: the optimiser's own hyper-parameters (``momentum``, ``beta_1``, ...).

    >>> import shendu
    >>> from shendu.optimizers import SGD
    >>> w = shendu.Parameter([1.0, 2.0])
    >>> opt = SGD(0.1, params=[w])
    >>> (w * w).sum().backward()
    >>> opt.step(); opt.zero_grad()
    >>> w
    Parameter([0.8, 1.6], requires_grad=True)
    >>> opt.iterations
    1
    """

    default_learning_rate: float = 0.001
    default_weight_decay: float | None = None
    hyper: dict[str, Any] = {}
    #: the state arrays ``update_all`` takes: the kernel's name for each -> this optimiser's state key
    fused_slots: dict[str, str] = {}
    _update_decays: bool = False  # whether ``update`` takes ``decay`` (set per subclass from its signature)
    #: whether the class that wrote ``update`` also wrote ``update_all``, and ``init_state`` is its own or inherited
    #: by it (a subclass that renames the state keeps to the per-parameter path; set per subclass)
    _fuses: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        REGISTRY[f"{cls.__module__}.{cls.__qualname__}"] = cls
        cls._update_decays = "decay" in inspect.signature(cls.update).parameters
        author = next(c for c in cls.__mro__ if "update" in vars(c))
        state_author = next(c for c in cls.__mro__ if "init_state" in vars(c))
        # update_all reads the state by the keys of fused_slots: it must be the state its author's update reads
        cls._fuses = "update_all" in vars(author) and cls._update_decays and issubclass(author, state_author)

    def __init__(self, learning_rate: Any = None, params: Iterable[Any] | None = None, *, lr: Any = None,
                 clipnorm: float | None = None, clipvalue: float | None = None,
                 global_clipnorm: float | None = None, weight_decay: float | None = None,
                 name: str | None = None, decay: float | None = None, **hyper: Any) -> None:
        cls_name = type(self).__name__
        unknown = sorted(set(hyper) - set(self.hyper))
        if unknown:
            raise TypeError(f"{cls_name}() got unexpected keyword argument(s) {unknown}; valid arguments: "
                            f"{', '.join(_BASE_ARGUMENTS + tuple(self.hyper))}")
        if lr is not None:
            if learning_rate is not None:
                self._check_learning_rate(learning_rate)  # parameters passed first, PyTorch style, get a hint
                raise TypeError(f"{cls_name}() got both learning_rate={learning_rate!r} and its alias lr={lr!r}; "
                                "pass only learning_rate")
            learning_rate = lr
        if sum(c is not None for c in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError("Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. Received: "
                             f"clipnorm={clipnorm}, clipvalue={clipvalue}, global_clipnorm={global_clipnorm}")
        learning_rate = self.default_learning_rate if learning_rate is None else learning_rate
        self._learning_rate = self._check_learning_rate(learning_rate)
        if decay:
            if not isinstance(self._learning_rate, float):
                raise ValueError(f"{cls_name}(decay=...) needs a float learning_rate, got {learning_rate!r}; "
                                 "put the decay in the schedule instead")
            self._learning_rate = schedules.InverseTimeDecay(self._learning_rate, 1, decay)
        self.name = name or snake_case(cls_name)
        self.weight_decay = self.default_weight_decay if weight_decay is None else weight_decay
        self.clipnorm = clipnorm
        self.clipvalue = clipvalue
        self.global_clipnorm = global_clipnorm
        for key, default in self.hyper.items():
            setattr(self, key, hyper.get(key, default))
        self.check_hyper()
        self.iterations = 0
        self.restore_step_values()
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[Tensor, dict[str, Any]] = {}
        self._group_index: dict[Tensor, int] = {}
        self._scratch: dict[Any, Any] = {}
        self._scratch_views: dict[Any, Any] = {}
        self._scalars: dict[Any, Any] = {}
        self._pending_state: list[dict[str, Any]] = []
        self._decay_excluded: dict[Tensor, bool] = {}
        self._decay_pattern: re.Pattern | None = None
        self._table: optim.Table | None = None  # the parameters' arrays for update_all, and arrays it refused
        self._refused: list[Any] = []
        if params is not None:
            self.add_params(params)

    # ------------------------------------------------------------ what a subclass writes
    def check_hyper(self) -> None:
        """Validate the hyper-parameters (raise ValueError naming the argument); nothing to check by default."""

    def init_state(self, param: Tensor) -> dict[str, Any]:
        """The buffers this optimiser keeps for ``param`` (arrays shaped like it)."""
        return {}

    def update(self, param: Tensor, grad: Any, state: dict[str, Any], lr: float) -> None:
        """Apply the update rule to ``param.data`` in place; ``grad`` is an array of the parameter's dtype.

        An override may add a ``decay`` argument: it then receives the weight-decay factor and applies
        ``w *= decay`` itself before its rule (see the module docstring)."""
        raise NotImplementedError(f"{type(self).__name__} must implement update(param, grad, state, lr)")

    def update_all(self, table: optim.Table, lrs: list[float], decays: list[float]) -> None:
        """Optional: :meth:`update` on every parameter of ``table`` in one kernel call, group k's parameters with
        learning rate ``lrs[k]`` and decay factor ``decays[k]`` (see the module docstring)."""
        raise NotImplementedError(f"{type(self).__name__} has no update_all; its steps call update per parameter")

    def prepare_step(self) -> None:
        """Called once per step before the per-parameter updates (for step-wide values such as Nadam's)."""

    def scalar(self, value: float, like: Any) -> Any:
        """``value`` as a 0-d array of ``like``'s dtype, cached. NumPy ufuncs take these about 1 µs faster than
        Python floats (same result: a Python float takes the array's dtype anyway), which matters for the many
        tiny parameters of small models."""
        key = (value, like.dtype, type(like))
        constant = self._scalars.get(key)
        if constant is None:
            if len(self._scalars) > 256:  # a schedule makes a new learning rate every step
                self._scalars.clear()
            constant = self._scalars[key] = backend.get_array_module(like).asarray(value, dtype=like.dtype)
        return constant

    def restore_step_values(self) -> None:
        """Compute step-wide values from ``iterations`` (at construction and after :meth:`load_state_dict`)."""

    def scratch(self, like: Any, slot: int = 0) -> Any:
        """A temporary array shaped like ``like``, reused across parameters and steps (not part of the state).

        Each slot is one flat buffer as large as the largest parameter; views of it are cached per shape.
        """
        key = (slot, like.shape, like.dtype, type(like))
        view = self._scratch_views.get(key)
        if view is None:
            buffer_key = (slot, like.dtype, type(like))
            buffer = self._scratch.get(buffer_key)
            if buffer is None or buffer.size < like.size:
                buffer = backend.get_array_module(like).empty(like.size, like.dtype)
                self._scratch[buffer_key] = buffer
                self._scratch_views.clear()
            view = self._scratch_views[key] = buffer[:like.size].reshape(like.shape)
        return view

    # ------------------------------------------------------------ learning rate
    @staticmethod
    def _check_learning_rate(value: Any) -> Any:
        if isinstance(value, LearningRateSchedule) or callable(value):
            return value
        if isinstance(value, Real) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, Tensor) and value.size == 1:
            return float(value.item())
        hint = ""
        if isinstance(value, Iterable):
            hint = " (to pass parameters PyTorch-style, name them: SGD(0.1, params=model.parameters()))"
        raise TypeError("learning_rate must be a float, a LearningRateSchedule or a callable; got "
                        f"{type(value).__name__}{hint}")

    def _lr_value(self, spec: Any) -> float:
        if type(spec) is float:
            return spec
        if isinstance(spec, LearningRateSchedule):
            return float(spec(self.iterations))
        return float(spec())

    @property
    def learning_rate(self) -> float:
        """The learning rate of the next update (a schedule is evaluated at ``iterations``); settable."""
        return self._lr_value(self._learning_rate)

    @learning_rate.setter
    def learning_rate(self, value: Any) -> None:
        value = self._check_learning_rate(value)
        if isinstance(value, float) and isinstance(self._learning_rate, LearningRateSchedule):
            raise TypeError("This optimizer was created with a `LearningRateSchedule` object as its "
                            "`learning_rate` constructor argument, hence its learning rate is not settable. "
                            "If you need the learning rate to be settable, create the optimizer with a float "
                            "`learning_rate`.")
        self._learning_rate = value

    @property
    def lr(self) -> float:
        """Keras 2's name for :attr:`learning_rate`."""
        return self.learning_rate

    @lr.setter
    def lr(self, value: Any) -> None:
        self.learning_rate = value

    # ------------------------------------------------------------ parameters
    @property
    def params(self) -> list[Tensor]:
        """The attached parameters, in order."""
        return list(self.state)

    def add_params(self, params: Any) -> None:
        """Attach parameters (Tensors, or group dicts); parameters already attached are skipped.

        ``Model.compile``/``fit`` call this with the model's trainable weights when the optimiser has none.
        """
        if isinstance(params, (Tensor, dict)):
            params = [params]
        fresh: dict[Tensor, None] = {}
        for item in params:
            if isinstance(item, dict):
                self.add_param_group(item)
            elif isinstance(item, Tensor):
                if item not in self._group_index:
                    fresh[item] = None
            else:
                raise TypeError(f"{type(self).__name__}: parameters must be Tensors or group dicts, got "
                                f"{type(item).__name__}")
        if fresh:
            index = next((i for i, g in enumerate(self.param_groups) if len(g) == 1), None)
            if index is None:
                self.param_groups.append({"params": []})
                index = len(self.param_groups) - 1
            for param in fresh:
                self._attach(param, index)

    build = add_params  # Keras's name: optimizer.build(model.trainable_weights)

    def add_param_group(self, group: dict[str, Any]) -> None:
        """Add a PyTorch-style group: ``{"params": [...], "learning_rate" (or "lr"): ..., "weight_decay": ...}``."""
        group = dict(group)
        if "lr" in group:
            if "learning_rate" in group:
                raise TypeError("a parameter group got both 'learning_rate' and its alias 'lr'")
            group["learning_rate"] = group.pop("lr")
        unknown = sorted(set(group) - set(_GROUP_KEYS))
        if unknown or "params" not in group:
            raise TypeError(f"parameter group keys must be {_GROUP_KEYS} (or 'lr'); got {sorted(group)} "
                            "(other hyper-parameters are set on the optimizer itself)")
        if "learning_rate" in group:
            group["learning_rate"] = self._check_learning_rate(group["learning_rate"])
        params = group.pop("params")
        params = [params] if isinstance(params, Tensor) else list(params)
        if any(p in self._group_index for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append({"params": [], **group})
        for param in params:
            self._attach(param, len(self.param_groups) - 1)

    def _attach(self, param: Tensor, group_index: int) -> None:
        if not isinstance(param, Tensor):
            raise TypeError(f"{type(self).__name__}: parameters must be Tensors, got {type(param).__name__}")
        if param.dtype.kind != "f":
            raise TypeError(f"{type(self).__name__}: can only optimise floating-point parameters, got "
                            f"{param.dtype} (shape {param.shape})")
        self.param_groups[group_index]["params"].append(param)
        self._group_index[param] = group_index
        self.state[param] = self.init_state(param)
        if self._pending_state:
            self._load_slot(param, self._pending_state.pop(0))

    def exclude_from_weight_decay(self, var_list: Iterable[Tensor] | None = None,
                                  var_names: Iterable[str] | None = None) -> None:
        """Exempt parameters from weight decay: those in ``var_list``, and those whose name contains any of
        ``var_names`` (e.g. ``["bias"]``)."""
        self._decay_excluded = dict.fromkeys(var_list or (), False)
        names = list(var_names or ())
        self._decay_pattern = re.compile("|".join(map(re.escape, names))) if names else None
        self._table, self._refused = None, []  # the table's rows say which parameters decay

    def _use_weight_decay(self, param: Tensor) -> bool:
        use = self._decay_excluded.get(param)
        if use is None:
            use = not (self._decay_pattern and param.name and self._decay_pattern.search(param.name))
            self._decay_excluded[param] = use
        return use

    # ------------------------------------------------------------ applying gradients
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """PyTorch style: update every attached parameter that has a ``.grad`` (others are skipped).

        ``closure`` (optional) re-evaluates the model and returns the loss, which ``step`` returns.
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        pairs = [(param, param.grad.data) for param in self.state if param.grad is not None]
        if pairs:
            self._apply(pairs)
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients of the attached parameters (``.grad = None``, or zero them in place)."""
        for param in self.state:
            if set_to_none:
                param.grad = None
            elif param.grad is not None:
                param.grad.data[...] = 0

    def apply_gradients(self, grads_and_vars: Iterable[tuple[Any, Tensor]]) -> int:
        """Keras style: apply ``(gradient, parameter)`` pairs; unseen parameters are attached first.

        Gradients may be Tensors or arrays; pairs whose gradient is None are skipped with a warning.
        Returns ``iterations`` after the update.
        """
        pairs = list(grads_and_vars)
        if not pairs:
            return self.iterations
        grads, params = zip(*pairs)
        return self.apply(grads, params)

    def apply(self, grads: Iterable[Any], params: Iterable[Tensor] | None = None) -> int:
        """Keras 3's ``apply(grads, trainable_variables=None)``: ``params`` default to the attached ones."""
        grads = list(grads)
        params = self.params if params is None else list(params)
        if len(grads) != len(params):
            raise ValueError(f"got {len(grads)} gradients for {len(params)} parameters; pass one gradient per "
                             "parameter (or None), in the same order")
        if any(p not in self._group_index for p in params):
            self.add_params(params)
        pairs = [(p, self._as_grad_array(g, p)) for g, p in zip(grads, params) if g is not None]
        if not pairs:
            raise ValueError("No gradients provided for any variable.")
        if len(pairs) < len(params):
            missing = [p.name or f"#{i}" for i, (g, p) in enumerate(zip(grads, params)) if g is None]
            warnings.warn(f"Gradients do not exist for variables {missing} when minimizing the loss.",
                          stacklevel=3)
        self._apply(pairs)
        return self.iterations

    def _as_grad_array(self, grad: Any, param: Tensor) -> Any:
        """An array of the parameter's dtype and shape (the autograd engine guarantees both for ``.grad``)."""
        grad = grad.data if isinstance(grad, Tensor) else grad
        w = param.data
        if type(grad) is type(w) and grad.shape == w.shape and grad.dtype == w.dtype:
            return grad
        grad = backend.get_array_module(w).asarray(grad)
        if grad.shape != w.shape:
            raise ValueError(f"{type(self).__name__}: gradient for parameter {param.name or ''} has shape "
                             f"{grad.shape}, expected the parameter's shape {w.shape}; pair each gradient with "
                             "its own parameter")
        return grad.astype(w.dtype, copy=False)

    def _apply(self, pairs: list[tuple[Tensor, Any]]) -> None:
        """Clip, decay and update every (parameter, gradient array) pair, then count the step."""
        if self.clipnorm or self.clipvalue or self.global_clipnorm:
            pairs = list(zip([p for p, _ in pairs], self._clip([g for _, g in pairs])))
        default_lr = self._lr_value(self._learning_rate)
        lrs, decays = [], []  # per parameter group: the learning rate, and the decay factor 1 - lr * weight_decay
        for group in self.param_groups:
            lr = self._lr_value(group["learning_rate"]) if "learning_rate" in group else default_lr
            weight_decay = group.get("weight_decay", self.weight_decay)
            lrs.append(lr)
            decays.append(1.0 - lr * weight_decay if weight_decay else 1.0)
        self.prepare_step()
        if not (self._fuses and self._update_all(pairs, lrs, decays)):
            group_index, state, update = self._group_index, self.state, self.update
            for param, grad in pairs:
                k = group_index[param]
                decay = decays[k] if decays[k] != 1.0 and self._use_weight_decay(param) else 1.0
                if self._update_decays:
                    update(param, grad, state[param], lrs[k], decay=decay)
                else:
                    if decay != 1.0:
                        param.data *= decay
                    update(param, grad, state[param], lrs[k])
        for param, _ in pairs:
            constraint = getattr(param, "constraint", None)
            if constraint is not None:  # as Keras 3: each weight's constraint, once all are updated
                param.data[...] = _as_array(constraint(param))
            param._version += 1
        self.iterations += 1

    def _update_all(self, pairs: list[tuple[Tensor, Any]], lrs: list[float], decays: list[float]) -> bool:
        """:meth:`update_all` on all pairs at once; False (nothing changed) when they cannot share a kernel."""
        if not kernels_enabled():
            return False
        state, keys = self.state, tuple(self.fused_slots.values())
        arrays = []
        for param, _ in pairs:
            arrays.append(param.data)
            arrays += map(state[param].get, keys)
        table = self._table
        if table is None or not table.holds(arrays):
            if len(arrays) == len(self._refused) and all(map(operator.is_, arrays, self._refused)):
                return False
            table = self._table = self._build_table([param for param, _ in pairs])
            self._refused = arrays if table is None else []
            if table is None:
                return False
        if not table.load_gradients([grad for _, grad in pairs]):
            return False
        self.update_all(table, lrs, decays)
        return True

    def _build_table(self, params: list[Tensor]) -> optim.Table | None:
        known = set(self.fused_slots.values())
        if not all(known.issuperset(self.state[p]) for p in params):  # a state the kernel would not update
            return None
        slots = {name: [self.state[p].get(key) for p in params] for name, key in self.fused_slots.items()}
        rows = [2 * self._group_index[p] + (not self._use_weight_decay(p)) for p in params]
        return optim.Table.build([p.data for p in params], slots, rows, 2 * len(self.param_groups))

    def _clip(self, grads: list[Any]) -> list[Any]:
        """Keras 3's clipping: per-parameter norm, global norm, or value (only one is set)."""
        if self.clipvalue:
            xp = backend.get_array_module(*grads)
            return [xp.clip(g, -self.clipvalue, self.clipvalue) for g in grads]
        if self.clipnorm:
            return [_scale_to_norm(g, _norm(g), self.clipnorm) for g in grads]
        norm = math.sqrt(sum(_norm(g) ** 2 for g in grads))
        return [_scale_to_norm(g, norm, self.global_clipnorm) for g in grads]

    # ------------------------------------------------------------ configs and state
    def get_config(self) -> dict[str, Any]:
        """A JSON-friendly dict that :meth:`from_config` turns back into an equal optimiser (Keras's keys)."""
        lr = self._learning_rate
        config = {"name": self.name,
                  "learning_rate": schedules.serialize(lr) if isinstance(lr, LearningRateSchedule)
                  else self.learning_rate,
                  "weight_decay": self.weight_decay, "clipnorm": self.clipnorm,
                  "global_clipnorm": self.global_clipnorm, "clipvalue": self.clipvalue}
        config.update({key: getattr(self, key) for key in self.hyper})
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: dict[str, type] | None = None) -> Optimizer:
        """Build an optimiser from :meth:`get_config`'s dict (Keras 3 optimiser configs load too)."""
        return cls(**_prepare_config(config, custom_objects))

    def state_dict(self) -> dict[str, Any]:
        """``{"config", "iterations", "state", "param_groups"}``: ``state`` holds one dict of NumPy arrays per
        parameter, in attach order; :meth:`load_state_dict` restores it exactly (bit-identical continuation)."""
        groups = [{k: schedules.serialize(v) if isinstance(v, LearningRateSchedule) else v
                   for k, v in g.items() if k != "params"} for g in self.param_groups]
        return {"config": self.get_config(), "iterations": self.iterations,
                "state": [{k: np.array(backend.to_numpy(v)) for k, v in s.items()} for s in self.state.values()],
                "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s result. With no parameters attached yet, the per-parameter state waits
        and is loaded as parameters are attached (in the same order)."""
        self._load_config(state_dict["config"])
        self.iterations = int(state_dict["iterations"])
        for group, saved in zip(self.param_groups, state_dict.get("param_groups", ())):
            for key, value in saved.items():
                group[key] = schedules.deserialize(value) if isinstance(value, dict) else value
        saved_state = list(state_dict["state"])
        if not self.state:
            self._pending_state = saved_state
        elif len(saved_state) != len(self.state):
            raise ValueError(f"{type(self).__name__}.load_state_dict: the saved state has {len(saved_state)} "
                             f"parameters, this optimiser has {len(self.state)}; build the same model first")
        else:
            for param, saved in zip(self.state, saved_state):
                self.state[param] = self.init_state(param)
                self._load_slot(param, saved)
        self.restore_step_values()

    def _load_config(self, config: dict[str, Any]) -> None:
        config = _prepare_config(config, None)
        expected = set(self.get_config())
        if set(config) != expected:
            raise ValueError(f"{type(self).__name__}.load_state_dict: the saved config has keys {sorted(config)}, "
                             f"expected {sorted(expected)}; was it saved from another optimiser class?")
        self._learning_rate = self._check_learning_rate(config.pop("learning_rate"))
        for key, value in config.items():
            setattr(self, key, value)

    def _load_slot(self, param: Tensor, saved: dict[str, Any]) -> None:
        slot = self.state[param]
        if set(saved) != set(slot):
            raise ValueError(f"{type(self).__name__}.load_state_dict: saved state keys {sorted(saved)} do not match "
                             f"{sorted(slot)} for parameter of shape {param.shape}")
        for key, buffer in slot.items():
            value = saved[key]
            if tuple(np.shape(value)) != buffer.shape:
                raise ValueError(f"{type(self).__name__}.load_state_dict: state {key!r} has shape "
                                 f"{np.shape(value)}, expected {buffer.shape}")
            buffer[...] = backend.get_array_module(buffer).asarray(value)

    def __repr__(self) -> str:
        lr = self._learning_rate
        args = [f"learning_rate={lr!r}"] + [f"{k}={getattr(self, k)!r}" for k in self.hyper]
        args += [f"{k}={getattr(self, k)!r}" for k in ("weight_decay", "clipnorm", "clipvalue", "global_clipnorm")
                 if getattr(self, k) is not None]
        return f"{type(self).__name__}({', '.join(args)})"


def _norm(g: Any) -> float:
    flat = g.reshape(-1)
    return math.sqrt(float(backend.get_array_module(g).dot(flat, flat)))


def _as_array(value: Any) -> Any:
    return value.data if isinstance(value, Tensor) else value


def _scale_to_norm(g: Any, norm: float, clip: float) -> Any:
    """``g * clip / max(norm, clip)``; a non-finite norm makes the gradient NaN, as in Keras."""
    if not math.isfinite(norm):
        return g * math.nan
    return g * (clip / norm) if norm > clip else g


def _prepare_config(config: dict[str, Any], custom_objects: dict[str, type] | None) -> dict[str, Any]:
    """Drop Keras-only entries that are at their neutral value; deserialise a schedule."""
    config = dict(config)
    for key, neutral in _KERAS_ONLY.items():
        value = config.pop(key, neutral)
        if key in ("use_ema", "loss_scale_factor", "gradient_accumulation_steps") and value not in (None, False):
            raise ValueError(f"optimizer config sets {key}={value!r}, which shendu does not implement")
    if isinstance(config.get("learning_rate"), dict):
        config["learning_rate"] = schedules.deserialize(config["learning_rate"], custom_objects)
    return config
