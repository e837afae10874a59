"""The compiled recurrent step kernels (shendu.kernels.rnn) and the embedding scatter (shendu.kernels.lookup)
against the NumPy references they replace.

Each op case runs twice on the same inputs, once with the kernels and once inside ``kernels.disabled()``, and
compares the outputs and the gradients of every input: float32 and float64, odd sizes, masks (with rows
masked at the first and last steps), ``zero_output_for_mask``, initial states, non-contiguous inputs.
float64 agrees to rounding; float32 to the kernel's rational tanh (3e-7 against NumPy's 6e-8). A float64
gradient check runs with the kernel path on (in float64 the ops run the backward kernels; the forward kernel's
float64 branch is compared by switching it on). Under ``SHENDU_JIT=0`` both runs are the reference and the
comparisons hold trivially.
"""

import numpy as np
import pytest

import shendu
from shendu import kernels
from shendu.kernels import gemm
from shendu.kernels import rnn as rnn_kernels
from shendu.kernels.lookup import scatter_add_rows
from shendu.ops import rnn as fused
from shendu.ops.buffers import BufferPool
from shendu.ops.lookup import embedding_lookup, scatter_rows

TOL = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-11, atol=1e-12)}
GATES = {"lstm": 4, "gru": 3}


def _inputs(kind, dtype, batch, steps, features, units, strided, seed=0):
    """x, kernel, recurrent_kernel, bias, h0 (and c0): leaf tensors; ``strided`` makes every array a view."""
    rng = np.random.default_rng(seed)
    k = GATES[kind]

    def arr(*shape, scale=0.5):
        a = (rng.standard_normal(shape) * scale).astype(dtype)
        if strided:  # the same values in a non-contiguous view (every other column of a wider array)
            wide = np.zeros(shape[:-1] + (2 * shape[-1],), dtype=dtype)
            wide[..., ::2] = a
            a = wide[..., ::2]
            assert not a.flags.c_contiguous or a.size <= 1
        return shendu.tensor(a, requires_grad=True)

    bias = arr(2, k * units) if kind == "gru" else arr(k * units)
    states = [arr(batch, units) for _ in range(2 if kind == "lstm" else 1)]
    return [arr(batch, steps, features), arr(features, k * units), arr(units, k * units), bias] + states


def _mask(batch, steps, seed=3):
    mask = np.random.default_rng(seed).random((batch, steps)) > 0.4
    mask[0, 0] = mask[-1, -1] = False  # masked first and last steps
    if batch > 2:
        mask[1] = False  # a row masked everywhere
    return mask


def _run(kind, inputs, jit, **options):
    """Outputs and gradients of sum(v * outputs) for a fixed random v w.r.t. every input, and whether the op
    took the kernel path."""
    fn = getattr(fused, kind)
    context = kernels.disabled() if not jit else _nothing()
    with context:
        outputs = fn(*inputs, **options)
        used = outputs[0].creator.fused  # before backward releases the op
        rng = np.random.default_rng(11)
        loss = sum((o * rng.standard_normal(o.shape).astype(o.dtype)).sum() for o in outputs)
        grads = shendu.grad(loss, inputs)
    return [o.data for o in outputs], [g.data for g in grads], used


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# batch 34 splits into blocks of rows in the sequence kernels (fused.MIN_BLOCK_ROWS rows each, one per thread)
SIZES = [(5, 7, 3, 6), (1, 1, 2, 1), (4, 9, 5, 17), (34, 3, 2, 5)]


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sizes", SIZES, ids=["-".join(map(str, s)) for s in SIZES])
@pytest.mark.parametrize("masked,zero_output", [(False, False), (True, False), (True, True)])
@pytest.mark.parametrize("strided", [False, True])
def test_step_kernels_agree_with_reference(kind, dtype, sizes, masked, zero_output, strided):
    batch, steps, features, units = sizes
    inputs = _inputs(kind, dtype, batch, steps, features, units, strided)
    options = dict(mask=_mask(batch, steps) if masked else None, zero_output_for_mask=zero_output)
    ys, gs, used = _run(kind, inputs, True, **options)
    ys_ref, gs_ref, used_ref = _run(kind, inputs, False, **options)
    assert used == kernels.enabled() and not used_ref
    for a, b in zip(ys + gs, ys_ref + gs_ref):
        assert a.dtype == dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, **TOL[dtype])


