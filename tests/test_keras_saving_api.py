"""Keras 3's saving API on shendu: the registry of custom objects, generic (de)serialisation, custom activations
in saved models, configs without a name, JSON architectures, ``.weights.h5`` files that Keras itself loads,
functional ``get_config`` and ``clone_model``. Keras 3 (torch backend) is the oracle where it can be."""

from __future__ import annotations

import os
import sys
import threading
import warnings

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")

import shendu  # noqa: E402
from shendu import layers, models, saving, utils  # noqa: E402
from shendu.utils import custom_objects as registry  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")  # keras


@pytest.fixture
def clean_registry():
    """Leave the global registry as it was (tests register their own objects)."""
    saved = dict(registry._GLOBAL_CUSTOM_OBJECTS), dict(registry._GLOBAL_CUSTOM_NAMES)
    yield
    registry._GLOBAL_CUSTOM_OBJECTS.clear()
    registry._GLOBAL_CUSTOM_OBJECTS.update(saved[0])
    registry._GLOBAL_CUSTOM_NAMES.clear()
    registry._GLOBAL_CUSTOM_NAMES.update(saved[1])


def _x(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# ---------------------------------------------------------------------------- the registry
def test_register_keras_serializable_names_classes_and_functions_like_keras(clean_registry):
    keras = pytest.importorskip("keras")

    @saving.register_keras_serializable(package="Pk")
    def halve(x):
        return x / 2

    @saving.register_keras_serializable()
    class ApiScale(layers.Layer):
        def __init__(self, factor=2.0, **kwargs):
            super().__init__(**kwargs)
            self.factor = factor

        def call(self, x):
            return x * self.factor

    assert saving.get_registered_name(halve) == "Pk>halve"
    assert saving.get_registered_name(ApiScale) == "Custom>ApiScale"
    assert saving.get_registered_object("Pk>halve") is halve
    assert saving.get_custom_objects()["Custom>ApiScale"] is ApiScale
    assert saving.get_registered_name(len) == "len"  # unregistered: its __name__, as Keras
    # Keras's own registry gives the same names for the same decorations
    assert keras.saving.get_registered_name(keras.saving.register_keras_serializable(package="Pk", name="halve")(
        lambda x: x / 2)) == "Pk>halve"
    # the same objects through shendu.utils, as keras.utils has them
    assert utils.get_registered_object("Custom>ApiScale") is ApiScale and utils.get_custom_objects() is \
        saving.get_custom_objects()
    with pytest.raises(ValueError, match="get_config"):
        saving.register_keras_serializable()(type("NoConfig", (), {}))
    with pytest.raises(ValueError, match="package"):
        saving.register_keras_serializable(package="a>b")


def test_register_serializable_is_the_same_registry(clean_registry):
    @saving.register_serializable
    class ApiTwice(layers.Layer):
        def call(self, x):
            return x * 2

    assert saving.get_custom_objects()["ApiTwice"] is ApiTwice
    assert saving.get_registered_object("ApiTwice") is ApiTwice


def test_custom_object_scope_nests_and_is_per_thread(clean_registry):
    def f(x):
        return x

    def g(x):
        return x

    seen = []
    with saving.custom_object_scope({"fn": f}):
        assert saving.get_registered_object("fn") is f
        with utils.custom_object_scope({"fn": g}, None):
            assert saving.get_registered_object("fn") is g
            thread = threading.Thread(target=lambda: seen.append(saving.get_registered_object("fn")))
            thread.start()
            thread.join()
        assert saving.get_registered_object("fn") is f
    assert saving.get_registered_object("fn") is None and seen == [None]
    assert saving.get_registered_object("fn", custom_objects={"fn": g}) is g
    with pytest.raises(TypeError, match="dicts"):
        saving.custom_object_scope(["fn"])


# ---------------------------------------------------------------------------- serialize/deserialize_keras_object
def test_serialize_keras_object_uses_keras_dict_format(clean_registry):
    keras = pytest.importorskip("keras")

    @saving.register_keras_serializable(package="Pk")
    def triple(x):
        return x * 3

    ours = saving.serialize_keras_object(triple)
    theirs = keras.saving.serialize_keras_object(keras.saving.register_keras_serializable(
        package="Pk", name="triple")(triple))
    assert ours == theirs == {"module": "builtins", "class_name": "function", "config": "Pk>triple",
                              "registered_name": "function"}
    assert saving.deserialize_keras_object(ours) is triple
    assert saving.deserialize_keras_object("Pk>triple") is triple
    assert saving.deserialize_keras_object("relu") == "relu"  # an unregistered string stays a string, as Keras
    assert saving.serialize_keras_object(shendu.activations.relu)["config"] == "relu"

    dense = saving.serialize_keras_object(layers.Dense(3, activation="tanh", name="d"))
    assert set(dense) == {"module", "class_name", "config", "registered_name"}
    assert dense["class_name"] == "Dense" and dense["registered_name"] is None
    rebuilt = saving.deserialize_keras_object(dense)
    assert isinstance(rebuilt, layers.Dense) and rebuilt.units == 3 and rebuilt.name == "d"

    loss = saving.deserialize_keras_object(saving.serialize_keras_object(shendu.losses.Huber(delta=2.0)))
    assert isinstance(loss, shendu.losses.Huber) and loss.get_config()["delta"] == 2.0
    metric = saving.deserialize_keras_object(saving.serialize_keras_object(shendu.metrics.MeanSquaredError()))
    assert isinstance(metric, shendu.metrics.MeanSquaredError)
    adam = saving.deserialize_keras_object(saving.serialize_keras_object(shendu.optimizers.Adam(0.01)))
    assert isinstance(adam, shendu.optimizers.Adam) and np.isclose(float(adam.learning_rate), 0.01)
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    back = saving.deserialize_keras_object(saving.serialize_keras_object({"w": array, "n": [1, "a", None]}))
    np.testing.assert_array_equal(back["w"], array)
    assert back["w"].dtype == np.float32 and back["n"] == [1, "a", None]


def test_deserialize_keras_object_finds_registered_and_scoped_classes(clean_registry):
    @saving.register_keras_serializable(package="Mine")
    class ApiOffset(layers.Layer):
        def __init__(self, shift=1.0, **kwargs):
            super().__init__(**kwargs)
            self.shift = shift

        def call(self, x):
            return x + self.shift

    config = saving.serialize_keras_object(ApiOffset(4.0))
    assert config["registered_name"] == "Mine>ApiOffset" and config["config"]["shift"] == 4.0
    assert saving.deserialize_keras_object(config).shift == 4.0

    class ApiLoose(layers.Layer):
        def __init__(self, k=1, **kwargs):
            super().__init__(**kwargs)
            self.k = k

    spec = saving.serialize_keras_object(ApiLoose(k=5))
    with pytest.raises(ValueError, match="unknown class 'ApiLoose'"):
        saving.deserialize_keras_object(spec)
    assert saving.deserialize_keras_object(spec, custom_objects={"ApiLoose": ApiLoose}).k == 5
    with saving.custom_object_scope({"ApiLoose": ApiLoose}):
        assert saving.deserialize_keras_object(spec).k == 5
    with pytest.raises(saving.NotSerializable, match="register"):
        saving.serialize_keras_object(lambda x: x)


# ---------------------------------------------------------------------------- custom activations and configs
def _activation_models(fn):
    seq = models.Sequential([layers.Input((4,)), layers.Dense(5, activation=fn), layers.Dense(2)])
    inp = layers.Input((4,))
    functional = models.Model(inp, layers.Dense(2)(layers.Dense(5, activation=fn)(inp)))
    return seq, functional


def test_a_registered_function_is_saved_as_an_activation_and_loads_back(tmp_path, clean_registry):
    @saving.register_keras_serializable(package="Act")
    def scaled_tanh(x):
        return shendu.tanh(x) * 1.5

    x = _x(6, 4)
    for i, model in enumerate(_activation_models(scaled_tanh)):
        model.compile("adam", "mse")
        model.fit(x, _x(6, 2, seed=1), epochs=1, verbose=0)
        path = tmp_path / f"m{i}.shendu"
        model.save(path)
        loaded = models.load_model(path)
        dense = [lyr for lyr in loaded.layers if isinstance(lyr, layers.Dense)][0]
        assert dense.activation is scaled_tanh and dense.get_config()["activation"] == "Act>scaled_tanh"
        np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
        assert loaded.optimizer is not None


def test_an_activation_in_the_global_dict_loads_through_custom_objects(tmp_path, clean_registry):
    def bumpy(x):
        return x + shendu.sin(x)

    saving.get_custom_objects()["bumpy"] = bumpy  # Keras's other way of registering
    seq, _ = _activation_models(bumpy)
    seq.save(tmp_path / "m.shendu")
    del saving.get_custom_objects()["bumpy"]
    with pytest.raises(saving.FormatError, match="unknown activation 'bumpy'"):
        models.load_model(tmp_path / "m.shendu")
    loaded = models.load_model(tmp_path / "m.shendu", custom_objects={"bumpy": bumpy})
    np.testing.assert_allclose(loaded.predict(_x(3, 4), verbose=0), seq.predict(_x(3, 4), verbose=0), rtol=1e-6)


def test_an_unregistered_activation_says_how_to_register_it():
    with pytest.raises(ValueError, match="register_keras_serializable"):
        shendu.activations.serialize(lambda x: x)
    with pytest.raises(ValueError, match="register_keras_serializable"):
        shendu.activations.get("no_such_activation")


def test_load_model_when_get_config_omits_the_name(tmp_path, clean_registry):
    @saving.register_keras_serializable(package="NoName")
    class ApiShift(layers.Layer):
        def __init__(self, amount, **kwargs):
            super().__init__(**kwargs)
            self.amount = amount

        def call(self, x):
            return x + self.amount

        def get_config(self):
            return {"amount": self.amount}  # no name, no super().get_config(): Keras tolerates it

    x = _x(5, 3)
    inp = layers.Input((3,))
    hidden = layers.Dense(4)(inp)
    out = layers.Dense(1)(layers.Concatenate()([ApiShift(2.0)(hidden), ApiShift(-1.0)(hidden)]))
    functional = models.Model(inp, out)
    seq = models.Sequential([layers.Input((3,)), layers.Dense(4), ApiShift(0.5), layers.Dense(1)])
    for i, model in enumerate((functional, seq)):
        model.save(tmp_path / f"m{i}.shendu")
        loaded = models.load_model(tmp_path / f"m{i}.shendu")
        np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)


