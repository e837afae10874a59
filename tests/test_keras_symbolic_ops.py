"""``keras.ops`` functions on a functional model's symbolic tensors (issue 11): each call becomes a node of the
graph (an ``OpLayer``), trains through fit with the op's own gradient, and matches Keras 3 on the same weights."""

import os
import re

import numpy as np
import pytest

import shendu
from shendu import layers, ops
from shendu.autograd.tensor import Tensor
from shendu.layers import OpLayer

os.environ.setdefault("KERAS_BACKEND", "torch")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _program(keras_module):
    """The issue's program, written once for shendu and for Keras."""
    o = keras_module.ops
    inp = keras_module.Input((8,))
    x = keras_module.layers.Dense(4)(inp)
    x = o.relu(x)
    x = o.expand_dims(x, -1)
    x = o.concatenate([x, x], axis=-1)
    out = o.mean(x, axis=1)
    return keras_module.Model(inp, out)


def _data(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 8)).astype("float32"), rng.normal(size=(n, 2)).astype("float32")


def test_the_issue_program_builds_and_predicts_as_numpy():
    model = _program(shendu)
    names = [layer.name.rsplit("_", 1)[0] if layer.name[-1].isdigit() else layer.name for layer in model.layers]
    assert names[2:] == ["relu", "reshape", "concatenate", "mean"]
    assert len({layer.name for layer in model.layers}) == len(model.layers)
    assert all(isinstance(layer, OpLayer) for layer in model.layers[2:])
    assert model.layers[-1].output.shape == (None, 2)
    x, _ = _data()
    kernel, bias = model.layers[1].get_weights()
    h = np.maximum(x @ kernel + bias, 0)[:, :, None]
    expected = np.concatenate([h, h], axis=-1).mean(axis=1)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)


def test_summary_shows_the_ops(capsys):
    _program(shendu).summary()
    text = capsys.readouterr().out
    for name in ("relu", "reshape", "concatenate", "mean"):
        assert re.search(name + r"(_\d+)? +\(OpLayer\)", text)


def test_fit_decreases_the_loss():
    model = _program(shendu)
    model.compile(optimizer="adam", loss="mse")
    x, y = _data(64)
    history = model.fit(x, y, epochs=20, batch_size=16, verbose=0).history["loss"]
    assert history[-1] < history[0]
    assert np.isfinite(model.evaluate(x, y, verbose=0))


