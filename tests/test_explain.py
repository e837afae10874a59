"""Explain mode: the per-layer statistics are right, measuring changes nothing, warnings name the layer,
and explain_step's numbers are the hand calculation."""

import numpy as np
import pytest

import shendu
from shendu.callbacks import CallbackList, Explain
from shendu.layers import Dense, Input
from shendu.models import Model, Sequential
from shendu.optimizers import SGD
from shendu.utils import explain_step, plot_explain
from shendu.utils.explain import diagnose, layer_stats


def _data(n=40):
    rng = np.random.default_rng(0)
    x = rng.random((n, 3)).astype(np.float32)
    return x, (x.sum(axis=1, keepdims=True) ** 2).astype(np.float32)


def _net(lr=0.05):
    shendu.seed(1)
    model = Sequential([Dense(6, activation="relu", input_dim=3), Dense(4, activation="tanh"), Dense(1)])
    model.compile(optimizer=SGD(learning_rate=lr, momentum=0.9), loss="mse")
    return model


def _weights(model):
    return [p.data.copy() for p in model.trainable_weights]


def test_explain_does_not_change_training():
    x, y = _data()
    plain = _net()
    plain.fit(x, y, epochs=3, batch_size=8, verbose=0)
    explained = _net()
    explain = Explain(x, y, verbose=0)
    explained.fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=[explain])
    for a, b in zip(_weights(plain), _weights(explained)):
        np.testing.assert_array_equal(a, b)
    assert [r["epoch"] for r in explain.records] == [0, 1, 2]
    # it never asks fit for per-step logs (the expensive part of per-batch callbacks)
    assert not CallbackList([explain]).needs_batch_logs("train")


def test_layer_stats_match_numpy_and_keep_grads():
    x, y = _data(10)
    model = _net()
    model.fit(x, y, epochs=1, verbose=0)
    marker = np.full(model.layers[0].kernel.shape, 7.0, dtype=np.float32)
    model.layers[0].kernel.grad = shendu.tensor(marker)
    before = _weights(model)
    stats = layer_stats(model, x, y)
    np.testing.assert_array_equal(model.layers[0].kernel.grad.data, marker)  # restored
    for a, b in zip(before, _weights(model)):
        np.testing.assert_array_equal(a, b)

    # by hand: forward, the MSE gradient, and the statistics of every layer
    (w1, b1), (w2, b2), (w3, b3) = [(layer.kernel.data.astype(np.float64), layer.bias.data.astype(np.float64))
                                    for layer in model.layers]
    h1 = np.maximum(x @ w1 + b1, 0)
    h2 = np.tanh(h1 @ w2 + b2)
    out = h2 @ w3 + b3
    assert [s["output_shape"] for s in stats] == [(10, 6), (10, 4), (10, 1)]
    np.testing.assert_allclose([s["mean"] for s in stats], [h1.mean(), h2.mean(), out.mean()], rtol=1e-5)
    np.testing.assert_allclose(stats[1]["std"], h2.std(), rtol=1e-5)
    assert stats[0]["dead_fraction"] == pytest.approx(np.all(h1 <= 0, axis=0).mean())
    assert stats[1]["saturated_fraction"] == pytest.approx(np.mean(np.abs(h2) > 0.99))
    assert stats[2]["dead_fraction"] is None and stats[2]["saturated_fraction"] is None
    d_out = 2 * (out - y) / out.size
    g_w3, g_b3 = h2.T @ d_out, d_out.sum(0)
    assert stats[2]["grad_norm"] == pytest.approx(np.sqrt((g_w3 ** 2).sum() + (g_b3 ** 2).sum()), rel=1e-4)
    assert stats[2]["weight_norm"] == pytest.approx(np.sqrt((w3 ** 2).sum() + (b3 ** 2).sum()), rel=1e-6)