# ---------------------------------------------------------------------------- JSON and functional configs
def _functional():
    a, b = layers.Input((4,), name="a"), layers.Input((2,), name="b")
    shared = layers.Dense(3, activation="relu")
    merged = layers.Concatenate()([shared(a), layers.Dense(3)(b)])
    return models.Model([a, b], [layers.Dense(1, name="out")(merged), shared(a)])


def test_functional_get_config_and_from_config_rebuild_the_graph():
    model = _functional()
    config = model.get_config()
    assert config["input_layers"] == ["a", "b"] and len(config["calls"]) == 5
    clone = models.Model.from_config(config)
    clone.set_weights(model.get_weights())
    x = [_x(3, 4), _x(3, 2, seed=1)]
    for ours, theirs in zip(clone.predict(x, verbose=0), model.predict(x, verbose=0)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    assert len(clone.weights) == len(model.weights) == 6  # the shared Dense holds its weights once


def test_model_to_json_and_model_from_json(clean_registry):
    import json

    model = _functional()
    text = saving.model_to_json(model)
    assert json.loads(text)["config"]["input_layers"] == ["a", "b"]
    rebuilt = models.model_from_json(text)
    assert [type(lyr).__name__ for lyr in rebuilt.layers] == [type(lyr).__name__ for lyr in model.layers]
    assert not any(np.array_equal(a, b) for a, b in zip(rebuilt.get_weights()[:1], model.get_weights()[:1]))

    class ApiGain(layers.Layer):
        def __init__(self, gain=2.0, **kwargs):
            super().__init__(**kwargs)
            self.gain = gain

        def call(self, x):
            return x * self.gain

    seq = models.Sequential([layers.Input((3,)), layers.Dense(2), ApiGain(3.0)])
    text = saving.model_to_json(seq, indent=2)
    with pytest.raises(saving.FormatError, match="unknown layer class 'ApiGain'"):
        models.model_from_json(text)
    rebuilt = models.model_from_json(text, custom_objects={"ApiGain": ApiGain})
    assert rebuilt.layers[-1].gain == 3.0 and rebuilt.built
    with pytest.raises(ValueError, match="not a JSON string"):
        models.model_from_json("{nope")


# ---------------------------------------------------------------------------- .weights.h5
def _keras_pair(keras):
    ours = models.Sequential([layers.Input((6, 4)), layers.LSTM(3, return_sequences=True),
                              layers.BatchNormalization(), layers.Bidirectional(layers.GRU(2)),
                              layers.Dense(5, activation="relu"), layers.Dense(2)])
    theirs = keras.Sequential([keras.Input((6, 4)), keras.layers.LSTM(3, return_sequences=True),
                               keras.layers.BatchNormalization(), keras.layers.Bidirectional(keras.layers.GRU(2)),
                               keras.layers.Dense(5, activation="relu"), keras.layers.Dense(2)])
    return ours, theirs


def _h5_paths(path) -> list[str]:
    import h5py

    names: list[str] = []
    with h5py.File(path, "r") as f:
        f.visit(names.append)
    return sorted(names)


def test_save_weights_writes_keras_weights_h5_that_keras_loads(tmp_path):
    keras = pytest.importorskip("keras")
    pytest.importorskip("h5py")
    ours, theirs = _keras_pair(keras)
    x = _x(5, 6, 4)
    ours.compile("adam", "mse")
    ours.fit(x, _x(5, 2, seed=2), epochs=2, verbose=0)  # moving statistics away from their initial values
    path = tmp_path / "model.weights.h5"
    ours.save_weights(path)
    theirs.load_weights(path)
    np.testing.assert_allclose(theirs.predict(x, verbose=0), ours.predict(x, verbose=0), atol=1e-5)
    again = _keras_pair(keras)[0]
    again.load_weights(path)
    np.testing.assert_allclose(again.predict(x, verbose=0), ours.predict(x, verbose=0), atol=1e-6)
    theirs.save_weights(tmp_path / "keras.weights.h5")
    assert _h5_paths(path) == _h5_paths(tmp_path / "keras.weights.h5")  # the same layout, group for group


def test_functional_weights_h5_with_a_nested_model_loads_in_keras(tmp_path):
    keras = pytest.importorskip("keras")
    pytest.importorskip("h5py")
    inp = layers.Input((4,))
    inner = models.Sequential([layers.Dense(3), layers.Dense(3)])
    a, b = layers.Dense(5, name="zzz")(inp), layers.Dense(5, name="aaa")(inp)
    ours = models.Model(inp, layers.Dense(1)(inner(layers.Concatenate()([a, b]))))
    kin = keras.Input((4,))
    kinner = keras.Sequential([keras.layers.Dense(3), keras.layers.Dense(3)])
    ka, kb = keras.layers.Dense(5, name="zzz")(kin), keras.layers.Dense(5, name="aaa")(kin)
    theirs = keras.Model(kin, keras.layers.Dense(1)(kinner(keras.layers.Concatenate()([ka, kb]))))
    ours.save_weights(tmp_path / "f.weights.h5")
    theirs.load_weights(tmp_path / "f.weights.h5")
    x = _x(7, 4)
    np.testing.assert_allclose(theirs.predict(x, verbose=0), ours.predict(x, verbose=0), atol=1e-5)
    theirs.save_weights(tmp_path / "k.weights.h5")
    assert _h5_paths(tmp_path / "f.weights.h5") == _h5_paths(tmp_path / "k.weights.h5")


def test_save_weights_h5_needs_h5py_and_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)  # import h5py now raises ImportError
    model = models.Sequential([layers.Input((2,)), layers.Dense(1)])
    with pytest.raises(ImportError, match="pip install h5py"):
        model.save_weights(tmp_path / "m.weights.h5")
    assert os.listdir(tmp_path) == []  # the atomic writer left nothing behind
    with pytest.raises(ValueError, match=r"'.weights.h5'"):
        model.save_weights(tmp_path / "m.h5")
    with pytest.raises(ValueError, match="not built"):
        models.Sequential([layers.Dense(1)]).save_weights(tmp_path / "u.weights.h5")


