"""The fused recurrent ops (shendu.ops.rnn): gradient checks, agreement with the loop-level reference
(shendu.reference.rnn), and forward+backward against torch.nn.LSTM / GRU / RNN with the weights mapped."""

import numpy as np
import pytest

import shendu
from shendu.ops import rnn as fused
from shendu.reference import rnn as reference

BATCH, STEPS, IN, UNITS = 3, 4, 3, 4


def _t64(*shape, seed=0, scale=0.5):
    rng = np.random.default_rng(seed + sum(shape))
    return shendu.tensor(rng.standard_normal(shape) * scale, dtype="float64", requires_grad=True)


def _mask(seed=1):
    mask = np.random.default_rng(seed).random((BATCH, STEPS)) > 0.35
    mask[:, 0] = True
    return mask


def _lstm_inputs():
    return [_t64(BATCH, STEPS, IN), _t64(IN, 4 * UNITS, seed=1), _t64(UNITS, 4 * UNITS, seed=2),
            _t64(4 * UNITS, seed=3), _t64(BATCH, UNITS, seed=4), _t64(BATCH, UNITS, seed=5)]


def _gru_inputs():
    return [_t64(BATCH, STEPS, IN), _t64(IN, 3 * UNITS, seed=1), _t64(UNITS, 3 * UNITS, seed=2),
            _t64(2, 3 * UNITS, seed=3), _t64(BATCH, UNITS, seed=4)]


def _rnn_inputs():
    return [_t64(BATCH, STEPS, IN), _t64(IN, UNITS, seed=1), _t64(UNITS, UNITS, seed=2), _t64(UNITS, seed=3),
            _t64(BATCH, UNITS, seed=4)]


MASK = _mask()

GRADCHECK_CASES = [
    ("LSTMSequenceOp", fused.lstm, _lstm_inputs),
    ("LSTMSequenceOp", lambda *a: fused.lstm(*a, mask=MASK), _lstm_inputs),
    ("LSTMSequenceOp", lambda *a: fused.lstm(*a, mask=MASK, activation="relu", zero_output_for_mask=True),
     _lstm_inputs),
    ("GRUSequenceOp", fused.gru, _gru_inputs),
    ("GRUSequenceOp", lambda *a: fused.gru(*a, mask=MASK, zero_output_for_mask=True), _gru_inputs),
    ("SimpleRNNSequenceOp", fused.simple_rnn, _rnn_inputs),
    ("SimpleRNNSequenceOp", lambda *a: fused.simple_rnn(*a, mask=MASK, activation="linear"), _rnn_inputs),
]


@pytest.mark.parametrize("name,fn,make_inputs", GRADCHECK_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(GRADCHECK_CASES)])
def test_rnn_op_gradcheck(name, fn, make_inputs):
    assert shendu.gradcheck(fn, *make_inputs())


def _grads(fn, inputs, seed=7):
    """Outputs and the gradients of sum(v * outputs) for a random v, w.r.t. every input."""
    outputs = fn(*inputs)
    rng = np.random.default_rng(seed)
    loss = sum((o * rng.standard_normal(o.shape)).sum() for o in outputs)
    grads = shendu.grad(loss, inputs)
    return [o.data for o in outputs], [g.data for g in grads]


@pytest.mark.parametrize("kind, make_inputs", [("lstm", _lstm_inputs), ("gru", _gru_inputs),
                                               ("simple_rnn", _rnn_inputs)])
@pytest.mark.parametrize("masked", [False, True])
def test_fused_agrees_with_reference(kind, make_inputs, masked):
    mask = MASK if masked else None
    inputs = make_inputs()
    ours = _grads(lambda *a: getattr(fused, kind)(*a, mask=mask), inputs)
    textbook = _grads(lambda *a: getattr(reference, kind)(*a, mask=mask), inputs)
    for a, b in zip(ours[0] + ours[1], textbook[0] + textbook[1]):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_reference_gru_reset_before_gradcheck():
    x, w, u, _, h0 = _gru_inputs()
    b = _t64(3 * UNITS, seed=9)
    assert shendu.gradcheck(lambda *a: reference.gru(*a, reset_after=False), x, w, u, b, h0)


def test_masked_steps_carry_the_state():
    x, w, u, b, h0, c0 = _lstm_inputs()
    mask = np.ones((BATCH, STEPS), dtype=bool)
    mask[0, 2:] = False  # sample 0 ends after two steps
    seq, h, c = fused.lstm(x, w, u, b, h0, c0, mask=mask)
    np.testing.assert_array_equal(h.data[0], seq.data[0, 1])
    np.testing.assert_array_equal(seq.data[0, 3], seq.data[0, 1])
    short, h_short, c_short = fused.lstm(x[:1, :2], w, u, b, h0[:1], c0[:1])
    np.testing.assert_allclose(h.data[0], h_short.data[0], rtol=1e-12)
    np.testing.assert_allclose(c.data[0], c_short.data[0], rtol=1e-12)
    zeros, *_ = fused.lstm(x, w, u, b, h0, c0, mask=mask, zero_output_for_mask=True)
    assert not zeros.data[0, 2:].any()


