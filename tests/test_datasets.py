"""Dataset loaders: the shipped sample, the cache layout, IDX parsing, digits and tiny-shakespeare."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from shendu.datasets import DatasetNotFoundError, digits, fashion_mnist, mnist, tiny_shakespeare
from shendu.datasets.idx import SAMPLE_DIR, read_idx, write_idx

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_shared = pytest.mark.skipif(not (SHARED / "mnist").is_dir(), reason="the shared data folder is absent")


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """An empty cache and no mirrors: only the sample or path= can work."""
    monkeypatch.setenv("SHENDU_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("SHENDU_DATA_MIRRORS", raising=False)
    return tmp_path / "cache"


@pytest.mark.parametrize("module", [mnist, fashion_mnist])
def test_sample_has_keras_shapes_and_dtypes(module):
    (x_train, y_train), (x_test, y_test) = module.load_data(sample=True)
    assert x_train.shape == (2000, 28, 28) and x_test.shape == (500, 28, 28)
    assert y_train.shape == (2000,) and y_test.shape == (500,)
    for a in (x_train, y_train, x_test, y_test):
        assert a.dtype == np.uint8 and a.flags.writeable
    assert set(np.unique(y_train)) == set(range(10))
    assert x_train.max() == 255 and x_train.min() == 0


def test_sample_mnist_first_labels_are_the_known_ones():
    (_, y_train), (_, y_test) = mnist.load_data(sample=True)
    assert y_train[:8].tolist() == [5, 0, 4, 1, 9, 2, 1, 3]  # the famous first MNIST digits
    assert y_test[:5].tolist() == [7, 2, 1, 0, 4]


def test_sample_ships_licences():
    for folder in ("mnist", "fashion-mnist", "digits", "tiny-shakespeare"):
        assert (SAMPLE_DIR / folder / "LICENSE.txt").is_file()
    assert "CC BY-SA 3.0" in (SAMPLE_DIR / "mnist" / "LICENSE.txt").read_text()
    assert "Zalando" in (SAMPLE_DIR / "fashion-mnist" / "LICENSE.txt").read_text()
    total = sum(p.stat().st_size for p in SAMPLE_DIR.rglob("*") if p.is_file())
    assert total < 3_000_000


def test_offline_error_points_to_the_sample(offline):
    with pytest.raises(DatasetNotFoundError) as info:
        fashion_mnist.load_data(mirrors=[])
    message = str(info.value)
    assert str(offline / "fashion-mnist") in message
    assert "fashion_mnist.load_data(sample=True)" in message
    assert "train-images-idx3-ubyte.gz" in message


@needs_shared
def test_full_mnist_from_path_matches_published_counts():
    (x_train, y_train), (x_test, y_test) = mnist.load_data(path=SHARED / "mnist")
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert np.bincount(y_train).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    (xs, ys), (xst, yst) = mnist.load_data(sample=True)
    np.testing.assert_array_equal(xs, x_train[:2000])
    np.testing.assert_array_equal(yst, y_test[:500])


@needs_shared
def test_cache_dir_can_be_the_shared_layout(monkeypatch):
    monkeypatch.setenv("SHENDU_DATA_DIR", str(SHARED))
    (x_train, y_train), (x_test, _) = fashion_mnist.load_data(mirrors=[])
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert np.bincount(y_train).tolist() == [6000] * 10
    assert tiny_shakespeare.load_data(mirrors=[]).startswith(tiny_shakespeare.load_data(sample=True))


def test_keras_npz_path(tmp_path):
    (x, y), (xt, yt) = mnist.load_data(sample=True)
    np.savez(tmp_path / "mnist.npz", x_train=x, y_train=y, x_test=xt, y_test=yt)
    (x2, y2), (xt2, yt2) = mnist.load_data(path=tmp_path / "mnist.npz")
    np.testing.assert_array_equal(x2, x)
    np.testing.assert_array_equal(yt2, yt)


def test_idx_round_trip_and_rejects_bad_files(tmp_path):
    array = np.random.default_rng(0).integers(0, 256, (3, 4, 5), dtype=np.uint8)
    write_idx(tmp_path / "a.gz", array)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.gz"), array)
    raw = gzip.decompress((tmp_path / "a.gz").read_bytes())
    (tmp_path / "plain").write_bytes(raw)
    np.testing.assert_array_equal(read_idx(tmp_path / "plain"), array)
    (tmp_path / "short").write_bytes(raw[:-1])
    with pytest.raises(ValueError, match="fewer"):
        read_idx(tmp_path / "short")
    (tmp_path / "long").write_bytes(raw + b"\0")
    with pytest.raises(ValueError, match="more"):
        read_idx(tmp_path / "long")
    (tmp_path / "float").write_bytes(b"\0\0\x0d\x01" + raw[4:])
    with pytest.raises(ValueError, match="not an IDX file of unsigned bytes"):
        read_idx(tmp_path / "float")


def test_digits_match_the_csv_and_split_like_keras():
    images, labels = digits.load_digits()
    assert images.shape == (1797, 8, 8) and images.dtype == np.uint8 and images.max() == 16
    assert np.bincount(labels).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    table = np.loadtxt(SAMPLE_DIR / "digits" / "digits.csv.gz", delimiter=",")
    np.testing.assert_array_equal(images.reshape(-1, 64), table[:, :64])
    (x_train, y_train), (x_test, y_test) = digits.load_data(test_split=0.25, seed=1)
    assert len(x_train) == int(1797 * 0.75) and len(x_train) + len(x_test) == 1797
    order = np.arange(1797)
    np.random.RandomState(1).shuffle(order)
    np.testing.assert_array_equal(x_test, images[order][len(x_train):])
    np.testing.assert_array_equal(y_train, labels[order][: len(x_train)])
    with pytest.raises(ValueError, match="test_split"):
        digits.load_data(test_split=1.0)


def test_tiny_shakespeare_sample():
    text = tiny_shakespeare.load_data(sample=True)
    assert text.startswith("First Citizen:\nBefore we proceed any further") and text.endswith("\n")
    assert 190_000 < len(text) <= 200_000 and len(set(text)) <= 65


@needs_shared
def test_shipped_sample_is_reproducible(tmp_path):
    spec = importlib.util.spec_from_file_location("make_sample", SAMPLE_DIR / "make_sample.py")
    make_sample = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_sample)
    written = make_sample.main(SHARED, tmp_path)
    assert len(written) == 10
    for file in written:
        assert file.read_bytes() == (SAMPLE_DIR / file.relative_to(tmp_path)).read_bytes(), file


def test_mismatched_idx_files_are_rejected(tmp_path):
    (x, y), (xt, yt) = mnist.load_data(sample=True)
    for spec, array in zip(mnist.FILES, (x, y[:-1], xt, yt)):
        write_idx(tmp_path / spec.name, array)
    with pytest.raises(ValueError, match=r"training files do not match: images \(2000, 28, 28\), labels \(1999,\)"):
        mnist.load_data(path=tmp_path, verify=False)
