"""Interop: PyTorch state_dicts and Keras weight files, loaded into the equivalent shendu models, give the same
outputs."""

from __future__ import annotations

import os

import numpy as np
import pytest

import shendu
from shendu.interop import load_keras_weights, load_torch_state_dict, read_state_dict
from shendu.layers import (
    GRU,
    LSTM,
    Activation,
    BatchNormalization,
    Bidirectional,
    Conv1D,
    Conv2D,
    Conv2DTranspose,
    Dense,
    DepthwiseConv2D,
    Flatten,
    Input,
    LayerNormalization,
)
from shendu.layers.embedding import Embedding
from shendu.models import Model, Sequential

torch = pytest.importorskip("torch")
nn = torch.nn
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")  # keras


def _shendu_out(model, x) -> np.ndarray:
    return np.asarray(model(x, training=False).data)


def _torch_out(module, x) -> np.ndarray:
    module.eval()
    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()


def _nchw(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


class _CNN(nn.Module):
    """Named modules: safetensors sorts them (bn1 < conv1 < fc), so matching must use the shapes."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 5 * 6, 3)

    def forward(self, x):
        return self.fc(torch.flatten(torch.relu(self.bn1(self.conv1(x))), 1))


def _shendu_cnn():
    return Sequential([Input(shape=(5, 6, 3), dtype="float64"), Conv2D(4, 3, padding="same", dtype="float64"),
                       BatchNormalization(epsilon=1e-5, dtype="float64"), Activation("relu", dtype="float64"),
                       Flatten(dtype="float64"), Dense(3, dtype="float64")], dtype="float64")


def _trained_cnn():
    torch.manual_seed(0)
    net = _CNN().double()
    with torch.no_grad():  # non-trivial running statistics
        net.bn1.running_mean.uniform_(-1, 1)
        net.bn1.running_var.uniform_(0.5, 2)
        net.bn1.weight.uniform_(0.5, 1.5)
        net.bn1.bias.uniform_(-0.5, 0.5)
    return net


@pytest.mark.parametrize("form", ["dict", "module", "safetensors", "pt"])
def test_torch_cnn_matches_in_every_source_form(tmp_path, form):
    net = _trained_cnn()
    source = {"dict": lambda: net.state_dict(), "module": lambda: net}.get(form, lambda: None)()
    if form == "safetensors":
        from safetensors.torch import save_file

        source = tmp_path / "cnn.safetensors"
        save_file(net.state_dict(), str(source))
    elif form == "pt":
        source = tmp_path / "cnn.pt"
        torch.save(net.state_dict(), source)
    model = _shendu_cnn()
    placed = load_torch_state_dict(model, source)
    assert sorted(placed.values()) == ["bn1", "conv1", "fc"]
    x = np.random.default_rng(0).normal(size=(2, 5, 6, 3))
    np.testing.assert_allclose(_shendu_out(model, x), _torch_out(net, _nchw(x)), rtol=1e-10, atol=1e-12)


def test_torch_mlp_and_layer_norm():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(6, 8), nn.LayerNorm(8), nn.Tanh(), nn.Linear(8, 2, bias=False)).double()
    f64 = {"dtype": "float64"}
    model = Sequential([Dense(8, input_dim=6, **f64), LayerNormalization(epsilon=1e-5, **f64),
                        Activation("tanh", **f64), Dense(2, use_bias=False, **f64)], **f64)
    assert load_torch_state_dict(model, net) == {model.layers[0].name: "0", model.layers[1].name: "1",
                                                 model.layers[3].name: "3"}
    x = np.random.default_rng(1).normal(size=(4, 6))
    np.testing.assert_allclose(_shendu_out(model, x), _torch_out(net, x), rtol=1e-10, atol=1e-12)


class _Text(nn.Module):
    def __init__(self, cell: str, bidirectional: bool = False, num_layers: int = 1):
        super().__init__()
        self.emb = nn.Embedding(11, 4)
        self.rnn = getattr(nn, cell)(4, 5, batch_first=True, bidirectional=bidirectional, num_layers=num_layers)
        self.out = nn.Linear(5 * (2 if bidirectional else 1), 2)

    def forward(self, ids):
        seq, _ = self.rnn(self.emb(ids))
        return self.out(seq[:, -1])


def _shendu_text(cell: str, bidirectional: bool = False, num_layers: int = 1, sequences: bool = False):
    """The shendu twin of _Text; ``sequences=True`` stops at the last RNN's full output sequence."""
    layers = [Input(shape=(7,), dtype="int64"), Embedding(11, 4, dtype="float64")]
    shendu_cell = {"LSTM": LSTM, "GRU": GRU, "RNN": shendu.layers.recurrent.SimpleRNN}[cell]
    for i in range(num_layers):
        layer = shendu_cell(5, return_sequences=sequences or i < num_layers - 1, dtype="float64")
        layers.append(Bidirectional(layer, dtype="float64") if bidirectional else layer)
    if not sequences:
        layers.append(Dense(2, dtype="float64"))
    return Sequential(layers, dtype="float64")


@pytest.mark.parametrize("cell,bidirectional,num_layers", [("LSTM", False, 1), ("GRU", False, 1), ("RNN", False, 1),
                                                            ("LSTM", False, 2), ("GRU", True, 1), ("LSTM", True, 2)])
def test_torch_recurrent_models(cell, bidirectional, num_layers):
    torch.manual_seed(2)
    net = _Text(cell, bidirectional, num_layers).double().eval()
    ids = np.random.default_rng(2).integers(0, 11, size=(3, 7))
    if not bidirectional:
        model = _shendu_text(cell, bidirectional, num_layers)
        load_torch_state_dict(model, net)
        np.testing.assert_allclose(_shendu_out(model, ids), _torch_out(net, ids), rtol=1e-9, atol=1e-11)
    # whole output sequences (for bidirectional RNNs the last step alone would hide the reverse direction)
    model = _shendu_text(cell, bidirectional, num_layers, sequences=True)
    placed = load_torch_state_dict(model, net, strict=False)  # the classifier 'out' has no twin here
    assert "out" not in placed.values()
    with torch.no_grad():
        theirs = net.rnn(net.emb(torch.from_numpy(ids)))[0].numpy()
    np.testing.assert_allclose(_shendu_out(model, ids), theirs, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("kind", ["conv1d", "depthwise", "grouped", "transpose"])
def test_torch_conv_variants(kind):
    torch.manual_seed(3)
    rng = np.random.default_rng(3)
    if kind == "conv1d":
        net, layer, x = nn.Conv1d(3, 4, 3), Conv1D(4, 3, dtype="float64"), rng.normal(size=(2, 8, 3))
    elif kind == "depthwise":
        net = nn.Conv2d(3, 6, 3, groups=3)
        layer, x = DepthwiseConv2D(3, depth_multiplier=2, dtype="float64"), rng.normal(size=(2, 6, 6, 3))
    elif kind == "grouped":
        net, layer, x = nn.Conv2d(4, 6, 3, groups=2), Conv2D(6, 3, groups=2, dtype="float64"), rng.normal(
            size=(2, 6, 6, 4))
    else:
        net = nn.ConvTranspose2d(3, 4, 3, stride=2)
        layer, x = Conv2DTranspose(4, 3, strides=2, dtype="float64"), rng.normal(size=(2, 4, 4, 3))
    net = net.double()
    layer(x)  # build
    load_torch_state_dict(layer, net)
    channels_first = (0, 2, 1) if x.ndim == 3 else (0, 3, 1, 2)
    theirs = _torch_out(net, np.ascontiguousarray(x.transpose(channels_first)))
    back = (0, 2, 1) if x.ndim == 3 else (0, 2, 3, 1)
    np.testing.assert_allclose(_shendu_out(layer, x), theirs.transpose(back), rtol=1e-10, atol=1e-12)


def test_torch_functional_model_follows_the_graph():
    torch.manual_seed(4)
    net = _trained_cnn()
    inputs = Input(shape=(5, 6, 3), dtype="float64")
    h = Conv2D(4, 3, padding="same", dtype="float64")(inputs)
    h = Activation("relu", dtype="float64")(BatchNormalization(epsilon=1e-5, dtype="float64")(h))
    model = Model(inputs, Dense(3, dtype="float64")(Flatten(dtype="float64")(h)), dtype="float64")
    load_torch_state_dict(model, net.state_dict())
    x = np.random.default_rng(4).normal(size=(2, 5, 6, 3))
    np.testing.assert_allclose(_shendu_out(model, x), _torch_out(net, _nchw(x)), rtol=1e-10, atol=1e-12)


def test_torch_errors_name_the_layer_and_shapes():
    net = nn.Sequential(nn.Linear(6, 8), nn.Linear(8, 2))
    wrong = Sequential([Dense(7, input_dim=6), Dense(2)])
    with pytest.raises(ValueError, match=r"layer 'dense.*\(6, 7\)"):
        load_torch_state_dict(wrong, net)
    short = Sequential([Dense(8, input_dim=6)])
    with pytest.raises(ValueError, match="no layer of the model took.*'1'"):
        load_torch_state_dict(short, net)
    assert list(load_torch_state_dict(short, net, strict=False).values()) == ["0"]
    unbuilt = Sequential([Dense(8), Dense(2)])
    with pytest.raises(ValueError, match="not built"):
        load_torch_state_dict(unbuilt, net)


def test_torch_mapping_overrides_the_order():
    net = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4)).double()
    model = Sequential([Dense(4, input_dim=4, dtype="float64", name="a"), Dense(4, dtype="float64", name="b")])
    assert load_torch_state_dict(model, net, mapping={"a": "1", "b": "0"}) == {"a": "1", "b": "0"}
    np.testing.assert_array_equal(model.layers[0].kernel.data, net[1].weight.detach().numpy().T)
    with pytest.raises(KeyError, match="not in the file"):
        load_torch_state_dict(model, net, mapping={"a": "fc9"})
    with pytest.raises(KeyError, match="no weighted layer called so"):
        load_torch_state_dict(model, net, mapping={"dense_99": "0"})


