"""The fused LSTM and GRU ops' loops over time (:mod:`shendu.ops.rnn`): the per-step GEMM and the gate maths.

Per step there is one small GEMM and a dozen element-wise passes over (batch, units) arrays. The LSTM's GEMM
takes the step's input with the state, ``z_t = [h_{t-1}, x_t] [U; W]`` (``hx[t]`` holds both side by side), and
going back ``dz_t [U; W]^T = [dh_{t-1}, dx_t]``: no input projection before the loop and no ``dx`` GEMM after it,
and the op finds ``dU`` and ``dW`` in one GEMM over ``hx``. The GRU's reset gate scales ``h U`` alone, so it keeps
the input projection of all steps (one GEMM before) and ``h_{t-1} U`` per step; ``dW``, ``dU``, ``dx`` after.

* ``*_sequence`` kernels run every step in one call: rows of a batch do not depend on each other, so the batch
  is cut into ``parts`` blocks of rows and each block runs the whole sequence on its own thread, its GEMMs
  called from inside the kernel (:mod:`shendu.kernels.gemm`, one BLAS thread each) and each step's gate maths
  in one loop per row. No Python between steps, and no thread waits for another (Embedding-LSTM(128) train
  step at 2 threads, in-process alternation: 38.3 -> 32.3 ms and 41.8 -> 34.8 ms; GRU 32.4 -> 27.3 ms).
* ``*_step`` kernels are one step's gate maths, for NumPy builds whose BLAS that module cannot bind: the op
  then runs the GEMM with NumPy between them.

Both share the per-row functions. The NumPy bodies in :mod:`shendu.ops.rnn` are the reference; tests tie the
kernels to them and to each other.

Only the default activations are here (``tanh``, and ``sigmoid`` as ``0.5 tanh(x / 2) + 0.5``, the form the
reference uses); the ops run their NumPy body for any other. float64 uses libm's ``tanh``; float32 a rational
approximation (Eigen's, max error 3e-7 on [-8, 8], exact to float32 rounding outside; NumPy's tanh is within
6e-8), because Numba has no vectorised float32 ``tanh`` without Intel's SVML and a scalar libm call per gate
costs more than the step's GEMM. Arrays are passed whole (time-major buffers and the step ``t``) so each
kernel compiles once per dtype; a ``mask`` of None compiles the branch away. ``error_model="numpy"`` lets
LLVM vectorise the divisions; ``fastmath={"contract"}`` lets it fuse multiply-adds (1.5x faster; nothing
else: no reassociation, no approximate reciprocals).
"""

from __future__ import annotations

import numpy as np

from shendu.kernels.gemm import matmul_packed, matmul_rows_summed
from shendu.kernels.jit import jit, prange

_CONTRACT = {"contract"}  # a * b + c as one FMA (~1.5x faster steps; no other fast-math liberty)
_CLAMP = np.float32(7.90531110763549805)  # tanh(x) rounds to +-1 in float32 beyond this
_P = tuple(np.float32(c) for c in (4.89352455891786e-03, 6.37261928875436e-04, 1.48572235717979e-05,
                                  5.12229709037114e-08, -8.60467152213735e-11, 2.00018790482477e-13,
                                  -2.76076847742355e-16))
_Q = tuple(np.float32(c) for c in (4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04,
                                  1.19825839466702e-06))
_P1, _P3, _P5, _P7, _P9, _P11, _P13 = _P
_Q0, _Q2, _Q4, _Q6 = _Q


@jit(error_model="numpy", fastmath=_CONTRACT, inline="always")
def _tanh32(v):  # pragma: no cover - compiled
    x = min(max(v, -_CLAMP), _CLAMP)
    x2 = x * x
    p = x2 * _P13 + _P11
    p = x2 * p + _P9
    p = x2 * p + _P7
    p = x2 * p + _P5
    p = x2 * p + _P3
    p = x2 * p + _P1
    q = x2 * _Q6 + _Q4
    q = x2 * q + _Q2
    q = x2 * q + _Q0
    return x * p / q


@jit(error_model="numpy", fastmath=_CONTRACT, inline="always")
def _tanh(v, f32):  # pragma: no cover - compiled
    return _tanh32(v) if f32 else np.tanh(v)