@pytest.mark.parametrize("kind, used", [("lstm", (1,)), ("lstm", (2,)), ("lstm", (0,)), ("lstm", (1, 2)),
                                        ("gru", (1,)), ("gru", (0,))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("masked", [False, True])
def test_unused_outputs_get_no_gradient_array(kind, used, dtype, masked):
    """Outputs nobody uses (the sequence under return_sequences=False; a final state) reach the op's backward
    as None (``missing_grads_as_none``); the kernels skip the sequence's gradient, the reference takes zeros."""
    batch, steps = 34, 4
    inputs = _inputs(kind, dtype, batch, steps, 3, 5, strided=False)
    options = dict(mask=_mask(batch, steps) if masked else None)
    results = []
    for jit in (True, False):
        with (_nothing() if jit else kernels.disabled()):
            outputs = getattr(fused, kind)(*inputs, **options)
            rng = np.random.default_rng(11)
            loss = sum((outputs[i] * rng.standard_normal(outputs[i].shape).astype(dtype)).sum() for i in used)
            results.append([g.data for g in shendu.grad(loss, inputs)])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, **TOL[dtype])
    fn = getattr(fused, kind)
    small = _inputs(kind, np.float64, 3, 4, 2, 3, strided=False)
    assert shendu.gradcheck(lambda *a: sum(fn(*a, mask=_mask(3, 4))[i].sum() for i in used), *small)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("per_step", [False, True], ids=["sequence-kernel", "step-kernels"])
@pytest.mark.parametrize("wanted", [(0, 3, 4, 5), (3, 4), (4,), (3,), (0,), (1, 2)],
                         ids=["all", "weights", "U", "W", "x", "states"])
def test_lstm_kernel_paths_give_each_wanted_gradient(dtype, per_step, wanted, monkeypatch):
    """The LSTM's kernel layout ([h_{t-1}, x_t] times [U; W] per step, [dU; dW] in one GEMM): every subset of
    the gradients, on the whole-sequence kernels and on the per-step kernels NumPy builds without a bindable
    OpenBLAS take (NumPy's GEMM between compiled steps), against the NumPy reference."""
    if per_step:
        monkeypatch.setattr(fused.gemm, "available", lambda: False)
    batch, steps = 34, 5
    inputs = _inputs("lstm", dtype, batch, steps, 3, 6, strided=False)
    for i, t in enumerate(inputs):
        t.requires_grad = i in wanted  # inputs are x, W, U, b, h0, c0
    order = [0, 4, 5, 1, 2, 3]  # the op's order: x, h0, c0, W, U, b
    wanted_inputs = [inputs[i] for i in range(6) if i in wanted]
    options = dict(mask=_mask(batch, steps))
    results = []
    for jit in (True, False):
        with (_nothing() if jit else kernels.disabled()):
            outputs = fused.lstm(*inputs, **options)
            assert outputs[0].creator.fused == (jit and kernels.enabled())
            assert list(outputs[0].creator.needs_grad) == [order[k] in wanted for k in range(6)]
            rng = np.random.default_rng(11)
            loss = sum((o * rng.standard_normal(o.shape).astype(dtype)).sum() for o in outputs)
            results.append([o.data for o in outputs] + [g.data for g in shendu.grad(loss, wanted_inputs)])
    for a, b in zip(*results):
        assert a.dtype == dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, **TOL[dtype])


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("jit", [True, False])
def test_return_sequences_false_gives_the_last_state(kind, dtype, jit):
    """return_sequences=False: the first output is h_T (the sequence is never built); its gradient joins h_T's.
    Same values and gradients as taking h_T from the full op, on the kernel path and the reference."""
    batch, steps = 34, 5
    inputs = _inputs(kind, dtype, batch, steps, 3, 4, strided=False)
    mask = _mask(batch, steps)
    rng = np.random.default_rng(2)
    v0, v1 = (rng.standard_normal((batch, 4)).astype(dtype) for _ in range(2))
    runs = []
    for return_sequences in (False, True):
        with (_nothing() if jit else kernels.disabled()):
            outputs = getattr(fused, kind)(*inputs, mask=mask, return_sequences=return_sequences)
            first = outputs[1] if return_sequences else outputs[0]
            loss = (first * v0).sum() + (outputs[1] * v1).sum()
            runs.append([o.data for o in outputs[1:]] + [first.data] + [g.data for g in shendu.grad(loss, inputs)])
    assert runs[0][-len(inputs) - 1].shape == (batch, 4)
    for a, b in zip(*runs):
        np.testing.assert_allclose(a, b, **TOL[dtype])


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("masked", [False, True])
def test_float64_forward_kernel_agrees_with_reference(kind, masked, monkeypatch):
    """float64 forward loops run NumPy (faster than libm's scalar tanh); the kernel's float64 branch still
    computes the same numbers."""
    monkeypatch.setattr(fused, "FORWARD_KERNEL_DTYPES", (np.dtype(np.float32), np.dtype(np.float64)))
    inputs = _inputs(kind, np.float64, 4, 6, 3, 5, strided=True)
    options = dict(mask=_mask(4, 6) if masked else None)
    ys, gs, _ = _run(kind, inputs, True, **options)
    ys_ref, gs_ref, _ = _run(kind, inputs, False, **options)
    for a, b in zip(ys + gs, ys_ref + gs_ref):
        np.testing.assert_allclose(a, b, **TOL[np.float64])


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_step_kernels_without_bias_agree_with_reference(kind, dtype):
    """use_bias=False: the forward kernel adds a zero bias (the LSTM kernel adds the bias itself)."""
    inputs = _inputs(kind, dtype, 4, 6, 3, 5, strided=False)
    inputs[3] = None
    ys, gs, used = _run_without_bias(kind, inputs, True)
    ys_ref, gs_ref, used_ref = _run_without_bias(kind, inputs, False)
    assert used == kernels.enabled() and not used_ref
    for a, b in zip(ys + gs, ys_ref + gs_ref):
        np.testing.assert_allclose(a, b, **TOL[dtype])


