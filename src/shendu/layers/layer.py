"""``Layer``: the base of every layer and model; ``Input``/``InputLayer`` and ``SymbolicTensor``.

A layer holds its maths in ``call(inputs, training=None)`` and creates its weights in
``build(input_shape)`` with ``add_weight(...)``. ``__call__`` converts NumPy inputs to Tensors of the
layer's dtype, builds the layer on first use (``input_shape`` has the batch axis as ``None``), checks
the input against ``input_spec`` and calls ``call``::

    class Scale(Layer):
        def build(self, input_shape):
            self.w = self.add_weight("w", (input_shape[-1],), initializer="ones")
        def call(self, x):
            return x * self.w

Weights and sublayers live in an ordered registry filled by ``__setattr__`` (attributes holding a
Parameter, a Layer, or a list/tuple/dict of them). ``weights`` lists the layer's own weights (in
``add_weight`` order), then its sublayers' (in attribute order), without duplicates.

**Training flag.** ``training=None`` in a nested call inherits the value of the enclosing ``__call__``
(a model called with ``training=True`` runs its Dropout in training mode), else the layer's default
(``False``; ``train()``/``eval()`` change it, as in PyTorch).

**Checks and errors.** After ``build`` a layer checks every input against ``input_spec``
(:mod:`shendu.layers.input_spec`): a declared ``input_shape`` in full, else for layers with weights the
rank and the last axis; a mismatch raises ``ValueError`` naming the layer, the expected and the received
shape, with a hint (a missing Flatten, an ``input_shape`` that includes the batch axis).

**Also:** ``losses`` (weight penalties, activity penalties / batch size, ``add_loss``), masks
(:mod:`shendu.layers.masking`), ``stateless_call`` (run with stand-in weights, e.g. for gradcheck),
``to(device)``, automatic ``get_config`` for subclasses whose arguments are plain JSON values.

**Functional graph.** Calling a layer on :class:`SymbolicTensor` (made by :func:`Input`) computes no
numbers: it builds the layer, infers the output shape and returns new SymbolicTensors whose
``node`` records the call. A graph is walked from the outputs back:

* ``t.node`` is a :class:`Node` ``(layer, inputs, kwargs, args)``: ``inputs`` is the structure the
  layer was called on (a SymbolicTensor or a list/tuple/dict of them); ``node.parents`` lists every
  SymbolicTensor the call consumed (in ``inputs``, ``args`` and ``kwargs``), so a topological order
  is a depth-first walk over ``parents``; ``t.index`` says which output of the layer ``t`` is.
* ``Input`` tensors have ``node.layer`` an :class:`InputLayer` and no parents.
* ``node.replay(values, training)`` runs the call again on real Tensors, ``values`` mapping
  ``id(symbolic_tensor)`` to its value, and returns the layer's output(s).
* A layer called several times (shared) has one node per call in ``layer.inbound_nodes``.

>>> import shendu
>>> from shendu.layers import Dense, Input
>>> x = Input(shape=(4,))
>>> y = Dense(3, name="d")(x)
>>> y.shape, y.node.layer.name, y.node.parents[0] is x
((None, 3), 'd', True)
"""

from __future__ import annotations

import difflib
import inspect
import json
from typing import Any, Callable

import numpy as np

from shendu import backend
from shendu import initializers as initializers_module
from shendu import regularizers as regularizers_module
from shendu.autograd.grad_mode import no_grad
from shendu.autograd.tensor import Parameter, Tensor
from shendu.layers.input_spec import InputSpec, shape_error
from shendu.layers.masking import _MASKS, get_mask, set_mask
from shendu.layers.symbolic import (
    Node,
    SymbolicTensor,
    _has_symbolic,
    _is_structure,
    flatten_structure,
    map_structure,
)
from shendu.naming import snake_case

#: every Layer subclass by class name (for ``shendu.layers.deserialize``)
LAYER_REGISTRY: dict[str, type[Layer]] = {}

_NAME_COUNTS: dict[str, int] = {}


def reset_name_counters() -> None:
    """Start automatic names again at 'dense', 'dense_1', ... (Keras's ``clear_session``)."""
    _NAME_COUNTS.clear()


def unique_name(base: str) -> str:
    """'base' the first time, then 'base_1', 'base_2', ..."""
    n = _NAME_COUNTS.get(base, 0)
    _NAME_COUNTS[base] = n + 1
    return base if n == 0 else f"{base}_{n}"


class _CallContext:
    """What an outer ``__call__`` tells the nested ones: the training flag and which top-level call this is."""

    training: bool | None = None
    depth = 0
    call_id = 0


_CONTEXT = _CallContext()