@jit(error_model="numpy", fastmath=_CONTRACT, inline="always")
def _sigmoid(v, f32, half):  # pragma: no cover - compiled
    return half * _tanh(half * v, f32) + half


# Rows are copied and zeroed by explicit loops: an array assignment (``h[:] = h_prev``) in a function inlined into a
# ``prange`` loop came out wrong (Numba 0.68's parallel passes; the masked-row tests caught it).
@jit(inline="always")
def _copy(source, target):  # pragma: no cover - compiled
    for j in range(target.shape[0]):
        target[j] = source[j]


@jit(inline="always")
def _zero(target):  # pragma: no cover - compiled
    for j in range(target.shape[0]):
        target[j] = 0


@jit(inline="always")
def _accumulate(total, values):  # pragma: no cover - compiled
    """total += values (a row's bias, or its bias gradient summed over the steps)."""
    for j in range(total.shape[0]):
        total[j] += values[j]


@jit(inline="always")
def _block(p, parts, n):  # pragma: no cover - compiled
    """Rows [first, last) of block p when n rows are cut into ``parts`` blocks of (nearly) equal size."""
    return p * n // parts, (p + 1) * n // parts


@jit(inline="always")
def _dh(gseq, b, t, j, dh_rec, carry):  # pragma: no cover - compiled
    """The gradient reaching h_t: from the output sequence (of no steps when unused), through U, and carried
    past U. ("Unused" and "no bias gradient" are empty arrays, not None: one compiled variant fewer each.)"""
    if gseq.shape[1] == 0:
        return dh_rec[j] + carry[j]
    return gseq[b, t, j] + dh_rec[j] + carry[j]


# Each loop runs over one row's 1-D slices: LLVM vectorises those (2-D indexing in the loop body stays scalar,
# ~10x slower). The row loops with a transcendental take ``f32`` as a literal from an ``if`` on the dtype, so
# after inlining each copy holds one tanh and vectorises (a run-time flag in the loop would not).
# Gate blocks are the Keras ones: LSTM i, f, g(c), o; GRU z, r, n(h).
# ---------------------------------------------------------------------------- LSTM
@jit(error_model="numpy", fastmath=_CONTRACT, inline="always")
def _lstm_row(zi, zf, zg, zo, bi, bf, bg, bo, c_prev, c, tc, h, f32):  # pragma: no cover - compiled
    half = zi.dtype.type(0.5)
    for j in range(zi.shape[0]):
        i = _sigmoid(zi[j] + bi[j], f32, half)
        f = _sigmoid(zf[j] + bf[j], f32, half)
        g = _tanh(zg[j] + bg[j], f32)
        o = _sigmoid(zo[j] + bo[j], f32, half)
        zi[j], zf[j], zg[j], zo[j] = i, f, g, o
        cj = f * c_prev[j] + i * g
        tj = _tanh(cj, f32)
        c[j], tc[j], h[j] = cj, tj, o * tj


@jit(error_model="numpy", fastmath=_CONTRACT, inline="always")
def _lstm_forward_row(t, b, gates, bias, hs, cs, tanh_c, mask):  # pragma: no cover - compiled
    """Row b of step t (see lstm_forward_step)."""
    u = hs.shape[2]
    h_prev, c_prev, h, c, tc = hs[t, b], cs[t, b], hs[t + 1, b], cs[t + 1, b], tanh_c[t, b]
    if mask is not None and not mask[b, t]:
        _copy(h_prev, h)
        _copy(c_prev, c)
        return
    zi, zf, zg, zo = gates[t, b, :u], gates[t, b, u:2 * u], gates[t, b, 2 * u:3 * u], gates[t, b, 3 * u:]
    bi, bf, bg, bo = bias[:u], bias[u:2 * u], bias[2 * u:3 * u], bias[3 * u:]
    if gates.itemsize == 4:
        _lstm_row(zi, zf, zg, zo, bi, bf, bg, bo, c_prev, c, tc, h, True)
    else:
        _lstm_row(zi, zf, zg, zo, bi, bf, bg, bo, c_prev, c, tc, h, False)


