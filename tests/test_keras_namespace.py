"""``import shendu as keras``: Keras 3's top-level names and submodules, re-exported lazily (no second copy),
and a Keras-guide-style program that runs with only its import changed."""

import subprocess
import sys
import types

import numpy as np
import pytest

import shendu as keras
from shendu import layers, ops

SUBMODULES = ["activations", "callbacks", "datasets", "initializers", "layers", "losses", "metrics", "models",
              "ops", "optimizers", "random", "regularizers", "saving", "utils"]


@pytest.mark.parametrize("name", SUBMODULES)
def test_submodules(name):
    module = getattr(keras, name)
    assert isinstance(module, types.ModuleType) and module.__name__ == f"shendu.{name}"


def test_top_level_names_are_the_classes_of_their_modules():
    assert keras.Sequential is keras.models.Sequential and keras.Model is keras.models.Model
    assert keras.Input is keras.layers.Input and keras.Layer is keras.layers.Layer
    assert keras.InputSpec is keras.layers.InputSpec and keras.Loss is keras.losses.Loss
    assert keras.Metric is keras.metrics.Metric and keras.Optimizer is keras.optimizers.Optimizer
    assert keras.Initializer is keras.initializers.Initializer and keras.Regularizer is keras.regularizers.Regularizer
    assert keras.Variable is keras.Parameter
    assert {"Sequential", "Model", "Input", "layers", "ops"} <= set(dir(keras))
    with pytest.raises(AttributeError, match="no attribute 'Sequentail'"):
        keras.Sequentail  # noqa: B018


def test_import_stays_light():
    code = ("import sys, shendu; heavy = [m for m in ('shendu.models', 'shendu.layers', 'shendu.saving', "
            "'shendu.callbacks', 'shendu.export') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_keras_guide_program_runs_unchanged():
    """The shape of the Keras 3 guides' first programs: Input, Sequential, a subclassed Layer that uses ops,
    random noise from a SeedGenerator, compile/fit/evaluate, a functional Model over the same layers."""

    class Scale(keras.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.seed_generator = keras.random.SeedGenerator(1337)

        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones")

        def call(self, x, training=None):
            if training:
                x = x + keras.random.normal(ops.shape(x), stddev=0.01, seed=self.seed_generator)
            return ops.multiply(x, self.w)

    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).standard_normal((256, 8)).astype("float32")
    y = ops.convert_to_numpy(ops.argmax(ops.convert_to_tensor(x[:, :3]), axis=-1))
    model = keras.Sequential([keras.Input(shape=(8,)), Scale(), layers.Dense(32, activation="relu"),
                              layers.LeakyReLU(negative_slope=0.1), layers.Dense(3, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x, y, batch_size=32, epochs=15, verbose=0)
    assert history.history["accuracy"][-1] > 0.9
    inputs = keras.Input(shape=(8,))
    functional = keras.Model(inputs, model.layers[-1](model.layers[-2](model.layers[-3](inputs))))
    assert ops.shape(functional(ops.ones((2, 8)))) == (2, 3)


def test_variable_assign_methods_update_in_place_and_keep_the_version_rules():
    w = keras.Variable(np.zeros((2, 3), dtype=np.float32), name="dense/kernel")
    same = w
    loss = (w * 2.0).sum()  # a graph that saved w's old value
    assert w.assign(np.ones((2, 3))) is same and w.dtype == np.float32 and w._version == 1
    w.assign_add(np.float64(2.0))
    w.assign_sub(keras.tensor([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(w.numpy(), [[2.0, 1.0, 0.0], [2.0, 1.0, 0.0]])
    assert w._version == 3 and w.grad is None and w.requires_grad and w.creator is None
    with pytest.raises(RuntimeError, match="modified in place"):
        loss.backward()  # the old value is gone: backward refuses, as after any in-place change
    assert w.value is w and w.path == "dense/kernel"
    (w.value * 3.0).sum().backward()  # value is the weight itself: gradients reach it
    np.testing.assert_array_equal(w.grad, np.full((2, 3), 3.0))
    with pytest.raises(ValueError, match=r"shape \(3,\) to the weight 'dense/kernel' of shape \(2, 3\)"):
        w.assign(np.ones(3))
    with pytest.raises(ValueError, match="broadcast"):
        w.assign_add(np.ones((4, 2, 3)))


def test_a_layer_weight_is_assigned_keras_style():
    layer = layers.Dense(2, kernel_initializer="zeros")
    layer.build((None, 3))
    layer.kernel.assign(np.eye(3, 2))
    layer.bias.assign_add([1.0, -1.0])
    np.testing.assert_allclose(layer(np.ones((1, 3))).numpy(), [[2.0, 0.0]])


def test_variable_takes_keras_constructor_arguments():
    v = keras.Variable(initializer=keras.initializers.get("ones"), shape=(2, 2), trainable=False, name="counts")
    assert v.shape == (2, 2) and v.dtype == np.float32 and not v.requires_grad and not v.trainable
    assert keras.Variable(np.zeros(3, dtype=np.float32)).requires_grad
    assert keras.Variable(keras.initializers.Zeros(), shape=(3,), dtype="float64").dtype == np.float64
    with pytest.raises(TypeError, match=r"initializers.get\('zeros'\)"):
        keras.Variable(initializer="zeros", shape=(2,))
    with pytest.raises(ValueError, match="needs shape="):
        keras.Variable(keras.initializers.Zeros())
    with pytest.raises(ValueError, match=r"shape=\(4,\)"):
        keras.Variable(np.zeros(3), shape=(4,))