def test_float32_stays_float32():
    x, w, u, b, h0, c0 = [shendu.tensor(t.data.astype(np.float32), requires_grad=True) for t in _lstm_inputs()]
    seq, h, c = fused.lstm(x, w, u, b, h0, c0)
    (seq.sum() + h.sum()).backward()
    assert seq.dtype == np.float32 and x.grad.dtype == np.float32 and u.grad.dtype == np.float32


def test_unknown_activation_and_bad_shapes_are_explained():
    x, w, u, b, h0, c0 = _lstm_inputs()
    with pytest.raises(ValueError, match="activations"):
        fused.lstm(x, w, u, b, activation="softsign")
    with pytest.raises(ValueError, match="recurrent_kernel"):
        fused.lstm(x, w[:, :8], u, b)


def test_double_backward_is_refused_clearly():
    inputs = _rnn_inputs()
    seq, h = fused.simple_rnn(*inputs)
    with pytest.raises(NotImplementedError, match="rnn_steps"):
        shendu.grad(h.sum(), [inputs[0]], create_graph=True)


# ---------------------------------------------------------------------------- PyTorch
def _torch_module(torch, kind, w, u, b):
    """nn.LSTM/GRU/RNN holding the Keras-layout weights (gate orders mapped)."""
    units = u.shape[0]
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "simple_rnn": torch.nn.RNN}[kind]
    module = cls(w.shape[0], units, batch_first=True).double()
    b_ih, b_hh = (b[0], b[1]) if kind == "gru" else (b, np.zeros_like(b))
    if kind == "gru":  # Keras z, r, h -> torch r, z, n
        order = np.r_[units:2 * units, 0:units, 2 * units:3 * units]
        w, u, b_ih, b_hh = w[:, order], u[:, order], b_ih[order], b_hh[order]
    with torch.no_grad():
        module.weight_ih_l0.copy_(torch.from_numpy(w.T.copy()))
        module.weight_hh_l0.copy_(torch.from_numpy(u.T.copy()))
        module.bias_ih_l0.copy_(torch.from_numpy(b_ih.copy()))
        module.bias_hh_l0.copy_(torch.from_numpy(b_hh.copy()))
    return module


@pytest.mark.parametrize("kind, make_inputs", [("lstm", _lstm_inputs), ("gru", _gru_inputs),
                                               ("simple_rnn", _rnn_inputs)])
def test_matches_torch_forward_and_backward(kind, make_inputs):
    torch = pytest.importorskip("torch")
    inputs = make_inputs()
    x, w, u, b = inputs[:4]
    states = inputs[4:]
    outputs = getattr(fused, kind)(*inputs)
    rng = np.random.default_rng(3)
    g_seq = rng.standard_normal(outputs[0].shape)
    g_h = rng.standard_normal(outputs[1].shape)
    (outputs[0] * g_seq).sum().backward(retain_graph=True)
    (outputs[1] * g_h).sum().backward()

    module = _torch_module(torch, kind, w.data, u.data, b.data)
    tx = torch.tensor(x.data, requires_grad=True)
    t_states = [torch.tensor(s.data[None], requires_grad=True) for s in states]
    t_seq, t_final = module(tx, tuple(t_states) if kind == "lstm" else t_states[0])
    t_h = t_final[0] if kind == "lstm" else t_final
    ((t_seq * torch.from_numpy(g_seq)).sum() + (t_h[0] * torch.from_numpy(g_h)).sum()).backward()

    np.testing.assert_allclose(outputs[0].data, t_seq.detach().numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=1e-9, atol=1e-12)
    for s, ts in zip(states, t_states):
        np.testing.assert_allclose(s.grad.data, ts.grad.numpy()[0], rtol=1e-9, atol=1e-12)
    w_grad = module.weight_ih_l0.grad.numpy().T
    u_grad = module.weight_hh_l0.grad.numpy().T
    if kind == "gru":
        units = UNITS
        back = np.r_[units:2 * units, 0:units, 2 * units:3 * units]  # torch r, z, n -> Keras z, r, h
        w_grad, u_grad = w_grad[:, back], u_grad[:, back]
        b_grad = np.stack([module.bias_ih_l0.grad.numpy()[back], module.bias_hh_l0.grad.numpy()[back]])
    else:
        b_grad = module.bias_ih_l0.grad.numpy()
    np.testing.assert_allclose(w.grad.data, w_grad, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(u.grad.data, u_grad, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(b.grad.data, b_grad, rtol=1e-9, atol=1e-12)
