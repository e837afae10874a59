"""Saving: round trips of whole models and weights, atomic writes, rejection of bad files, stored fixtures."""

from __future__ import annotations

import io
import json
import os
import struct
import zipfile

import numpy as np
import pytest

import shendu
from shendu import saving
from shendu.layers import BatchNormalization, Dense, Dropout, Input, Lambda, Layer, concatenate
from shendu.models import Model, Sequential, load_model
from shendu.saving import FormatError
from shendu.utils.atomic import atomic_write_bytes

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


def _mlp(compile_it: bool = True) -> Sequential:
    model = Sequential([Dense(6, activation="relu", input_dim=3), Dropout(0.1), BatchNormalization(), Dense(2)])
    if compile_it:
        model.compile(optimizer=shendu.optimizers.Adam(0.01), loss="mse", metrics=["mae"])
    return model


def _trained_file(tmp_path) -> tuple[Sequential, str, np.ndarray]:
    x = np.random.default_rng(1).normal(size=(20, 3)).astype("float32")
    model = _mlp()
    model.fit(x, x[:, :2], epochs=2, batch_size=5, verbose=0)
    path = str(tmp_path / "model.shendu")
    model.save(path)
    return model, path, x


def _entries(path: str) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _write_zip(path: str, entries: list[tuple[str, bytes]]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries:
            archive.writestr(name, data)


def _replace(path: str, out: str, **changes: bytes) -> str:
    entries = _entries(path)
    entries.update({k.replace("__", "."): v for k, v in changes.items()})
    _write_zip(out, list(entries.items()))
    return out


# ---------------------------------------------------------------------------- round trips
def test_sequential_round_trip_restores_predictions_optimizer_and_history(tmp_path):
    model, path, x = _trained_file(tmp_path)
    loaded = load_model(path)
    assert isinstance(loaded, Sequential) and [type(layer) for layer in loaded.layers] == [
        type(layer) for layer in model.layers]
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.optimizer.iterations == model.optimizer.iterations == 8
    assert type(loaded.optimizer) is type(model.optimizer) and loaded.optimizer.learning_rate == 0.01
    assert loaded.history.history["loss"] == model.history.history["loss"]
    loaded.fit(x, x[:, :2], epochs=1, batch_size=5, verbose=0)  # the pending optimiser slots attach cleanly
    assert loaded.optimizer.iterations == 12
    assert saving.read_training_state(path)["epoch"] == 2


def test_optimizer_slots_are_restored_exactly(tmp_path):
    model, path, x = _trained_file(tmp_path)
    loaded = load_model(path)
    state = shendu.random.get_state()  # the generator as it was at save time (load_model restored it)
    loaded.train_on_batch(x[:5], x[:5, :2])
    shendu.random.set_state(state)  # the same dropout masks for the original model
    model.train_on_batch(x[:5], x[:5, :2])
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_functional_model_with_two_inputs_two_outputs_and_nested_sequential(tmp_path):
    a, b = Input(shape=(4,), name="in_a"), Input(shape=(4,))
    inner = Sequential([Dense(5, activation="tanh", input_dim=4), Dense(4)], name="inner")
    shared = Dense(3, name="shared")
    h = inner(a)
    merged = concatenate([shared(h), shared(b)])
    model = Model([a, b], [Dense(1, name="main")(merged), Dense(2, name="aux")(h)])
    model.compile("sgd", loss=["mse", "mae"], loss_weights=[1.0, 0.3])
    path = str(tmp_path / "f.shendu")
    model.save(path)
    loaded = load_model(path)
    xa = np.random.default_rng(0).normal(size=(3, 4)).astype("float32")
    xb = np.random.default_rng(1).normal(size=(3, 4)).astype("float32")
    for got, want in zip(loaded.predict([xa, xb], verbose=0), model.predict([xa, xb], verbose=0)):
        np.testing.assert_array_equal(got, want)
    assert loaded.output_names == model.output_names
    assert loaded.count_params() == model.count_params()


def test_load_without_compile_gives_bare_model(tmp_path):
    _, path, _ = _trained_file(tmp_path)
    loaded = load_model(path, compile=False)
    assert not loaded.compiled and loaded.optimizer is None


def test_unbuilt_sequential_is_saved_after_it_sees_data(tmp_path):
    model = Sequential([Dense(3), Dense(1)])
    model.predict(np.ones((2, 5), dtype="float32"), verbose=0)
    path = str(tmp_path / "m.shendu")
    model.save(path)
    np.testing.assert_array_equal(load_model(path).predict(np.ones((2, 5), "float32"), verbose=0),
                                  model.predict(np.ones((2, 5), "float32"), verbose=0))


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_save_and_load_weights(tmp_path, suffix):
    model, path, x = _trained_file(tmp_path)
    other = _mlp(compile_it=False)
    weights_path = str(tmp_path / f"w.weights{suffix}")
    model.save_weights(weights_path)
    other.load_weights(weights_path)
    np.testing.assert_array_equal(other.predict(x, verbose=0), model.predict(x, verbose=0))
    fresh = _mlp(compile_it=False)
    fresh.load_weights(path)  # the weights of a whole-model file
    np.testing.assert_array_equal(fresh.predict(x, verbose=0), model.predict(x, verbose=0))
    with pytest.raises(FileExistsError, match="overwrite"):
        model.save_weights(weights_path, overwrite=False)


def test_load_weights_rejects_other_architecture(tmp_path):
    model, _, _ = _trained_file(tmp_path)
    model.save_weights(str(tmp_path / "w.safetensors"))
    wider = Sequential([Dense(7, activation="relu", input_dim=3), Dropout(0.1), BatchNormalization(), Dense(2)])
    with pytest.raises(FormatError, match=r"shape \(3, 6\).*expects \(3, 7\)"):
        wider.load_weights(str(tmp_path / "w.safetensors"))
    with pytest.raises(FormatError, match="holds 8 weights.*has 2"):
        Sequential([Dense(2, input_dim=3)]).load_weights(str(tmp_path / "w.safetensors"))
    double = Sequential([Dense(6, activation="relu", input_dim=3, dtype="float64"), Dropout(0.1),
                         BatchNormalization(dtype="float64"), Dense(2, dtype="float64")])
    with pytest.raises(FormatError, match="dtype float32.*float64"):
        double.load_weights(str(tmp_path / "w.safetensors"))


def test_weight_file_names_are_stable_paths(tmp_path):
    model, _, _ = _trained_file(tmp_path)
    model.save_weights(str(tmp_path / "w.npz"))
    with np.load(tmp_path / "w.npz") as data:
        assert data.files == [f"{i:04d}/{p.name}" for i, p in enumerate(model.weights)]
        assert data.files[0] == f"0000/{model.layers[0].name}/kernel"


# ---------------------------------------------------------------------------- subclassed models and custom classes
class SavingTestScale(Layer):
    def __init__(self, factor: float = 2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        return x * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


class SavingTestTwoDense(Model):
    def __init__(self, hidden: int = 4, **kwargs):
        super().__init__(**kwargs)
        self.hidden_units = hidden
        self.first = Dense(hidden, activation="relu")
        self.second = Dense(1)

    def call(self, x, training=None):
        return self.second(self.first(x))

    def get_config(self):
        return {"hidden": self.hidden_units, "name": self.name}


class SavingTestNoConfig(Model):
    def __init__(self, callback):
        super().__init__()
        self.callback = callback
        self.dense = Dense(2)

    def call(self, x, training=None):
        return self.dense(x)

    def get_config(self):
        raise NotImplementedError("SavingTestNoConfig has no config")


def test_custom_layer_needs_registration_or_custom_objects(tmp_path):
    model = Sequential([Dense(2, input_dim=3), SavingTestScale(3.0)])
    path = str(tmp_path / "c.shendu")
    model.save(path)
    with pytest.raises(FormatError, match="unknown layer class 'SavingTestScale'.*register_serializable"):
        load_model(path)
    loaded = load_model(path, custom_objects={"SavingTestScale": SavingTestScale})
    assert loaded.layers[1].factor == 3.0
    x = np.ones((2, 3), dtype="float32")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_subclassed_model_with_config(tmp_path):
    model = SavingTestTwoDense(5)
    model.build((None, 3))
    path = str(tmp_path / "s.shendu")
    model.save(path)
    with pytest.raises(FormatError, match="unknown model class 'SavingTestTwoDense'"):
        load_model(path)
    loaded = load_model(path, custom_objects={"SavingTestTwoDense": SavingTestTwoDense})
    x = np.ones((2, 3), dtype="float32")
    assert loaded.hidden_units == 5
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_subclassed_model_without_config_saves_weights_only(tmp_path):
    model = SavingTestNoConfig(print)
    model.build((None, 3))
    path = str(tmp_path / "n.shendu")
    with pytest.warns(UserWarning, match="weights .*only"):
        model.save(path)
    with pytest.raises(FormatError, match="weights only.*load_weights"):
        load_model(path)
    other = SavingTestNoConfig(print)
    other.build((None, 3))
    other.load_weights(path)
    np.testing.assert_array_equal(other.get_weights()[0], model.get_weights()[0])


def test_lambda_model_is_saved_without_code_and_refused_on_load(tmp_path):
    model = Sequential([Dense(2, input_dim=3), Lambda(lambda t: t * 2)])
    path = str(tmp_path / "l.shendu")
    with pytest.warns(UserWarning, match="Lambda"):
        model.save(path)
    with pytest.raises(FormatError, match="Lambda"):
        load_model(path)
    stored = json.loads(_entries(path)["config.json"])["model"]
    assert stored["config"] is None and "is a Lambda layer" in stored["reason"]  # no trace of the function


def test_custom_loss_function_is_not_stored_but_model_loads(tmp_path):
    def my_loss(y_true, y_pred):
        return shendu.losses.mean_squared_error(y_true, y_pred)

    model = _mlp(compile_it=False)
    model.compile("sgd", loss=my_loss)
    path = str(tmp_path / "x.shendu")
    with pytest.warns(UserWarning, match="compile"):
        model.save(path)
    loaded = load_model(path)
    assert not loaded.compiled


# ---------------------------------------------------------------------------- atomic writes
def test_crash_mid_save_leaves_previous_file_intact(tmp_path, monkeypatch):
    model, path, x = _trained_file(tmp_path)
    before = open(path, "rb").read()
    model.fit(x, x[:, :2], epochs=1, verbose=0)
    calls = {"n": 0}
    original = zipfile.ZipFile.writestr

    def failing_writestr(self, info, data, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # after two entries are already in the temporary zip
            raise OSError("disk full (simulated)")
        return original(self, info, data, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "writestr", failing_writestr)
    with pytest.raises(OSError, match="simulated"):
        model.save(path)
    monkeypatch.undo()
    assert open(path, "rb").read() == before
    assert sorted(os.listdir(tmp_path)) == ["model.shendu"]  # no temporary file left behind
    load_model(path)


def test_crash_mid_save_weights_leaves_previous_file_intact(tmp_path, monkeypatch):
    model, _, _ = _trained_file(tmp_path)
    path = str(tmp_path / "w.npz")
    model.save_weights(path)
    before = open(path, "rb").read()

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(KeyboardInterrupt):
        model.save_weights(path)
    assert open(path, "rb").read() == before
    assert sorted(os.listdir(tmp_path)) == ["model.shendu", "w.npz"]


def test_atomic_write_keeps_permissions_of_replaced_file(tmp_path):
    path = str(tmp_path / "f.bin")
    atomic_write_bytes(path, b"one")
    os.chmod(path, 0o640)
    atomic_write_bytes(path, b"two")
    assert open(path, "rb").read() == b"two" and os.stat(path).st_mode & 0o777 == 0o640


# ---------------------------------------------------------------------------- rejection of bad files
def test_truncated_and_non_zip_files_are_rejected(tmp_path):
    _, path, _ = _trained_file(tmp_path)
    data = open(path, "rb").read()
    for cut in (0, 10, len(data) // 2, len(data) - 5):
        bad = tmp_path / f"cut{cut}.shendu"
        bad.write_bytes(data[:cut])
        with pytest.raises(FormatError, match=f"cut{cut}.shendu"):
            load_model(str(bad))
    text = tmp_path / "text.shendu"
    text.write_text("hello")
    with pytest.raises(FormatError, match="not a readable shendu model"):
        load_model(str(text))
    with pytest.raises(FileNotFoundError, match="missing.shendu"):
        load_model(str(tmp_path / "missing.shendu"))


def test_flipped_byte_fails_the_crc(tmp_path):
    _, path, _ = _trained_file(tmp_path)
    data = bytearray(open(path, "rb").read())
    start = data.index(b"weights.safetensors") + 200  # inside the stored weights
    data[start] ^= 0xFF
    bad = tmp_path / "flip.shendu"
    bad.write_bytes(bytes(data))
    with pytest.raises(FormatError, match="CRC|corrupt|Bad"):
        load_model(str(bad))


def test_malformed_json_and_wrong_types(tmp_path):
    _, path, _ = _trained_file(tmp_path)
    cases = {"config.json": (b"{not json", "config.json is not valid JSON"),
             "meta.json": (b"[1, 2]", "meta.json must hold a JSON object"),
             "training.json": (b'{"epoch": -1, "iterations": 0, "rng": {}}', "'epoch' must be a non-negative"),
             "optimizer.json": (b'{"class_name": "Adam", "slots": 3}', "'slots' must be a list")}
    for entry, (content, message) in cases.items():
        bad = _replace(path, str(tmp_path / "bad.shendu"), **{entry.replace(".", "__"): content})
        with pytest.raises(FormatError, match=message):
            load_model(bad)


def test_unknown_format_version_and_foreign_format(tmp_path):
    _, path, _ = _trained_file(tmp_path)
    meta = json.loads(_entries(path)["meta.json"])
    for changes, message in (({"format_version": 99}, "unknown format version 99.*upgrade"),
                             ({"format_version": "1"}, "unknown format version"),
                             ({"format": "keras"}, "not a shendu model file")):
        bad = _replace(path, str(tmp_path / "v.shendu"), meta__json=json.dumps({**meta, **changes}).encode())
        with pytest.raises(FormatError, match=message):
            load_model(bad)


def _with_layer_class(path: str, out: str, index: int, class_name: str, **config_changes) -> str:
    config = json.loads(_entries(path)["config.json"])
    layer = config["model"]["config"]["layers"][index]
    layer["class_name"] = class_name
    layer["config"].update(config_changes)
    return _replace(path, out, config__json=json.dumps(config).encode())


def test_unknown_and_dangerous_classes_are_refused(tmp_path):
    _, path, _ = _trained_file(tmp_path)
    out = str(tmp_path / "c.shendu")
    for class_name, message in (("os.system", "unknown layer class 'os.system'"),
                                ("Lambda", "Lambda layer"),
                                ("SavingTestScale", "unknown layer class 'SavingTestScale'"),  # a test-only class
                                ("__import__", "unknown layer class")):
        with pytest.raises(FormatError, match=message):
            load_model(_with_layer_class(path, out, 0, class_name))


def test_config_that_disagrees_with_weights_is_refused(tmp_path):
    _, path, _ = _trained_file(tmp_path)
    out = str(tmp_path / "s.shendu")
    with pytest.raises(FormatError, match="builds more weights than the file stores"):
        load_model(_with_layer_class(path, out, 0, "Dense", units=7))
    with pytest.raises(FormatError, match=r"shape \(3, 6\) in the file, the model expects \(3, 5\)"):
        load_model(_with_layer_class(path, out, 0, "Dense", units=5))
    with pytest.raises(FormatError, match="exceeds what the stored weights allow"):
        load_model(_with_layer_class(path, out, 0, "Dense", units=10**12))
    with pytest.raises(FormatError, match="builds more weights than the file stores"):
        load_model(_with_layer_class(path, out, 0, "Dense", dtype="float64"))
    with pytest.raises(FormatError, match="dtype float32 in the file, the model expects float16"):
        load_model(_with_layer_class(path, out, 0, "Dense", dtype="float16"))
    with pytest.raises(FormatError, match="cannot be rebuilt from its config"):
        load_model(_with_layer_class(path, out, 0, "Dense", units="many"))


def _safetensors(header: dict, body: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + body


def test_hostile_safetensors_headers_are_refused(tmp_path):
    _, path, _ = _trained_file(tmp_path)
    out = str(tmp_path / "h.shendu")
    cases = [(struct.pack("<Q", 2**62) + b"{}", "declares a header of"),
             (b"\x01\x02", "truncated"),
             (_safetensors({"0000/k": {"dtype": "F32", "shape": [10**9, 10**9], "data_offsets": [0, 4]}}, b"1234"),
              "needs .* bytes"),
             (_safetensors({"0000/k": {"dtype": "F32", "shape": [1], "data_offsets": [0, 8]}}, b"1234"),
              "outside the data"),
             (_safetensors({"0000/k": {"dtype": "O", "shape": [1], "data_offsets": [0, 4]}}, b"1234"),
              "unsupported dtype"),
             (_safetensors({"0000/k": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                            "0001/k": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"1234"),
              "overlap"),
             (_safetensors({"0000/k": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"1234"),
              "invalid shape")]
    for blob, message in cases:
        with pytest.raises(FormatError, match=message):
            load_model(_replace(path, out, weights__safetensors=blob))
    with pytest.raises(FormatError, match="needs .* bytes"):  # the same checks guard plain weight files
        (tmp_path / "w.safetensors").write_bytes(cases[2][0])
        _mlp(False).load_weights(str(tmp_path / "w.safetensors"))


def test_zip_entry_names_are_checked(tmp_path):
    _, path, _ = _trained_file(tmp_path)
    entries = list(_entries(path).items())
    out = str(tmp_path / "z.shendu")
    cases = [(entries + [("../evil.json", b"{}")], "unsafe path"),
             (entries + [("/etc/passwd", b"x")], "unsafe path"),
             (entries + [("C:/x.json", b"x")], "unsafe path"),
             (entries + [("notes.txt", b"x")], "unexpected entry 'notes.txt'"),
             ([e for e in entries if e[0] != "weights.safetensors"], r"missing entries \['weights.safetensors'\]"),
             ([e for e in entries if e[0] != "optimizer.safetensors"], "must come together")]
    for listing, message in cases:
        _write_zip(out, listing)
        with pytest.raises(FormatError, match=message):
            load_model(out)
    with pytest.warns(UserWarning, match="Duplicate name"):
        _write_zip(out, entries + [entries[0]])
    with pytest.raises(FormatError, match="twice"):
        load_model(out)


def test_huge_declared_sizes_are_refused_before_reading(tmp_path):
    _, path, _ = _trained_file(tmp_path)
    data = bytearray(open(path, "rb").read())
    # the central directory records the uncompressed size at offset 24 of each entry; claim 1 TiB for config.json
    at = data.index(b"PK\x01\x02")
    while data[at + 46:at + 46 + 11] != b"config.json":
        at = data.index(b"PK\x01\x02", at + 4)
    data[at + 24:at + 28] = struct.pack("<I", 0xFFFFFFF0)
    bad = tmp_path / "huge.shendu"
    bad.write_bytes(bytes(data))
    with pytest.raises(FormatError, match="declares .* bytes, over the limit|compression ratio"):
        load_model(str(bad))
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in _entries(path).items():
            archive.writestr(name, content if name != "training.json" else b" " * (5 * 2**20) + b"{}")
    (tmp_path / "bomb.shendu").write_bytes(bomb.getvalue())
    with pytest.raises(FormatError, match="compression ratio"):
        load_model(str(tmp_path / "bomb.shendu"))


def test_format_error_is_a_value_error():
    assert issubclass(FormatError, ValueError)


def test_save_refuses_weight_suffix_and_unbuilt_model(tmp_path):
    with pytest.raises(ValueError, match="save_weights"):
        _mlp().save(str(tmp_path / "m.safetensors"))
    with pytest.raises(ValueError, match="not built"):
        Sequential([Dense(2)]).save(str(tmp_path / "m.shendu"))


# ---------------------------------------------------------------------------- files written by earlier versions
def test_fixtures_of_format_version_1_still_load_and_predict():
    expected = np.load(os.path.join(FIXTURES, "expected_v1.npz"))
    mlp = load_model(os.path.join(FIXTURES, "mlp_v1.shendu"))
    np.testing.assert_allclose(mlp.predict(expected["x"], verbose=0), expected["mlp"], rtol=1e-6, atol=1e-7)
    assert mlp.optimizer.iterations == 4 and mlp.name == "mlp"
    functional = load_model(os.path.join(FIXTURES, "functional_v1.shendu"))
    main, aux = functional.predict([expected["x"], expected["xb"]], verbose=0)
    np.testing.assert_allclose(main, expected["functional_main"], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(aux, expected["functional_aux"], rtol=1e-6, atol=1e-7)
    for suffix in ("safetensors", "npz"):
        weights_only = Sequential([Dense(8, activation="relu", input_dim=4), Dropout(0.2), BatchNormalization(),
                                   Dense(3, activation="softmax")])
        weights_only.load_weights(os.path.join(FIXTURES, f"mlp_v1.weights.{suffix}"))
        np.testing.assert_allclose(weights_only.predict(expected["x"], verbose=0), expected["mlp"], rtol=1e-6,
                                   atol=1e-7)


def test_model_checkpoint_writes_loadable_files_with_the_completed_epoch(tmp_path):
    x = np.random.default_rng(2).normal(size=(16, 3)).astype("float32")
    model = _mlp()
    pattern = str(tmp_path / "ckpt-{epoch:02d}.shendu")
    model.fit(x, x[:, :2], epochs=2, batch_size=8, verbose=0,
              callbacks=[shendu.callbacks.ModelCheckpoint(pattern, monitor="loss")])
    assert saving.read_training_state(pattern.format(epoch=1))["epoch"] == 1
    assert saving.read_training_state(pattern.format(epoch=2))["epoch"] == 2
    final = load_model(pattern.format(epoch=2))
    np.testing.assert_array_equal(final.predict(x, verbose=0), model.predict(x, verbose=0))


def test_restore_into_an_existing_model_pytorch_style(tmp_path):
    model, path, x = _trained_file(tmp_path)
    other = _mlp()
    state = saving.restore(other, path)
    assert state["epoch"] == 2 and state["iterations"] == 8
    np.testing.assert_array_equal(other.predict(x, verbose=0), model.predict(x, verbose=0))
    other.fit(x, x[:, :2], epochs=3, initial_epoch=state["epoch"], batch_size=5, verbose=0)
    assert other.optimizer.iterations == 12


def test_hostile_npz_weights_are_refused_before_allocation(tmp_path):
    model, _, _ = _trained_file(tmp_path)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (10**12,)})
    cases = [(header.getvalue() + b"1234", "declares 4000000000000 bytes"),
             (b"not an npy at all", "not a readable .npz")]
    for member, message in cases:
        path = str(tmp_path / "bad.npz")
        _write_zip(path, [("0000/dense/kernel.npy", member)])
        with pytest.raises(FormatError, match=message):
            model.load_weights(path)
    path = str(tmp_path / "objects.npz")
    np.savez(path, np.array([{"a": 1}], dtype=object))
    with pytest.raises(FormatError, match="not a numeric one"):
        model.load_weights(path)


class SavingTestFunctionalSubclass(Model):
    """A functional model whose class adds nothing to Model's config."""


def test_functional_subclass_without_config_is_stored_as_functional_and_loads_as_model(tmp_path):
    a = Input(shape=(3,))
    model = SavingTestFunctionalSubclass(a, Dense(2)(a))
    path = str(tmp_path / "f.shendu")
    model.save(path)
    assert json.loads(_entries(path)["config.json"])["model"]["class_name"] == "Functional"
    loaded = load_model(path)
    x = np.ones((2, 3), dtype="float32")
    assert type(loaded) is Model
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_a_metric_sharing_a_loss_class_name_reloads_as_the_metric(tmp_path):
    """MeanSquaredError is both a Loss and a Metric class: each must come back as its own kind, or the reloaded
    metric averages per batch instead of per sample."""
    x = np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32)
    model = Sequential([Input((3,)), Dense(1)])
    model.compile("sgd", loss=shendu.losses.MeanSquaredError(), metrics=[shendu.metrics.MeanSquaredError(),
                                                                         shendu.metrics.MeanAbsoluteError()])
    model.evaluate(x, x[:, :1], verbose=0)
    config = model.get_compile_config()
    assert config["loss"]["class_name"] == "MeanSquaredError" and config["optimizer"]["class_name"] == "SGD"
    model.save(tmp_path / "m.shendu")
    loaded = load_model(tmp_path / "m.shendu")
    assert isinstance(loaded.get_compile_config(), dict)
    metrics = loaded._train.metric_identifiers[0]
    assert [type(m) for m in metrics] == [shendu.metrics.MeanSquaredError, shendu.metrics.MeanAbsoluteError]
    assert isinstance(loaded._train.loss_identifier, shendu.losses.MeanSquaredError)
    np.testing.assert_allclose(loaded.evaluate(x, x[:, :1], verbose=0), model.evaluate(x, x[:, :1], verbose=0),
                               rtol=1e-6)


def test_compile_config_is_none_before_compile():
    assert Sequential([Input((3,)), Dense(1)]).get_compile_config() is None