def test_read_state_dict_sorts_safetensors_keys_naturally(tmp_path):
    from safetensors.numpy import save_file

    path = os.fspath(tmp_path / "w.safetensors")
    save_file({f"layers.{i}.weight": np.full((1,), float(i)) for i in (10, 2, 1)}, path)
    assert list(read_state_dict(path)) == ["layers.1.weight", "layers.2.weight", "layers.10.weight"]


# ---------------------------------------------------------------------------- Keras
@pytest.fixture(scope="module")
def keras_files(tmp_path_factory):
    """Keras models with non-trivial weights saved as .weights.h5, .keras and legacy .h5, with their outputs."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    pytest.importorskip("h5py")
    folder = tmp_path_factory.mktemp("keras")
    rng = np.random.default_rng(5)
    L = keras.layers
    cnn = keras.Sequential([keras.Input((6, 6, 2)), L.Normalization(), L.Conv2D(4, 3, padding="same"),
                            L.BatchNormalization(),
                            L.ReLU(), L.MaxPooling2D(), L.Flatten(), L.Dense(3)])
    ids = keras.Input((7,), dtype="int32")
    seq = L.LSTM(5, return_sequences=True)(L.Embedding(11, 4)(ids))
    merged = L.concatenate([L.GRU(3)(seq), L.Bidirectional(L.LSTM(2))(seq)])
    text = keras.Model(ids, L.Dense(1)(merged))
    image = keras.Input((6, 6, 3))
    h = L.Conv2DTranspose(3, 3, strides=2)(L.SeparableConv2D(5, 3, padding="same")(L.DepthwiseConv2D(3, 2)(image)))
    nested = keras.Model(image, keras.Sequential([L.Dense(4), L.LayerNormalization()])(L.GlobalAveragePooling2D()(h)))
    files, outputs = {}, {}
    for name, model, x in (("cnn", cnn, rng.normal(size=(2, 6, 6, 2)).astype("float32")),
                           ("text", text, rng.integers(0, 11, size=(3, 7)).astype("int32")),
                           ("nested", nested, rng.normal(size=(2, 6, 6, 3)).astype("float32"))):
        model.set_weights([rng.uniform(0.5, 1.5, w.shape).astype(w.dtype) if "variance" in w.path
                           else np.array(9, w.dtype) if "count" in w.path
                           else rng.normal(0, 0.5, w.shape).astype(w.dtype) for w in model.weights])
        for suffix in (".weights.h5", ".keras", ".h5"):
            path = os.fspath(folder / f"{name}{suffix}")
            model.save_weights(path) if suffix == ".weights.h5" else model.save(path)
            files[name, suffix] = path
        outputs[name] = (x, keras.ops.convert_to_numpy(model(x, training=False)))
    return files, outputs


def _keras_twin(name: str):
    if name == "cnn":
        from shendu.layers import MaxPooling2D
        from shendu.layers.preprocessing import Normalization

        return Sequential([Input(shape=(6, 6, 2)), Normalization(), Conv2D(4, 3, padding="same"), BatchNormalization(),
                           Activation("relu"), MaxPooling2D(), Flatten(), Dense(3)])
    if name == "nested":
        from shendu.layers import GlobalAveragePooling2D, SeparableConv2D

        image = Input(shape=(6, 6, 3))
        h = Conv2DTranspose(3, 3, strides=2)(SeparableConv2D(5, 3, padding="same")(DepthwiseConv2D(3, 2)(image)))
        return Model(image, Sequential([Dense(4), LayerNormalization()])(GlobalAveragePooling2D()(h)))
    ids = Input(shape=(7,), dtype="int32")
    seq = LSTM(5, return_sequences=True)(Embedding(11, 4)(ids))
    merged = shendu.layers.concatenate([GRU(3)(seq), Bidirectional(LSTM(2))(seq)])
    return Model(ids, Dense(1)(merged))


@pytest.mark.parametrize("suffix", [".weights.h5", ".keras", ".h5"])
@pytest.mark.parametrize("name", ["cnn", "text", "nested"])
def test_keras_files_load_into_the_shendu_twin(keras_files, name, suffix):
    files, outputs = keras_files
    model = _keras_twin(name)
    placed = load_keras_weights(model, files[name, suffix])
    assert len(placed) == len([layer for layer in model.layers if layer.weights]) + (name == "nested")
    x, expected = outputs[name]
    np.testing.assert_allclose(_shendu_out(model, x), expected, rtol=2e-5, atol=2e-6)


def test_keras_loader_rejects_other_architectures_and_files(keras_files, tmp_path):
    files, _ = keras_files
    wrong = Sequential([Input(shape=(6, 6, 2)), Conv2D(5, 3, padding="same"), Flatten(), Dense(3)])
    with pytest.raises(ValueError, match=r"conv2d.*\(3, 3, 2, 5\)"):
        load_keras_weights(wrong, files["cnn", ".weights.h5"])
    bogus = tmp_path / "bogus.weights.h5"
    bogus.write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="not an HDF5"):
        load_keras_weights(wrong, bogus)


def test_model_load_weights_takes_a_pytorch_checkpoint(tmp_path):
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2)).double()
    path = tmp_path / "net.pt"
    torch.save(net.state_dict(), path)
    model = Sequential([Dense(3, activation="tanh", input_dim=4, dtype="float64"), Dense(2, dtype="float64")])
    model.load_weights(str(path))
    x = np.random.default_rng(0).normal(size=(5, 4))
    np.testing.assert_allclose(_shendu_out(model, x), _torch_out(net, x), rtol=1e-10, atol=1e-12)