def test_gradients_match_keras_3():
    keras = pytest.importorskip("keras")
    torch = pytest.importorskip("torch")
    if keras.backend.backend() != "torch":  # pragma: no cover - another backend was chosen before us
        pytest.skip("the comparison needs Keras on its PyTorch backend")
    ours, theirs = _program(shendu), _program(keras)
    theirs.layers[1].set_weights(ours.layers[1].get_weights())
    x, _ = _data(5)
    out = ours(Tensor(x))
    ((out * out).sum() + (out * 3.0).sum()).backward()
    kt = theirs(torch.tensor(x))
    ((kt * kt).sum() + (kt * 3.0).sum()).backward()
    np.testing.assert_allclose(out.numpy(), kt.detach().numpy(), rtol=1e-5, atol=1e-6)
    for v_ours, v_theirs in zip(ours.layers[1].trainable_weights, theirs.layers[1].trainable_weights):
        np.testing.assert_allclose(v_ours.grad.numpy() if hasattr(v_ours.grad, "numpy") else v_ours.grad,
                                   v_theirs.value.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_gradcheck_through_op_layers():
    inp = shendu.Input((3,))
    h = layers.Dense(3)(inp)
    out = ops.sum(ops.tanh(h) * 2.0 - ops.square(h) / 3.0 + ops.maximum(h, 0.1), axis=-1, keepdims=True)
    model = shendu.Model(inp, out)
    x = np.random.default_rng(1).normal(size=(4, 3))
    model.layers[1].set_weights([w.astype("float32") for w in model.layers[1].get_weights()])
    kernel = model.layers[1].trainable_weights[0]
    out_t = model(Tensor(x.astype("float32")))
    out_t.sum().backward()
    analytic = np.array(kernel.grad.numpy() if hasattr(kernel.grad, "numpy") else kernel.grad, dtype=np.float64)
    w0, b = model.layers[1].get_weights()
    eps, numeric = 1e-3, np.zeros_like(w0, dtype=np.float64)
    for i in np.ndindex(w0.shape):
        for sign in (1, -1):
            w = w0.copy()
            w[i] += sign * eps
            model.layers[1].set_weights([w, b])
            numeric[i] += sign * float(model.predict(x.astype("float32"), verbose=0).astype(np.float64).sum())
    np.testing.assert_allclose(analytic, numeric / (2 * eps), rtol=2e-2, atol=2e-3)


@pytest.mark.parametrize("fn, shape", [
    (lambda h, y: ops.sigmoid(h), (None, 6)), (lambda h, y: ops.softmax(h), (None, 6)),
    (lambda h, y: ops.exp(h), (None, 6)), (lambda h, y: ops.log(ops.abs(h) + 1.0), (None, 6)),
    (lambda h, y: ops.sqrt(ops.square(h)), (None, 6)), (lambda h, y: ops.subtract(h, y), (None, 6)),
    (lambda h, y: ops.divide(h, ops.exp(y)), (None, 6)), (lambda h, y: ops.multiply(h, 2.0), (None, 6)),
    (lambda h, y: ops.matmul(h, np.ones((6, 3), "float32")), (None, 3)),
    (lambda h, y: ops.transpose(ops.reshape(h, (-1, 2, 3)), (0, 2, 1)), (None, 3, 2)),
    (lambda h, y: ops.squeeze(ops.expand_dims(h, 1), 1), (None, 6)),
    (lambda h, y: ops.stack([h, y], axis=1), (None, 2, 6)), (lambda h, y: ops.sum(h, axis=1), (None,)),
    (lambda h, y: ops.max(h, axis=-1, keepdims=True), (None, 1)), (lambda h, y: ops.min(h, axis=1), (None,)),
    (lambda h, y: ops.cast(h, "float64"), (None, 6)), (lambda h, y: ops.clip(h, -0.5, 0.5), (None, 6)),
    (lambda h, y: ops.where(ops.greater(h, 0), h, y), (None, 6)), (lambda h, y: ops.minimum(h, y), (None, 6)),
])
def test_common_ops_match_eager(fn, shape):
    inp, other = shendu.Input((6,)), shendu.Input((6,))
    h = layers.Dense(6)(inp)
    out = fn(h, other)
    assert out.shape == shape
    model = shendu.Model([inp, other], out)
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(3, 6)).astype("float32"), rng.normal(size=(3, 6)).astype("float32")
    kernel, bias = next(la for la in model.layers if isinstance(la, layers.Dense)).get_weights()
    expected = fn(Tensor(x @ kernel + bias), Tensor(y))
    np.testing.assert_allclose(model.predict([x, y], verbose=0), np.asarray(expected.numpy()), rtol=1e-5,
                               atol=1e-6)


def test_operators_on_symbolic_tensors():
    inp = shendu.Input((4,))
    h = layers.Dense(4)(inp)
    out = (2.0 - h) * 3.0 + h / 2.0 - 1.0 / (h * h + 1.0) + (-h)
    model = shendu.Model(inp, out)
    x = np.random.default_rng(3).normal(size=(2, 4)).astype("float32")
    kernel, bias = model.layers[1].get_weights()
    v = x @ kernel + bias
    np.testing.assert_allclose(model.predict(x, verbose=0), (2 - v) * 3 + v / 2 - 1 / (v * v + 1) - v, rtol=1e-5,
                               atol=1e-5)


def test_unsupported_function_says_which_and_what_to_use():
    h = layers.Dense(4)(shendu.Input((4,)))
    with pytest.raises(TypeError, match=r"ops\.one_hot cannot run on a functional model's symbolic tensor.*layer"):
        ops.one_hot(h, 3)
    with pytest.raises(TypeError, match=r"ops\.argmax cannot run"):
        ops.argmax(h, axis=-1)


def test_save_is_weights_only_with_a_clear_message(tmp_path):
    model = _program(shendu)
    with pytest.warns(UserWarning, match=r"layer 'relu(_\d+)?' records ops\.relu .*Use a layer instead"):
        model.save(tmp_path / "m.shendu")
    with pytest.raises(ValueError, match=r"ops\.relu"):
        model.layers[2].get_config()


def test_eager_paths_unchanged():
    a = np.array([-1.0, 2.0], dtype="float32")
    out = ops.relu(a)
    assert type(out) is np.ndarray
    np.testing.assert_array_equal(out, [0.0, 2.0])
    t = Tensor(a, requires_grad=True)
    y = ops.relu(t)
    assert isinstance(y, Tensor)
    y.sum().backward()
    np.testing.assert_array_equal(np.asarray(t.grad.numpy() if hasattr(t.grad, "numpy") else t.grad), [0.0, 1.0])
    with pytest.raises(ValueError):
        ops.reshape(np.ones(4), (3, 2))
    assert isinstance(ops.greater(a, 0), Tensor)