def _run_without_bias(kind, inputs, jit):
    given = [t for t in inputs if t is not None]
    with (_nothing() if jit else kernels.disabled()):
        outputs = getattr(fused, kind)(*inputs)
        used = outputs[0].creator.fused
        rng = np.random.default_rng(11)
        loss = sum((o * rng.standard_normal(o.shape).astype(o.dtype)).sum() for o in outputs)
        grads = shendu.grad(loss, given)
    return [o.data for o in outputs], [g.data for g in grads], used


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_kernel_path_gradcheck_float64(kind):
    batch, steps, features, units = 3, 5, 2, 3
    inputs = _inputs(kind, np.float64, batch, steps, features, units, strided=False)
    mask = _mask(batch, steps)
    fn = getattr(fused, kind)
    assert fn(*inputs, mask=mask)[0].creator.fused == kernels.enabled()
    assert shendu.gradcheck(lambda *a: fn(*a, mask=mask), *inputs)
    assert shendu.gradcheck(lambda *a: fn(*a, mask=mask, zero_output_for_mask=True), *inputs)
    assert shendu.gradcheck(fn, *inputs)


def test_other_activations_and_mixed_dtypes_take_the_reference():
    inputs = _inputs("lstm", np.float32, 2, 3, 2, 3, strided=False)
    assert not fused.lstm(*inputs, activation="relu")[0].creator.fused
    assert not fused.gru(*_inputs("gru", np.float32, 2, 3, 2, 3, False), recurrent_activation="tanh")[0].creator.fused
    x, w, u, b, h0, c0 = inputs
    w64 = shendu.tensor(w.data.astype(np.float64))
    seq, h, c = fused.lstm(x, w64, u, b, h0, c0)
    assert not seq.creator.fused


def test_tanh32_accuracy():
    x = np.linspace(-12, 12, 200_001).astype(np.float32)
    out = np.empty_like(x)
    tanh_all = rnn_kernels.jit()(_tanh_loop)
    tanh_all(x, out)
    exact = np.tanh(x.astype(np.float64))
    assert np.abs(out - exact).max() < 5e-7
    assert out.max() == 1 and out.min() == -1  # never beyond +-1 (1 - tanh^2 stays >= 0)


