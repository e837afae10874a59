"""SimpleRNN, LSTM, GRU, Bidirectional and TimeDistributed layers: Keras semantics (return_sequences,
return_state, go_backwards, initial_state, masks, dropout, stateful, configs) and PyTorch parity."""

import subprocess
import sys

import numpy as np
import pytest

import shendu
from shendu.layers import Dense, Input, deserialize, serialize
from shendu.layers.masking import get_mask
from shendu.layers.recurrent import GRU, LSTM, Bidirectional, SimpleRNN, TimeDistributed
from shendu.models import Model, Sequential

X = np.random.default_rng(0).standard_normal((3, 5, 4))
X32 = X.astype(np.float32)


def _layer(cls, **kwargs):
    shendu.seed(2)
    return cls(3, dtype="float64", **kwargs)


@pytest.mark.parametrize("cls", [SimpleRNN, LSTM, GRU])
def test_output_shapes_and_states(cls):
    layer = cls(6, return_sequences=True, return_state=True)
    outputs = layer(X32)
    n_states = 2 if cls is LSTM else 1
    assert len(outputs) == 1 + n_states
    assert outputs[0].shape == (3, 5, 6) and all(s.shape == (3, 6) for s in outputs[1:])
    np.testing.assert_array_equal(outputs[0].data[:, -1], outputs[1].data)
    assert layer.compute_output_shape((None, 5, 4)) == [(None, 5, 6)] + [(None, 6)] * n_states
    assert cls(6)(X32).shape == (3, 6)


def test_weights_follow_keras_layouts_and_initialisers():
    lstm, gru, rnn = LSTM(5), GRU(5), SimpleRNN(5)
    for layer in (lstm, gru, rnn):
        layer(X32)
    assert [w.shape for w in lstm.weights] == [(4, 20), (5, 20), (20,)]
    assert [w.shape for w in gru.weights] == [(4, 15), (5, 15), (2, 15)]
    reset_before = GRU(5, reset_after=False)
    reset_before(X32)
    assert [w.shape for w in reset_before.weights] == [(4, 15), (5, 15), (15,)]
    assert [w.shape for w in rnn.weights] == [(4, 5), (5, 5), (5,)]
    np.testing.assert_array_equal(lstm.bias.data, np.r_[np.zeros(5), np.ones(5), np.zeros(10)])  # unit_forget_bias
    u = lstm.recurrent_kernel.data
    np.testing.assert_allclose(u @ u.T, np.eye(5), atol=1e-5)  # orthogonal recurrent kernel (rows)


@pytest.mark.parametrize("cls", [SimpleRNN, LSTM, GRU])
def test_go_backwards_reads_the_sequence_reversed(cls):
    layer = _layer(cls, return_sequences=True)
    backwards = cls.from_config({**layer.get_config(), "go_backwards": True, "name": "b"})
    backwards(X)
    layer(X)
    backwards.set_weights(layer.get_weights())
    np.testing.assert_allclose(backwards(X).data, layer(X[:, ::-1]).data, rtol=1e-12)


@pytest.mark.parametrize("cls", [SimpleRNN, LSTM, GRU])
def test_initial_state_and_stateful(cls):
    layer = _layer(cls, return_state=True)
    out, *states = layer(X[:, :2])
    resumed = layer(X[:, 2:], initial_state=states)[0]
    whole = layer(X)[0]
    np.testing.assert_allclose(resumed.data, whole.data, rtol=1e-12)
    stateful = cls.from_config({**layer.get_config(), "stateful": True, "name": "s"})
    stateful(X[:, :2])
    stateful.set_weights(layer.get_weights())
    stateful.reset_states()
    stateful(X[:, :2])
    np.testing.assert_allclose(stateful(X[:, 2:])[0].data, whole.data, rtol=1e-12)
    with pytest.raises(ValueError, match="initial state"):
        layer(X, initial_state=[np.zeros((3, 7))] * len(states))


