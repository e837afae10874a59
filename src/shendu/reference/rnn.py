"""Recurrent networks the textbook way: one step at a time, from ordinary shendu ops.

The loops themselves are :mod:`shendu.ops.rnn_steps` (read them there): the recurrent layers run them for what
the fused ops of :mod:`shendu.ops.rnn` do not cover, so they are not a reference-only copy. This module gives
them the reference API, activations by name (``"tanh"``) or callable, for the tests that check the fused ops
against them. Layouts and gate orders are Keras's: kernel (in, k*units), recurrent_kernel (units, k*units);
LSTM gates i, f, c, o; GRU gates z, r, h.
"""

from __future__ import annotations

from typing import Any

from shendu import activations
from shendu.ops import rnn_steps


def simple_rnn(x: Any, kernel: Any, recurrent_kernel: Any, bias: Any = None, h0: Any = None, mask: Any = None,
               activation: Any = "tanh", recurrent_dropout_mask: Any = None) -> tuple[Any, Any]:
    """(outputs, h_T) of h_t = activation(x_t W + h_{t-1} U + b)."""
    return rnn_steps.simple_rnn(x, kernel, recurrent_kernel, bias, h0, mask, activations.get(activation),
                                recurrent_dropout_mask)


def lstm(x: Any, kernel: Any, recurrent_kernel: Any, bias: Any = None, h0: Any = None, c0: Any = None,
         mask: Any = None, activation: Any = "tanh", recurrent_activation: Any = "sigmoid",
         recurrent_dropout_mask: Any = None) -> tuple[Any, Any, Any]:
    """(outputs, h_T, c_T) of the Keras LSTM: c_t = f c_{t-1} + i g,  h_t = o a(c_t)."""
    return rnn_steps.lstm(x, kernel, recurrent_kernel, bias, h0, c0, mask, activations.get(activation),
                          activations.get(recurrent_activation), recurrent_dropout_mask)


def gru(x: Any, kernel: Any, recurrent_kernel: Any, bias: Any = None, h0: Any = None, mask: Any = None,
        activation: Any = "tanh", recurrent_activation: Any = "sigmoid", reset_after: bool = True,
        recurrent_dropout_mask: Any = None) -> tuple[Any, Any]:
    """(outputs, h_T) of the Keras GRU: h_t = z h_{t-1} + (1 - z) n; ``bias`` is (2, 3*units) when ``reset_after``."""
    return rnn_steps.gru(x, kernel, recurrent_kernel, bias, h0, mask, activations.get(activation),
                         activations.get(recurrent_activation), reset_after, recurrent_dropout_mask)