def _tanh_loop(x, out):  # pragma: no cover - compiled
    for i in range(x.shape[0]):
        out[i] = rnn_kernels._tanh32(x[i])


@pytest.mark.parametrize("layer", ["LSTM", "GRU"])
def test_layers_with_kernels_match_reference(layer):
    """Layer options around the op (go_backwards, return_sequences/state, an Embedding mask) with float32."""
    from shendu.layers import GRU, LSTM, Embedding

    ids = np.random.default_rng(0).integers(0, 9, (4, 6))
    ids[0, 3:] = 0
    results = []
    for jit in (True, False):
        shendu.seed(1)
        emb = Embedding(9, 5, mask_zero=True)
        rnn = {"LSTM": LSTM, "GRU": GRU}[layer](7, return_sequences=True, return_state=True, go_backwards=True)
        with kernels.disabled() if not jit else _nothing():
            outputs = rnn(emb(ids))
            loss = sum((o * (i + 1)).sum() for i, o in enumerate(outputs))
            params = [emb.embeddings] + list(rnn.trainable_weights)
            grads = shendu.grad(loss, params)
        results.append([o.data for o in outputs] + [g.data for g in grads])
    for a, b in zip(*results):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5)


# ---------------------------------------------------------------------------- whole-sequence kernels
def _sequence_case(kind, dtype, batch, steps, units, masked, seed=5):
    """Random inputs of the step kernels: time-major pre-activations (the GRU's) or inputs and W (the LSTM's),
    states, U, a bias, the output gradient. (The runs below start every buffer at zero: masked rows leave parts
    of some, like tanh_c, unwritten.)"""
    rng = np.random.default_rng(seed)
    k = GATES[kind]

    def arr(*shape):
        return (rng.standard_normal(shape) * 0.5).astype(dtype)

    case = dict(gates=arr(steps, batch, k * units), u=arr(units, k * units), bias=arr(k * units),
                h0=arr(batch, units), c0=arr(batch, units), gseq=arr(batch, steps, units), gh=arr(batch, units),
                gc=arr(batch, units), mask=_mask(batch, steps) if masked else None, x=arr(steps, batch, 3),
                w=arr(3, k * units))
    return case


def _lstm_buffers(c):
    """hx, [U; W], [U; W]^T, gates, hs, cs, tanh_c, dz, dh, dc, carry, db_rows, dx for one forward and backward
    run (hx[t] = [h_{t-1}, x_t], its h part beyond h_0 left to the kernels; dh has room for dz_t W^T)."""
    x, u = c["x"], c["u"]
    (steps, batch, features), units = x.shape, u.shape[0]
    hx = np.zeros((steps, batch, units + features), x.dtype)
    hx[:, :, units:], hx[0, :, :units] = x, c["h0"]
    weights = np.concatenate([u, c["w"]])
    gates = np.zeros((steps, batch, 4 * units), x.dtype)
    hs, cs = np.zeros((2, steps + 1, batch, units), x.dtype)
    tanh_c = np.zeros((steps, batch, units), x.dtype)
    hs[0], cs[0] = c["h0"], c["c0"]
    dh = np.zeros((batch, units + features), x.dtype)
    dh[:, :units] = c["gh"]
    dx = np.zeros((batch, steps, features), x.dtype)
    return (hx, weights, np.ascontiguousarray(weights.T), gates, hs, cs, tanh_c, np.zeros_like(gates), dh,
            c["gc"].copy(), np.zeros_like(c["gh"]), np.zeros_like(gates[0]), dx)