@jit(error_model="numpy", fastmath=_CONTRACT)
def lstm_forward_step(t, gates, bias, hs, cs, tanh_c, mask):  # pragma: no cover - compiled
    """gates[t] (batch, 4*units): z_t = x_t W + h_{t-1} U in, the activated (i, f, g, o) out (after adding the
    bias); cs[t + 1] = f cs[t] + i g, tanh_c[t] = tanh(cs[t + 1]), hs[t + 1] = o tanh_c[t]; rows with
    mask[b, t] False keep hs[t], cs[t]."""
    for b in range(gates.shape[1]):
        _lstm_forward_row(t, b, gates, bias, hs, cs, tanh_c, mask)


@jit(inline="always")
def _next_input(hx, t, b, hs):  # pragma: no cover - compiled
    """hx[t + 1, b] starts with h_t, the state the next step's GEMM reads (nothing after the last step)."""
    if t + 1 < hx.shape[0]:
        _copy(hs[t + 1, b], hx[t + 1, b, :hs.shape[2]])


@jit(parallel=True, error_model="numpy", fastmath=_CONTRACT)
def lstm_forward_sequence(parts, hx, weights, bias, gates, hs, cs, tanh_c, mask, block):  # pragma: no cover - compiled
    """Every step of :func:`lstm_forward_step` with its GEMM gates[t] = hx[t] [U; W] done here. ``hx`` (steps,
    batch, units + in) holds [h_{t-1}, x_t] side by side: the caller fills the inputs and h_0, the kernel each
    h_t it computes. The batch is cut into ``parts`` blocks of rows, and each block runs the whole sequence on
    its own thread (rows do not depend on each other). ``weights`` = [U; W] in blocks of ``block`` columns
    (:func:`shendu.kernels.gemm.pack_column_blocks`, :func:`shendu.kernels.gemm.recurrent_block`); call inside
    :func:`shendu.kernels.gemm.one_thread_each`."""
    n = gates.shape[1]
    for p in prange(parts):
        first, last = _block(p, parts, n)
        for t in range(gates.shape[0]):
            matmul_packed(hx[t, first:last], weights, gates[t, first:last], block)
            for b in range(first, last):
                _lstm_forward_row(t, b, gates, bias, hs, cs, tanh_c, mask)
                _next_input(hx, t, b, hs)


@jit(error_model="numpy", fastmath=_CONTRACT, inline="always")
def _lstm_backward_row(t, b, gseq, dh_rec, carry, dc, gates, cs, tanh_c, dz, mask, db_rows):  # pragma: no cover
    """Row b of step t (see lstm_backward_step)."""
    one = dz.dtype.type(1)
    u = dc.shape[1]
    dr, ca, dcb = dh_rec[b], carry[b], dc[b]
    if mask is not None and not mask[b, t]:
        for j in range(u):
            ca[j] = _dh(gseq, b, t, j, dr, ca)
        _zero(dz[t, b])
        return
    i, f, g, o = gates[t, b, :u], gates[t, b, u:2 * u], gates[t, b, 2 * u:3 * u], gates[t, b, 3 * u:]
    di, df, dg, do = dz[t, b, :u], dz[t, b, u:2 * u], dz[t, b, 2 * u:3 * u], dz[t, b, 3 * u:]
    c_prev, tc = cs[t, b], tanh_c[t, b]
    for j in range(u):
        dh = _dh(gseq, b, t, j, dr, ca)
        dcj = dh * o[j] * (one - tc[j] * tc[j]) + dcb[j]
        di[j] = dcj * g[j] * (i[j] * (one - i[j]))
        df[j] = dcj * c_prev[j] * (f[j] * (one - f[j]))
        dg[j] = dcj * i[j] * (one - g[j] * g[j])
        do[j] = dh * tc[j] * (o[j] * (one - o[j]))
        dcb[j] = dcj * f[j]
        ca[j] = 0
    if db_rows.shape[0] != 0:
        _accumulate(db_rows[b], dz[t, b])


@jit(error_model="numpy", fastmath=_CONTRACT)
def lstm_backward_step(t, gseq, dh_rec, carry, dc, gates, cs, tanh_c, dz, mask, db_rows):  # pragma: no cover
    """dh = gseq[:, t] + dh_rec + carry (dh_rec = dz[t + 1] U^T in its first ``units`` columns; gseq of no steps
    when the sequence was unused);
    dz[t] = the pre-activation gradients of step t; dc <- dc_{t-1}; carry <- the part of dh_{t-1} not through U
    (dh itself on masked rows, else 0); db_rows[b] += dz[t, b] unless db_rows has no rows (no bias gradient).
    Summed per row, then over the rows by the op: the same sums whatever the thread count."""
    for b in range(dc.shape[0]):
        _lstm_backward_row(t, b, gseq, dh_rec, carry, dc, gates, cs, tanh_c, dz, mask, db_rows)


