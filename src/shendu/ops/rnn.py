"""Recurrent layers as fused ops over the whole sequence (Keras weight layouts).

Each op takes ``x`` (batch, time, features), the initial state(s), ``kernel`` (in, k*units),
``recurrent_kernel`` (units, k*units) and ``bias``, and returns ``(sequence, final state(s)...)``:

1. the input projection of every time step is ONE GEMM: ``X W + b`` over (time * batch, in);
2. a loop over time does only the recurrent GEMM ``h U`` and the gate maths, in place in preallocated
   time-major buffers (activations are kept for backward);
3. backward through time is one hand-written loop (the recurrent GEMM and gate derivatives), followed by
   one GEMM each for ``dW``, ``dU`` and ``dx`` over the whole sequence.

``mask`` (batch, time), True for real steps: a masked step keeps the previous state (and, as Keras, outputs
it again; ``zero_output_for_mask=True`` outputs zeros instead). The textbook versions, built from ordinary
shendu ops so autograd differentiates them, are in :mod:`shendu.ops.rnn_steps`; tests check both agree.
With the default activations (tanh, sigmoid) and NumPy float arrays, the LSTM and GRU hand the loop over time
to :mod:`shendu.kernels.rnn` (``kernels.fast``; forward in float32, backward in float32 and float64): one
compiled call runs every step, the batch split into blocks of rows, one thread each (with NumPy's OpenBLAS;
otherwise one compiled call per step after NumPy's GEMM). There the LSTM keeps each step's input beside the
state, ``hx[t] = [h_{t-1}, x_t]``, and multiplies it by ``[U; W]``: one GEMM per step does the projection and
the recurrence, going back ``dz_t [U; W]^T`` gives ``dh_{t-1}`` and ``dx_t`` together, and ``[dU; dW] = hx^T dZ``
is one GEMM. The NumPy loops below stay the reference (``kernels.disabled()`` or ``SHENDU_JIT=0``).
The gate orders are Keras's: LSTM i, f, c, o; GRU z, r, h (``reset_after=True``: the recurrent bias is
applied before the reset gate, as cuDNN and PyTorch do). These ops have first derivatives only.

>>> import numpy as np, shendu
>>> x = shendu.tensor(np.ones((2, 3, 4)))
>>> seq, h, c = lstm(x, shendu.zeros(4, 8), shendu.zeros(2, 8))
>>> seq.shape, h.shape, bool((seq.data[:, -1] == h.data).all())
((2, 3, 2), (2, 2), True)
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from shendu.autograd.op import Op, raw
from shendu.autograd.tensor import Tensor
from shendu.backend import get_array_module
from shendu.kernels import fast, gemm, get_num_threads
from shendu.kernels import rnn as kernels
from shendu.ops.buffers import BufferPool
from shendu.ops.elementwise import sigmoid_array


# ---------------------------------------------------------------------------- activations on arrays, in place
def _sigmoid_(a: Any) -> Any:
    return sigmoid_array(a, out=a)


def _tanh_(a: Any) -> Any:
    return get_array_module(a).tanh(a, out=a)


def _relu_(a: Any) -> Any:
    return get_array_module(a).maximum(a, 0, out=a)


def _linear_(a: Any) -> Any:
    return a


# name -> (in-place activation, derivative written with the output y)
ACTIVATIONS = {
    "sigmoid": (_sigmoid_, lambda y: y * (1 - y)),
    "tanh": (_tanh_, lambda y: 1 - y * y),
    "relu": (_relu_, lambda y: (y > 0).astype(y.dtype)),
    "linear": (_linear_, lambda y: get_array_module(y).ones_like(y)),
}


def _activation(name: str) -> tuple:
    if name not in ACTIVATIONS:
        raise ValueError(f"fused recurrent ops support the activations {sorted(ACTIVATIONS)}, got {name!r} "
                         "(other activations run through shendu.ops.rnn_steps)")
    return ACTIVATIONS[name]


# ---------------------------------------------------------------------------- shared pieces
def _no_double_backward(op: str, *values: Any) -> None:
    if any(isinstance(v, Tensor) for v in values):
        raise NotImplementedError(f"{op}: double backward (create_graph=True) is not implemented for the fused "
                                  f"recurrent ops; use shendu.ops.rnn_steps for higher-order gradients")


def _check_shapes(op: str, x: Any, w: Any, u: Any, gates: int) -> int:
    units = u.shape[0]
    if x.ndim != 3 or w.shape != (x.shape[2], gates * units) or u.shape != (units, gates * units):
        raise ValueError(f"{op}: expected x (batch, time, in), kernel (in, {gates}*units) and recurrent_kernel "
                         f"(units, {gates}*units); got x {x.shape}, kernel {w.shape}, recurrent_kernel {u.shape}")
    return units


#: the big time-major arrays of the fused ops (X, X W + b, the states, the gate gradients), reused from one call to
#: the next (a fresh set faults every page on first touch: ~10 ms of a 60 ms Embedding-LSTM(128) step). An op takes
#: them (contents undefined) and gives them back when it is freed, so nothing it returns may view them (final
#: states are copies). Several ops of one shape can be alive at once (stacked layers), hence ``per_shape=8``.
_BUFFERS = BufferPool(per_shape=8, limit=128 << 20)

#: dtypes whose forward loop runs the compiled step kernel (backward runs it for float32 and float64)
FORWARD_KERNEL_DTYPES = (np.dtype(np.float32),)

#: the fewest rows per thread in the sequence kernels (a GEMM of fewer rows costs about as much: measured)
MIN_BLOCK_ROWS = 16


def _row_blocks(batch: int) -> int:
    """Blocks of rows the sequence kernels split a batch into: one per thread, at least MIN_BLOCK_ROWS rows each."""
    return max(1, min(get_num_threads(), batch // MIN_BLOCK_ROWS))


def _take(op: Op, xp: Any, shape: tuple, dtype: Any) -> Any:
    """A work array from the pool that goes back to it when ``op`` is freed."""
    a = _BUFFERS.take(xp, shape, dtype)
    weakref.finalize(op, _BUFFERS.give, a)
    return a


def _project(op: Op, x: Any, w: Any, b: Any) -> tuple[Any, Any]:
    """Time-major inputs X (time*batch, in) and X W + b (time, batch, k*units): one GEMM for all steps."""
    xp = get_array_module(x)
    n, t, d = x.shape
    xt = _take(op, xp, (t, n, d), x.dtype)
    xt[...] = x.transpose(1, 0, 2)
    xt = xt.reshape(t * n, d)
    proj = xp.matmul(xt, w, out=_take(op, xp, (t * n, w.shape[1]), xp.result_type(x, w)))
    if b is not None:
        proj += b
    return xt, proj.reshape(t, n, w.shape[1])


def _keep(mask: Any, t: int) -> Any:
    """The (batch, 1) keep column of step t, or None without a mask."""
    return None if mask is None else mask[:, t, None]


def _carry(keep: Any, new: Any, old: Any) -> None:
    """new <- old where the step is masked (the state is carried over)."""
    if keep is not None:
        get_array_module(new).copyto(new, old, where=~keep)


def _sequence_output(hs: Any, mask: Any, zero_output: bool) -> Any:
    """(time, batch, units) states -> (batch, time, units) outputs (zeros at masked steps if asked): always a
    new C-ordered array (a strided view would make every later GEMM on it several times slower, and ``hs`` goes
    back to the pool of buffers; with batch 1 or one step, ``ascontiguousarray`` would return a view)."""
    seq = hs.transpose(1, 0, 2)
    if mask is not None and zero_output:
        return seq * mask[:, :, None]
    return seq.copy(order="C")


def _sequence_grad(gseq: Any, mask: Any, zero_output: bool) -> Any:
    """The output gradient, time-major."""
    if mask is not None and zero_output:
        gseq = gseq * mask[:, :, None]
    return gseq.transpose(1, 0, 2)


def _stacked_inputs(op: Op, x: Any, h0: Any) -> Any:
    """hx (time, batch, units + in) with hx[t] = [h_{t-1}, x_t]: the inputs and h_0 filled in, the later states
    left to the loop."""
    xp = get_array_module(x)
    n, steps, d = x.shape
    units = h0.shape[1]
    hx = _take(op, xp, (steps, n, units + d), x.dtype)
    hx[:, :, units:] = x.transpose(1, 0, 2)
    if steps:
        hx[0, :, :units] = h0
    return hx


def _stacked_weight_grads(op: Op, hx: Any, dz: Any, units: int, w_index: int, u_index: int) -> tuple[Any, Any]:
    """dW and dU (those wanted) from one GEMM: [H_prev X]^T dZ stacks dU over dW."""
    want_w, want_u = op.needs_grad[w_index], op.needs_grad[u_index]
    if not (want_w or want_u):
        return None, None
    rows = hx.reshape(-1, hx.shape[2])[:, (0 if want_u else units):(None if want_w else units)]
    product = rows.T @ dz.reshape(-1, dz.shape[2])  # [dU; dW], or the one of them wanted
    du = product[:units] if want_u else None
    dw = (product[units:] if want_u else product) if want_w else None
    return dw, du


def _input_grads(op: Op, dpre: Any, xt: Any, x: Any, w: Any, has_bias: bool, w_index: int) -> tuple:
    """dx, dW, db from the gradients of the pre-activations (time, batch, k*units): one GEMM each."""
    t, n, k = dpre.shape
    flat = dpre.reshape(t * n, k)
    dx = (flat @ w.T).reshape(t, n, x.shape[2]).transpose(1, 0, 2) if op.needs_grad[0] else None
    dw = xt.T @ flat if op.needs_grad[w_index] else None
    db = flat.sum(axis=0) if has_bias and op.needs_grad[w_index + 2] else None
    return dx, dw, db


def _batch_major_grad(gseq: Any, mask: Any, zero_output: bool, dtype: Any) -> Any:
    """The output gradient as the kernels read it: (batch, time, units), C order, the op's dtype ((batch, 0,
    units) when the sequence was not used: the kernels skip it)."""
    if mask is not None and zero_output and gseq.shape[1]:
        gseq = gseq * mask[:, :, None]
    return get_array_module(gseq).ascontiguousarray(gseq, dtype=dtype)


def _split_keep(keep: Any, *grads: Any) -> list:
    """For masked steps: the parts of the state gradients that skip the step (returned) and the parts
    that flow through it (left in place)."""
    skipped = []
    for g in grads:
        skipped.append(g * ~keep)
        g *= keep
    return skipped


class _GatedSequence(Op):
    """The options shared by the gated recurrent ops (LSTM, GRU); not an op itself."""

    saves_output = True  # the engine needs y for unused outputs (small next to the buffers the op keeps)
    #: the engine passes None for the gradient of an output nobody used (the sequence, under an LSTM or GRU
    #: layer with return_sequences=False): the kernels then skip it, instead of reading a zero array of it
    missing_grads_as_none = True

    def __init__(self, mask: Any = None, activation: str = "tanh", recurrent_activation: str = "sigmoid",
                 zero_output_for_mask: bool = False, return_sequences: bool = True) -> None:
        self.mask = mask
        self.act, self.rec_act = _activation(activation), _activation(recurrent_activation)
        self.zero_output = zero_output_for_mask
        self.return_sequences = return_sequences

    def _first_output(self, hs: Any) -> Any:
        """The sequence (batch, time, units), or with return_sequences=False h_T (never building the sequence)."""
        if self.return_sequences:
            return _sequence_output(hs[1:], self.mask, self.zero_output)
        return hs[-1].copy()

    def _given_grads(self, gys: tuple, x: Any) -> list:
        """The output gradients with zeros for the unused ones (None); the kernels get an unused sequence's as
        (batch, 0, units) and skip it. With return_sequences=False the first output is h_T: its gradient joins
        h_T's, and the sequence has none."""
        xp = get_array_module(x)
        gys = list(gys)
        if not self.return_sequences:
            first, gys[0] = gys[0], None
            if first is not None:
                gys[1] = first if gys[1] is None else gys[1] + first
        n, steps, units = x.shape[0], x.shape[1], self.hs.shape[2]
        shapes = [(n, 0 if self.fused else steps, units)] + [(n, units)] * (len(gys) - 1)
        return [g if g is not None else xp.zeros(shape, x.dtype) for g, shape in zip(gys, shapes)]

    def _use_kernel(self, x: Any, w: Any, u: Any) -> bool:
        """Sets ``fused`` (backward through time by the compiled kernels) and returns whether the forward loop
        runs them too. The kernels know tanh/sigmoid only, and one dtype for the data and both kernels. The
        forward kernel runs for FORWARD_KERNEL_DTYPES only: in float64 its tanh is libm's scalar one, slower
        than NumPy's vectorised loop (the float32 kernel has its own rational tanh)."""
        self.kernel_mask = None if self.mask is None else get_array_module(self.mask).ascontiguousarray(self.mask)
        default = self.act is ACTIVATIONS["tanh"] and self.rec_act is ACTIVATIONS["sigmoid"]
        self.fused = default and fast(x, w, u) and x.dtype == w.dtype == u.dtype
        return self.fused and x.dtype in FORWARD_KERNEL_DTYPES


