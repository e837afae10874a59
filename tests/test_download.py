"""The download path, against HTTP servers on 127.0.0.1: good, corrupted, truncated, 404 and unreachable."""

from __future__ import annotations

import contextlib
import functools
import http.server
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from shendu.datasets import DatasetNotFoundError, mnist, tiny_shakespeare
from shendu.datasets.download import ChecksumError, FileSpec, data_home, fetch, mirror_list, sha256_of

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
if not SHARED.is_dir():
    SHARED = Path("/work/shared/data")
needs_shared = pytest.mark.skipif(not (SHARED / "mnist").is_dir(), reason="the shared data folder is absent")

LABELS = [f for f in mnist.FILES if "labels" in f.name]  # small files (33 KB) keep these tests fast


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


class _TruncatingHandler(_QuietHandler):
    """Announces the full length, sends half the bytes, then hangs up."""

    def do_GET(self) -> None:
        body = (Path(self.directory) / self.path.lstrip("/")).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        self.close_connection = True


@contextlib.contextmanager
def _serve(directory: Path, handler=_QuietHandler):
    """Serve ``directory`` on 127.0.0.1 while the block runs; yields the mirror URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{{name}}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def good_mirror():
    if not (SHARED / "mnist").is_dir():
        pytest.skip("the shared data folder is absent")
    with _serve(SHARED) as url:
        yield url


@pytest.fixture
def corrupt_mirror(tmp_path):
    """The MNIST label files with one byte flipped (same size)."""
    if not (SHARED / "mnist").is_dir():
        pytest.skip("the shared data folder is absent")
    root = tmp_path / "corrupt"
    (root / "mnist").mkdir(parents=True)
    for spec in LABELS:
        data = bytearray((SHARED / "mnist" / spec.name).read_bytes())
        data[len(data) // 2] ^= 0xFF
        (root / "mnist" / spec.name).write_bytes(bytes(data))
    with _serve(root) as url:
        yield url


@pytest.fixture
def empty_mirror(tmp_path):
    (tmp_path / "empty").mkdir()
    with _serve(tmp_path / "empty") as url:
        yield url


@pytest.fixture
def unreachable_mirror():
    with socket.socket() as s:  # a port that was free a moment ago and has no listener now
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/{{name}}/"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("SHENDU_DATA_DIR", str(root))
    monkeypatch.delenv("SHENDU_DATA_MIRRORS", raising=False)
    return root


def _cache_files(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_data_home_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SHENDU_DATA_DIR", str(tmp_path))
    assert data_home() == tmp_path
    monkeypatch.delenv("SHENDU_DATA_DIR")
    assert data_home() == Path.home() / ".shendu" / "datasets"


def test_mirror_list_precedence(monkeypatch):
    monkeypatch.setenv("SHENDU_DATA_MIRRORS", "http://a/{name}, http://b/x/")
    assert mirror_list("mnist", ["http://default/"]) == ["http://a/mnist/", "http://b/x/"]
    assert mirror_list("mnist", ["http://default/"], ["http://c"]) == ["http://c/"]
    monkeypatch.delenv("SHENDU_DATA_MIRRORS")
    assert mirror_list("mnist", ["http://default/"]) == ["http://default/"]


@needs_shared
def test_mnist_downloads_verifies_and_caches(good_mirror, cache, unreachable_mirror):
    (x_train, y_train), (x_test, y_test) = mnist.load_data(mirrors=[good_mirror])
    assert x_train.shape == (60000, 28, 28) and x_train.dtype == np.uint8
    assert y_train.shape == (60000,) and x_test.shape == (10000, 28, 28) and y_test.shape == (10000,)
    assert _cache_files(cache) == sorted(f.name for f in mnist.FILES)  # no temporary file left behind
    for spec in mnist.FILES:
        assert sha256_of(cache / "mnist" / spec.name) == spec.sha256
    # the second load reads the cache: no server needed
    (x2, _), _ = mnist.load_data(mirrors=[unreachable_mirror])
    np.testing.assert_array_equal(x2, x_train)


@needs_shared
def test_corrupted_download_is_rejected_and_not_cached(corrupt_mirror, cache):
    with pytest.raises(DatasetNotFoundError) as info:
        fetch("mnist", LABELS, [corrupt_mirror])
    message = str(info.value)
    assert "SHA-256" in message and "train-labels-idx1-ubyte.gz" in message and "127.0.0.1" in message
    assert str(cache / "mnist") in message
    assert _cache_files(cache) == []


@needs_shared
def test_truncated_download_leaves_no_file(cache, tmp_path):
    with _serve(SHARED, _TruncatingHandler) as url, pytest.raises(DatasetNotFoundError):
        fetch("mnist", LABELS[:1], [url])
    assert _cache_files(cache) == []


@needs_shared
def test_oversize_download_is_cut_off(good_mirror, cache):
    spec = LABELS[0]
    small = FileSpec(spec.name, spec.sha256, spec.size - 100)  # the server sends more than declared
    with pytest.raises(DatasetNotFoundError, match="more than the expected"):
        fetch("mnist", [small], [good_mirror])
    assert _cache_files(cache) == []


@needs_shared
def test_mirror_fallback_uses_the_next_mirror(corrupt_mirror, empty_mirror, unreachable_mirror, good_mirror, cache):
    paths = fetch("mnist", LABELS, [unreachable_mirror, empty_mirror, corrupt_mirror, good_mirror])
    assert [sha256_of(p) for p in paths] == [f.sha256 for f in LABELS]
    assert _cache_files(cache) == sorted(f.name for f in LABELS)


@needs_shared
def test_env_mirrors_are_used(good_mirror, cache, monkeypatch):
    monkeypatch.setenv("SHENDU_DATA_MIRRORS", good_mirror)
    text = tiny_shakespeare.load_data()
    assert len(text) == 1115394 and text.startswith("First Citizen:")
    assert _cache_files(cache) == ["input.txt"]


def test_404_error_names_files_directory_and_mirrors(empty_mirror, cache):
    with pytest.raises(DatasetNotFoundError) as info:
        mnist.load_data(mirrors=[empty_mirror])
    message = str(info.value)
    for spec in mnist.FILES:
        assert spec.name in message
    assert str(cache / "mnist") in message and "HTTP 404" in message
    assert "mnist.load_data(sample=True)" in message
    assert _cache_files(cache) == []


def test_unreachable_mirror_error(unreachable_mirror, cache):
    with pytest.raises(DatasetNotFoundError, match="unreachable") as info:
        tiny_shakespeare.load_data(mirrors=unreachable_mirror)
    assert "tiny_shakespeare.load_data(sample=True)" in str(info.value)
    assert isinstance(info.value, FileNotFoundError)


@needs_shared
def test_corrupted_cache_file_is_replaced(good_mirror, cache):
    target = cache / "mnist" / LABELS[0].name
    target.parent.mkdir(parents=True)
    target.write_bytes(b"not the labels")
    (path,) = fetch("mnist", LABELS[:1], [good_mirror])
    assert sha256_of(path) == LABELS[0].sha256


@needs_shared
def test_corrupted_cache_file_without_mirror_is_removed(cache, empty_mirror):
    target = cache / "mnist" / LABELS[0].name
    target.parent.mkdir(parents=True)
    target.write_bytes(b"not the labels")
    with pytest.raises(DatasetNotFoundError, match="SHA-256"):
        fetch("mnist", LABELS[:1], [empty_mirror])
    assert not target.exists()


def test_given_path_is_verified_never_written(tmp_path):
    spec = FileSpec("a.bin", "0" * 64, 3)
    (tmp_path / "a.bin").write_bytes(b"abc")
    with pytest.raises(ChecksumError, match="SHA-256"):
        fetch("x", [spec], [], path=tmp_path)
    assert fetch("x", [spec], [], path=tmp_path, verify_checksums=False) == [tmp_path / "a.bin"]
    with pytest.raises(DatasetNotFoundError, match=str(tmp_path / "nowhere")):
        fetch("x", [spec], [], path=tmp_path / "nowhere")


@needs_shared
def test_unreachable_mirror_is_tried_once(unreachable_mirror, good_mirror, cache):
    assert len(fetch("mnist", LABELS, [unreachable_mirror, good_mirror])) == 2
    with pytest.raises(DatasetNotFoundError) as info:
        fetch("x", LABELS, [unreachable_mirror])
    assert str(info.value).count(": unreachable (") == 1  # not tried again for the second file