# ---------------------------------------------------------------------------- clone_model
def test_clone_model_sequential_has_new_layers_same_config_fresh_weights():
    keras = pytest.importorskip("keras")
    shendu.seed(0)
    model = models.Sequential([layers.Input((4,)), layers.Dense(8, activation="relu"), layers.Dropout(0.1),
                               layers.Dense(2)], name="stack")
    clone = models.clone_model(model)
    assert clone.name == "stack" and clone.built and clone.inputs[0].shape == (None, 4)
    assert all(a is not b for a, b in zip(clone.layers, model.layers))
    assert [lyr.get_config() for lyr in clone.layers] == [lyr.get_config() for lyr in model.layers]
    assert not np.array_equal(clone.get_weights()[0], model.get_weights()[0])  # fresh, not shared
    clone.set_weights(model.get_weights())
    x = _x(3, 4)
    np.testing.assert_allclose(clone.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    # Keras's clone of the same stack also keeps the layer count and input shape
    kclone = keras.models.clone_model(keras.Sequential([keras.Input((4,)), keras.layers.Dense(8),
                                                        keras.layers.Dropout(0.1), keras.layers.Dense(2)]))
    assert len(kclone.layers) == len(clone.layers) and tuple(kclone.inputs[0].shape) == clone.inputs[0].shape
    unbuilt_shape = models.Sequential([layers.Dense(2)])
    unbuilt_shape(x)
    assert models.clone_model(unbuilt_shape).built


def test_clone_model_functional_keeps_sharing_and_takes_clone_and_call_functions():
    model = _functional()
    seen, calls = [], []

    def clone_function(layer):
        seen.append(layer.name)
        config = layer.get_config()
        if isinstance(layer, layers.Dense):
            config["name"] = "c_" + config["name"]
        return type(layer).from_config(config)

    def call_function(layer, *args, **kwargs):
        calls.append(layer.name)
        return layer(*args, **kwargs)

    clone = models.clone_model(model, clone_function=clone_function, call_function=call_function)
    assert sorted(seen) == sorted(lyr.name for lyr in model.layers[2:])  # each layer cloned once (Inputs: new)
    assert len(calls) == 5 and len(clone.weights) == len(model.weights)
    assert all(lyr.name.startswith("c_") for lyr in clone.layers if isinstance(lyr, layers.Dense))
    clone.set_weights(model.get_weights())
    x = [_x(3, 4), _x(3, 2, seed=1)]
    for ours, theirs in zip(clone.predict(x, verbose=0), model.predict(x, verbose=0)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    new_inputs = [layers.Input((4,)), layers.Input((2,))]
    rewired = models.clone_model(model, input_tensors=new_inputs)
    assert rewired.inputs == new_inputs
    with pytest.raises(ValueError, match="2 inputs"):
        models.clone_model(model, input_tensors=[layers.Input((4,))])


def test_clone_model_subclassed_goes_through_its_config():
    class ApiSmall(models.Model):
        def __init__(self, units=3, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.dense = layers.Dense(units)

        def call(self, x):
            return self.dense(x)

    model = ApiSmall(units=4)
    model(_x(2, 5))
    clone = models.clone_model(model)
    assert isinstance(clone, ApiSmall) and clone.units == 4 and clone.built
    assert [w.shape for w in clone.weights] == [w.shape for w in model.weights]
    with pytest.raises(ValueError, match="subclassed"):
        models.clone_model(model, clone_function=lambda layer: layer)


def test_subclassed_model_weights_h5_goes_both_ways_with_keras(tmp_path):
    keras = pytest.importorskip("keras")
    pytest.importorskip("h5py")

    class ApiOurs(models.Model):
        def __init__(self):
            super().__init__()
            self.body = layers.Dense(3, activation="relu")
            self.head = layers.Dense(1)
            self.extra = [layers.Dense(2)]

        def call(self, x):
            return self.head(self.extra[0](self.body(x)))

    class ApiTheirs(keras.Model):
        def __init__(self):
            super().__init__()
            self.body = keras.layers.Dense(3, activation="relu")
            self.head = keras.layers.Dense(1)
            self.extra = [keras.layers.Dense(2)]

        def call(self, x):
            return self.head(self.extra[0](self.body(x)))

    x = _x(4, 5)
    ours, theirs = ApiOurs(), ApiTheirs()
    ours(x)
    theirs(x)
    ours.save_weights(tmp_path / "ours.weights.h5")
    theirs.load_weights(tmp_path / "ours.weights.h5")  # Keras reads ours: 'body/vars', 'extra/dense/vars', ...
    np.testing.assert_allclose(theirs.predict(x, verbose=0), ours.predict(x, verbose=0), atol=1e-6)
    theirs.save_weights(tmp_path / "theirs.weights.h5")
    assert _h5_paths(tmp_path / "ours.weights.h5") == _h5_paths(tmp_path / "theirs.weights.h5")
    again = ApiOurs()
    again(x)
    again.load_weights(tmp_path / "theirs.weights.h5")  # and shendu reads Keras's
    np.testing.assert_allclose(again.predict(x, verbose=0), ours.predict(x, verbose=0), atol=1e-6)


def test_registered_losses_and_metrics_survive_save_and_load(tmp_path, clean_registry):
    @saving.register_keras_serializable(package="Fit")
    def squared(y_true, y_pred):
        return shendu.mean((y_true - y_pred) ** 2, axis=-1)

    @saving.register_keras_serializable(package="Fit")
    class WeightedAbs(shendu.losses.Loss):
        def __init__(self, weight=1.0, **kwargs):
            super().__init__(**kwargs)
            self.weight = weight

        def call(self, y_true, y_pred):
            return self.weight * shendu.mean(shendu.abs(y_true - y_pred), axis=-1)

        def get_config(self):
            return {**super().get_config(), "weight": self.weight}

    x, y = _x(8, 3), _x(8, 1, seed=1)
    for i, loss in enumerate((squared, WeightedAbs(2.0))):
        model = models.Sequential([layers.Input((3,)), layers.Dense(1)])
        model.compile("adam", loss, metrics=[squared])
        model.fit(x, y, epochs=1, verbose=0)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # save warns when it cannot store the compile arguments
            model.save(tmp_path / f"m{i}.shendu")
        loaded = models.load_model(tmp_path / f"m{i}.shendu")
        assert loaded.get_compile_config()["loss"] == model.get_compile_config()["loss"]
        np.testing.assert_allclose(loaded.evaluate(x, y, verbose=0), model.evaluate(x, y, verbose=0), rtol=1e-6)


def _layer_zoo(keras, kind):
    """(shendu model, the equivalent Keras model, input) for the .weights.h5 round trips."""
    if kind == "conv":
        x = _x(2, 8, 8, 3)
        return (models.Sequential([layers.Input((8, 8, 3)), layers.Conv2D(4, 3), layers.MaxPooling2D(),
                                   layers.Flatten(), layers.Dense(2)]),
                keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3), keras.layers.MaxPooling2D(),
                                  keras.layers.Flatten(), keras.layers.Dense(2)]), x)
    if kind == "embedding":
        x = np.random.default_rng(0).integers(0, 10, (2, 5))
        return (models.Sequential([layers.Input((5,), dtype="int32"), layers.Embedding(10, 4),
                                   layers.LayerNormalization(), layers.SimpleRNN(3)]),
                keras.Sequential([keras.Input((5,), dtype="int32"), keras.layers.Embedding(10, 4),
                                  keras.layers.LayerNormalization(), keras.layers.SimpleRNN(3)]), x)
    if kind == "attention":
        inp, kinp = layers.Input((5, 4)), keras.Input((5, 4))
        return (models.Model(inp, layers.MultiHeadAttention(2, 3, value_dim=2)(inp, inp)),
                keras.Model(kinp, keras.layers.MultiHeadAttention(2, 3, value_dim=2)(kinp, kinp)), _x(2, 5, 4))
    return (models.Sequential([layers.Input((5, 4)), layers.TimeDistributed(layers.Dense(2))]),
            keras.Sequential([keras.Input((5, 4)), keras.layers.TimeDistributed(keras.layers.Dense(2))]),
            _x(2, 5, 4))


