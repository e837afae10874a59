"""Recurrent layers with Keras 3's arguments: ``SimpleRNN``, ``LSTM``, ``GRU``, and the wrappers
``Bidirectional`` and ``TimeDistributed``.

Inputs are (batch, time, features). The layers run the fused sequence ops of :mod:`shendu.ops.rnn` (one GEMM
for the input projection of all steps, a loop doing only the recurrent GEMM, a hand-written backward through
time); activations those ops do not know, ``GRU(reset_after=False)`` and ``recurrent_dropout`` in training
run the step-by-step loops of :mod:`shendu.ops.rnn_steps` instead (same numbers, slower).
Masks (from ``Embedding(mask_zero=True)`` or ``mask=``) make masked steps keep the previous state.

>>> import numpy as np
>>> layer = LSTM(8, return_sequences=True, return_state=True)
>>> seq, h, c = layer(np.zeros((2, 5, 3), dtype="float32"))
>>> seq.shape, h.shape, c.shape
((2, 5, 8), (2, 8), (2, 8))
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shendu import activations, ops
from shendu import initializers as initializers_module
from shendu import regularizers as regularizers_module
from shendu.autograd.op import raw
from shendu.autograd.tensor import Tensor
from shendu.layers.core import dropout_mask, positive_int, seeded_dropout
from shendu.layers.layer import InputSpec, Layer
from shendu.layers.registry import deserialize, serialize
from shendu.ops import rnn as fused
from shendu.ops import rnn_steps
from shendu.random import get_rng

_WEIGHT_ARGS = ("kernel_initializer", "recurrent_initializer", "bias_initializer")
_REGULARIZER_ARGS = ("kernel_regularizer", "recurrent_regularizer", "bias_regularizer")


def _reverse_time(x: Any) -> Any:
    return ops.getitem(x, (slice(None), slice(None, None, -1)))


class _UnitForgetBias(initializers_module.Initializer):
    """LSTM bias: bias_initializer for i, c, o and ones for the forget gate (Jozefowicz et al. 2015)."""

    def __init__(self, base: Any, units: int) -> None:
        self.base, self.units = base, units

    def __call__(self, shape, dtype=None):
        u = self.units
        return np.concatenate([self.base((u,), dtype), np.ones((u,), dtype=dtype), self.base((2 * u,), dtype)])


class _RNN(Layer):
    """Shared machinery of SimpleRNN/LSTM/GRU: arguments, weights, masks, dropout, states, outputs."""

    gates = 1  # blocks of units in the kernels
    n_states = 1  # h (LSTM: h and c)

    def __init__(self, units: int, activation: Any = "tanh", recurrent_activation: Any = "sigmoid",
                 use_bias: bool = True, kernel_initializer: Any = "glorot_uniform",
                 recurrent_initializer: Any = "orthogonal", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, recurrent_regularizer: Any = None, bias_regularizer: Any = None,
                 activity_regularizer: Any = None, kernel_constraint: Any = None, recurrent_constraint: Any = None,
                 bias_constraint: Any = None, dropout: float = 0.0, recurrent_dropout: float = 0.0,
                 seed: int | None = None, return_sequences: bool = False, return_state: bool = False,
                 go_backwards: bool = False, stateful: bool = False, unroll: bool = False,
                 zero_output_for_mask: bool = False, **kwargs: Any) -> None:
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        name = type(self).__name__
        for arg, rate in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            if not 0.0 <= rate < 1.0:
                raise ValueError(f"{name}: {arg} must be in [0, 1), got {rate}")
        self.units = positive_int(name, "units", units)
        self.activation = activations.get(activation)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers_module.get(kernel_initializer)
        self.recurrent_initializer = initializers_module.get(recurrent_initializer)
        self.bias_initializer = initializers_module.get(bias_initializer)
        self.kernel_regularizer = regularizers_module.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers_module.get(recurrent_regularizer)
        self.bias_regularizer = regularizers_module.get(bias_regularizer)
        self.kernel_constraint, self.recurrent_constraint = kernel_constraint, recurrent_constraint
        self.bias_constraint = bias_constraint
        self.dropout, self.recurrent_dropout, self.seed = float(dropout), float(recurrent_dropout), seed
        self._rng = None if seed is None else np.random.default_rng(seed)  # else shendu's global generator
        self.return_sequences, self.return_state = bool(return_sequences), bool(return_state)
        self.go_backwards, self.stateful, self.unroll = bool(go_backwards), bool(stateful), bool(unroll)
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self.states: list[Any] | None = None  # the carried states of a stateful layer
        self._config_extra: dict[str, Any] = {}

    # ------------------------------------------------------------------ weights
    def _bias_shape(self) -> tuple:
        return (self.gates * self.units,)

    def _bias_initializer(self) -> Any:
        return self.bias_initializer

    def build(self, input_shape: tuple) -> None:
        if len(input_shape) != 3 or input_shape[-1] is None:
            raise ValueError(f"layer '{self.name}' ({type(self).__name__}) expects inputs (batch, time, features) "
                             f"with a known feature size, got shape {input_shape}. Hint: an Embedding or a Reshape "
                             "before it gives the time axis")
        width = self.gates * self.units
        self.kernel = self.add_weight("kernel", (input_shape[-1], width), self.kernel_initializer,
                                      self.kernel_regularizer, constraint=self.kernel_constraint)
        self.recurrent_kernel = self.add_weight("recurrent_kernel", (self.units, width), self.recurrent_initializer,
                                                self.recurrent_regularizer, constraint=self.recurrent_constraint)
        self.bias = (self.add_weight("bias", self._bias_shape(), self._bias_initializer(), self.bias_regularizer,
                                     constraint=self.bias_constraint) if self.use_bias else None)
        self.input_spec = InputSpec(ndim=3, axes={-1: input_shape[-1]})

    # ------------------------------------------------------------------ call
    def _fusable(self) -> bool:
        names = [activations.serialize(self.activation), activations.serialize(self.recurrent_activation)]
        return all(n in fused.ACTIVATIONS for n in names)

    def _initial_states(self, x: Tensor, initial_state: Any) -> list[Any]:
        if initial_state is None and self.stateful and self.states is not None:
            return list(self.states)
        if initial_state is None:
            return [None] * self.n_states
        states = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
        if len(states) != self.n_states:
            raise ValueError(f"layer '{self.name}' ({type(self).__name__}) takes {self.n_states} initial state(s) "
                             f"of shape (batch, {self.units}), got {len(states)}")
        for s in states:
            if tuple(raw(s).shape) != (x.shape[0], self.units):
                raise ValueError(f"layer '{self.name}': an initial state must have shape ({x.shape[0]}, "
                                 f"{self.units}), got {tuple(raw(s).shape)}")
        return [s if isinstance(s, Tensor) else Tensor._wrap(raw(s).astype(x.dtype)) for s in states]

    def call(self, inputs: Tensor, mask: Any = None, training: bool | None = None,
             initial_state: Any = None) -> Any:
        x = inputs
        mask = raw(mask)
        if mask is not None:
            mask = mask.astype(bool)
            if mask.shape != tuple(x.shape[:2]):
                raise ValueError(f"layer '{self.name}': the mask must be (batch, time) = {tuple(x.shape[:2])}, "
                                 f"got {mask.shape}")
        states = self._initial_states(x, initial_state)
        if self.go_backwards:
            x = _reverse_time(x)
            mask = None if mask is None else mask[:, ::-1]
        if training and self.dropout > 0:
            x = seeded_dropout(x, self.dropout, self._rng, (x.shape[0], 1, x.shape[2]))
        rec_mask = None
        if training and self.recurrent_dropout > 0:
            rec_mask = dropout_mask(self._rng or get_rng(), (x.shape[0], self.units), self.recurrent_dropout, x.data)
        seq, *final = self._run(x, states, mask, rec_mask)
        if self.stateful:
            self.states = [Tensor._wrap(raw(s).copy()) for s in final]
        output = seq if self.return_sequences else final[0]
        return [output, *final] if self.return_state else output

    def _run(self, x: Tensor, states: list[Any], mask: Any, rec_mask: Any) -> tuple:
        raise NotImplementedError

    def reset_states(self, states: Any = None) -> None:
        """Forget the carried states of a stateful layer (or set them)."""
        self.states = None if states is None else [Tensor._wrap(raw(s)) for s in states]

    def compute_mask(self, inputs: Any, previous_mask: Any = None) -> Any:
        """The input mask when returning sequences, else None (and None for the states)."""
        output_mask = previous_mask if self.return_sequences else None
        return [output_mask] + [None] * self.n_states if self.return_state else output_mask

    def compute_output_shape(self, input_shape: tuple) -> Any:
        batch, steps = input_shape[0], input_shape[1]
        out = (batch, steps, self.units) if self.return_sequences else (batch, self.units)
        return [out] + [(batch, self.units)] * self.n_states if self.return_state else out

    def get_config(self) -> dict[str, Any]:
        config = {**super().get_config(), "units": self.units,
                  "activation": activations.serialize(self.activation), "use_bias": self.use_bias,
                  "dropout": self.dropout, "recurrent_dropout": self.recurrent_dropout, "seed": self.seed,
                  "return_sequences": self.return_sequences, "return_state": self.return_state,
                  "go_backwards": self.go_backwards, "stateful": self.stateful, "unroll": self.unroll,
                  "zero_output_for_mask": self.zero_output_for_mask, **self._config_extra}
        for arg in _WEIGHT_ARGS:
            config[arg] = initializers_module.serialize(getattr(self, arg))
        for arg in _REGULARIZER_ARGS + ("activity_regularizer",):
            config[arg] = regularizers_module.serialize(getattr(self, arg))
        return config


class SimpleRNN(_RNN):
    """h_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias); kernel (in, units)."""

    def __init__(self, units: int, activation: Any = "tanh", **kwargs: Any) -> None:
        super().__init__(units, activation=activation, **kwargs)

    def _fusable(self) -> bool:
        return activations.serialize(self.activation) in fused.ACTIVATIONS

    def _run(self, x, states, mask, rec_mask):
        act = activations.serialize(self.activation)
        if rec_mask is None and self._fusable():
            return fused.simple_rnn(x, self.kernel, self.recurrent_kernel, self.bias, states[0], mask, act,
                                    self.zero_output_for_mask)
        seq, h = rnn_steps.simple_rnn(x, self.kernel, self.recurrent_kernel, self.bias, states[0], mask,
                                      self.activation, rec_mask)
        return _zero_masked(seq, mask, self.zero_output_for_mask), h


def _zero_masked(seq: Any, mask: Any, zero_output: bool) -> Any:
    if mask is None or not zero_output:
        return seq
    return seq * mask[:, :, None].astype(raw(seq).dtype)


class LSTM(_RNN):
    """Long short-term memory (Hochreiter & Schmidhuber 1997), Keras layout: kernel (in, 4*units) and
    recurrent_kernel (units, 4*units) with gates i, f, c, o;  c_t = f c_{t-1} + i g,  h_t = o tanh(c_t).
    ``unit_forget_bias=True`` starts the forget-gate bias at 1. States: [h, c]."""

    gates = 4
    n_states = 2

    def __init__(self, units: int, activation: Any = "tanh", recurrent_activation: Any = "sigmoid",
                 unit_forget_bias: bool = True, **kwargs: Any) -> None:
        super().__init__(units, activation=activation, recurrent_activation=recurrent_activation, **kwargs)
        self.unit_forget_bias = bool(unit_forget_bias)
        self._config_extra = {"recurrent_activation": activations.serialize(self.recurrent_activation),
                              "unit_forget_bias": self.unit_forget_bias}

    def _bias_initializer(self) -> Any:
        return _UnitForgetBias(self.bias_initializer, self.units) if self.unit_forget_bias else self.bias_initializer

    def _run(self, x, states, mask, rec_mask):
        act, rec_act = activations.serialize(self.activation), activations.serialize(self.recurrent_activation)
        if rec_mask is None and self._fusable():
            return fused.lstm(x, self.kernel, self.recurrent_kernel, self.bias, states[0], states[1], mask, act,
                              rec_act, self.zero_output_for_mask, self.return_sequences)
        seq, h, c = rnn_steps.lstm(x, self.kernel, self.recurrent_kernel, self.bias, states[0], states[1], mask,
                                   self.activation, self.recurrent_activation, rec_mask)
        return _zero_masked(seq, mask, self.zero_output_for_mask), h, c


class GRU(_RNN):
    """Gated recurrent unit (Cho et al. 2014), Keras layout: kernel (in, 3*units), recurrent_kernel
    (units, 3*units) with gates z, r, h;  h_t = z h_{t-1} + (1 - z) n.  ``reset_after=True`` (Keras 3 and
    PyTorch): n = tanh(x W_h + b_in + r (h U_h + b_rec)) with bias (2, 3*units); False: n = tanh(x W_h +
    (r h) U_h + b) with bias (3*units,)."""

    gates = 3

    def __init__(self, units: int, activation: Any = "tanh", recurrent_activation: Any = "sigmoid",
                 reset_after: bool = True, **kwargs: Any) -> None:
        super().__init__(units, activation=activation, recurrent_activation=recurrent_activation, **kwargs)
        self.reset_after = bool(reset_after)
        self._config_extra = {"recurrent_activation": activations.serialize(self.recurrent_activation),
                              "reset_after": self.reset_after}

    def _bias_shape(self) -> tuple:
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def _run(self, x, states, mask, rec_mask):
        act, rec_act = activations.serialize(self.activation), activations.serialize(self.recurrent_activation)
        if rec_mask is None and self.reset_after and self._fusable():
            return fused.gru(x, self.kernel, self.recurrent_kernel, self.bias, states[0], mask, act, rec_act,
                             self.zero_output_for_mask, self.return_sequences)
        seq, h = rnn_steps.gru(x, self.kernel, self.recurrent_kernel, self.bias, states[0], mask, self.activation,
                               self.recurrent_activation, self.reset_after, rec_mask)
        return _zero_masked(seq, mask, self.zero_output_for_mask), h


# ---------------------------------------------------------------------------- wrappers
def _serialize_layer(layer: Layer) -> dict[str, Any]:
    return serialize(layer)


def _deserialize_layer(config: Any) -> Layer:
    if isinstance(config, Layer):
        return config
    return deserialize(config)


_MERGE_MODES = ("concat", "sum", "mul", "ave", None)


class Bidirectional(Layer):
    """Runs ``layer`` forwards and a copy of it backwards (``go_backwards`` flipped) and merges the two
    outputs with ``merge_mode``: 'concat' (default), 'sum', 'mul', 'ave', or None (a list of both).
    Sequences from the backward layer are reversed back, so step t of both outputs sees step t.
    With ``return_state``: [merged, forward states..., backward states...]."""

    def __init__(self, layer: Any, merge_mode: str | None = "concat", weights: Any = None,
                 backward_layer: Any = None, **kwargs: Any) -> None:
        layer = _deserialize_layer(layer)
        if not isinstance(layer, _RNN):
            raise ValueError(f"Bidirectional wraps a SimpleRNN, LSTM or GRU layer, got {type(layer).__name__}")
        if merge_mode not in _MERGE_MODES:
            raise ValueError(f"Bidirectional: merge_mode must be one of {_MERGE_MODES}, got {merge_mode!r}")
        kwargs.setdefault("dtype", layer.dtype)  # inputs reach the wrapped layers in their dtype
        super().__init__(weights=weights, **kwargs)
        config = layer.get_config()
        config["name"] = "forward_" + layer.name
        self.forward_layer = type(layer).from_config(config)
        if backward_layer is None:
            config = {**layer.get_config(), "name": "backward_" + layer.name, "go_backwards": not layer.go_backwards}
            backward_layer = type(layer).from_config(config)
        else:
            backward_layer = _deserialize_layer(backward_layer)
            if backward_layer.go_backwards == layer.go_backwards:
                raise ValueError("Bidirectional: backward_layer must have the opposite go_backwards of layer "
                                 f"(both are go_backwards={layer.go_backwards})")
        self.backward_layer = backward_layer
        self.merge_mode = merge_mode
        self.return_sequences, self.return_state = layer.return_sequences, layer.return_state

    def build(self, input_shape: tuple) -> None:
        self.forward_layer.build(input_shape)
        self.backward_layer.build(input_shape)

    def call(self, inputs: Tensor, mask: Any = None, training: bool | None = None, initial_state: Any = None) -> Any:
        fw_state = bw_state = None
        if initial_state is not None:
            half = len(initial_state) // 2
            fw_state, bw_state = initial_state[:half], initial_state[half:]
        fw = self.forward_layer(inputs, mask=mask, training=training, initial_state=fw_state)
        bw = self.backward_layer(inputs, mask=mask, training=training, initial_state=bw_state)
        fw_states = bw_states = []
        if self.return_state:
            fw, *fw_states = fw
            bw, *bw_states = bw
        if self.return_sequences:
            bw = _reverse_time(bw)
        merged = self._merge(fw, bw)
        if self.return_state:
            return ([*merged] if isinstance(merged, list) else [merged]) + fw_states + bw_states
        return merged

    def _merge(self, fw: Any, bw: Any) -> Any:
        mode = self.merge_mode
        if mode == "concat":
            return ops.concatenate([fw, bw], axis=-1)
        if mode == "sum":
            return fw + bw
        if mode == "mul":
            return fw * bw
        if mode == "ave":
            return (fw + bw) * 0.5
        return [fw, bw]

    def compute_mask(self, inputs: Any, previous_mask: Any = None) -> Any:
        output_mask = previous_mask if self.return_sequences else None
        outputs = 2 if self.merge_mode is None else 1
        states = 2 * self.forward_layer.n_states if self.return_state else 0
        return output_mask if outputs + states == 1 else [output_mask] * outputs + [None] * states

    def compute_output_shape(self, input_shape: tuple) -> Any:
        shape = self.forward_layer.compute_output_shape(input_shape)
        out, states = (shape[0], shape[1:]) if self.return_state else (shape, [])
        if self.merge_mode == "concat":
            out = (*out[:-1], 2 * out[-1])
        outs = [out, out] if self.merge_mode is None else [out]
        result = outs + list(states) * 2
        return result[0] if len(result) == 1 else result

    def get_config(self) -> dict[str, Any]:
        config = {**super().get_config(), "layer": _serialize_layer(self.forward_layer),
                  "merge_mode": self.merge_mode, "backward_layer": _serialize_layer(self.backward_layer)}
        config["layer"]["config"]["name"] = self.forward_layer.name[len("forward_"):]
        return config


class TimeDistributed(Layer):
    """Applies ``layer`` to every time step: inputs (batch, time, ...) are folded to (batch * time, ...),
    passed through the layer once, and unfolded to (batch, time, ...)."""

    supports_masking = True

    def __init__(self, layer: Any, **kwargs: Any) -> None:
        layer = _deserialize_layer(layer)
        kwargs.setdefault("dtype", layer.dtype)
        super().__init__(**kwargs)
        self.layer = layer

    def build(self, input_shape: tuple) -> None:
        if len(input_shape) < 3:
            raise ValueError(f"layer '{self.name}' (TimeDistributed) expects inputs (batch, time, ...), got "
                             f"shape {input_shape}")
        if not self.layer.built:
            self.layer.build((None, *input_shape[2:]))

    def call(self, inputs: Tensor, training: bool | None = None) -> Any:
        batch, steps = inputs.shape[:2]
        y = self.layer(ops.reshape(inputs, (batch * steps, *inputs.shape[2:])), training=training)
        return ops.reshape(y, (batch, steps, *y.shape[1:]))

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        inner = self.layer.compute_output_shape((None, *input_shape[2:]))
        return (input_shape[0], input_shape[1], *inner[1:])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "layer": _serialize_layer(self.layer)}