# ---------------------------------------------------------------------------- LSTM
class LSTMSequenceOp(_GatedSequence):
    """Keras LSTM over a sequence (gates i, f, c, o; a = activation, s = recurrent_activation):
    z_t = x_t W + h_{t-1} U + b;  i, f, o = s(z_i), s(z_f), s(z_o);  g = a(z_c);  c_t = f c_{t-1} + i g;
    h_t = o a(c_t);  y = (h_1..h_T, h_T, c_T).
    Backward through time: dc_t = dh_t o a'(c_t) + dc_{t+1} f_{t+1};  dz = (dc g, dc c_{t-1}, dc i, dh a(c_t))
    times the gate derivatives;  dh_{t-1} = dz U^T;  dW = X^T dZ,  dU = H_{prev}^T dZ,  db = sum dZ,  dx = dZ W^T"""

    def forward(self, x, h0, c0, w, u, b):
        units = _check_shapes("lstm", x, w, u, 4)
        xp = get_array_module(x)
        n, steps = x.shape[:2]
        forward_kernel = self._use_kernel(x, w, u)
        hs = _take(self, xp, (steps + 1, n, units), x.dtype)  # hs[0] = h0
        cs = _take(self, xp, (steps + 1, n, units), x.dtype)
        tanh_c = _take(self, xp, (steps, n, units), x.dtype)  # a(c_t)
        hs[0], cs[0] = h0, c0
        if self.fused:  # the kernels' layout: [h_{t-1}, x_t] side by side (module docstring)
            self.hx = _stacked_inputs(self, x, h0)
        # gates[t] becomes the activated (i, f, g, o) of step t
        if forward_kernel:
            gates = _take(self, xp, (steps, n, 4 * units), x.dtype)
            self._steps_kernel(gates, hs, cs, tanh_c, w, u, b)
        else:
            xt, gates = _project(self, x, w, b)
            self._steps_reference(gates, hs, cs, tanh_c, u)
            if self.fused:  # float64: the reference forward, the kernels' backward
                self.hx[1:, :, :units] = hs[1:steps]
            else:
                self.xt = xt
        self.gates, self.hs, self.cs, self.tanh_c = gates, hs, cs, tanh_c
        return self._first_output(hs), hs[steps].copy(), cs[steps].copy()

    def _steps_kernel(self, gates, hs, cs, tanh_c, w, u, b):
        xp = get_array_module(u)
        hx, units = self.hx, u.shape[0]
        weights = xp.concatenate([u, w])  # [U; W]: z_t = [h_{t-1}, x_t] [U; W]
        bias = xp.zeros(gates.shape[2], gates.dtype) if b is None else xp.ascontiguousarray(b, dtype=gates.dtype)
        if gemm.available():
            block = gemm.recurrent_block()
            with gemm.one_thread_each():
                kernels.lstm_forward_sequence(_row_blocks(hs.shape[1]), hx, gemm.pack_column_blocks(weights, block),
                                              bias, gates, hs, cs, tanh_c, self.kernel_mask, block)
            return
        for t in range(gates.shape[0]):
            xp.matmul(hx[t], weights, out=gates[t])
            kernels.lstm_forward_step(t, gates, bias, hs, cs, tanh_c, self.kernel_mask)
            if t + 1 < gates.shape[0]:
                hx[t + 1, :, :units] = hs[t + 1]

    def _steps_reference(self, gates, hs, cs, tanh_c, u):
        xp = get_array_module(u)
        units = u.shape[0]
        recurrent = xp.empty(gates.shape[1:], dtype=gates.dtype)
        ig = xp.empty(hs.shape[1:], dtype=hs.dtype)
        act, rec_act = self.act[0], self.rec_act[0]
        for t in range(gates.shape[0]):
            z = gates[t]
            xp.matmul(hs[t], u, out=recurrent)
            z += recurrent
            rec_act(z[:, :2 * units])
            act(z[:, 2 * units:3 * units])
            rec_act(z[:, 3 * units:])
            i, f, g, o = z[:, :units], z[:, units:2 * units], z[:, 2 * units:3 * units], z[:, 3 * units:]
            xp.multiply(f, cs[t], out=cs[t + 1])
            xp.multiply(i, g, out=ig)
            cs[t + 1] += ig
            tanh_c[t] = cs[t + 1]
            act(tanh_c[t])
            xp.multiply(o, tanh_c[t], out=hs[t + 1])
            keep = _keep(self.mask, t)
            _carry(keep, hs[t + 1], hs[t])
            _carry(keep, cs[t + 1], cs[t])

    def backward(self, gys, x, h0, c0, w, u, b, y):
        _no_double_backward("lstm", *gys)
        gseq, gh, gc = self._given_grads(gys, x)
        units = u.shape[0]
        want_db = b is not None and self.needs_grad[5]
        if self.fused:  # the kernels sum the bias gradient as they go (per batch row; then over the rows here)
            dh_next, dc_next, dz, dx, db_rows = self._backward_kernel(gseq, gh, gc, x, w, u, want_db)
            dw, du = _stacked_weight_grads(self, self.hx, dz, units, 3, 4)
            db = db_rows.sum(axis=0) if want_db else None
        else:
            dh_next, dc_next, dz = self._backward_reference(gseq, gh, gc, x.dtype, u)
            dx, dw, db = _input_grads(self, dz, self.xt, x, w, want_db, 3)
            du = self.hs[:-1].reshape(-1, units).T @ dz.reshape(-1, 4 * units) if self.needs_grad[4] else None
        _BUFFERS.give(dz)
        return dx, dh_next, dc_next, dw, du, db

    def _backward_kernel(self, gseq, gh, gc, x, w, u, want_db):
        xp = get_array_module(u)
        dtype, units, (n, steps) = x.dtype, u.shape[0], x.shape[:2]
        gseq = _batch_major_grad(gseq, self.mask, self.zero_output, dtype)
        dz = _BUFFERS.take(xp, self.gates.shape, self.gates.dtype)
        want_dx = self.needs_grad[0]
        # one GEMM per step: dz_t [U; W]^T = [dh_{t-1}, dx_t] (dz_t U^T without dx), on a C-ordered copy made in
        # one pass (a transposed right-hand side measured 1.5x slower)
        if want_dx:
            weights_t = xp.concatenate([u.T, w.T], axis=1, out=xp.empty((u.shape[1], units + w.shape[0]), dtype))
        else:
            weights_t = xp.ascontiguousarray(u.T)
        dx = xp.empty((n, steps, x.shape[2]) if want_dx else (n, 0, 0), dtype)
        dh_rec = xp.zeros((n, weights_t.shape[1]), dtype)  # dz[t + 1] weights_t (at the last step: h_T's gradient)
        dh_rec[:, :units] = gh
        dc = xp.array(gc, dtype=dtype, copy=True)
        carry = xp.zeros((n, units), dtype)
        db_rows = xp.zeros(self.gates.shape[1:], dtype) if want_db else xp.empty((0, self.gates.shape[2]), dtype)
        if gemm.available():
            with gemm.one_thread_each():
                kernels.lstm_backward_sequence(_row_blocks(n), gseq, dh_rec, carry, dc, self.gates, self.cs,
                                               self.tanh_c, dz, self.kernel_mask, db_rows, weights_t, dx,
                                               gemm.recurrent_block())
        else:
            for t in range(steps - 1, -1, -1):
                kernels.lstm_backward_step(t, gseq, dh_rec, carry, dc, self.gates, self.cs, self.tanh_c, dz,
                                           self.kernel_mask, db_rows)
                xp.matmul(dz[t], weights_t, out=dh_rec)
                if want_dx:
                    dx[:, t] = dh_rec[:, units:]
        carry += dh_rec[:, :units]
        return carry, dc, dz, dx if want_dx else None, db_rows

    def _backward_reference(self, gseq, gh, gc, dtype, u):
        xp = get_array_module(u)
        units, steps = u.shape[0], gseq.shape[1]
        gates, cs, tanh_c = self.gates, self.cs, self.tanh_c
        gseq = _sequence_grad(gseq, self.mask, self.zero_output)
        # derivatives of the activations, for all steps at once
        d_gates = xp.empty_like(gates)
        d_gates[..., :2 * units] = self.rec_act[1](gates[..., :2 * units])
        d_gates[..., 2 * units:3 * units] = self.act[1](gates[..., 2 * units:3 * units])
        d_gates[..., 3 * units:] = self.rec_act[1](gates[..., 3 * units:])
        d_tanh_c = self.act[1](tanh_c)
        dz = _BUFFERS.take(xp, gates.shape, gates.dtype)
        dh_next = xp.array(gh, dtype=dtype, copy=True)
        dc_next = xp.array(gc, dtype=dtype, copy=True)
        dh = xp.empty_like(dh_next)
        dc = xp.empty_like(dc_next)
        for t in range(steps - 1, -1, -1):
            xp.add(gseq[t], dh_next, out=dh)
            keep = _keep(self.mask, t)
            if keep is not None:
                dh_skip, dc_skip = _split_keep(keep, dh, dc_next)
            i, f, g, o = (gates[t, :, k * units:(k + 1) * units] for k in range(4))
            di, df, dg, do = (dz[t, :, k * units:(k + 1) * units] for k in range(4))
            xp.multiply(dh, tanh_c[t], out=do)
            xp.multiply(dh, o, out=dc)
            dc *= d_tanh_c[t]
            dc += dc_next
            xp.multiply(dc, g, out=di)
            xp.multiply(dc, cs[t], out=df)
            xp.multiply(dc, i, out=dg)
            xp.multiply(dc, f, out=dc_next)
            dz[t] *= d_gates[t]
            xp.matmul(dz[t], u.T, out=dh_next)
            if keep is not None:
                dh_next += dh_skip
                dc_next += dc_skip
        return dh_next, dc_next, dz


