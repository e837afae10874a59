"""``Layer``: the base of every layer and model. It composes the parts that live in their own modules:

* :mod:`~shendu.layers.tracking`: weights and sublayers found through attribute assignment;
* :mod:`~shendu.layers.weights`: ``add_weight``, ``weights``, freezing, ``get/set_weights``, ``to(device)``;
* :mod:`~shendu.layers.loss_tracking`: ``losses``, ``add_loss``, activity regularisation;
* :mod:`~shendu.layers.symbolic_call`: calls on symbolic inputs (the functional API);
* :mod:`~shendu.layers.build`: the bookkeeping around every ``build``;
* :mod:`~shendu.layers.config`: constructor arguments for ``get_config``;
* :mod:`~shendu.layers.context`: the per-thread state of the call in progress;
* :mod:`~shendu.layers.registry` and :mod:`~shendu.layers.names`: class registry and automatic names.

What stays here is the call itself. A layer holds its maths in ``call(inputs, training=None)`` and creates its
weights in ``build(input_shape)`` with ``add_weight(...)``. ``__call__`` converts NumPy inputs to Tensors of
the layer's dtype, builds the layer on first use (``input_shape`` has the batch axis as ``None``), checks
the input against ``input_spec`` and calls ``call``::

    class Scale(Layer):
        def build(self, input_shape):
            self.w = self.add_weight("w", (input_shape[-1],), initializer="ones")
        def call(self, x):
            return x * self.w

**Training flag.** ``training=None`` in a nested call inherits the value of the enclosing ``__call__``
(a model called with ``training=True`` runs its Dropout in training mode), else the layer's default
(``False``; ``train()``/``eval()`` change it, as in PyTorch). The flag belongs to the calling thread.

**Checks and errors.** After ``build`` a layer checks every input against ``input_spec``
(:mod:`shendu.layers.input_spec`): a declared ``input_shape`` in full, else for layers with weights the
rank and the last axis; a mismatch raises ``ValueError`` naming the layer, the expected and the received
shape, with a hint (a missing Flatten, an ``input_shape`` that includes the batch axis).

**Functional graph.** Calling a layer on :class:`SymbolicTensor` (made by ``Input``) computes no
numbers: it builds the layer, infers the output shape and returns new SymbolicTensors whose
``node`` records the call. A graph is walked from the outputs back:

* ``t.node`` is a :class:`Node` ``(layer, inputs, kwargs, args)``: ``inputs`` is the structure the
  layer was called on (a SymbolicTensor or a list/tuple/dict of them); ``node.parents`` lists every
  SymbolicTensor the call consumed (in ``inputs``, ``args`` and ``kwargs``), so a topological order
  is a depth-first walk over ``parents``; ``t.index`` says which output of the layer ``t`` is.
* ``Input`` tensors have ``node.layer`` an ``InputLayer`` and no parents.
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

import inspect
from typing import Any

import numpy as np

from shendu import backend
from shendu import regularizers as regularizers_module
from shendu.autograd.tensor import Tensor
from shendu.layers.build import wrap_build
from shendu.layers.config import capture_arguments, unknown_kwargs_error, with_constructor_arguments
from shendu.layers.context import _CALL_IDS, _CONTEXT
from shendu.layers.input_spec import InputSpec, shape_error
from shendu.layers.loss_tracking import LossesMixin
from shendu.layers.masking import _MASKS, get_mask, set_mask
from shendu.layers.names import unique_name
from shendu.layers.registry import register_layer_class
from shendu.layers.shapes import batch_shapes, full_shapes, normalize_shape
from shendu.layers.symbolic import Node, _has_symbolic, _is_structure
from shendu.layers.symbolic_call import SymbolicCallMixin
from shendu.layers.weights import WeightsMixin
from shendu.naming import snake_case


class Layer(WeightsMixin, LossesMixin, SymbolicCallMixin):
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
    #: layers that take integer inputs (Embedding) set this, so integer arrays are not cast to floats
    _keeps_integers = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        register_layer_class(cls)
        if "call" in cls.__dict__:
            params = inspect.signature(cls.call).parameters
            var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
            cls._call_has_training = "training" in params or var_kw
            cls._call_has_mask = "mask" in params or var_kw
        if "build" in cls.__dict__:
            cls.build = wrap_build(cls.__dict__["build"])
        cls._makes_mask = cls.compute_mask is not Layer.compute_mask

    def __new__(cls, *args: Any, **kwargs: Any) -> Layer:
        layer = super().__new__(cls)
        object.__setattr__(layer, "_auto_config", capture_arguments(cls, args, kwargs))
        return layer

    def __init__(self, name: str | None = None, trainable: bool = True, dtype: Any = None,
                 input_shape: Any = None, input_dim: int | None = None, batch_size: int | None = None,
                 batch_input_shape: Any = None, weights: list[Any] | None = None, activity_regularizer: Any = None,
                 autocast: bool = True, **kwargs: Any) -> None:
        if kwargs:
            raise unknown_kwargs_error(type(self), kwargs)
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
        self._own_weights: list[Any] = []
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
            self._batch_input_shape = normalize_shape(batch_input_shape, "batch_input_shape")
        elif input_shape is not None:
            self._batch_input_shape = (batch_size,) + normalize_shape(input_shape, "input_shape")
        else:
            self._batch_input_shape = None
        if self._batch_input_shape is not None:
            self.input_spec = InputSpec(shape=self._batch_input_shape)

    def __getattr__(self, name: str) -> Any:  # only reached when normal lookup fails
        if "_own_weights" not in self.__dict__ and not name.startswith("__"):
            raise AttributeError(f"{type(self).__name__}.{name}: the layer is not initialised; call "
                                 f"super().__init__(**kwargs) at the start of {type(self).__name__}.__init__")
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    # ------------------------------------------------------------------ properties
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
                self._check_inputs(full_shapes(inputs))
            self.build(batch_shapes(inputs))
        spec = self.input_spec
        if spec is not None:
            shapes = inputs.data.shape if type(inputs) is Tensor else full_shapes(inputs)
            accepted = self._accepted
            if accepted[0] is not spec or accepted[1] != shapes:
                self._check_inputs(shapes)
                object.__setattr__(self, "_accepted", (spec, shapes))
        previous_mask = None
        if _MASKS or "mask" in kwargs:
            previous_mask = kwargs["mask"] if "mask" in kwargs else get_mask(original)
            if previous_mask is not None and self._call_has_mask:
                kwargs["mask"] = previous_mask
        ctx = _CONTEXT  # this thread's call state
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
        depth = ctx.depth
        if depth == 0:
            ctx.call_id = next(_CALL_IDS)  # a new top-level call: unique across threads
        ctx.training = training
        ctx.depth = depth + 1
        try:
            outputs = self.call(inputs, *args, **kwargs)
        finally:
            ctx.depth = depth
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

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict[str, Any]:
        """The constructor arguments (JSON-safe); ``type(layer).from_config(config)`` rebuilds the layer.

        A subclass that does not define ``get_config`` gets its constructor arguments recorded automatically
        when they are plain JSON values (as in Keras 3); otherwise this raises, asking for a ``get_config``.
        """
        config: dict[str, Any] = {"name": self.name, "trainable": self._trainable, "dtype": self.dtype}
        if self._batch_input_shape is not None:
            config["batch_input_shape"] = list(self._batch_input_shape)
        return with_constructor_arguments(self, config, Layer, "layer")

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


Layer.build = wrap_build(Layer.build)
