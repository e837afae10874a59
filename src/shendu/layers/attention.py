"""``MultiHeadAttention`` with Keras 3's signature and weight layout (Vaswani et al. 2017).

    Q = query W_q + b_q,  K = key W_k + b_k,  V = value W_v + b_v      (split into num_heads heads)
    head_h = softmax(Q_h K_h^T / sqrt(key_dim) + mask) V_h
    output = concat(heads) W_o + b_o

Kernels are Keras's: query/key (features, num_heads, key_dim), value (features, num_heads, value_dim),
output (num_heads, value_dim, output_dim); biases (num_heads, dim) and (output_dim,). The heads run through
the fused :func:`shendu.ops.attention.scaled_dot_product_attention`. Attention is over axis 1 of
(batch, time, features) inputs (Keras's default ``attention_axes=None`` for 3-D inputs).

>>> import numpy as np
>>> mha = MultiHeadAttention(num_heads=2, key_dim=4)
>>> x = np.zeros((3, 5, 8), dtype="float32")
>>> out, scores = mha(x, x, return_attention_scores=True)
>>> out.shape, scores.shape
((3, 5, 8), (3, 2, 5, 5))
"""

from __future__ import annotations

from typing import Any

from shendu import initializers as initializers_module
from shendu import ops
from shendu import regularizers as regularizers_module
from shendu.autograd.op import raw
from shendu.autograd.tensor import Tensor
from shendu.backend import get_array_module
from shendu.layers.core import positive_int
from shendu.layers.layer import Layer
from shendu.layers.masking import get_mask
from shendu.ops.attention import causal_mask, scaled_dot_product_attention
from shendu.ops.nn import linear


