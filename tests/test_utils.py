"""shendu.utils: to_categorical, set_random_seed, normalize, the progress bar and the weights file format."""

import io
import os

import numpy as np
import pytest

import shendu
from shendu.utils import ProgressBar, normalize, set_random_seed, to_categorical
from shendu.utils.progress import display_mode, format_logs, format_time_per_step, format_value
from shendu.utils.weights_io import load_arrays, load_weights_file, save_arrays, save_weights_file


# ------------------------------------------------------------------ to_categorical
def test_to_categorical_infers_classes():
    out = to_categorical([0, 2, 1, 2])
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.eye(3, dtype=np.float32)[[0, 2, 1, 2]])


def test_to_categorical_num_classes_and_column_vector():
    out = to_categorical(np.array([[1], [3]]), num_classes=5)
    assert out.shape == (2, 5)
    np.testing.assert_array_equal(out.argmax(axis=1), [1, 3])


def test_to_categorical_keeps_leading_axes():
    labels = np.array([[0, 1, 2], [2, 1, 0]])
    out = to_categorical(labels, 3)
    assert out.shape == (2, 3, 3)
    np.testing.assert_array_equal(out.argmax(-1), labels)


def test_to_categorical_accepts_whole_floats_and_tensors():
    np.testing.assert_array_equal(to_categorical(np.array([1.0, 0.0])), [[0, 1], [1, 0]])
    np.testing.assert_array_equal(to_categorical(shendu.tensor(np.array([1, 0]))), [[0, 1], [1, 0]])


@pytest.mark.parametrize("labels, num_classes, message", [
    ([0.5, 1.0], None, "whole numbers"),
    ([-1, 0], None, ">= 0"),
    ([0, 3], 3, "out of range"),
])
def test_to_categorical_errors(labels, num_classes, message):
    with pytest.raises(ValueError, match=message):
        to_categorical(labels, num_classes)


def test_to_categorical_matches_keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")  # Keras 3 on PyTorch (no TensorFlow here)
    keras = pytest.importorskip("keras")
    labels = np.array([3, 0, 1, 3, 2])
    np.testing.assert_array_equal(to_categorical(labels), keras.utils.to_categorical(labels))
    np.testing.assert_array_equal(to_categorical(labels, 6), keras.utils.to_categorical(labels, 6))


# ------------------------------------------------------------------ seeding, normalize
def test_set_random_seed_makes_draws_repeat():
    set_random_seed(123)
    a = shendu.random.get_rng().random(5), np.random.rand(3)
    set_random_seed(123)
    b = shendu.random.get_rng().random(5), np.random.rand(3)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_normalize_rows_and_zero_vectors():
    out = normalize(np.array([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])
    np.testing.assert_allclose(normalize(np.array([[1.0, 1.0]]), order=1), [[0.5, 0.5]])


# ------------------------------------------------------------------ progress bar
class _FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_format_helpers():
    assert format_value(0.123456) == "0.1235"
    assert format_value(1.5e-5) == "1.5000e-05"
    assert format_value(0) == "0.0000"
    assert format_logs({"loss": 0.5, "acc": 1.0}) == "loss: 0.5000 - acc: 1.0000"
    assert format_time_per_step(0.003) == "3ms/step"
    assert format_time_per_step(2.0) == "2s/step"
    assert format_time_per_step(4e-5) == "40us/step"


def test_display_mode_follows_the_stream():
    assert display_mode(io.StringIO()) == "plain"
    assert display_mode(_FakeTTY()) == "terminal"


def test_progress_bar_plain_has_no_control_characters():
    out = io.StringIO()
    bar = ProgressBar(5, file=out, log_interval=0.0)  # a line at every update, as for a long epoch
    for step in range(1, 6):
        bar.update(step, {"loss": 1.0 / step})
    bar.close({"loss": 0.2, "val_loss": 0.3})
    text = out.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert len(lines) == 6
    assert lines[0].startswith("1/5 - ")
    assert lines[-1].startswith("5/5 - ") and lines[-1].endswith("loss: 0.2000 - val_loss: 0.3000")


def test_progress_bar_plain_quiet_until_the_end():
    out = io.StringIO()
    bar = ProgressBar(3, file=out)
    for step in range(1, 4):
        bar.update(step, {"loss": 0.1})
    assert out.getvalue() == ""
    bar.close({"loss": 0.1})
    assert out.getvalue().count("\n") == 1


def test_progress_bar_terminal_redraws_in_place():
    out = _FakeTTY()
    bar = ProgressBar(4, file=out, min_interval=0.0)
    for step in range(1, 5):
        bar.update(step, {"loss": 0.25})
    bar.close({"loss": 0.25, "accuracy": 0.75})
    text = out.getvalue()
    assert "\r" in text  # redrawn in place
    last = text.split("\r")[-1]
    assert "4/4" in last and "loss: 0.2500 - accuracy: 0.7500" in last and "/step" in last


def test_progress_bar_unknown_total():
    out = io.StringIO()
    bar = ProgressBar(None, file=out)
    bar.update(7, None)
    bar.close(None)
    assert out.getvalue().startswith("7 - ")


def test_progress_bar_rejects_unknown_mode():
    with pytest.raises(ValueError, match="mode"):
        ProgressBar(3, mode="fancy")


# ------------------------------------------------------------------ weights files
@pytest.mark.parametrize("ext", [".npz", ".safetensors"])
def test_weights_file_round_trip_keeps_order(tmp_path, ext):
    if ext == ".safetensors":
        pytest.importorskip("safetensors")
    weights = [np.arange(i + 2, dtype=np.float32).reshape(-1, 1) * (i + 1) for i in range(12)]
    path = tmp_path / f"w{ext}"
    save_weights_file(path, weights, [f"layer{i}/kernel" for i in range(12)])
    back = load_weights_file(path)
    assert len(back) == 12
    for a, b in zip(weights, back):
        np.testing.assert_array_equal(a, b)
    assert sorted(os.listdir(tmp_path)) == [f"w{ext}"]  # no temporary file left behind


def test_weights_file_is_replaced_atomically(tmp_path):
    path = tmp_path / "w.npz"
    save_arrays(path, {"a": np.ones(3)})

    class Boom:
        def __array__(self, dtype=None, copy=None):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        save_arrays(path, {"a": Boom()})
    np.testing.assert_array_equal(load_arrays(path)["a"], np.ones(3))  # the old file is intact
    assert os.listdir(tmp_path) == ["w.npz"]


def test_weights_file_needs_a_known_extension(tmp_path):
    with pytest.raises(ValueError, match=".npz"):
        save_weights_file(tmp_path / "w.h5", [np.ones(1)])