def test_mask_skips_steps_and_propagates_with_return_sequences():
    layer = _layer(GRU, return_sequences=True)
    mask = np.array([[True] * 5, [True, True, True, False, False], [True] * 5])
    seq = layer(X, mask=mask)
    np.testing.assert_allclose(seq.data[1, 2], seq.data[1, 4])
    np.testing.assert_allclose(seq.data[1, 2], layer(X[1:2, :3]).data[0, 2], rtol=1e-12)
    np.testing.assert_array_equal(get_mask(seq), mask)
    assert get_mask(_layer(GRU)(X, mask=mask)) is None


def test_dropout_only_in_training_and_recurrent_dropout_runs():
    layer = _layer(LSTM, dropout=0.5, recurrent_dropout=0.3)
    inference = layer(X)
    np.testing.assert_allclose(layer(X).data, inference.data)
    trained = layer(X, training=True)
    assert not np.allclose(trained.data, inference.data)
    x = shendu.tensor(X, requires_grad=True)
    layer(x, training=True).sum().backward()
    assert layer.recurrent_kernel.grad is not None and np.isfinite(x.grad.data).all()


@pytest.mark.parametrize("cls", [LSTM, GRU, SimpleRNN])
def test_layer_gradcheck_through_weights(cls):
    layer = _layer(cls, return_sequences=True)
    layer(X)
    weights = [shendu.tensor(w.data, requires_grad=True) for w in layer.trainable_weights]
    x = shendu.tensor(X[:2, :3], requires_grad=True)
    assert shendu.gradcheck(lambda x, *ws: layer.stateless_call(list(ws), [], x)[0], x, *weights)


def test_gru_reset_before_and_other_activations_use_the_step_by_step_path():
    layer = _layer(GRU, reset_after=False, activation="softsign")
    layer(X)
    weights = [shendu.tensor(w.data, requires_grad=True) for w in layer.trainable_weights]
    assert shendu.gradcheck(lambda *ws: layer.stateless_call(list(ws), [], X[:2, :3])[0], *weights)


@pytest.mark.parametrize("mode", ["concat", "sum", "mul", "ave", None])
def test_bidirectional_merges_forward_and_reversed_backward(mode):
    shendu.seed(3)
    bi = Bidirectional(LSTM(3, return_sequences=True, dtype="float64"), merge_mode=mode)
    out = bi(X)
    fw = bi.forward_layer(X).data
    bw = bi.backward_layer(X).data[:, ::-1]
    expected = {"concat": lambda: np.concatenate([fw, bw], -1), "sum": lambda: fw + bw, "mul": lambda: fw * bw,
                "ave": lambda: (fw + bw) / 2}
    if mode is None:
        np.testing.assert_allclose(out[0].data, fw)
        np.testing.assert_allclose(out[1].data, bw)
    else:
        np.testing.assert_allclose(out.data, expected[mode](), rtol=1e-12)
    assert bi.backward_layer.go_backwards and len(bi.weights) == 6


def test_bidirectional_states_config_and_functional_model():
    bi = Bidirectional(GRU(4, return_state=True), name="bi")
    out, h_fw, h_bw = bi(X32)
    assert out.shape == (3, 8) and h_fw.shape == h_bw.shape == (3, 4)
    with pytest.raises(ValueError, match="go_backwards"):
        Bidirectional(LSTM(2), backward_layer=LSTM(2))
    custom = Bidirectional(LSTM(2), backward_layer=GRU(2, go_backwards=True))
    assert isinstance(custom.backward_layer, GRU) and custom(X32).shape == (3, 4)
    clone = deserialize(serialize(Bidirectional(LSTM(2), merge_mode="sum")))
    assert clone.merge_mode == "sum" and isinstance(clone.forward_layer, LSTM)
    inputs = Input(shape=(5, 4))
    outputs = Dense(1)(Bidirectional(LSTM(3))(inputs))
    model = Model(inputs, outputs)
    assert model.predict(X32, verbose=0).shape == (3, 1)


def test_time_distributed_applies_the_layer_to_every_step():
    dense = Dense(2, dtype="float64")
    wrapped = TimeDistributed(dense)
    out = wrapped(X)
    np.testing.assert_allclose(out.data, dense(X.reshape(15, 4)).data.reshape(3, 5, 2), rtol=1e-12)
    assert wrapped.compute_output_shape((None, 5, 4)) == (None, 5, 2)
    assert isinstance(deserialize(serialize(wrapped)).layer, Dense)


