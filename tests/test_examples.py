"""The time-to-accuracy examples run end to end on tiny slices of the bundled samples (their full-data figures
are in each script's docstring), and the MLP's NumPy augmentation moves pixels without losing or mixing any."""

import contextlib
import io
import pathlib
import re
import runpy

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / "examples"


def _run(monkeypatch, script: str, *argv: str) -> str:
    monkeypatch.setattr("sys.argv", [script, *argv])
    with contextlib.redirect_stdout(io.StringIO()) as out:
        runpy.run_path(str(ROOT / script), run_name="__main__")
    return out.getvalue()


@pytest.mark.parametrize("script", ["mnist_cnn.py", "fashion_mnist_cnn.py"])
def test_convnet_examples_run_on_the_bundled_sample(monkeypatch, script):
    text = _run(monkeypatch, script, "--sample", "--epochs", "1", "--limit", "128", "--verbose", "0")
    accuracy = float(re.search(r"test accuracy ([0-9.]+)", text).group(1))
    assert 0.0 <= accuracy <= 1.0 and "training wall time" in text and "total" in text


def test_char_rnn_example_runs_on_the_bundled_sample(monkeypatch):
    text = _run(monkeypatch, "char_rnn.py", "--sample", "--epochs", "1", "--windows", "64", "--length", "16",
                "--units", "16", "--generate", "20")
    loss = float(re.search(r"validation loss ([0-9.]+) nats/char", text).group(1))
    assert 0.0 < loss < 5.0 and "total wall time" in text  # ln(65) = 4.17 for a uniform guess


def test_mlp_shifted_images_are_whole_pixel_moves_of_the_right_image():
    ShiftedImages = runpy.run_path(str(ROOT / "mnist_mlp.py"))["ShiftedImages"]
    rng = np.random.default_rng(0)
    images = np.zeros((10, 8, 8), dtype="float32")
    images[:, 2:6, 2:6] = rng.random((10, 4, 4))  # a 2-pixel empty border: no shift up to 2 crops anything
    labels = np.arange(10)
    data = ShiftedImages(images, labels, batch_size=4, shift=2, seed=1)
    assert len(data) == 3
    for _ in range(2):  # two epochs: every image exactly once per epoch, reshuffled between them
        batches = list(data)
        seen = np.concatenate([y for _, y in batches])
        assert sorted(seen.tolist()) == labels.tolist()
        for x, y in batches:
            assert x.shape == (len(y), 64) and x.dtype == np.float32
            for row, label in zip(x.reshape(-1, 8, 8), y, strict=True):
                ys, xs = np.nonzero(row)
                dy, dx = ys.min() - 2, xs.min() - 2
                assert abs(dy) <= 2 and abs(dx) <= 2
                np.testing.assert_array_equal(row[2 + dy:6 + dy, 2 + dx:6 + dx], images[label, 2:6, 2:6])
                assert row.sum() == pytest.approx(images[label].sum())