def _lstm_by_steps(c):
    hx, weights, weights_t, gates, hs, cs, tanh_c, dz, dh, dc, carry, db_rows, dx = _lstm_buffers(c)
    units = c["u"].shape[0]
    for t in range(gates.shape[0]):
        np.matmul(hx[t], weights, out=gates[t])
        rnn_kernels.lstm_forward_step(t, gates, c["bias"], hs, cs, tanh_c, c["mask"])
        if t + 1 < gates.shape[0]:
            hx[t + 1, :, :units] = hs[t + 1]
    for t in range(gates.shape[0] - 1, -1, -1):
        rnn_kernels.lstm_backward_step(t, c["gseq"], dh, carry, dc, gates, cs, tanh_c, dz, c["mask"], db_rows)
        np.matmul(dz[t], weights_t, out=dh)
        dx[:, t] = dh[:, units:]
    np.testing.assert_allclose(db_rows, dz.sum(axis=0), rtol=1e-5, atol=1e-6)  # the bias gradient, per row
    np.testing.assert_allclose(dx, np.einsum("tbk,fk->btf", dz, c["w"]), rtol=1e-5, atol=1e-6)  # dz W^T
    np.testing.assert_allclose(hx[1:, :, :units], hs[1:-1])  # each step's GEMM read the state before it
    return [hx, gates, hs, cs, tanh_c, dz, dh, dc, carry, db_rows, dx]


def _lstm_by_sequence(c, parts, block):
    hx, weights, weights_t, gates, hs, cs, tanh_c, dz, dh, dc, carry, db_rows, dx = _lstm_buffers(c)
    with gemm.one_thread_each():
        rnn_kernels.lstm_forward_sequence(parts, hx, gemm.pack_column_blocks(weights, block), c["bias"], gates, hs,
                                          cs, tanh_c, c["mask"], block)
        rnn_kernels.lstm_backward_sequence(parts, c["gseq"], dh, carry, dc, gates, cs, tanh_c, dz, c["mask"],
                                           db_rows, weights_t, dx, block)
    return [hx, gates, hs, cs, tanh_c, dz, dh, dc, carry, db_rows, dx]


def _gru_buffers(c):
    """gates (a copy), rec, hs, dp, dq, dh, carry, db_rows for one forward and backward run."""
    steps, batch, _ = c["gates"].shape
    gates = c["gates"].copy()
    hs = np.zeros((steps + 1, batch, c["u"].shape[0]), gates.dtype)
    hs[0] = c["h0"]
    return (gates, np.zeros_like(gates), hs, np.zeros_like(gates), np.zeros_like(gates), c["gh"].copy(),
            np.zeros_like(c["gh"]), np.zeros((2,) + gates.shape[1:], gates.dtype))


def _gru_by_steps(c):
    gates, rec, hs, dp, dq, dh, carry, db_rows = _gru_buffers(c)
    for t in range(gates.shape[0]):
        np.matmul(hs[t], c["u"], out=rec[t])
        rec[t] += c["bias"]
        rnn_kernels.gru_forward_step(t, gates, rec, hs, c["mask"])
    for t in range(gates.shape[0] - 1, -1, -1):
        rnn_kernels.gru_backward_step(t, c["gseq"], dh, carry, gates, rec, hs, dp, dq, c["mask"], db_rows)
        np.matmul(dq[t], c["u"].T, out=dh)
    np.testing.assert_allclose(db_rows, [dp.sum(axis=0), dq.sum(axis=0)], rtol=1e-5, atol=1e-6)
    return [gates, rec, hs, dp, dq, dh, carry, db_rows]


def _gru_by_sequence(c, parts, block):
    gates, rec, hs, dp, dq, dh, carry, db_rows = _gru_buffers(c)
    with gemm.one_thread_each():
        rnn_kernels.gru_forward_sequence(parts, gates, gemm.pack_column_blocks(c["u"], block), c["bias"], hs,
                                         c["mask"], rec, block)
        rnn_kernels.gru_backward_sequence(parts, c["gseq"], dh, carry, gates, rec, hs, dp, dq, c["mask"],
                                          db_rows, np.ascontiguousarray(c["u"].T), block)
    return [gates, rec, hs, dp, dq, dh, carry, db_rows]