# ---------------------------------------------------------------------------- GRU
class GRUSequenceOp(_GatedSequence):
    """Keras GRU with reset_after=True (gates z, r, h; bias (2, 3*units): input and recurrent rows):
    p_t = x_t W + b_in;  q_t = h_{t-1} U + b_rec;  z, r = s(p_z + q_z), s(p_r + q_r);  n = a(p_h + r q_h);
    h_t = z h_{t-1} + (1 - z) n;  y = (h_1..h_T, h_T).
    Backward: dn = dh (1 - z) a';  dz = dh (h_{t-1} - n) s';  dr = dn q_h s';  dp = (dz, dr, dn),
    dq = (dz, dr, dn r);  dh_{t-1} = dh z + dq U^T;  dW = X^T dP,  dU = H_{prev}^T dQ,  db = (sum dP, sum dQ)"""

    def forward(self, x, h0, w, u, b):
        units = _check_shapes("gru", x, w, u, 3)
        if b is not None and b.shape != (2, 3 * units):
            raise ValueError(f"gru: with reset_after=True the bias is (2, 3*units) = (2, {3 * units}), got {b.shape}")
        xp = get_array_module(x)
        n, steps = x.shape[:2]
        self.xt, gates = _project(self, x, w, None if b is None else b[0])  # gates[t] -> activated (z, r, n)
        hs = _take(self, xp, (steps + 1, n, units), x.dtype)
        hs[0] = h0
        rec = _take(self, xp, (steps, n, 3 * units), x.dtype)  # q_t = h_{t-1} U + b_rec (q_h kept for backward)
        forward_kernel = self._use_kernel(x, w, u)
        (self._steps_kernel if forward_kernel else self._steps_reference)(gates, rec, hs, u, b)
        self.gates, self.hs, self.rec = gates, hs, rec
        return self._first_output(hs), hs[steps].copy()

    def _recurrent(self, rec, hs, u, b, t):
        """rec[t] = q_t = h_{t-1} U + b_rec"""
        q = get_array_module(u).matmul(hs[t], u, out=rec[t])
        if b is not None:
            q += b[1]
        return q

    def _steps_kernel(self, gates, rec, hs, u, b):
        xp = get_array_module(u)
        if gemm.available():
            rec_bias = xp.zeros(rec.shape[2], rec.dtype) if b is None else xp.ascontiguousarray(b[1], rec.dtype)
            block = gemm.recurrent_block()
            with gemm.one_thread_each():
                kernels.gru_forward_sequence(_row_blocks(hs.shape[1]), gates, gemm.pack_column_blocks(u, block),
                                             rec_bias, hs, self.kernel_mask, rec, block)
            return
        for t in range(gates.shape[0]):
            self._recurrent(rec, hs, u, b, t)
            kernels.gru_forward_step(t, gates, rec, hs, self.kernel_mask)

    def _steps_reference(self, gates, rec, hs, u, b):
        xp = get_array_module(u)
        units = u.shape[0]
        act, rec_act = self.act[0], self.rec_act[0]
        for t in range(gates.shape[0]):
            q = self._recurrent(rec, hs, u, b, t)
            p = gates[t]
            zr, cand = p[:, :2 * units], p[:, 2 * units:]
            zr += q[:, :2 * units]
            rec_act(zr)
            z, r = p[:, :units], p[:, units:2 * units]
            cand += r * q[:, 2 * units:]
            act(cand)
            h = hs[t + 1]
            xp.subtract(hs[t], cand, out=h)  # h = n + z (h_prev - n)
            h *= z
            h += cand
            _carry(_keep(self.mask, t), h, hs[t])

    def backward(self, gys, x, h0, w, u, b, y):
        _no_double_backward("gru", *gys)
        gseq, gh = self._given_grads(gys, x)
        xp = get_array_module(x)
        units = u.shape[0]
        want_db = b is not None and self.needs_grad[4]
        if self.fused:  # the kernels sum the bias gradients as they go (per batch row; then over the rows here)
            dh_next, dp, dq, db_rows = self._backward_kernel(gseq, gh, x.dtype, u, want_db)
        else:
            (dh_next, dp, dq), db_rows = self._backward_reference(gseq, gh, x.dtype, u), None
        dx, dw, db_in = _input_grads(self, dp, self.xt, x, w, False, 2)
        du = self.hs[:-1].reshape(-1, units).T @ dq.reshape(-1, 3 * units) if self.needs_grad[3] else None
        db = None
        if db_rows is not None:
            db = db_rows.sum(axis=1)
        elif want_db:
            db = xp.stack([dp.reshape(-1, 3 * units).sum(axis=0), dq.reshape(-1, 3 * units).sum(axis=0)])
        _BUFFERS.give(dp, dq)
        return dx, dh_next, dw, du, db

    def _backward_kernel(self, gseq, gh, dtype, u, want_db):
        xp = get_array_module(u)
        gseq = _batch_major_grad(gseq, self.mask, self.zero_output, dtype)
        dp = _BUFFERS.take(xp, self.gates.shape, self.gates.dtype)
        dq = _BUFFERS.take(xp, self.gates.shape, self.gates.dtype)
        dh_rec = xp.array(gh, dtype=dtype, copy=True)  # dq[t + 1] U^T (at the last step: the gradient of h_T)
        carry = xp.zeros_like(dh_rec)
        shape = (2,) + self.gates.shape[1:] if want_db else (2, 0, self.gates.shape[2])  # rows of db_in, db_rec
        db_rows = xp.zeros(shape, dtype)
        u_t = xp.ascontiguousarray(u.T)  # a GEMM with a transposed U measured 1.5x slower
        if gemm.available():
            with gemm.one_thread_each():
                kernels.gru_backward_sequence(_row_blocks(dh_rec.shape[0]), gseq, dh_rec, carry, self.gates, self.rec,
                                              self.hs, dp, dq, self.kernel_mask, db_rows, u_t, gemm.recurrent_block())
        else:
            for t in range(self.gates.shape[0] - 1, -1, -1):
                kernels.gru_backward_step(t, gseq, dh_rec, carry, self.gates, self.rec, self.hs, dp, dq,
                                          self.kernel_mask, db_rows)
                xp.matmul(dq[t], u_t, out=dh_rec)
        dh_rec += carry
        return dh_rec, dp, dq, db_rows if want_db else None

    def _backward_reference(self, gseq, gh, dtype, u):
        xp = get_array_module(u)
        units, steps = u.shape[0], gseq.shape[1]
        gates, hs, rec = self.gates, self.hs, self.rec
        gseq = _sequence_grad(gseq, self.mask, self.zero_output)
        d_zr = self.rec_act[1](gates[..., :2 * units])
        d_cand = self.act[1](gates[..., 2 * units:])
        dp = _BUFFERS.take(xp, gates.shape, gates.dtype)
        dq = _BUFFERS.take(xp, gates.shape, gates.dtype)
        dh_next = xp.array(gh, dtype=dtype, copy=True)
        dh = xp.empty_like(dh_next)
        for t in range(steps - 1, -1, -1):
            xp.add(gseq[t], dh_next, out=dh)
            keep = _keep(self.mask, t)
            if keep is not None:
                (dh_skip,) = _split_keep(keep, dh)
            z, r, cand = (gates[t, :, k * units:(k + 1) * units] for k in range(3))
            dz, dr, dn = (dp[t, :, k * units:(k + 1) * units] for k in range(3))
            xp.subtract(hs[t], cand, out=dz)
            dz *= dh
            xp.multiply(dh, 1 - z, out=dn)
            dn *= d_cand[t]
            xp.multiply(dn, rec[t, :, 2 * units:], out=dr)
            dp[t, :, :2 * units] *= d_zr[t]
            dq[t, :, :2 * units] = dp[t, :, :2 * units]
            xp.multiply(dn, r, out=dq[t, :, 2 * units:])
            xp.matmul(dq[t], u.T, out=dh_next)
            dh *= z
            dh_next += dh
            if keep is not None:
                dh_next += dh_skip
        return dh_next, dp, dq


