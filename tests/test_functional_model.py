"""Functional models: Model(inputs, outputs) with several inputs/outputs, shared layers, nesting, errors."""

import numpy as np
import pytest

import shendu
from shendu.layers import Concatenate, Dense, Input, add
from shendu.models import Model, Sequential


def _two_in_two_out():
    a = Input(shape=(3,), name="a")
    b = Input(shape=(2,), name="b")
    shared = Dense(4, activation="tanh", name="shared")
    ha = shared(Dense(4, name="pa")(a))
    hb = shared(Dense(4, name="pb")(b))
    h = Concatenate(name="cat")([ha, hb])
    return Model([a, b], [Dense(1, name="reg")(h), Dense(3, activation="softmax", name="cls")(h)]), shared


def test_layers_in_topological_order_and_shared_weights_once():
    model, shared = _two_in_two_out()
    assert [layer.name for layer in model.layers] == ["a", "b", "pa", "shared", "pb", "cat", "reg", "cls"]
    assert model.count_params() == 16 + 20 + 12 + 9 + 27 + 0 + 0  # pa, shared, pb, reg, cls
    assert sum(1 for w in model.weights if w is shared.kernel) == 1
    assert model.output_names == ["reg", "cls"]
    assert model.name.startswith("functional")


def test_forward_matches_manual_computation():
    model, shared = _two_in_two_out()
    rng = np.random.default_rng(0)
    xa, xb = rng.random((5, 3)).astype(np.float32), rng.random((5, 2)).astype(np.float32)
    reg, cls = model.predict([xa, xb], verbose=0)

    def dense(layer, x):
        return x @ layer.kernel.data + layer.bias.data

    get = model.get_layer
    h = np.concatenate([np.tanh(dense(shared, dense(get("pa"), xa))), np.tanh(dense(shared, dense(get("pb"), xb)))],
                       axis=1)
    np.testing.assert_allclose(reg, dense(get("reg"), h), rtol=1e-5, atol=1e-6)
    logits = dense(get("cls"), h)
    expected = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    np.testing.assert_allclose(cls, expected, rtol=1e-5, atol=1e-6)


def test_dict_inputs_by_name_and_errors():
    model, _ = _two_in_two_out()
    xa, xb = np.ones((2, 3), np.float32), np.ones((2, 2), np.float32)
    by_list = model.predict([xa, xb], verbose=0)
    by_dict = model.predict({"b": xb, "a": xa}, verbose=0)
    np.testing.assert_array_equal(by_list[0], by_dict[0])
    with pytest.raises(ValueError, match="no entry for input"):
        model({"a": xa})
    with pytest.raises(ValueError, match="2 inputs"):
        model([xa])


def test_input_missing_from_inputs():
    a, b = Input(shape=(2,)), Input(shape=(2,))
    with pytest.raises(ValueError, match="not in inputs"):
        Model(a, add([a, b]))
    with pytest.raises(TypeError, match="SymbolicTensor"):
        Model(a, np.ones(2))


def test_gradients_reach_every_weight():
    model, _ = _two_in_two_out()
    reg, cls = model([np.ones((4, 3), np.float32), np.ones((4, 2), np.float32)])
    (reg.sum() + cls[:, 0].sum()).backward()
    assert all(w.grad is not None for w in model.trainable_weights)


def test_nested_models_and_sequential_inside():
    shendu.seed(0)
    inner = Sequential([Dense(4, activation="relu", input_dim=3), Dense(2)])
    x = Input(shape=(3,))
    outer = Model(x, Dense(1)(inner(x)))
    assert outer.count_params() == inner.count_params() + 3
    data = np.random.default_rng(0).random((6, 3)).astype(np.float32)
    expected = inner.predict(data, verbose=0) @ outer.layers[-1].kernel.data + outer.layers[-1].bias.data
    np.testing.assert_allclose(outer.predict(data, verbose=0), expected, rtol=1e-5)


def test_summary_shows_connections():
    model, _ = _two_in_two_out()
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "Connected to" in text
    assert any("cat (Concatenate)" in line and "shared[0], shared[0]" in line for line in lines)
    assert "Total params: 84" in text


def test_functional_training_multi_output():
    shendu.seed(0)
    model, _ = _two_in_two_out()
    rng = np.random.default_rng(0)
    xa, xb = rng.random((40, 3)), rng.random((40, 2))
    y_reg, y_cls = xa.sum(1, keepdims=True), rng.integers(0, 3, 40)
    model.compile("adam", loss={"reg": "mse", "cls": "sparse_categorical_crossentropy"},
                  loss_weights={"reg": 1.0, "cls": 0.5}, metrics={"cls": ["accuracy"], "reg": ["mae"]})
    history = model.fit([xa, xb], {"reg": y_reg, "cls": y_cls}, epochs=3, batch_size=8, verbose=0)
    assert set(history.history) == {"loss", "reg_loss", "cls_loss", "reg_mae", "cls_accuracy"}
    logs = model.evaluate([xa, xb], [y_reg, y_cls], verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(logs["reg_loss"] + 0.5 * logs["cls_loss"], rel=1e-5)