@pytest.mark.skipif(not (kernels.enabled() and gemm.available()), reason="needs Numba and NumPy's OpenBLAS")
@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("parts", [1, 2, 3, 7])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("block", [4, gemm.recurrent_block(), 1 << 62])
def test_sequence_kernels_agree_with_step_kernels(kind, dtype, parts, masked, block):
    """The whole-sequence kernels (the batch cut into ``parts`` blocks of rows, each block's GEMMs called from
    inside the kernel) against the per-step kernels with NumPy's GEMM between them: every buffer, forward and
    backward, with masked rows and blocks of unequal size (7 rows in 2 or 3 parts; 7 parts of one row), the
    GEMMs in blocks of 4 columns and rows (the last narrower: 5 units), as on this machine, and whole."""
    case = _sequence_case(kind, dtype, batch=7, steps=6, units=5, masked=masked)
    by_steps = (_lstm_by_steps if kind == "lstm" else _gru_by_steps)(case)
    by_sequence = (_lstm_by_sequence if kind == "lstm" else _gru_by_sequence)(case, parts, block)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    for a, b in zip(by_sequence, by_steps):
        np.testing.assert_allclose(a, b, **tol)


@pytest.mark.skipif(not gemm.available(), reason="NumPy's BLAS is not an OpenBLAS this module binds")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_rows_is_numpys_product(dtype):
    rng = np.random.default_rng(0)
    big = rng.standard_normal((9, 6)).astype(dtype)
    b = rng.standard_normal((6, 4)).astype(dtype)
    out = np.full((9, 4), np.nan, dtype)
    with gemm.one_thread_each():
        gemm.matmul_rows(big[2:7], b, out[2:7])  # row blocks of larger arrays; the other rows untouched
        gemm.matmul_rows(big[:0], b, out[:0])  # no rows
    np.testing.assert_allclose(out[2:7], big[2:7] @ b, rtol=1e-6 if dtype == np.float32 else 1e-14)
    assert np.isnan(out[:2]).all() and np.isnan(out[7:]).all()


@pytest.mark.skipif(not gemm.available(), reason="NumPy's BLAS is not an OpenBLAS this module binds")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("width", [1, 3, 4, 64, 1 << 62])
def test_blocked_products_are_numpys_product(dtype, width):
    """matmul_packed (B in column blocks) and matmul_rows_summed (a sum over blocks of B's rows) give a @ b on
    row blocks of larger arrays, for blocks that divide the size, that do not (the last narrower), of one column,
    and wider than the product; an inner size of 0 gives zeros."""
    rng = np.random.default_rng(0)
    big = rng.standard_normal((9, 10)).astype(dtype)
    b = rng.standard_normal((10, 7)).astype(dtype)
    packed = gemm.pack_column_blocks(b, width)
    assert packed.shape == (70,) and sorted(packed) == sorted(b.ravel())
    tol = 1e-6 if dtype == np.float32 else 1e-14
    for product, right in ((gemm.matmul_packed, packed), (gemm.matmul_rows_summed, b)):
        out = np.full((9, 7), np.nan, dtype)
        with gemm.one_thread_each():
            product(big[2:7], right, out[2:7], width)
        np.testing.assert_allclose(out[2:7], big[2:7] @ b, rtol=tol, atol=tol)
        assert np.isnan(out[:2]).all() and np.isnan(out[7:]).all()
    empty = np.full((3, 7), np.nan, dtype)
    with gemm.one_thread_each():
        gemm.matmul_packed(big[:3, :0], gemm.pack_column_blocks(b[:0], width), empty, width)
    assert (empty == 0).all()
    empty[:] = np.nan
    with gemm.one_thread_each():
        gemm.matmul_rows_summed(big[:3, :0], b[:0], empty, width)
    assert (empty == 0).all()


def test_recurrent_block_follows_the_blas_kernel(monkeypatch):
    """Blocks of BLOCK on OpenBLAS's AVX-512 kernels, one product elsewhere (the AVX2 kernel ran slower)."""
    monkeypatch.setattr(gemm, "_CORE", "skylakex")
    assert gemm.recurrent_block() == gemm.BLOCK
    monkeypatch.setattr(gemm, "_CORE", "haswell")
    assert gemm.recurrent_block() > 1 << 40


