"""Recurrent networks one step at a time, composed from ordinary shendu ops (autograd differentiates the loop).

This is the general path of the recurrent layers, for what the fused ops of :mod:`shendu.ops.rnn` do not cover:
any activation callable, ``GRU(reset_after=False)`` and Keras's recurrent dropout; it also has second
derivatives. It is slower than the fused ops, which compute the same numbers (tests check both agree).
Layouts and gate orders are Keras's: kernel (in, k*units), recurrent_kernel (units, k*units); LSTM gates i, f, c, o;
GRU gates z, r, h. A ``mask`` (batch, time) of False keeps the previous state for that step; a
``recurrent_dropout_mask`` (batch, units) multiplies h_{t-1} where it meets the recurrent kernel (the same mask at
every step). Activations are callables on tensors (``shendu.activations.get`` turns names into them).

    SimpleRNN  h_t = a(x_t W + h_{t-1} U + b)
    LSTM       i, f, o = s(.), g = a(.) of x_t W + h_{t-1} U + b;  c_t = f c_{t-1} + i g;  h_t = o a(c_t)
    GRU        z, r = s(x_t W + b_in + h_{t-1} U + b_rec);  n = a(x_t W_h + b_in,h + r (h_{t-1} U_h + b_rec,h))
               (reset_after=False: n = a(x_t W_h + (r h_{t-1}) U_h + b_h));  h_t = z h_{t-1} + (1 - z) n
"""

from __future__ import annotations

from typing import Any, Callable

from shendu.autograd.op import raw
from shendu.autograd.tensor import Tensor
from shendu.backend import get_array_module
from shendu.ops.elementwise import sigmoid, tanh, where
from shendu.ops.shaping import stack

Activation = Callable[[Any], Any]


def _zeros(x: Any, units: int) -> Tensor:
    data = raw(x)
    return Tensor._wrap(get_array_module(data).zeros((data.shape[0], units), dtype=data.dtype))


def _steps(x: Any, units: int, states: list[Any], mask: Any, cell: Callable) -> tuple[Any, list[Any]]:
    """Run ``cell(x_t, states) -> new states`` over time; the output of each step is the first state."""
    steps = raw(x).shape[1]
    states = [_zeros(x, units) if s is None else s for s in states]
    outputs = []
    for t in range(steps):
        new = cell(x[:, t], states)
        if mask is not None:
            keep = raw(mask)[:, t:t + 1].astype(bool)
            new = [where(keep, a, b) for a, b in zip(new, states)]
        states = new
        outputs.append(states[0])
    return stack(outputs, axis=1), states


def _dropped(h: Any, recurrent_dropout_mask: Any) -> Any:
    return h if recurrent_dropout_mask is None else h * recurrent_dropout_mask


def simple_rnn(x: Any, kernel: Any, recurrent_kernel: Any, bias: Any = None, h0: Any = None, mask: Any = None,
               activation: Activation = tanh, recurrent_dropout_mask: Any = None) -> tuple[Any, Any]:
    """(outputs, h_T) of h_t = activation(x_t W + h_{t-1} U + b)."""

    def cell(xt, states):
        z = xt @ kernel + _dropped(states[0], recurrent_dropout_mask) @ recurrent_kernel
        return [activation(z + bias if bias is not None else z)]

    seq, (h,) = _steps(x, raw(recurrent_kernel).shape[0], [h0], mask, cell)
    return seq, h


def lstm(x: Any, kernel: Any, recurrent_kernel: Any, bias: Any = None, h0: Any = None, c0: Any = None,
         mask: Any = None, activation: Activation = tanh, recurrent_activation: Activation = sigmoid,
         recurrent_dropout_mask: Any = None) -> tuple[Any, Any, Any]:
    """(outputs, h_T, c_T) of the Keras LSTM (gates i, f, c, o)."""
    act, rec_act = activation, recurrent_activation
    units = raw(recurrent_kernel).shape[0]

    def cell(xt, states):
        h, c = states
        z = xt @ kernel + _dropped(h, recurrent_dropout_mask) @ recurrent_kernel
        if bias is not None:
            z = z + bias
        i, f, g, o = (z[:, k * units:(k + 1) * units] for k in range(4))
        c = rec_act(f) * c + rec_act(i) * act(g)
        return [rec_act(o) * act(c), c]

    seq, (h, c) = _steps(x, units, [h0, c0], mask, cell)
    return seq, h, c


def gru(x: Any, kernel: Any, recurrent_kernel: Any, bias: Any = None, h0: Any = None, mask: Any = None,
        activation: Activation = tanh, recurrent_activation: Activation = sigmoid, reset_after: bool = True,
        recurrent_dropout_mask: Any = None) -> tuple[Any, Any]:
    """(outputs, h_T) of the Keras GRU (gates z, r, h); ``bias`` is (2, 3*units) when ``reset_after``."""
    act, rec_act = activation, recurrent_activation
    units = raw(recurrent_kernel).shape[0]
    b_in = b_rec = None
    if bias is not None:
        b_in, b_rec = (bias[0], bias[1]) if reset_after else (bias, None)

    def cell(xt, states):
        (h,) = states
        hr = _dropped(h, recurrent_dropout_mask)
        p = xt @ kernel
        if b_in is not None:
            p = p + b_in
        u_zr, u_h = recurrent_kernel[:, :2 * units], recurrent_kernel[:, 2 * units:]
        q_zr = hr @ u_zr
        if reset_after:
            q_h = hr @ u_h
            if b_rec is not None:
                q_zr, q_h = q_zr + b_rec[:2 * units], q_h + b_rec[2 * units:]
        zr = rec_act(p[:, :2 * units] + q_zr)
        z, r = zr[:, :units], zr[:, units:]
        n = act(p[:, 2 * units:] + (r * q_h if reset_after else (r * hr) @ u_h))
        return [z * h + (1 - z) * n]

    seq, (h,) = _steps(x, units, [h0], mask, cell)
    return seq, h