# ---------------------------------------------------------------------------- SimpleRNN
class SimpleRNNSequenceOp(Op):
    """h_t = a(x_t W + h_{t-1} U + b);  y = (h_1..h_T, h_T).
    Backward: dz_t = (gy_t + dh_t) a'(z_t);  dh_{t-1} = dz_t U^T;  dW = X^T dZ,  dU = H_{prev}^T dZ,  db = sum dZ"""

    saves_output = True  # the engine needs y for unused outputs (small next to the buffers the op keeps)

    def __init__(self, mask: Any = None, activation: str = "tanh", zero_output_for_mask: bool = False) -> None:
        self.mask = mask
        self.act = _activation(activation)
        self.zero_output = zero_output_for_mask

    def forward(self, x, h0, w, u, b):
        units = _check_shapes("simple_rnn", x, w, u, 1)
        xp = get_array_module(x)
        n, steps = x.shape[:2]
        self.xt, pre = _project(self, x, w, b)
        hs = _take(self, xp, (steps + 1, n, units), x.dtype)
        hs[0] = h0
        for t in range(steps):
            h = hs[t + 1]
            xp.matmul(hs[t], u, out=h)
            h += pre[t]
            self.act[0](h)
            _carry(_keep(self.mask, t), h, hs[t])
        self.hs = hs
        return _sequence_output(hs[1:], self.mask, self.zero_output), hs[steps].copy()

    def backward(self, gys, x, h0, w, u, b, y):
        _no_double_backward("simple_rnn", *gys)
        gseq, gh = gys
        xp = get_array_module(x)
        hs, steps, units = self.hs, x.shape[1], u.shape[0]
        gseq = _sequence_grad(gseq, self.mask, self.zero_output)
        dz = self.act[1](hs[1:])  # a'(z_t), then times the incoming gradient
        dh_next = xp.array(gh, dtype=x.dtype, copy=True)
        for t in range(steps - 1, -1, -1):
            dh = gseq[t] + dh_next
            keep = _keep(self.mask, t)
            if keep is not None:
                (dh_skip,) = _split_keep(keep, dh)
            dz[t] *= dh
            xp.matmul(dz[t], u.T, out=dh_next)
            if keep is not None:
                dh_next += dh_skip
        dx, dw, db = _input_grads(self, dz, self.xt, x, w, b is not None, 2)
        du = hs[:-1].reshape(-1, units).T @ dz.reshape(-1, units) if self.needs_grad[3] else None
        return dx, dh_next, dw, du, db