# ---------------------------------------------------------------------------- Layer
def _normalize_shape(shape: Any, what: str) -> tuple:
    if isinstance(shape, (int, np.integer)):
        return (int(shape),)
    try:
        return tuple(None if d is None else int(d) for d in shape)
    except TypeError:
        raise TypeError(f"{what} must be a tuple of ints (None for unknown sizes), got {shape!r}") from None


def _may_hold_layers(container: Any) -> bool:
    """Track an empty container (filled later) or one holding layers or parameters; skip plain data."""
    leaves = flatten_structure(container)
    return not leaves or any(isinstance(v, (Layer, Parameter)) for v in leaves)


def _capture_arguments(cls: type, args: tuple, kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """The constructor's arguments by name when all are plain JSON values, else None."""
    try:
        bound = inspect.signature(cls.__init__).bind(None, *args, **kwargs)
    except TypeError:
        return None
    arguments = dict(bound.arguments)
    arguments.pop(next(iter(arguments)))  # self
    for name, p in inspect.signature(cls.__init__).parameters.items():
        if p.kind is p.VAR_KEYWORD and name in arguments:
            arguments.update(arguments.pop(name))
        elif p.kind is p.VAR_POSITIONAL and arguments.pop(name, ()):
            return None
    try:
        return json.loads(json.dumps(arguments))
    except (TypeError, ValueError):
        return None


class Layer:
    """Base class of layers and models (Keras semantics; see the module docstring).

    Arguments every layer takes: ``name`` (automatic 'dense', 'dense_1', ... when None), ``trainable``,
    ``dtype`` (float32 by default), and for a first layer ``input_shape`` (without the batch axis) or
    ``input_dim`` (``input_dim=k`` means ``input_shape=(k,)``), with an optional ``batch_size``;
    ``weights`` (arrays set once the layer is built), ``activity_regularizer`` (a penalty on the outputs,
    added to ``losses``) and ``autocast`` (cast floating inputs to ``dtype``, default True).
    Unknown keyword arguments raise ``TypeError`` listing the valid ones.
    """

    #: whether the layer passes masks through unchanged (see :mod:`shendu.layers.masking`)
    supports_masking = False
    _autocast = True  # cast floating inputs to the layer's dtype
    _autocast_floats = True  # models set it False: their layers cast floats, integer arrays still become floats
    _call_has_training = False
    _call_has_mask = False
    _accepted: tuple = (None, None)  # (input_spec, shapes) of the last input that passed the check
    _makes_mask = False  # set for subclasses that define compute_mask

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        LAYER_REGISTRY[cls.__name__] = cls
        if "call" in cls.__dict__:
            params = inspect.signature(cls.call).parameters
            var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
            cls._call_has_training = "training" in params or var_kw
            cls._call_has_mask = "mask" in params or var_kw
        if "build" in cls.__dict__:
            cls.build = _wrap_build(cls.__dict__["build"])
        cls._makes_mask = cls.compute_mask is not Layer.compute_mask

    def __init__(self, name: str | None = None, trainable: bool = True, dtype: Any = None,
                 input_shape: Any = None, input_dim: int | None = None, batch_size: int | None = None,
                 batch_input_shape: Any = None, weights: list[Any] | None = None, activity_regularizer: Any = None,
                 autocast: bool = True, **kwargs: Any) -> None:
        if kwargs:
            raise self._unknown_kwargs_error(kwargs)
        if name is not None and not isinstance(name, str):
            raise TypeError(f"{type(self).__name__}: name must be a string, got {name!r}")
        self.name = name or unique_name(snake_case(type(self).__name__))
        try:
            self._dtype = np.dtype(backend.default_float_dtype() if dtype is None else dtype)
        except TypeError:
            raise ValueError(f"{type(self).__name__}: dtype must be a NumPy dtype such as 'float32' or 'float64', "
                             f"got {dtype!r} (mixed-precision policies are not supported)") from None
        self._trainable = bool(trainable)
        self.built = False
        self.input_spec: InputSpec | list[InputSpec | None] | None = None
        self._build_input_shape: Any = None
        self._default_training: bool | None = None
        self._own_weights: list[Parameter] = []
        self._call_losses: list[Any] = []
        self._call_losses_id = -1
        self.inbound_nodes: list[Node] = []
        self._symbolic_outputs: list[Any] = []
        self.activity_regularizer = regularizers_module.get(activity_regularizer)
        self._initial_weights = None if weights is None else list(weights)  # set once built (Keras ``weights=``)
        if not autocast:
            self._autocast = False
        if input_dim is not None:
            if input_shape is not None:
                raise ValueError(f"layer '{self.name}': give input_dim or input_shape, not both "
                                 f"(got input_dim={input_dim}, input_shape={input_shape})")
            input_shape = (input_dim,)
        if batch_input_shape is not None:
            self._batch_input_shape = _normalize_shape(batch_input_shape, "batch_input_shape")
        elif input_shape is not None:
            self._batch_input_shape = (batch_size,) + _normalize_shape(input_shape, "input_shape")
        else:
            self._batch_input_shape = None
        if self._batch_input_shape is not None:
            self.input_spec = InputSpec(shape=self._batch_input_shape)

    def __getattr__(self, name: str) -> Any:  # only reached when normal lookup fails
        if "_own_weights" not in self.__dict__ and not name.startswith("__"):
            raise AttributeError(f"{type(self).__name__}.{name}: the layer is not initialised; call "
                                 f"super().__init__(**kwargs) at the start of {type(self).__name__}.__init__")
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def _unknown_kwargs_error(self, kwargs: dict[str, Any]) -> TypeError:
        valid: list[str] = []
        for klass in type(self).__mro__:
            init = klass.__dict__.get("__init__")
            if init is None or klass is object:
                continue
            for p in inspect.signature(init).parameters.values():
                if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name not in valid:
                    valid.append(p.name)
        lines = []
        for key in kwargs:
            close = difflib.get_close_matches(key, valid, n=1)
            lines.append(f"'{key}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
        return TypeError(f"{type(self).__name__}: unknown keyword argument(s) {', '.join(lines)}; "
                         f"valid arguments are: {', '.join(valid)}")

    # ------------------------------------------------------------------ attribute tracking
    def __setattr__(self, name: str, value: Any) -> None:
        tracked = self.__dict__.get("_tracked")
        if tracked is None:
            tracked = {}
            object.__setattr__(self, "_tracked", tracked)
        if isinstance(value, (Parameter, Layer)) or (
                isinstance(value, (list, tuple, dict)) and _may_hold_layers(value)):
            tracked[name] = None
        elif name in tracked:
            del tracked[name]
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        self.__dict__.get("_tracked", {}).pop(name, None)
        object.__delattr__(self, name)

    def _tracked_values(self) -> list[Any]:
        out: list[Any] = []
        for name in self.__dict__.get("_tracked", ()):
            value = self.__dict__.get(name)
            if isinstance(value, (Parameter, Layer)):
                out.append(value)
            elif isinstance(value, (list, tuple, dict)):
                out.extend(v for v in flatten_structure(value) if isinstance(v, (Parameter, Layer)))
        return out

    def _own_params(self) -> list[Parameter]:
        params = list(self.__dict__.get("_own_weights", ()))
        seen = {id(p) for p in params}
        for v in self._tracked_values():
            if isinstance(v, Parameter) and id(v) not in seen:
                seen.add(id(v))
                params.append(v)
        return params

    def _sublayers(self) -> list[Layer]:
        """Direct sublayers in attribute order (no duplicates, never self)."""
        seen = {id(self)}
        out = []
        for v in self._tracked_values():
            if isinstance(v, Layer) and id(v) not in seen:
                seen.add(id(v))
                out.append(v)
        return out

    def children(self):
        """Direct sublayers (PyTorch's name)."""
        return iter(self._sublayers())

    def _collect(self, kind: str, seen: set[int]) -> list[Parameter]:
        frozen = not self._trainable
        if kind == "trainable" and frozen:
            return []
        out = []
        for p in self._own_params():
            if id(p) in seen:
                continue
            if kind == "all" or (kind == "trainable" and p.trainable) or (kind == "non_trainable" and
                                                                           (frozen or not p.trainable)):
                seen.add(id(p))
                out.append(p)
        sub_kind = "all" if (kind == "non_trainable" and frozen) else kind
        for layer in self._sublayers():
            out.extend(layer._collect(sub_kind, seen))
        return out

    @property
    def weights(self) -> list[Parameter]:
        """All weights: this layer's (in creation order), then its sublayers'."""
        return self._collect("all", set())

    @property
    def trainable_weights(self) -> list[Parameter]:
        return self._collect("trainable", set())

    @property
    def non_trainable_weights(self) -> list[Parameter]:
        return self._collect("non_trainable", set())

    @property
    def variables(self) -> list[Parameter]:
        return self.weights

    @property
    def trainable_variables(self) -> list[Parameter]:
        return self.trainable_weights

    @property
    def non_trainable_variables(self) -> list[Parameter]:
        return self.non_trainable_weights

    def parameters(self):
        """The trainable weights, as an iterator (PyTorch style: ``SGD(params=model.parameters())``)."""
        return iter(self.trainable_weights)

    def named_parameters(self):
        """(name, parameter) pairs of the trainable weights; names are 'layer/weight' paths."""
        return ((p.name, p) for p in self.trainable_weights)

    def zero_grad(self) -> None:
        """Clear ``.grad`` of every weight."""
        for p in self.weights:
            p.grad = None

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        """Freeze (False) or unfreeze this layer and every sublayer; frozen weights get no gradient."""
        value = bool(value)
        object.__setattr__(self, "_trainable", value)
        for p in self._own_params():
            p.requires_grad = value and p.trainable
        for layer in self._sublayers():
            layer.trainable = value

    def train(self, mode: bool = True) -> Layer:
        """PyTorch style: make ``training=None`` calls run in training mode (Dropout, BatchNorm)."""
        object.__setattr__(self, "_default_training", bool(mode))
        for layer in self._sublayers():
            layer.train(mode)
        return self

    def eval(self) -> Layer:
        """PyTorch style: ``training=None`` calls run in inference mode (the default)."""
        return self.train(False)

    @property
    def dtype(self) -> str:
        return self._dtype.name

    @property
    def input_shape(self) -> tuple:
        """The declared input shape with the batch axis (``input_dim=1`` gives ``(None, 1)``), else the build shape."""
        shape = self._batch_input_shape if self._batch_input_shape is not None else self._build_input_shape
        if shape is None:
            raise AttributeError(f"layer '{self.name}' has no input shape yet: it was not given input_shape and "
                                 "has not been called")
        return shape

    def count_params(self) -> int:
        """The number of scalars in all weights (the layer must be built)."""
        if not self.built:
            raise ValueError(f"layer '{self.name}' is not built yet, so it has no weights to count; call it on "
                             "data or give the first layer input_shape=...")
        return int(sum(p.data.size for p in self.weights))

    # ------------------------------------------------------------------ weights
    def add_weight(self, name: str | None = None, shape: Any = None, initializer: Any = "glorot_uniform",
                   regularizer: Any = None, trainable: bool = True, constraint: Any = None,
                   dtype: Any = None) -> Parameter:
        """Create a weight: a Parameter named 'layer/name', initialised, registered in ``weights``.

        ``regularizer(w)`` adds to ``losses``; ``constraint(w)`` is applied by optimisers after each update.
        A non-trainable weight (moving statistics) gets ``requires_grad=False``.
        """
        if name is not None and not isinstance(name, str):
            raise TypeError(f"layer '{self.name}': add_weight's first argument is the name (a string), got {name!r}; "
                            "pass the shape by keyword: add_weight(shape=..., initializer=...)")
        shape = () if shape is None else _normalize_shape(shape, f"layer '{self.name}': add_weight shape")
        if any(d is None or d < 0 for d in shape):
            raise ValueError(f"layer '{self.name}': weight '{name}' needs a fully known shape, got {shape}")
        dtype = self._dtype if dtype is None else np.dtype(dtype)
        init = initializers_module.get(initializer)
        value = init(shape, dtype=dtype)
        if isinstance(value, Tensor):
            value = value.data
        if name is None:
            name = f"weight_{len(self._own_weights)}"
        value = backend.as_array(np.asarray(value, dtype=dtype).reshape(shape), device=self._device)
        p = Parameter(value, requires_grad=bool(trainable) and self._trainable, name=f"{self.name}/{name}")
        p.trainable = bool(trainable)
        p.regularizer = regularizers_module.get(regularizer)
        p.constraint = constraint
        self._own_weights.append(p)
        return p

    def get_weights(self) -> list[np.ndarray]:
        """Copies of the weights as NumPy arrays, in ``weights`` order."""
        return [backend.to_numpy(p.data).copy() for p in self.weights]

    def set_weights(self, weights: list[Any]) -> None:
        """Set every weight from arrays in ``weights`` order (shapes must match)."""
        params = self.weights
        if len(weights) != len(params):
            raise ValueError(f"layer '{self.name}' has {len(params)} weights "
                             f"({', '.join(p.name or '?' for p in params)}) but set_weights received {len(weights)}")
        for p, w in zip(params, weights):
            w = w.data if isinstance(w, Tensor) else w
            w = np.asarray(backend.to_numpy(w))
            if w.shape != p.shape:
                raise ValueError(f"layer '{self.name}': weight '{p.name}' has shape {p.shape} but set_weights "
                                 f"received shape {w.shape}")
        for p, w in zip(params, weights):
            w = w.data if isinstance(w, Tensor) else w
            p.data[...] = backend.as_array(w, dtype=p.dtype, device=p.device)
            p._version += 1

    def _all_layers(self) -> list[Layer]:
        """This layer and every sublayer, depth first, without duplicates."""
        out, seen, stack = [], set(), [self]
        while stack:
            layer = stack.pop()
            if id(layer) not in seen:
                seen.add(id(layer))
                out.append(layer)
                stack.extend(reversed(layer._sublayers()))
        return out

    def stateless_call(self, trainable_weights: list[Any], non_trainable_weights: list[Any], *args: Any,
                       **kwargs: Any) -> tuple[Any, list[Any]]:
        """Call the layer with the given tensors standing in for ``trainable_weights`` and
        ``non_trainable_weights`` (same order); returns ``(outputs, non_trainable_weights)`` (Keras 3).

        The stand-ins receive the gradients, so ``shendu.gradcheck`` can check a layer's weights.
        """
        originals = self.trainable_weights + self.non_trainable_weights
        stand_ins = list(trainable_weights) + list(non_trainable_weights)
        if len(stand_ins) != len(originals):
            raise ValueError(f"layer '{self.name}'.stateless_call: expected {len(self.trainable_weights)} trainable "
                             f"and {len(self.non_trainable_weights)} non-trainable weights, received "
                             f"{len(trainable_weights)} and {len(non_trainable_weights)}")
        mapping = {id(p): t for p, t in zip(originals, stand_ins)}
        swapped = []
        for layer in self._all_layers():
            for name in list(layer.__dict__.get("_tracked", ())):
                value = layer.__dict__.get(name)
                if id(value) in mapping:
                    swapped.append((layer, name, value))
                    object.__setattr__(layer, name, mapping[id(value)])
        try:
            outputs = self(*args, **kwargs)
        finally:
            for layer, name, value in swapped:
                object.__setattr__(layer, name, value)
        return outputs, list(non_trainable_weights)

    # ------------------------------------------------------------------ losses
    def add_loss(self, loss: Any) -> None:
        """Add a scalar Tensor to ``losses`` for the current forward pass (activity regularisation, ...)."""
        if self._call_losses_id != _CONTEXT.call_id:
            self._call_losses = []
            self._call_losses_id = _CONTEXT.call_id
        self._call_losses.append(loss)

    @property
    def losses(self) -> list[Any]:
        """Regularisation penalties of the trainable weights (recomputed now) and losses added during the
        latest forward pass, of this layer and all sublayers."""
        out = []
        seen: set[int] = set()
        for p in self.trainable_weights:
            if p.regularizer is not None and id(p) not in seen:
                seen.add(id(p))
                out.append(p.regularizer(p))
        out.extend(self._forward_losses(set()))
        return out

    def _forward_losses(self, seen: set[int]) -> list[Any]:
        if id(self) in seen:
            return []
        seen.add(id(self))
        out = list(self._call_losses) if self._call_losses_id == _CONTEXT.call_id else []
        for layer in self._sublayers():
            out.extend(layer._forward_losses(seen))
        return out

    # ------------------------------------------------------------------ build / call
    def build(self, input_shape: Any) -> None:
        """Create the weights for inputs of ``input_shape`` (batch axis None). The default creates none."""

    def call(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        """The layer's computation (override)."""
        raise NotImplementedError(f"layer '{self.name}' ({type(self).__name__}) has no call(); subclasses define it")

    def _convert(self, x: Any) -> Any:
        if isinstance(x, Tensor):
            if self._autocast and self._autocast_floats and x.data.dtype != self._dtype and x.data.dtype.kind == "f":
                return x.astype(self._dtype)
            return x
        if x is None:
            return None
        if _is_structure(x):
            return type(x)(self._convert(v) for v in x)
        if isinstance(x, dict):
            return {k: self._convert(v) for k, v in x.items()}
        arr = x if backend.is_array(x) else np.asarray(x)
        if arr.dtype.kind == "f" and self._autocast and self._autocast_floats:
            arr = arr.astype(self._dtype, copy=False)
        elif arr.dtype.kind in "iub" and self._autocast and not self._keeps_integers:
            arr = arr.astype(self._dtype)
        if self._device is not None:
            arr = backend.as_array(arr, device=self._device)
        return Tensor._wrap(backend.ensure_array(arr))

    #: layers that take integer inputs (Embedding) set this, so integer arrays are not cast to floats
    _keeps_integers = False
    #: where weights (and converted NumPy inputs) live after ``to(device)``; None: where they were made (CPU)
    _device: str | None = None

    def to(self, device: str) -> Layer:
        """Move every weight to ``device`` ('cpu' or 'cuda') in place; NumPy inputs then follow (PyTorch style)."""
        for layer in self._all_layers():
            object.__setattr__(layer, "_device", device)
        for p in self.weights:
            p.data = backend.as_array(p.data, device=device)
            p.grad = None
        return self

    def _check_inputs(self, shapes: Any) -> None:
        spec = self.input_spec
        if spec is None:
            return
        if isinstance(spec, InputSpec):
            if isinstance(shapes, list):
                raise ValueError(f"layer '{self.name}' ({type(self).__name__}) expects one input but received "
                                 f"{len(shapes)}: {shapes}")
            if not spec.is_compatible(shapes):
                raise shape_error(self, self._expected_shape(), shapes, what=spec.describe())
            return
        shapes = shapes if isinstance(shapes, list) else [shapes]
        if len(shapes) != len(spec):
            raise ValueError(f"layer '{self.name}' ({type(self).__name__}) expects {len(spec)} inputs but received "
                             f"{len(shapes)}")
        for i, (s, shape) in enumerate(zip(spec, shapes)):
            if s is not None and not s.is_compatible(shape):
                raise shape_error(self, None, shape, index=i, what=s.describe())

    def _expected_shape(self) -> tuple | None:
        expected = self._batch_input_shape or self._build_input_shape
        return tuple(expected) if isinstance(expected, tuple) else None

    def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        original = inputs  # masks are attached to the caller's tensors, before any conversion
        # the hot path is a Tensor of the layer's dtype (builtin dtypes are singletons: ``is`` is exact)
        if type(inputs) is not Tensor or (inputs.data.dtype is not self._dtype and self._autocast):
            if _has_symbolic(inputs):
                return self._call_symbolic(inputs, args, kwargs)
            inputs = self._convert(inputs)
        if not self.built:
            if self.input_spec is not None:  # a declared input_shape is checked before building
                self._check_inputs(_full_shapes(inputs))
            self.build(_batch_shapes(inputs))
        spec = self.input_spec
        if spec is not None:
            shapes = inputs.data.shape if type(inputs) is Tensor else _full_shapes(inputs)
            accepted = self._accepted
            if accepted[0] is not spec or accepted[1] != shapes:
                self._check_inputs(shapes)
                object.__setattr__(self, "_accepted", (spec, shapes))
        previous_mask = None
        if _MASKS or "mask" in kwargs:
            previous_mask = kwargs["mask"] if "mask" in kwargs else get_mask(original)
            if previous_mask is not None and self._call_has_mask:
                kwargs["mask"] = previous_mask
        ctx = _CONTEXT
        outer = ctx.training
        training = None
        if kwargs:
            training = kwargs.pop("training", None)
            if not self._call_has_mask:
                kwargs.pop("mask", None)  # Keras drops masks for layers whose call takes none
        if training is None:
            training = outer if outer is not None else self._default_training
        if self._call_has_training:
            kwargs["training"] = training
        if ctx.depth == 0:
            ctx.call_id += 1
        ctx.training = training
        ctx.depth += 1
        try:
            outputs = self.call(inputs, *args, **kwargs)
        finally:
            ctx.depth -= 1
            ctx.training = outer
        if self.activity_regularizer is not None:
            self._add_activity_losses(outputs)
        if previous_mask is not None or self._makes_mask:
            set_mask(outputs, self.compute_mask(inputs, previous_mask))
        return outputs

    def compute_mask(self, inputs: Any, previous_mask: Any = None) -> Any:
        """The mask of the outputs: the input's when the layer ``supports_masking``, else None (override to
        make one, as ``Embedding(mask_zero=True)`` does)."""
        return previous_mask if self.supports_masking else None

    def _add_activity_losses(self, outputs: Any) -> None:
        """activity_regularizer(y) / batch size for each output (Keras 3 divides by the batch size)."""
        for y in flatten_structure(outputs):
            if isinstance(y, Tensor):
                loss = self.activity_regularizer(y)
                self.add_loss(loss * (1.0 / y.shape[0]) if y.ndim and y.shape[0] else loss)

    # ------------------------------------------------------------------ functional (symbolic) calls
    def _call_symbolic(self, inputs: Any, args: tuple, kwargs: dict[str, Any]) -> Any:
        shapes = map_structure(lambda t: t.shape if isinstance(t, SymbolicTensor) else t, inputs)
        if isinstance(shapes, tuple) and not isinstance(inputs, SymbolicTensor):
            shapes = list(shapes)
        if not self.built:
            self.build(shapes)
        self._check_inputs(shapes)
        if self._has_static_output_shape():
            out_shapes = self.compute_output_shape(shapes)
            out_dtypes = None
        else:
            out_shapes, out_dtypes = self._infer_output(inputs, args, kwargs)
        node = Node(self, inputs, dict(kwargs), tuple(args))
        if _is_shape(out_shapes):
            outputs: Any = SymbolicTensor(out_shapes, out_dtypes[0] if out_dtypes else self._dtype, node, 0)
        else:
            outputs = [SymbolicTensor(s, out_dtypes[i] if out_dtypes else self._dtype, node, i)
                       for i, s in enumerate(out_shapes)]
        self.inbound_nodes.append(node)
        self._symbolic_outputs.append(outputs)
        return outputs

    def _infer_output(self, inputs: Any, args: tuple, kwargs: dict[str, Any]) -> tuple[Any, list]:
        """Output shape(s) and dtypes from running ``call`` on zeros (batch 1; unknown sizes probed twice)."""
        def run(size: int) -> list[Tensor]:
            def zeros(t: Any) -> Any:
                if not isinstance(t, SymbolicTensor):
                    return t
                shape = (1,) + tuple(size if d is None else d for d in t.shape[1:])
                return Tensor._wrap(backend.as_array(np.zeros(shape, dtype=t.dtype), device=self._device))

            with no_grad():
                kw = map_structure(zeros, kwargs)
                kw.setdefault("training", False)
                out = self(map_structure(zeros, inputs), *map_structure(zeros, list(args)), **kw)
            return out

        first = run(2)
        symbolic_leaves = [t for t in flatten_structure([inputs, list(args), kwargs]) if isinstance(t, SymbolicTensor)]
        unknown = any(d is None for t in symbolic_leaves for d in t.shape[1:])
        second = run(3) if unknown else first
        single = isinstance(first, Tensor)
        firsts = [first] if single else flatten_structure(first)
        seconds = [second] if single else flatten_structure(second)
        shapes = []
        for a, b in zip(firsts, seconds):
            dims = [None if da != db else da for da, db in zip(a.shape[1:], b.shape[1:])]
            shapes.append((None, *dims) if a.ndim else ())
        dtypes = [t.dtype for t in firsts]
        return (shapes[0] if single else shapes), dtypes

    def _has_static_output_shape(self) -> bool:
        """Whether ``compute_output_shape`` is defined (else symbolic calls probe ``call`` on zeros)."""
        return type(self).compute_output_shape is not Layer.compute_output_shape

    def compute_output_shape(self, input_shape: Any) -> Any:
        """The output shape (batch axis None) for ``input_shape``; by default found by running ``call`` on zeros."""
        def placeholder(shape: Any) -> SymbolicTensor:
            return SymbolicTensor(shape, self._dtype)

        if _is_shape(input_shape):
            inputs: Any = placeholder(input_shape)
        else:
            inputs = [placeholder(s) for s in input_shape]
        if not self.built:
            self.build(input_shape)
        shapes, _ = self._infer_output(inputs, (), {})
        return shapes

    @property
    def output(self) -> Any:
        """The symbolic output of this layer's first functional call."""
        if not self.inbound_nodes:
            raise AttributeError(f"layer '{self.name}' has not been called on symbolic inputs (Input(...)) yet")
        return self._symbolic_outputs[0]

    # ------------------------------------------------------------------ config
    def __new__(cls, *args: Any, **kwargs: Any) -> Layer:
        layer = super().__new__(cls)
        object.__setattr__(layer, "_auto_config", _capture_arguments(cls, args, kwargs))
        return layer

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments (JSON-safe); ``type(layer).from_config(config)`` rebuilds the layer.

        A subclass that does not define ``get_config`` gets its constructor arguments recorded automatically
        when they are plain JSON values (as in Keras 3); otherwise this raises, asking for a ``get_config``.
        """
        config: dict[str, Any] = {"name": self.name, "trainable": self._trainable, "dtype": self.dtype}
        if self._batch_input_shape is not None:
            config["batch_input_shape"] = list(self._batch_input_shape)
        cls = type(self)
        if cls.get_config is Layer.get_config and cls.__init__ is not Layer.__init__:
            auto = self.__dict__.get("_auto_config")
            if auto is None:
                raise NotImplementedError(f"layer '{self.name}' ({cls.__name__}) was built from arguments that are "
                                          "not plain JSON values; define get_config() (and from_config()) for it")
            config = {**auto, **config}
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


def _wrap_build(build: Callable) -> Callable:
    """Make ``build`` record the shape, set ``built`` and a default ``input_spec`` (Keras 3 does the same)."""
    def wrapped(self: Layer, input_shape: Any = None, *args: Any, **kwargs: Any) -> None:
        if input_shape is not None and not isinstance(input_shape, (list, dict)):
            input_shape = _normalize_shape(input_shape, f"layer '{self.name}': build input_shape")
        elif isinstance(input_shape, list) and _is_shape(tuple(input_shape)):
            input_shape = tuple(input_shape)
        if self.__dict__.get("_in_build"):
            return build(self, input_shape, *args, **kwargs)
        if self._batch_input_shape is not None and _is_shape(input_shape):
            declared = self._batch_input_shape
            if len(declared) != len(input_shape) or any(
                    d is not None and r is not None and d != r for d, r in zip(declared[1:], input_shape[1:])):
                raise shape_error(self, (None, *declared[1:]), input_shape)
        object.__setattr__(self, "_in_build", True)
        try:
            build(self, input_shape, *args, **kwargs)  # extra shapes: layers such as attention take several
        finally:
            object.__setattr__(self, "_in_build", False)
        object.__setattr__(self, "_build_input_shape", input_shape)
        object.__setattr__(self, "built", True)
        if self.__dict__.get("_initial_weights") is not None:
            initial, self._initial_weights = self._initial_weights, None
            self.set_weights(initial)
        # the declared input_shape is checked on every call; else layers with weights check rank and last axis
        if self._batch_input_shape is not None and _is_shape(input_shape):
            self.input_spec = InputSpec(shape=self._batch_input_shape)
        elif self.input_spec is None and _is_shape(input_shape) and input_shape and self._own_weights:
            if input_shape[-1] is not None and len(input_shape) > 1:
                self.input_spec = InputSpec(ndim=len(input_shape), axes={-1: input_shape[-1]})

    wrapped.__doc__ = build.__doc__
    wrapped.__wrapped__ = build
    return wrapped


Layer.build = _wrap_build(Layer.build)


def _is_shape(x: Any) -> bool:
    return isinstance(x, tuple) and all(d is None or isinstance(d, (int, np.integer)) for d in x)


def _batch_shapes(inputs: Any) -> Any:
    """Shapes with the batch axis as None (a list for several inputs)."""
    if isinstance(inputs, Tensor):
        return (None, *inputs.data.shape[1:]) if inputs.data.ndim else ()
    if isinstance(inputs, (list, tuple)):
        return [_batch_shapes(x) for x in inputs]
    if isinstance(inputs, dict):
        return {k: _batch_shapes(v) for k, v in inputs.items()}
    return None


def _full_shapes(inputs: Any) -> Any:
    if isinstance(inputs, Tensor):
        return inputs.data.shape
    if isinstance(inputs, (list, tuple)):
        return [_full_shapes(x) for x in inputs]
    return None


# ---------------------------------------------------------------------------- Input
class InputLayer(Layer):
    """The entry of a functional model: holds the input's ``batch_shape`` and ``dtype``; on data it checks
    the shape and passes the input through."""

    def __init__(self, shape: Any = None, batch_size: int | None = None, dtype: Any = None, name: str | None = None,
                 batch_shape: Any = None, input_shape: Any = None, **kwargs: Any) -> None:
        if input_shape is not None and shape is None:  # Keras 2 spelling
            shape = input_shape
        if batch_shape is None:
            if shape is None:
                raise ValueError("InputLayer/Input: pass shape=(...) (without the batch axis), "
                                 "e.g. Input(shape=(784,))")
            batch_shape = (batch_size,) + _normalize_shape(shape, "Input shape")
        batch_shape = _normalize_shape(batch_shape, "Input batch_shape")
        super().__init__(name=name or unique_name("input_layer"), dtype=dtype, **kwargs)
        self._batch_input_shape = batch_shape
        self.built = True
        self._build_input_shape = batch_shape
        self.input_spec = InputSpec(shape=batch_shape)
        self._keeps_integers = self._dtype.kind != "f"
        node = Node(self, None, {})
        self.inbound_nodes.append(node)
        self._output = SymbolicTensor(batch_shape, self._dtype, node, 0, name=self.name)

    @property
    def batch_shape(self) -> tuple:
        return self._batch_input_shape

    @property
    def output(self) -> SymbolicTensor:
        return self._output

    def _convert(self, x: Any) -> Any:
        x = super()._convert(x)
        if isinstance(x, Tensor) and self._dtype.kind != "f" and x.data.dtype != self._dtype:
            return Tensor._wrap(x.data.astype(self._dtype))  # integer inputs (token ids) take the declared dtype
        return x

    def call(self, inputs: Any) -> Any:
        return inputs

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {"batch_shape": list(self._batch_input_shape), "dtype": self.dtype, "name": self.name}


def Input(shape: Any = None, batch_size: int | None = None, dtype: Any = None, name: str | None = None,  # noqa: N802
          batch_shape: Any = None) -> SymbolicTensor:
    """A symbolic input for the functional API: ``Input(shape=(784,))`` has ``shape`` ``(None, 784)``."""
    return InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, name=name, batch_shape=batch_shape).output
