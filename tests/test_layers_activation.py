"""The activation layers (ReLU, LeakyReLU, ELU, Softmax, PReLU) against Keras 3 (PyTorch backend): outputs,
gradients, configs, saving round trips."""

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

if keras.backend.backend() != "torch":  # pragma: no cover - another backend was chosen before us
    pytest.skip("these comparisons need Keras on its PyTorch backend", allow_module_level=True)

import shendu  # noqa: E402
from shendu import layers  # noqa: E402

X = np.random.default_rng(0).standard_normal((4, 3, 5)).astype(np.float32) * 2
CASES = [
    ("LeakyReLU", {}), ("LeakyReLU", {"negative_slope": 0.05}),
    ("ReLU", {}), ("ReLU", {"max_value": 1.5}), ("ReLU", {"negative_slope": 0.1, "threshold": 0.5}),
    ("ReLU", {"max_value": 2.0, "negative_slope": 0.2, "threshold": 0.3}),
    ("ELU", {}), ("ELU", {"alpha": 0.5}),
    ("Softmax", {}), ("Softmax", {"axis": 1}), ("Softmax", {"axis": (1, 2)}),
    ("PReLU", {}), ("PReLU", {"alpha_initializer": "ones"}), ("PReLU", {"shared_axes": [1]}),
]


def _keras_config(layer) -> dict:
    config = layer.get_config()
    for key in ("name", "trainable", "dtype"):
        config.pop(key)
    return config


@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}-{k}" for n, k in CASES])
def test_outputs_gradients_and_config_match_keras(name, kwargs):
    ours, theirs = getattr(layers, name)(**kwargs), getattr(keras.layers, name)(**kwargs)
    x = shendu.tensor(X, requires_grad=True)
    y = ours(x)
    expected = keras.ops.convert_to_numpy(theirs(X))
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-5, atol=1e-6)
    # the gradient: d(sum(y * c))/dx against torch's autograd through the Keras layer
    c = np.random.default_rng(1).standard_normal(X.shape).astype(np.float32)
    (y * shendu.tensor(c)).sum().backward()
    tx = torch.tensor(X, requires_grad=True)
    (theirs(tx) * torch.tensor(c)).sum().backward()
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-5, atol=1e-6)
    ours_config = _keras_config(ours)
    theirs_config = _keras_config(theirs)
    for key in ("alpha_initializer",):  # Keras writes its module path beside the class name
        if key in theirs_config:
            assert ours_config[key]["class_name"].lower() == theirs_config[key]["class_name"].lower()
            ours_config.pop(key), theirs_config.pop(key)
    if name == "Softmax" and isinstance(kwargs.get("axis"), tuple):
        theirs_config["axis"] = tuple(theirs_config["axis"])
    assert ours_config == theirs_config
    rebuilt = type(ours).from_config(ours.get_config())
    if name == "PReLU":
        rebuilt.build(X.shape)
        rebuilt.set_weights(ours.get_weights())
    np.testing.assert_allclose(rebuilt(X).numpy(), y.numpy(), rtol=1e-6)


def test_prelu_learns_its_slope_and_has_keras_weight_shape():
    layer = layers.PReLU(shared_axes=[1])
    layer(X)
    theirs = keras.layers.PReLU(shared_axes=[1])
    theirs(X)
    assert [w.shape for w in layer.get_weights()] == [tuple(w.shape) for w in theirs.get_weights()] == [(1, 5)]
    assert layer.trainable_weights[0] is layer.alpha


def test_leaky_relu_takes_keras_2s_alpha_with_keras_3s_warning():
    with pytest.warns(UserWarning, match="negative_slope"):
        layer = layers.LeakyReLU(alpha=0.2)
    assert layer.negative_slope == 0.2
    with pytest.raises(ValueError, match="negative_slope"):
        layers.LeakyReLU(negative_slope=-1.0)
    with pytest.raises(ValueError, match="max_value"):
        layers.ReLU(max_value=-1.0)
    with pytest.raises(ValueError, match="threshold"):
        layers.ReLU(threshold=-1.0)


def test_softmax_mask_matches_keras():
    mask = np.random.default_rng(2).random((4, 3, 5)) > 0.3
    ours = layers.Softmax()(X, mask=mask).numpy()
    theirs = keras.ops.convert_to_numpy(keras.layers.Softmax()(X, mask=mask))
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-7)


def test_models_with_activation_layers_save_and_load(tmp_path):
    model = shendu.models.Sequential([layers.Input(shape=(5,)), layers.Dense(4), layers.LeakyReLU(0.1),
                                      layers.PReLU(), layers.Dense(3), layers.Softmax()])
    path = tmp_path / "m.shendu"
    model.save(path)
    loaded = shendu.saving.load_model(path)
    x = X[:, 0]
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    assert [type(layer).__name__ for layer in loaded.layers][1:] == ["LeakyReLU", "PReLU", "Dense", "Softmax"]