# ---------------------------------------------------------------------------- user functions
def _initial_state(x: Any, units: int, state: Any) -> Any:
    if state is not None:
        return state
    data = raw(x)
    return get_array_module(data).zeros((data.shape[0], units), dtype=data.dtype)


def _raw_mask(mask: Any) -> Any:
    if mask is None:
        return None
    return raw(mask).astype(bool, copy=False)


def lstm(x: Any, kernel: Any, recurrent_kernel: Any, bias: Any = None, h0: Any = None, c0: Any = None,
         mask: Any = None, activation: str = "tanh", recurrent_activation: str = "sigmoid",
         zero_output_for_mask: bool = False, return_sequences: bool = True) -> tuple[Any, Any, Any]:
    """Keras-layout LSTM over x (batch, time, in): returns (outputs (batch, time, units), h_T, c_T); with
    ``return_sequences=False`` the first output is h_T (batch, units), as Keras's layer gives, and the sequence is
    never built."""
    units = raw(recurrent_kernel).shape[0]
    op = LSTMSequenceOp(_raw_mask(mask), activation, recurrent_activation, zero_output_for_mask, return_sequences)
    return op(x, _initial_state(x, units, h0), _initial_state(x, units, c0), kernel, recurrent_kernel, bias)


def gru(x: Any, kernel: Any, recurrent_kernel: Any, bias: Any = None, h0: Any = None, mask: Any = None,
        activation: str = "tanh", recurrent_activation: str = "sigmoid",
        zero_output_for_mask: bool = False, return_sequences: bool = True) -> tuple[Any, Any]:
    """Keras-layout GRU (reset_after=True, bias (2, 3*units)) over x: returns (outputs, h_T); with
    ``return_sequences=False`` the first output is h_T, as for :func:`lstm`."""
    units = raw(recurrent_kernel).shape[0]
    op = GRUSequenceOp(_raw_mask(mask), activation, recurrent_activation, zero_output_for_mask, return_sequences)
    return op(x, _initial_state(x, units, h0), kernel, recurrent_kernel, bias)


def simple_rnn(x: Any, kernel: Any, recurrent_kernel: Any, bias: Any = None, h0: Any = None, mask: Any = None,
               activation: str = "tanh", zero_output_for_mask: bool = False) -> tuple[Any, Any]:
    """h_t = activation(x_t W + h_{t-1} U + b) over x (batch, time, in): returns (outputs, h_T)."""
    units = raw(recurrent_kernel).shape[0]
    op = SimpleRNNSequenceOp(_raw_mask(mask), activation, zero_output_for_mask)
    return op(x, _initial_state(x, units, h0), kernel, recurrent_kernel, bias)