@pytest.mark.parametrize("kind", ["conv", "embedding", "attention", "time_distributed"])
def test_weights_h5_of_more_layer_kinds_goes_both_ways_with_keras(tmp_path, kind):
    keras = pytest.importorskip("keras")
    pytest.importorskip("h5py")
    ours, theirs, x = _layer_zoo(keras, kind)
    ours.save_weights(tmp_path / "ours.weights.h5")
    theirs.load_weights(tmp_path / "ours.weights.h5")
    np.testing.assert_allclose(theirs.predict(x, verbose=0), ours.predict(x, verbose=0), atol=1e-5)
    theirs.save_weights(tmp_path / "theirs.weights.h5")
    assert _h5_paths(tmp_path / "ours.weights.h5") == _h5_paths(tmp_path / "theirs.weights.h5")
    again = _layer_zoo(keras, kind)[0]
    again.load_weights(tmp_path / "theirs.weights.h5")
    np.testing.assert_allclose(again.predict(x, verbose=0), ours.predict(x, verbose=0), atol=1e-6)


def test_clone_model_recursive_reaches_the_layers_of_nested_models():
    inner = models.Sequential([layers.Dense(3), layers.Dense(3)], name="inner")
    inp = layers.Input((4,))
    model = models.Model(inp, layers.Dense(1)(inner(inp)))
    renamed = []

    def clone_function(layer):
        renamed.append(layer.name)
        return type(layer).from_config(layer.get_config())

    flat = models.clone_model(model, clone_function=clone_function)
    assert "inner" in renamed and not set(lyr.name for lyr in inner.layers) & set(renamed)
    renamed.clear()
    deep = models.clone_model(model, clone_function=clone_function, recursive=True)
    assert {lyr.name for lyr in inner.layers} <= set(renamed) and "inner" not in renamed
    assert isinstance(deep.layers[1], models.Sequential) and deep.layers[1] is not inner
    for clone in (flat, deep):
        clone.set_weights(model.get_weights())
        x = _x(3, 4)
        np.testing.assert_allclose(clone.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
