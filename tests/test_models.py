"""Model: subclassing, compile identifiers, training flag, regularisation, weights on disk, metrics names."""

import numpy as np
import pytest

import shendu
from shendu import losses, metrics, optimizers
from shendu.layers import Dense, Dropout, Layer
from shendu.models import Model, Sequential


class TwoLayer(Model):
    def __init__(self, hidden=8, **kwargs):
        super().__init__(**kwargs)
        self.hidden = Dense(hidden, activation="relu")
        self.drop = Dropout(0.5)
        self.out = Dense(1)

    def call(self, x, training=None):
        return self.out(self.drop(self.hidden(x), training=training))


def _regression(n=32):
    rng = np.random.default_rng(0)
    x = rng.random((n, 3)).astype(np.float32)
    return x, x.sum(axis=1, keepdims=True)


def test_subclassed_model_tracks_layers_and_trains():
    shendu.seed(0)
    model = TwoLayer()
    x, y = _regression()
    assert model(x).shape == (32, 1)
    assert [layer.name for layer in model.layers][-1] == model.out.name
    assert len(model.trainable_weights) == 4 and model.count_params() == 3 * 8 + 8 + 8 + 1
    model.compile(optimizer="adam", loss="mse")
    history = model.fit(x, y, epochs=30, batch_size=8, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    lines = []
    model.summary(print_fn=lines.append)
    assert lines[0] == 'Model: "two_layer"' and any("Total params: 41" in line for line in lines)


def test_subclassed_model_build_with_a_shape():
    model = TwoLayer(hidden=4)
    model.build((None, 5))
    assert model.built and model.hidden.kernel.shape == (5, 4)


def test_subclass_without_call():
    with pytest.raises(NotImplementedError, match="call"):
        Model()(np.ones((1, 2), np.float32))


@pytest.mark.parametrize("optimizer", ["sgd", "adam", optimizers.Adam, optimizers.RMSprop(learning_rate=0.01)])
@pytest.mark.parametrize("loss", ["mse", "mean_squared_error", losses.MeanSquaredError, losses.MeanSquaredError(),
                                  losses.mean_squared_error, lambda yt, yp: ((yt - yp) ** 2).mean(axis=-1)])
def test_compile_accepts_strings_classes_instances_functions(optimizer, loss):
    shendu.seed(0)
    x, y = _regression(8)
    model = Sequential([Dense(1, input_dim=3)])
    model.compile(optimizer=optimizer, loss=loss)
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=3, verbose=0)
    assert model.evaluate(x, y, verbose=0) < before
    assert isinstance(model.optimizer, optimizers.Optimizer)


def test_compile_metrics_identifiers_and_names():
    shendu.seed(0)
    x, y = _regression(8)
    model = Sequential([Dense(1, input_dim=3)])
    model.compile("sgd", "mse", metrics=["mae", metrics.RootMeanSquaredError(name="rmse"),
                                         metrics.MeanSquaredError])
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert list(logs) == ["loss", "mae", "mean_squared_error", "rmse"]  # sorted, as Keras 3
    assert logs["rmse"] == pytest.approx(np.sqrt(logs["loss"]), rel=1e-5)
    assert logs["mae"] == pytest.approx(float(np.abs(model.predict(x, verbose=0) - y).mean()), rel=1e-5)
    values = model.evaluate(x, y, verbose=0)
    assert values == [logs[k] for k in model.metrics_names]


def test_accuracy_is_resolved_from_the_loss():
    rng = np.random.default_rng(0)
    x = rng.random((20, 4)).astype(np.float32)
    labels = rng.integers(0, 3, 20)
    model = Sequential([Dense(3, activation="softmax", input_dim=4)])
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    acc = model.evaluate(x, labels, verbose=0, return_dict=True)["accuracy"]
    assert acc == pytest.approx(float((model.predict(x, verbose=0).argmax(1) == labels).mean()))
    model.compile("sgd", "categorical_crossentropy", metrics=["accuracy"])
    one_hot = np.eye(3, dtype=np.float32)[labels]
    assert model.evaluate(x, one_hot, verbose=0, return_dict=True)["accuracy"] == pytest.approx(acc)


def test_training_flag_only_during_fit():
    flags = []

    class Probe(Layer):
        def call(self, x, training=None):
            flags.append(training)
            return x

    model = Sequential([Probe(input_shape=(2,)), Dense(1)])
    flags.clear()
    model.compile("sgd", "mse")
    x, y = np.ones((4, 2), np.float32), np.ones((4, 1), np.float32)
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    model.evaluate(x, y, verbose=0)
    model.predict(x, verbose=0)
    model.train_on_batch(x, y)
    model.test_on_batch(x, y)
    assert flags == [True, False, False, True, False]


def test_loss_weights_scale_the_total():
    x, y = _regression(8)
    model = Sequential([Dense(1, input_dim=3)])
    model.compile(optimizers.SGD(learning_rate=0.0), "mse")
    plain = model.evaluate(x, y, verbose=0)
    model.compile(optimizers.SGD(learning_rate=0.0), "mse", loss_weights=[3.0])
    assert model.evaluate(x, y, verbose=0) == pytest.approx(3 * plain, rel=1e-6)