def test_update_ratio_is_the_last_steps_relative_change():
    x, y = _data(16)
    shendu.seed(2)
    model = Sequential([Dense(1, input_dim=3)])
    model.compile(optimizer=SGD(learning_rate=0.1), loss="mse")
    model.build((None, 3))
    kernel, bias = (p.data.astype(np.float64).copy() for p in model.trainable_weights)
    explain = Explain(x, y, verbose=0)
    model.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[explain])  # one step
    new_kernel, new_bias = (p.data.astype(np.float64) for p in model.trainable_weights)
    change = np.sqrt(((new_kernel - kernel) ** 2).sum() + ((new_bias - bias) ** 2).sum())
    size = np.sqrt((kernel ** 2).sum() + (bias ** 2).sum())
    name = model.layers[0].name
    assert explain.records[0]["update_ratios"][name] == pytest.approx(change / size, rel=1e-5)


def test_dead_relus_are_reported_with_the_layer_name():
    x, y = _data()
    model = _net()
    model.build((None, 3))
    model.layers[0].bias.data[...] = -100.0  # every unit negative for every sample: all dead
    lines = []
    explain = Explain(x, y, print_fn=lines.append)
    model.fit(x, y, epochs=1, verbose=0, callbacks=[explain])
    first = model.layers[0].name
    assert explain.records[0]["layers"][0]["dead_fraction"] == 1.0
    assert any(f"layer '{first}'" in w and "dead" in w for _, w in explain.warnings)
    # no gradient reaches the dead layer: vanishing, named as well
    assert explain.records[0]["layers"][0]["grad_norm"] == 0.0
    assert explain.records[0]["layers"][2]["grad_norm"] > 0
    assert any(f"layer '{first}'" in w and "vanishing" in w for _, w in explain.warnings)
    assert "dead" in "\n".join(lines) and "|grad|" in lines[0]


def test_saturation_and_exploding_gradients_are_reported():
    x, y = _data()
    shendu.seed(3)
    model = Sequential([Dense(8, activation="sigmoid", input_dim=3), Dense(1)])
    model.compile(optimizer=SGD(learning_rate=0.01), loss="mse")
    model.build((None, 3))
    model.layers[0].kernel.data[...] = 50.0 * np.sign(np.random.default_rng(0).standard_normal((3, 8)))
    model.layers[1].kernel.data[...] = 1e4
    stats = layer_stats(model, x, y * 1e3)
    warnings = diagnose(stats)
    sigmoid_layer, out_layer = (layer.name for layer in model.layers)
    assert stats[0]["saturated_fraction"] > 0.5
    assert any(f"layer '{sigmoid_layer}'" in w and "saturated" in w for w in warnings)
    assert any(f"layer '{out_layer}'" in w and "exploding" in w for w in warnings)


def test_diagnose_thresholds():
    def stat(name, g):
        return {"name": name, "grad_norm": g, "dead_fraction": None, "saturated_fraction": None,
                "activation": None}

    assert diagnose([stat("a", 1e-2), stat("b", 1.0)]) == []
    warnings = diagnose([stat("early", 1e-9), stat("late", 1.0), stat("nan", float("nan"))])
    assert len(warnings) == 2
    assert "layer 'early'" in warnings[0] and "vanishing" in warnings[0] and "layer 'late'" in warnings[0]
    assert "layer 'nan'" in warnings[1] and "exploding" in warnings[1]
    # no gradient anywhere: one warning that names every layer
    (flat,) = diagnose([stat("first", 0.0), stat("second", 1e-12)])
    assert "'first', 'second'" in flat and "no gradient reaches any layer" in flat
    assert "too high" in diagnose([stat("a", 1.0)], update_ratios={"a": 0.5})[0]
    with pytest.raises(TypeError, match="unknown threshold"):
        Explain(np.zeros((2, 1)), np.zeros((2, 1)), vanishin=1.0)


