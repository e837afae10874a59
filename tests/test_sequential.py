"""Sequential: building (at once or on first data), add/pop/layers, summary, weights, config, errors."""

import numpy as np
import pytest

import shendu
from shendu.layers import Dense, Dropout, Flatten, Input
from shendu.models import Sequential
from shendu.optimizers import SGD


def test_builds_at_once_with_input_dim():
    model = Sequential()
    model.add(Dense(1, input_dim=1))
    assert model.built and model.count_params() == 2
    assert model.output_shape == (None, 1)
    assert [w.shape for w in model.get_weights()] == [(1, 1), (1,)]


def test_list_constructor_and_input_first():
    model = Sequential([Input(shape=(4,)), Dense(3), Dense(2)])
    assert model.built and len(model.layers) == 2  # the Input is not listed, as in Keras
    assert model.count_params() == 4 * 3 + 3 + 3 * 2 + 2


def test_builds_on_first_data():
    model = Sequential([Dense(5, activation="relu"), Dense(2)])
    assert not model.built
    out = model(np.ones((3, 7), np.float32))
    assert model.built and out.shape == (3, 2)
    assert model.layers[0].kernel.shape == (7, 5)


def test_pop_and_add_rebuild():
    model = Sequential([Dense(4, input_dim=3), Dense(2)])
    last = model.pop()
    assert last.units == 2 and len(model.layers) == 1 and model.output_shape == (None, 4)
    model.add(Dense(6))
    assert model.output_shape == (None, 6)
    with pytest.raises(IndexError):
        Sequential().pop()


def test_add_rejects_non_layers_and_duplicates():
    model = Sequential()
    with pytest.raises(TypeError, match="expected a Layer"):
        model.add("dense")
    dense = Dense(2)
    model.add(dense)
    with pytest.raises(ValueError, match="already added"):
        model.add(dense)


def test_model_call_is_pytorch_style():
    shendu.seed(0)
    model = Sequential([Dense(8, activation="tanh", input_dim=2), Dense(1)])
    x = np.random.default_rng(0).random((64, 2)).astype(np.float32)
    y = x[:, :1] * x[:, 1:]
    opt = SGD(0.1, params=model.parameters())
    losses = []
    for _ in range(60):
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(float(loss))
    assert isinstance(model(x), shendu.Tensor)
    assert losses[-1] < 0.5 * losses[0]


def test_summary_table():
    model = Sequential([Dense(16, activation="relu", input_shape=(8,)), Dropout(0.2), Dense(1)], name="seq")
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert lines[0] == 'Model: "seq"'
    assert "Layer (type)" in text and "Output Shape" in text and "Param #" in text
    row = next(line for line in lines if "(Dense)" in line and "(None, 16)" in line)
    assert row.split()[-1] == "144"
    assert "(None, 1)" in text and "Total params: 161 (644.00 B)" in text
    assert "Trainable params: 161" in text and "Non-trainable params: 0 (0.00 B)" in text


def test_summary_of_an_unbuilt_model_says_so():
    lines = []
    Sequential([Dense(2)]).summary(print_fn=lines.append)
    assert "not built" in lines[-1]


def test_weights_round_trip_and_config():
    shendu.seed(1)
    model = Sequential([Dense(3, activation="relu", input_dim=2), Dense(1)])
    x = np.random.default_rng(1).random((5, 2)).astype(np.float32)
    clone = Sequential.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    np.testing.assert_array_equal(clone.predict(x, verbose=0), model.predict(x, verbose=0))
    with pytest.raises(ValueError, match="weights"):
        clone.set_weights(model.get_weights()[:1])


def test_wrong_input_shape_names_layer_and_shapes():
    model = Sequential([Dense(3, input_dim=4)])
    with pytest.raises(ValueError) as info:
        model(np.ones((2, 5), np.float32))
    message = str(info.value)
    assert "dense" in message and "5" in message and "4" in message


def test_flatten_hint_for_images():
    model = Sequential([Dense(3)])
    model(np.ones((2, 6), np.float32))
    with pytest.raises(ValueError, match="Flatten"):
        model(np.ones((2, 2, 3, 1), np.float32))
    ok = Sequential([Flatten(), Dense(3)])
    assert ok(np.ones((2, 2, 3, 1), np.float32)).shape == (2, 3)


def test_unknown_constructor_argument():
    with pytest.raises(TypeError, match="valid arguments"):
        Sequential([Dense(1)], nmae="x")


def test_model_passes_inputs_to_its_layers_which_cast_them():
    model = Sequential([Dense(3, dtype="float64", input_dim=2), Dense(1, dtype="float64")])
    out = model(np.ones((4, 2)))  # the model itself (float32 by default) does not cast to float32
    assert out.dtype == np.float64
    assert model.predict(np.ones((4, 2), dtype=np.float32), verbose=0).dtype == np.float64