@pytest.mark.parametrize("ext", [".npz", ".safetensors"])
def test_save_and_load_weights(tmp_path, ext):
    if ext == ".safetensors":
        pytest.importorskip("safetensors")
    shendu.seed(0)
    model = Sequential([Dense(4, input_dim=3), Dense(1)])
    path = tmp_path / f"model.weights{ext}"
    model.save_weights(str(path))
    shendu.seed(1)
    other = Sequential([Dense(4, input_dim=3), Dense(1)])
    other.load_weights(str(path))
    for a, b in zip(model.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(FileExistsError):
        model.save_weights(str(path), overwrite=False)


def test_optimizer_with_its_own_params_is_kept():
    shendu.seed(0)
    model = Sequential([Dense(2, input_dim=3), Dense(1)])
    first = model.layers[0]
    opt = optimizers.SGD(0.1, params=first.trainable_weights)  # train only the first layer
    model.compile(opt, "mse")
    frozen = model.layers[1].get_weights()
    x, y = _regression(8)
    model.fit(x, y, epochs=2, verbose=0)
    for a, b in zip(frozen, model.layers[1].get_weights()):
        np.testing.assert_array_equal(a, b)


def test_frozen_layer_is_not_updated():
    model = Sequential([Dense(2, input_dim=3), Dense(1)])
    model.layers[0].trainable = False
    model.compile("sgd", "mse")
    frozen = model.layers[0].get_weights()
    x, y = _regression(8)
    model.fit(x, y, epochs=2, verbose=0)
    for a, b in zip(frozen, model.layers[0].get_weights()):
        np.testing.assert_array_equal(a, b)
    assert len(model.trainable_weights) == 2 and len(model.non_trainable_weights) == 2


def test_add_loss_in_call_is_part_of_the_loss():
    class Penalised(Layer):
        def call(self, x):
            self.add_loss((x ** 2).sum() * 0.0 + 1.0)
            return x

    model = Sequential([Penalised(input_shape=(3,)), Dense(1)])
    model.compile(optimizers.SGD(learning_rate=0.0), "mse")
    x, y = _regression(4)
    plain = float(((model.predict(x, verbose=0) - y) ** 2).mean())
    assert model.evaluate(x, y, verbose=0) == pytest.approx(plain + 1.0, rel=1e-5)


def test_losses_follow_the_weights_the_forward_pass_and_the_layer_tree():
    from shendu.regularizers import L1L2

    class Penalised(Layer):
        def call(self, x):
            self.add_loss(0.5 * (x ** 2).mean())
            return x

    model = Sequential([Dense(3, input_dim=2, kernel_regularizer=L1L2(0.1, 0.2), bias_regularizer="l2"),
                        Penalised(), Dense(1, kernel_regularizer="l1")])
    model.compile("sgd", "mse")
    x = np.random.default_rng(0).random((4, 2)).astype(np.float32)
    model(x, training=True)
    dense0, penalised, dense1 = model.layers
    h = x @ dense0.kernel.data + dense0.bias.data
    expected = [0.1 * np.abs(dense0.kernel.data).sum() + 0.2 * (dense0.kernel.data ** 2).sum(),
                0.01 * (dense0.bias.data ** 2).sum(), 0.01 * np.abs(dense1.kernel.data).sum(), 0.5 * (h ** 2).mean()]
    np.testing.assert_allclose([float(t.data) for t in model.losses], expected, rtol=1e-5)
    assert [float(t.data) for t in model.losses] == [float(t.data) for t in model.losses]  # cached walk, same answer
    dense0.kernel.data[...] = 0.0  # penalties are recomputed from the current weights
    assert float(model.losses[0].data) == 0.0
    dense0.trainable = False  # frozen weights add no penalty: the cached walk sees the change
    assert len(model.losses) == 2
    model.pop()
    model.pop()  # the tree shrinks: Penalised's losses are no longer the model's
    assert model.losses == []
    model(x)  # a new forward pass: losses of the previous one are gone
    assert penalised.losses == []


def test_compile_without_loss_uses_added_losses():
    class PullToZero(Layer):
        def call(self, x):
            self.add_loss((x ** 2).mean())
            return x

    shendu.seed(0)
    model = Sequential([Dense(2, input_dim=3), PullToZero()])
    model.compile(optimizers.SGD(learning_rate=0.1))
    x, _ = _regression(16)
    history = model.fit(x, epochs=5, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    plain = Sequential([Dense(1, input_dim=3)])
    plain.compile("sgd")
    with pytest.raises(ValueError, match="no loss to compute"):
        plain.fit(x, epochs=1, verbose=0)


def test_inputs_are_cast_to_the_first_float_weight_dtype():
    """train_on_batch and fit cast float inputs to the dtype of the first float weight in ``weights`` order,
    found without listing every weight: a nested model's first layer's kernel, past layers without weights."""
    inner = Sequential([Dense(3, dtype="float64"), Dense(2, dtype="float32")])
    model = Sequential([shendu.layers.Input(shape=(2, 2)), shendu.layers.Flatten(), inner, Dense(1, dtype="float32")])
    assert [w.data.dtype for w in model.weights][:3] == [np.float64, np.float64, np.float32]
    assert model._float_dtype() == np.float64
    outer = Sequential([shendu.layers.Input(shape=(4,)), Dense(4, dtype="float32"), inner])
    assert outer._float_dtype() == outer.weights[0].data.dtype == np.float32
    assert Sequential([shendu.layers.Flatten()])._float_dtype() is None