@jit(parallel=True, error_model="numpy", fastmath=_CONTRACT)
def lstm_backward_sequence(parts, gseq, dh_rec, carry, dc, gates, cs, tanh_c, dz, mask, db_rows, weights_t,
                           dx, block):  # pragma: no cover - compiled
    """Every step of :func:`lstm_backward_step` from the last to the first, with its GEMM dh_rec = dz[t]
    ``weights_t`` done here, on ``parts`` blocks of rows as in :func:`lstm_forward_sequence`. ``weights_t`` is
    U^T, or [U; W]^T when ``dx`` (batch, steps, in) is wanted: dh_rec (batch, units + in) then also gets
    dz[t] W^T = dx_t, copied to dx[:, t] (``dx`` of no columns when not wanted). C-ordered, multiplied in
    blocks of ``block`` rows (:func:`shendu.kernels.gemm.matmul_rows_summed`); on return dh_rec holds dz[0]
    weights_t."""
    n = dc.shape[0]
    for p in prange(parts):
        first, last = _block(p, parts, n)
        for t in range(gates.shape[0] - 1, -1, -1):
            for b in range(first, last):
                _lstm_backward_row(t, b, gseq, dh_rec, carry, dc, gates, cs, tanh_c, dz, mask, db_rows)
            matmul_rows_summed(dz[t, first:last], weights_t, dh_rec[first:last], block)
            if dx.shape[2] != 0:
                for b in range(first, last):
                    _copy(dh_rec[b, dc.shape[1]:], dx[b, t])


# ---------------------------------------------------------------------------- GRU (reset_after=True)
@jit(error_model="numpy", fastmath=_CONTRACT, inline="always")
def _gru_row(pz, pr, pn, qz, qr, qn, h_prev, h, f32):  # pragma: no cover - compiled
    half = pz.dtype.type(0.5)
    for j in range(pz.shape[0]):
        z = _sigmoid(pz[j] + qz[j], f32, half)
        r = _sigmoid(pr[j] + qr[j], f32, half)
        n = _tanh(pn[j] + r * qn[j], f32)
        pz[j], pr[j], pn[j] = z, r, n
        h[j] = n + z * (h_prev[j] - n)


@jit(error_model="numpy", fastmath=_CONTRACT, inline="always")
def _gru_forward_row(t, b, gates, rec, hs, mask):  # pragma: no cover - compiled
    """Row b of step t (see gru_forward_step)."""
    u = hs.shape[2]
    h_prev, h = hs[t, b], hs[t + 1, b]
    if mask is not None and not mask[b, t]:
        _copy(h_prev, h)
        return
    pz, pr, pn = gates[t, b, :u], gates[t, b, u:2 * u], gates[t, b, 2 * u:]
    qz, qr, qn = rec[t, b, :u], rec[t, b, u:2 * u], rec[t, b, 2 * u:]
    if gates.itemsize == 4:
        _gru_row(pz, pr, pn, qz, qr, qn, h_prev, h, True)
    else:
        _gru_row(pz, pr, pn, qz, qr, qn, h_prev, h, False)


@jit(error_model="numpy", fastmath=_CONTRACT)
def gru_forward_step(t, gates, rec, hs, mask):  # pragma: no cover - compiled
    """gates[t] (batch, 3*units): x_t W + b_in in, the activated (z, r, n) out, with rec[t] = h_{t-1} U + b_rec:
    z, r = s(p + q), n = tanh(p_h + r q_h); hs[t + 1] = n + z (hs[t] - n); masked rows keep hs[t]."""
    for b in range(gates.shape[1]):
        _gru_forward_row(t, b, gates, rec, hs, mask)