@pytest.mark.parametrize("cls", [SimpleRNN, LSTM, GRU])
def test_config_round_trip(cls):
    layer = cls(4, return_sequences=True, go_backwards=True, dropout=0.1, name="r")
    clone = deserialize(serialize(layer))
    assert clone.get_config() == layer.get_config()


def test_errors_name_the_layer():
    with pytest.raises(ValueError, match="time"):
        LSTM(3)(np.zeros((2, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="units"):
        GRU(0)
    with pytest.raises(TypeError, match="unknown keyword"):
        LSTM(3, unitz=4)


@pytest.mark.parametrize("cls", [LSTM, GRU, SimpleRNN])
def test_layer_matches_torch(cls):
    torch = pytest.importorskip("torch")
    layer = _layer(cls, return_sequences=True)
    x = shendu.tensor(X, requires_grad=True)
    y = layer(x)
    g = np.random.default_rng(4).standard_normal(y.shape)
    y.backward(g)
    w, u, b = (p.data for p in layer.weights)
    units = 3
    torch_cls = {LSTM: torch.nn.LSTM, GRU: torch.nn.GRU, SimpleRNN: torch.nn.RNN}[cls]
    module = torch_cls(4, units, batch_first=True).double()
    b_ih, b_hh = (b[0], b[1]) if cls is GRU else (b, np.zeros_like(b))
    if cls is GRU:
        order = np.r_[units:2 * units, 0:units, 2 * units:3 * units]
        w, u, b_ih, b_hh = w[:, order], u[:, order], b_ih[order], b_hh[order]
    with torch.no_grad():
        for name, value in (("weight_ih_l0", w.T), ("weight_hh_l0", u.T), ("bias_ih_l0", b_ih), ("bias_hh_l0", b_hh)):
            getattr(module, name).copy_(torch.from_numpy(np.ascontiguousarray(value)))
    tx = torch.tensor(X, requires_grad=True)
    ty = module(tx)[0]
    ty.backward(torch.from_numpy(g))
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(layer.recurrent_kernel.grad.data.T[:units] if cls is not GRU else
                               layer.recurrent_kernel.grad.data[:, units:2 * units].T,
                               module.weight_hh_l0.grad.numpy()[:units], rtol=1e-9, atol=1e-12)


def test_sequential_text_model_trains():
    shendu.seed(0)
    model = Sequential([Input(shape=(6, 4)), GRU(8, return_sequences=True), LSTM(4), Dense(1)])
    model.compile("adam", "mse")
    x = np.random.default_rng(1).standard_normal((32, 6, 4)).astype(np.float32)
    y = x[:, :, :1].sum(axis=1)
    history = model.fit(x, y, epochs=4, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_recurrent_dropout_follows_the_layer_seed():
    x = np.random.default_rng(0).normal(size=(4, 5, 3)).astype(np.float32)

    def run(global_seed):
        shendu.seed(global_seed)
        layer = LSTM(6, dropout=0.5, recurrent_dropout=0.5, seed=7)
        shendu.seed(0)  # same initial weights for every run
        layer.build((None, 5, 3))
        shendu.seed(global_seed)  # the dropout masks must not depend on this
        return layer(x, training=True).detach().numpy()

    np.testing.assert_array_equal(run(1), run(2))


def test_training_paths_do_not_depend_on_shendu_reference():
    """reference/ exists to be read and to test against; every layer path (fused, and the step-by-step loops for
    recurrent dropout, GRU(reset_after=False) and other activations) runs without importing it."""
    code = """
import sys
import numpy as np
import shendu
from shendu.layers import GRU, LSTM, SimpleRNN
x = np.random.default_rng(0).standard_normal((2, 4, 3)).astype("float32")
for layer in (LSTM(5, recurrent_dropout=0.5), GRU(5, reset_after=False), SimpleRNN(5, activation="softsign"),
              GRU(5, dropout=0.2, recurrent_dropout=0.3)):
    layer(x, training=True).sum().backward()
assert not [m for m in sys.modules if m.startswith("shendu.reference")], sorted(sys.modules)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