def test_every_and_plot(tmp_path):
    x, y = _data()
    model = _net()
    explain = Explain(x, y, every=2, verbose=0)
    model.fit(x, y, epochs=4, batch_size=10, verbose=0, callbacks=[explain])
    assert [r["epoch"] for r in explain.records] == [1, 3]
    path = tmp_path / "explain.png"
    fig = explain.plot(path, title="explain")
    assert path.stat().st_size > 10_000
    assert [ax.get_title() for ax in fig.axes][:2] == ["gradient norm ||dL/dW||", "update / weight ratio"]
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == [layer.name for layer in model.layers]
    with pytest.raises(ValueError, match="no records"):
        plot_explain([])


def test_explain_step_is_the_hand_calculation():
    shendu.seed(4)
    model = Sequential([Dense(2, activation="sigmoid", input_dim=2), Dense(1)])
    model.compile(optimizer=SGD(learning_rate=0.5), loss="mse")
    x = np.array([[1.0, 2.0], [0.5, -1.0]], dtype=np.float32)
    y = np.array([[1.0], [0.0]], dtype=np.float32)
    model.build((None, 2))
    w1, b1, w2, b2 = (p.data.astype(np.float64).copy() for p in model.trainable_weights)
    lines = []
    numbers = explain_step(model, x, y, print_fn=lines.append)

    z1 = x @ w1 + b1
    a1 = 1 / (1 + np.exp(-z1))
    out = a1 @ w2 + b2
    loss = np.mean((out - y) ** 2)
    delta2 = 2 * (out - y) / out.size  # dL/d out
    g_w2, g_b2 = a1.T @ delta2, delta2.sum(0)
    delta1 = (delta2 @ w2.T) * a1 * (1 - a1)  # dL/dz1 = (delta2 W2^T) * f'(z1)
    g_w1, g_b1 = x.T @ delta1, delta1.sum(0)

    np.testing.assert_allclose(numbers["layers"][0]["z"], z1, rtol=1e-5)
    np.testing.assert_allclose(numbers["layers"][0]["output"], a1, rtol=1e-5)
    np.testing.assert_allclose(numbers["layers"][1]["output"], out, rtol=1e-5)
    assert numbers["loss"] == pytest.approx(loss, rel=1e-5)
    names = [p.name for p in model.trainable_weights]
    for name, grad in zip(names, (g_w1, g_b1, g_w2, g_b2)):
        np.testing.assert_allclose(numbers["gradients"][name], grad, rtol=1e-4, atol=1e-7)
    for name, old, grad in zip(names, (w1, b1, w2, b2), (g_w1, g_b1, g_w2, g_b2)):
        np.testing.assert_allclose(numbers["after"][name], old - 0.5 * grad, rtol=1e-5, atol=1e-7)
    # the step is real: the model now holds the updated weights
    np.testing.assert_allclose(model.layers[1].kernel.data, w2 - 0.5 * g_w2, rtol=1e-5)
    text = "\n".join(lines)
    for part in ("-- forward", "z = xW + b", "-- loss", f"dL/d {names[0]}", "-- update: SGD(learning_rate=0.5"):
        assert part in text


def test_explain_step_needs_a_compiled_model():
    model = Sequential([Dense(1, input_dim=1)])
    with pytest.raises(RuntimeError, match="compile"):
        explain_step(model, np.zeros((1, 1)), np.zeros((1, 1)))


def test_functional_models_get_weight_and_gradient_statistics():
    x, y = _data()
    shendu.seed(5)
    inputs = Input(shape=(3,))
    hidden = Dense(4, activation="relu", name="hidden")(inputs)
    model = Model(inputs, Dense(1, name="out")(hidden))
    model.compile(optimizer="adam", loss="mse")
    stats = layer_stats(model, x, y)
    assert [s["name"] for s in stats] == ["hidden", "out"]  # the InputLayer measures nothing: no row
    assert all(s["grad_norm"] > 0 for s in stats)
    assert stats[0]["output_shape"] is None and stats[1]["output_shape"] == (len(x), 1)
