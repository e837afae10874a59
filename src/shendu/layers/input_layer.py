"""``Input``/``InputLayer``: the entry of a functional model."""

from __future__ import annotations

from typing import Any

from shendu.autograd.tensor import Tensor
from shendu.layers.input_spec import InputSpec
from shendu.layers.layer import Layer
from shendu.layers.names import unique_name
from shendu.layers.shapes import normalize_shape
from shendu.layers.symbolic import Node, SymbolicTensor


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
            batch_shape = (batch_size,) + normalize_shape(shape, "Input shape")
        batch_shape = normalize_shape(batch_shape, "Input batch_shape")
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