class MultiHeadAttention(Layer):
    """Keras's ``MultiHeadAttention(num_heads, key_dim, value_dim=None, dropout=0.0, use_bias=True,
    output_shape=None, attention_axes=None, ...)``; ``call(query, value, key=None, attention_mask=None,
    return_attention_scores=False, training=None, use_causal_mask=False)``.

    ``attention_mask`` (batch, T, S) is True where query step t may attend to key step s; masks attached
    to ``query``/``value`` (from ``Embedding(mask_zero=True)``) and ``use_causal_mask`` are combined with it,
    as in Keras. ``return_attention_scores=True`` also returns the weights (batch, heads, T, S).
    """

    supports_masking = True

    def __init__(self, num_heads: int, key_dim: int, value_dim: int | None = None, dropout: float = 0.0,
                 use_bias: bool = True, output_shape: Any = None, attention_axes: Any = None,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None, activity_regularizer: Any = None,
                 kernel_constraint: Any = None, bias_constraint: Any = None, seed: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        num_heads = positive_int("MultiHeadAttention", "num_heads", num_heads)
        key_dim = positive_int("MultiHeadAttention", "key_dim", key_dim)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"MultiHeadAttention: dropout must be in [0, 1), got {dropout}")
        axes = (attention_axes,) if isinstance(attention_axes, int) else attention_axes
        if axes is not None and tuple(axes) not in ((1,), (-2,)):
            raise NotImplementedError(f"MultiHeadAttention: attention_axes={attention_axes!r} is not supported; "
                                      "only attention over axis 1 of (batch, time, features) inputs (None or 1)")
        self.num_heads, self.key_dim = num_heads, key_dim
        self.value_dim = key_dim if value_dim is None else value_dim
        self.dropout, self.use_bias, self.seed = float(dropout), bool(use_bias), seed
        if isinstance(output_shape, (list, tuple)):
            if len(output_shape) != 1:
                raise NotImplementedError(f"MultiHeadAttention: output_shape must be one size, got {output_shape}")
            output_shape = output_shape[0]
        self.output_shape_arg = output_shape
        self.attention_axes = attention_axes
        self.kernel_initializer = initializers_module.get(kernel_initializer)
        self.bias_initializer = initializers_module.get(bias_initializer)
        self.kernel_regularizer = regularizers_module.get(kernel_regularizer)
        self.bias_regularizer = regularizers_module.get(bias_regularizer)
        self.kernel_constraint, self.bias_constraint = kernel_constraint, bias_constraint
        self._projections_built = False

    def build(self, query_shape: Any = None) -> None:
        """Weights need the value's size too: they are created on the first call (see ``_build_projections``)."""

    def _dense(self, name: str, shape: tuple, bias_shape: tuple) -> None:
        kernel = self.add_weight(f"{name}/kernel", shape, self.kernel_initializer, self.kernel_regularizer,
                                 constraint=self.kernel_constraint)
        bias = (self.add_weight(f"{name}/bias", bias_shape, self.bias_initializer, self.bias_regularizer,
                                constraint=self.bias_constraint) if self.use_bias else None)
        setattr(self, f"{name}_kernel", kernel)
        setattr(self, f"{name}_bias", bias)

    def _build_projections(self, query_dim: int, value_dim: int, key_dim: int) -> None:
        h = self.num_heads
        self._dense("query", (query_dim, h, self.key_dim), (h, self.key_dim))
        self._dense("key", (key_dim, h, self.key_dim), (h, self.key_dim))
        self._dense("value", (value_dim, h, self.value_dim), (h, self.value_dim))
        out = self.output_shape_arg or query_dim
        self._dense("output", (h, self.value_dim, out), (out,))
        self._projections_built = True

    def _project(self, x: Tensor, name: str) -> Tensor:
        """(batch, T, features) -> (batch, heads, T, dim)."""
        kernel, bias = getattr(self, f"{name}_kernel"), getattr(self, f"{name}_bias")
        features, heads, dim = kernel.shape
        y = linear(x, ops.reshape(kernel, (features, heads * dim)),
                   None if bias is None else ops.reshape(bias, (heads * dim,)))
        return ops.transpose(ops.reshape(y, (*x.shape[:2], heads, dim)), (0, 2, 1, 3))

    def _attention_mask(self, query: Tensor, value: Tensor, key: Tensor, attention_mask: Any,
                        use_causal_mask: bool, masks: tuple) -> Any:
        """The (batch, T, S) boolean mask from attention_mask, the query/value/key masks and causality."""
        xp = get_array_module(query.data)
        mask = None if attention_mask is None else xp.asarray(raw(attention_mask)).astype(bool)
        query_mask, value_mask, key_mask = masks
        auto = None
        if query_mask is not None:
            auto = query_mask.astype(bool)[:, :, None]
        for m in (value_mask, key_mask):
            if m is not None:
                m = m.astype(bool)[:, None, :]
                auto = m if auto is None else auto & m
        if use_causal_mask:
            causal = causal_mask(query.shape[1], value.shape[1], xp)[None]
            auto = causal if auto is None else auto & causal
        if auto is not None:
            mask = auto if mask is None else mask & auto
        return None if mask is None else mask[:, None] if mask.ndim == 3 else mask

    def call(self, query: Tensor, value: Any, key: Any = None, query_mask: Any = None, value_mask: Any = None,
             key_mask: Any = None, attention_mask: Any = None, return_attention_scores: bool = False,
             training: bool | None = None, use_causal_mask: bool = False) -> Any:
        masks = (raw(query_mask if query_mask is not None else get_mask(query)),
                 raw(value_mask if value_mask is not None else get_mask(value)),
                 raw(key_mask if key_mask is not None else get_mask(key)) if key is not None else None)
        value = self._convert(value)
        key = value if key is None else self._convert(key)
        for what, t in (("query", query), ("value", value), ("key", key)):
            if t.ndim != 3:
                raise ValueError(f"layer '{self.name}' (MultiHeadAttention): {what} must be (batch, time, features), "
                                 f"got shape {tuple(t.shape)}")
        if not self._projections_built:
            self._build_projections(query.shape[-1], value.shape[-1], key.shape[-1])
        mask = self._attention_mask(query, value, key, attention_mask, use_causal_mask, masks)
        q, k, v = self._project(query, "query"), self._project(key, "key"), self._project(value, "value")
        heads, scores = scaled_dot_product_attention(q, k, v, mask, self.dropout if training else 0.0,
                                                     return_attention_weights=True)
        batch, steps = query.shape[:2]
        merged = ops.reshape(ops.transpose(heads, (0, 2, 1, 3)), (batch, steps, self.num_heads * self.value_dim))
        kernel = self.output_kernel
        out = linear(merged, ops.reshape(kernel, (-1, kernel.shape[-1])), self.output_bias)
        return (out, scores) if return_attention_scores else out

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_heads": self.num_heads, "key_dim": self.key_dim,
                "value_dim": self.value_dim, "dropout": self.dropout, "use_bias": self.use_bias,
                "output_shape": self.output_shape_arg, "attention_axes": self.attention_axes, "seed": self.seed,
                "kernel_initializer": initializers_module.serialize(self.kernel_initializer),
                "bias_initializer": initializers_module.serialize(self.bias_initializer),
                "kernel_regularizer": regularizers_module.serialize(self.kernel_regularizer),
                "bias_regularizer": regularizers_module.serialize(self.bias_regularizer),
                "activity_regularizer": regularizers_module.serialize(self.activity_regularizer)}
