"""``Sequential``: a plain stack of layers, each feeding the next.

It builds at once when its first layer declares ``input_shape``/``input_dim`` (or an ``Input`` is added
first), otherwise on the first data it sees. Building runs the stack on a symbolic ``Input`` so every
layer knows its output shape (``summary`` shows them) and shape mistakes surface immediately.
"""

from __future__ import annotations

from typing import Any

from shendu.layers import Input, InputLayer, Layer, SymbolicTensor, serialize
from shendu.models.functional import deserialize_layer
from shendu.models.model import Model


class _Shapes:
    """The declared input shape and each layer's output shape (kept out of the Layer registry)."""

    def __init__(self) -> None:
        self.declared_input: tuple | None = None
        self.input_tensor: SymbolicTensor | None = None  # the Input the stack was last built on
        self.output_tensor: Any = None
        self.outputs: list[Any] = []


def _earlier_call(layer: Layer, x: Any) -> Any:
    """``layer(x)``, or the output of an earlier symbolic call on this very ``x`` (a rebuild after ``add``), so that
    every layer's ``output`` hangs off the same ``Input`` however often the stack is rebuilt."""
    for node, outputs in zip(layer.inbound_nodes, layer._symbolic_outputs):
        if node.inputs is x and not node.args and not node.kwargs:
            return outputs
    return layer(x)


class Sequential(Model):
    """``Sequential([Dense(64, activation="relu", input_dim=20), Dense(1)])``, or ``add`` the layers one by one.

    >>> from shendu.layers import Dense
    >>> model = Sequential([Dense(3, input_dim=2), Dense(1)])
    >>> model.built, model.count_params()
    (True, 13)
    >>> model.pop().units, len(model.layers)
    (1, 1)
    """

    def __init__(self, layers: list[Any] | None = None, name: str | None = None, **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self._layers: list[Layer] = []
        self._shapes = _Shapes()
        for layer in layers or []:
            self.add(layer, rebuild=False)
        self._maybe_build()

    @property
    def layers(self) -> list[Layer]:
        """The layers in order (an ``Input`` given to ``add`` is not listed, as in Keras)."""
        return list(self._layers)

    def add(self, layer: Any, rebuild: bool = True) -> None:
        """Append a layer (or, first, an ``Input``/``InputLayer`` that fixes the input shape)."""
        if isinstance(layer, SymbolicTensor) and isinstance(layer.node.layer, InputLayer):
            layer = layer.node.layer
        if isinstance(layer, InputLayer):
            if self._layers:
                raise ValueError(f"Sequential '{self.name}': an Input can only be added first")
            self._shapes.declared_input = layer.batch_shape
            self._shapes.input_tensor = layer.output
        elif not isinstance(layer, Layer):
            raise TypeError(f"Sequential '{self.name}'.add(): expected a Layer, got {type(layer).__name__}; "
                            "e.g. model.add(Dense(1, input_dim=1))")
        else:
            if any(existing is layer for existing in self._layers):
                raise ValueError(f"Sequential '{self.name}': layer '{layer.name}' was already added")
            self._layers = [*self._layers, layer]
        self.built = False
        self._train.reset_compiled()
        if rebuild:
            self._maybe_build()

    def pop(self, rebuild: bool = True) -> Layer:
        """Remove and return the last layer."""
        if not self._layers:
            raise IndexError(f"Sequential '{self.name}' has no layers to pop")
        layer = self._layers[-1]
        self._layers = self._layers[:-1]
        self.built = False
        self._train.reset_compiled()
        if rebuild:
            self._maybe_build()
        return layer

    def _input_batch_shape(self) -> tuple | None:
        if self._shapes.declared_input is not None:
            return self._shapes.declared_input
        if self._layers and self._layers[0]._batch_input_shape is not None:
            return self._layers[0]._batch_input_shape
        return None

    def _maybe_build(self) -> None:
        shape = self._input_batch_shape()
        if shape is not None and self._layers:
            self.build(shape)

    def build(self, input_shape: Any = None) -> None:
        """Build every layer by running the stack on a symbolic Input of ``input_shape`` (batch axis None).

        While a file is being loaded, each new weight is charged against the bytes the file stores before it is
        allocated (:mod:`shendu.utils.weight_budget`), so a hostile config stops at its first oversized weight.
        """
        input_shape = input_shape if input_shape is not None else self._input_batch_shape()
        if input_shape is None:
            raise ValueError(f"Sequential '{self.name}' cannot be built without an input shape; give the first "
                             "layer input_shape=... (or input_dim=...), or call the model on data")
        if not self._layers:
            raise ValueError(f"Sequential '{self.name}' has no layers; add some before building it")
        source = self._shapes.input_tensor
        if source is None or tuple(source.shape) != tuple(input_shape):
            source = self._shapes.input_tensor = Input(batch_shape=tuple(input_shape))
        x: Any = source
        shapes = []
        for layer in self._layers:
            x = _earlier_call(layer, x)
            shapes.append(x.shape if isinstance(x, SymbolicTensor) else [t.shape for t in x])
        self._shapes.outputs = shapes
        self._shapes.output_tensor = x
        object.__setattr__(self, "_build_input_shape", tuple(input_shape))
        self.built = True

    @property
    def inputs(self) -> list[SymbolicTensor] | None:
        """``[Input]`` the built stack starts from (Keras 3: a list), so ``Model(seq.inputs, layer.output)`` extracts
        features; None before the model is built."""
        return [self._shapes.input_tensor] if self.built and self._shapes.input_tensor is not None else None

    @property
    def outputs(self) -> list[Any] | None:
        """``[the last layer's symbolic output]`` once built (Keras 3: a list); None before."""
        return [self._shapes.output_tensor] if self.built and self._shapes.output_tensor is not None else None

    @property
    def output_names(self) -> list[str]:
        return [self._layers[-1].name] if self._layers else ["output"]

    @property
    def output_shape(self) -> Any:
        if not self.built:
            raise AttributeError(f"Sequential '{self.name}' is not built yet, so it has no output shape")
        return self._shapes.outputs[-1]

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        x = inputs
        for layer in self._layers:
            x = layer(x, training=training)
        return x

    def get_config(self) -> dict[str, Any]:
        """``{"name", "layers": [{"class_name", "config"}, ...]}`` plus ``batch_input_shape`` when an Input was
        added; nested models describe themselves the same way."""
        config: dict[str, Any] = {"name": self.name, "layers": [serialize(layer) for layer in self._layers]}
        if self._shapes.declared_input is not None:
            config["batch_input_shape"] = list(self._shapes.declared_input)
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: dict[str, type] | None = None) -> Sequential:
        """Rebuild from :meth:`get_config`'s dict (``custom_objects``: your classes by name); built when the
        input shape is known."""
        layers = config.get("layers")
        if not isinstance(layers, list):
            raise ValueError(f"Sequential config: 'layers' must be a list, got {type(layers).__name__}")
        model = cls(name=config.get("name"))
        if config.get("batch_input_shape") is not None:
            model.add(Input(batch_shape=tuple(config["batch_input_shape"])), rebuild=False)
        for spec in layers:
            model.add(deserialize_layer(spec, custom_objects), rebuild=False)
        model._maybe_build()
        return model
