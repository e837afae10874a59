"""``Embedding``: integer ids -> dense vectors (a lookup in a trainable (input_dim, output_dim) table).

>>> import numpy as np
>>> layer = Embedding(10, 4, mask_zero=True)
>>> y = layer(np.array([[3, 1, 0]]))
>>> y.shape, layer.compute_mask(np.array([[3, 1, 0]])).tolist()
((1, 3, 4), [[True, True, False]])
"""

from __future__ import annotations

from typing import Any

from shendu import initializers as initializers_module
from shendu import regularizers as regularizers_module
from shendu.autograd.op import raw
from shendu.autograd.tensor import Tensor
from shendu.layers.core import positive_int
from shendu.layers.layer import InputSpec, Layer
from shendu.ops.lookup import embedding_lookup


class Embedding(Layer):
    """y[..., :] = embeddings[ids[...]]: inputs (batch, ...) of integer ids in [0, input_dim) give
    (batch, ..., output_dim). ``mask_zero=True`` treats id 0 as padding: the layer then makes the mask
    ``ids != 0`` that recurrent layers (and pooling, attention, losses) use to skip those steps, and
    ``input_dim`` must count the padding id. ``input_length`` (Keras 2) only fixes the input shape.
    The default initializer is Keras's 'uniform' (RandomUniform(-0.05, 0.05))."""

    _keeps_integers = True

    def __init__(self, input_dim: int, output_dim: int, embeddings_initializer: Any = "uniform",
                 embeddings_regularizer: Any = None, embeddings_constraint: Any = None, mask_zero: bool = False,
                 input_length: int | None = None, **kwargs: Any) -> None:
        if input_length is not None and "input_shape" not in kwargs and "batch_input_shape" not in kwargs:
            kwargs["input_shape"] = (input_length,)
        super().__init__(**kwargs)
        self.input_dim = positive_int("Embedding", "input_dim", input_dim)
        self.output_dim = positive_int("Embedding", "output_dim", output_dim)
        init = "random_uniform" if embeddings_initializer == "uniform" else embeddings_initializer
        self.embeddings_initializer = initializers_module.get(init)
        self.embeddings_regularizer = regularizers_module.get(embeddings_regularizer)
        self.embeddings_constraint = embeddings_constraint
        self.mask_zero = bool(mask_zero)
        self.input_length = input_length

    def build(self, input_shape: Any = None) -> None:
        self.embeddings = self.add_weight("embeddings", (self.input_dim, self.output_dim),
                                          self.embeddings_initializer, self.embeddings_regularizer,
                                          constraint=self.embeddings_constraint)
        self.input_spec = InputSpec(min_ndim=1)  # any number of ids per sample

    def call(self, inputs: Tensor) -> Tensor:
        return embedding_lookup(inputs, self.embeddings)

    def compute_mask(self, inputs: Any, previous_mask: Any = None) -> Any:
        """ids != 0 when ``mask_zero``, else None."""
        if not self.mask_zero:
            return None
        return raw(inputs) != 0

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (*input_shape, self.output_dim)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "input_dim": self.input_dim, "output_dim": self.output_dim,
                "embeddings_initializer": initializers_module.serialize(self.embeddings_initializer),
                "embeddings_regularizer": regularizers_module.serialize(self.embeddings_regularizer),
                "mask_zero": self.mask_zero, "input_length": self.input_length}