@pytest.mark.skipif(not gemm.available(), reason="NumPy's BLAS is not an OpenBLAS this module binds")
def test_one_thread_each_restores_blas_threads_across_threads():
    """OpenBLAS's thread count is one per process: 1 while any block is inside, the user's count after the last."""
    import threading

    from threadpoolctl import threadpool_limits

    def blas_threads():
        return gemm._THREADS[0]()

    with threadpool_limits(limits=3, user_api="blas"):
        inside, go = threading.Barrier(2), threading.Event()
        seen = []

        def hold():
            with gemm.one_thread_each():
                inside.wait()
                go.wait()
                seen.append(blas_threads())

        worker = threading.Thread(target=hold)
        worker.start()
        with gemm.one_thread_each():
            inside.wait()
            seen.append(blas_threads())
        seen.append(blas_threads())  # the worker is still inside
        go.set()
        worker.join()
        assert seen == [1, 1, 1] and blas_threads() == 3


# ---------------------------------------------------------------------------- embedding scatter
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scatter_rows_kernel_agrees_with_reference(dtype):
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 7, 40).astype(np.int32)  # repeated ids, an int32 index
    rows = rng.standard_normal((40, 10)).astype(dtype)[:, ::2]  # non-contiguous rows
    ours = scatter_rows(ids, rows, 9)
    with kernels.disabled():
        ref = scatter_rows(ids, rows, 9)
    assert ours.dtype == dtype and ours.shape == (9, 5)
    np.testing.assert_allclose(ours, ref, **TOL[dtype])
    assert not ours[7:].any()


def test_scatter_add_rows_wraps_negative_ids_and_refuses_outside_ones():
    out = np.zeros((3, 2), np.float32)
    scatter_add_rows(out, np.array([-1, 0, 2], dtype=np.intp), np.ones((3, 2), np.float32))
    np.testing.assert_array_equal(out, [[1, 1], [0, 0], [2, 2]])
    with pytest.raises(IndexError):
        scatter_add_rows(out, np.array([3], dtype=np.intp), np.ones((1, 2), np.float32))


def test_embedding_gradient_with_kernel():
    w = shendu.tensor(np.arange(12.0, dtype=np.float32).reshape(4, 3), requires_grad=True)
    ids = np.array([[3, 0, 3], [1, 3, 0]])
    y = embedding_lookup(ids, w)
    (y * 2).sum().backward()
    assert w.grad.dtype == np.float32
    np.testing.assert_array_equal(w.grad.data, [[4] * 3, [2] * 3, [0] * 3, [6] * 3])


@pytest.mark.parametrize("kind", ["lstm", "gru", "simple_rnn"])
@pytest.mark.parametrize("batch,steps", [(3, 4), (1, 4), (3, 1)])  # (1, t, u) and (n, 1, u) are C views of hs
def test_outputs_do_not_view_reused_buffers(kind, batch, steps):
    """The ops' work arrays return to a pool when the op is freed; what they returned must not change when a
    later call reuses them."""
    gates = {"lstm": 4, "gru": 3, "simple_rnn": 1}[kind]

    def call(seed):
        r = np.random.default_rng(seed)
        x = shendu.tensor(r.standard_normal((batch, steps, 2)).astype(np.float32))
        w = r.standard_normal((2, gates * 5)).astype(np.float32)
        u = r.standard_normal((5, gates * 5)).astype(np.float32)
        return getattr(fused, kind)(x, w, u)

    kept = [o.data for o in call(1)]  # the op (and its outputs' tensors) are freed here
    before = [a.copy() for a in kept]
    for seed in range(2, 5):
        call(seed)
    for a, b in zip(kept, before):
        np.testing.assert_array_equal(a, b)


def test_buffer_pool_bounds_what_it_keeps():
    pool = BufferPool(per_shape=8, limit=1000)
    a = np.empty(100, np.float32)  # 400 bytes
    pool.give(a, np.empty(300, np.float32), np.empty(10, np.float32)[::2])  # too big; a view: neither kept
    assert pool.bytes == 400 and pool.take(np, (100,), np.float32) is a and pool.bytes == 0
    pool.give(np.empty(200, np.float32), np.empty(200, np.float32))  # 1600 bytes > limit: starts over
    assert pool.bytes == 800
    assert pool.take(np, (7,), np.float64).shape == (7,)  # nothing of that shape: a new array
