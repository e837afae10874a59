"""``keras.ops`` functions on a functional model's symbolic tensors (issue 11): each call becomes a node of the
graph (an ``OpLayer``), trains through fit with the op's own gradient, and matches Keras 3 on the same weights."""

import json
import os
import re
import warnings
import zipfile

import numpy as np
import pytest

import shendu
from shendu import layers, ops
from shendu.autograd.tensor import Tensor
from shendu.layers import OpLayer
from shendu.saving import FormatError

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


def _constants_program():
    inp = shendu.Input((8,))
    x = layers.Dense(4)(inp)
    x = x * 2.0 + 1.0
    x = ops.clip(x, -1.5, 1.5)
    x = ops.reshape(x, (-1, 2, 2))
    x = ops.transpose(x, axes=(0, 2, 1))
    x = ops.cast(x, "float64")
    out = ops.reshape(x, (-1, 4))
    return shendu.Model(inp, out)


@pytest.mark.parametrize("make", [lambda: _program(shendu), _constants_program], ids=["issue", "constants"])
@pytest.mark.parametrize("how", ["save", "json"])
def test_models_with_ops_round_trip(tmp_path, make, how):
    model = make()
    model.compile(optimizer="adam", loss="mse")
    x, _ = _data(32)
    y = np.random.default_rng(1).normal(size=model.predict(x, verbose=0).shape).astype("float32")
    model.fit(x, y, epochs=1, verbose=0)
    if how == "save":
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no "weights only" warning any more
            model.save(tmp_path / "m.shendu")
        loaded = shendu.models.load_model(tmp_path / "m.shendu")
    else:
        loaded = shendu.models.model_from_json(model.to_json())
        loaded.set_weights(model.get_weights())
        loaded.compile(optimizer="adam", loss="mse")
    assert [type(layer).__name__ for layer in loaded.layers] == [type(layer).__name__ for layer in model.layers]
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    first = loaded.evaluate(x, y, verbose=0)
    loaded.fit(x, y, epochs=20, verbose=0)
    assert loaded.evaluate(x, y, verbose=0) < first


def test_constants_survive_the_round_trip():
    model = shendu.models.model_from_json(_constants_program().to_json())
    ops_by_class = {type(layer.op).__name__: layer.op for layer in model.layers if isinstance(layer, OpLayer)}
    assert (ops_by_class["ClipOp"].lo, ops_by_class["ClipOp"].hi) == (-1.5, 1.5)
    assert ops_by_class["TransposeOp"].axes == (0, 2, 1)
    assert np.dtype(ops_by_class["AstypeOp"].dtype) == np.float64
    x, _ = _data(4)
    kernel, bias = model.layers[1].get_weights()
    v = np.clip((x @ kernel + bias) * 2 + 1, -1.5, 1.5).reshape(-1, 2, 2).transpose(0, 2, 1).reshape(-1, 4)
    out = model.predict(x, verbose=0)
    np.testing.assert_allclose(out, v, rtol=1e-6)


@pytest.mark.parametrize("change", [
    lambda c: c.update(op="os.system"),
    lambda c: c.update(op="NoSuchOp"),
    lambda c: c["op_config"].update(shape={"__numpy__": [1, 2]}),
    lambda c: c["op_config"].update(shape={"tuple": [1], "code": "x"}),
    lambda c: c["op_config"].update(evil=1),
    lambda c: c["op_config"].update(shape={"dtype": "object"}),
    lambda c: c["op_config"].update(shape={"tuple": [1, 50000, 50000]}),
    lambda c: c["op_config"].update(shape=2**40),
], ids=["module", "unknown", "non-json", "extra-key", "extra-arg", "dtype", "huge-shape", "huge-int"])
def test_hostile_op_configs_are_refused(tmp_path, change):
    _program(shendu).save(tmp_path / "m.shendu")
    with zipfile.ZipFile(tmp_path / "m.shendu") as z:
        entries = {name: z.read(name) for name in z.namelist()}
    key = next(k for k, v in entries.items() if b'"OpLayer"' in v)
    doc = json.loads(entries[key])

    def patch(value):
        if isinstance(value, dict):
            if value.get("class_name") == "OpLayer" and value["config"].get("op") == "ReshapeOp":
                change(value["config"])
            for v in value.values():
                patch(v)
        elif isinstance(value, list):
            for v in value:
                patch(v)

    patch(doc)
    entries[key] = json.dumps(doc).encode()
    with zipfile.ZipFile(tmp_path / "bad.shendu", "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
    with pytest.raises(FormatError):
        shendu.models.load_model(tmp_path / "bad.shendu")
    with pytest.raises(FormatError):
        shendu.models.model_from_json(json.dumps(doc) if "class_name" in doc and "config" in doc else
                                      json.dumps(doc.get("architecture", doc)))


def test_an_op_with_a_non_json_argument_saves_weights_only_with_a_clear_message(tmp_path):
    inp = shendu.Input((4,))
    out = ops.pad(layers.Dense(4)(inp), np.array([[0, 0], [1, 1]]))
    model = shendu.Model(inp, out)
    with pytest.raises(ValueError, match=r"ops\.pad .*Use a layer instead"):
        model.layers[2].get_config()
    with pytest.warns(UserWarning, match=r"records ops\.pad .*Use a layer instead"):
        model.save(tmp_path / "m.shendu")


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


def test_a_small_file_cannot_make_op_shape_inference_allocate_much():
    """Op layers hold no weights, so the weight budget does not bound them: their arguments are bounded instead."""
    from shendu.layers.op_layer import MAX_OP_ARGUMENT, op_from_config

    assert op_from_config("BroadcastToOp", {"shape": {"tuple": [None, 4096, 4096]}}).shape == (None, 4096, 4096)
    with pytest.raises(ValueError, match="over the limit 16,777,216"):
        op_from_config("BroadcastToOp", {"shape": {"tuple": [None, 65536, 65536]}})
    with pytest.raises(ValueError, match="over the limit"):
        op_from_config("BroadcastToOp", {"shape": MAX_OP_ARGUMENT + 1})


def test_an_op_on_symbolic_tensors_records_one_node_and_nothing_else():
    """The op is recorded before any of its forward runs: GeluOp's forward multiplies x by a constant, which on a
    symbolic tensor used to record a stray 'multiply' node before erf failed."""
    inp = shendu.Input((4,))
    before = shendu.ops.multiply(inp, inp).node.layer.name  # names count per process: take the next one
    y = shendu.ops.gelu(inp)
    z = shendu.ops.multiply(y, y)
    number = int(before.rsplit("_", 1)[1]) if "_" in before else 0
    assert z.node.layer.name == f"multiply_{number + 1}", "a node was recorded in between"
    model = shendu.Model(inp, z)
    assert [type(layer.op).__name__ for layer in model.layers[1:]] == ["GeluOp", "MulOp"]