@jit(parallel=True, error_model="numpy", fastmath=_CONTRACT)
def gru_forward_sequence(parts, gates, u, rec_bias, hs, mask, rec, block):  # pragma: no cover - compiled
    """Every step of :func:`gru_forward_step`, with rec[t] = h_{t-1} U + b_rec done here, on ``parts`` blocks
    of rows as in :func:`lstm_forward_sequence` (``u``: U in column blocks, as ``weights`` there)."""
    n = gates.shape[1]
    for p in prange(parts):
        first, last = _block(p, parts, n)
        for t in range(gates.shape[0]):
            matmul_packed(hs[t, first:last], u, rec[t, first:last], block)
            for b in range(first, last):
                _accumulate(rec[t, b], rec_bias)
                _gru_forward_row(t, b, gates, rec, hs, mask)


@jit(error_model="numpy", fastmath=_CONTRACT, inline="always")
def _gru_backward_row(t, b, gseq, dh_rec, carry, gates, rec, hs, dp, dq, mask, db_rows):  # pragma: no cover
    """Row b of step t (see gru_backward_step)."""
    one = dp.dtype.type(1)
    u = dh_rec.shape[1]
    dr, ca = dh_rec[b], carry[b]
    if mask is not None and not mask[b, t]:
        for j in range(u):
            ca[j] = _dh(gseq, b, t, j, dr, ca)
        _zero(dp[t, b])
        _zero(dq[t, b])
        return
    z, r, n, qn, h_prev = gates[t, b, :u], gates[t, b, u:2 * u], gates[t, b, 2 * u:], rec[t, b, 2 * u:], hs[t, b]
    dpz, dpr, dpn = dp[t, b, :u], dp[t, b, u:2 * u], dp[t, b, 2 * u:]
    dqz, dqr, dqn = dq[t, b, :u], dq[t, b, u:2 * u], dq[t, b, 2 * u:]
    for j in range(u):
        dh = _dh(gseq, b, t, j, dr, ca)
        dn = dh * (one - z[j]) * (one - n[j] * n[j])
        dz = dh * (h_prev[j] - n[j]) * (z[j] * (one - z[j]))
        drj = dn * qn[j] * (r[j] * (one - r[j]))
        dpz[j], dpr[j], dpn[j] = dz, drj, dn
        dqz[j], dqr[j], dqn[j] = dz, drj, dn * r[j]
        ca[j] = dh * z[j]
    if db_rows.shape[1] != 0:
        _accumulate(db_rows[0, b], dp[t, b])
        _accumulate(db_rows[1, b], dq[t, b])


@jit(error_model="numpy", fastmath=_CONTRACT)
def gru_backward_step(t, gseq, dh_rec, carry, gates, rec, hs, dp, dq, mask, db_rows):  # pragma: no cover
    """dh = gseq[:, t] + dh_rec + carry (dh_rec = dq[t + 1] U^T; gseq of no steps when the sequence was unused);
    dp[t], dq[t] = the gradients of x_t W + b_in and h_{t-1} U + b_rec; carry <- the part of dh_{t-1} not
    through U (dh z; dh itself on masked rows); db_rows[0, b] += dp[t, b], db_rows[1, b] += dq[t, b] unless
    db_rows has no rows (shape (2, 0, 3*units): no bias gradient)."""
    for b in range(dh_rec.shape[0]):
        _gru_backward_row(t, b, gseq, dh_rec, carry, gates, rec, hs, dp, dq, mask, db_rows)


@jit(parallel=True, error_model="numpy", fastmath=_CONTRACT)
def gru_backward_sequence(parts, gseq, dh_rec, carry, gates, rec, hs, dp, dq, mask, db_rows,
                          u_t, block):  # pragma: no cover - compiled
    """Every step of :func:`gru_backward_step` from the last to the first, with dh_rec = dq[t] U^T done here
    (``u_t`` = U^T, C-ordered, in blocks of ``block`` rows as in :func:`lstm_backward_sequence`), on ``parts``
    blocks of rows. On return dh_rec holds dq[0] U^T."""
    n = dh_rec.shape[0]
    for p in prange(parts):
        first, last = _block(p, parts, n)
        for t in range(gates.shape[0] - 1, -1, -1):
            for b in range(first, last):
                _gru_backward_row(t, b, gseq, dh_rec, carry, gates, rec, hs, dp, dq, mask, db_rows)
            matmul_rows_summed(dq[t, first:last], u_t, dh_rec[first:last], block)
