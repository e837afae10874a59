"""The IDX format of MNIST and Fashion-MNIST, and the loader both datasets share.

An IDX file is a big-endian header (magic ``0x0000 08 nd``: unsigned bytes, ``nd`` dimensions; then
``nd`` uint32 sizes) followed by the raw bytes, row-major. The datasets ship them gzip-compressed.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from shendu.datasets.download import FileSpec, fetch

SAMPLE_DIR = Path(__file__).parent / "_sample"
_UBYTE = 0x08


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read a (gzip-compressed when the name ends in ``.gz``) IDX file of unsigned bytes into a uint8 array."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        header = f.read(4)
        if len(header) != 4 or header[:2] != b"\0\0" or header[2] != _UBYTE:
            raise ValueError(f"{path}: not an IDX file of unsigned bytes (header {header!r}; expected "
                             f"00 00 08 <ndim>)")
        ndim = header[3]
        shape = tuple(int(d) for d in np.frombuffer(f.read(4 * ndim), dtype=">u4"))
        if len(shape) != ndim:
            raise ValueError(f"{path}: truncated IDX header")
        out = np.empty(shape, dtype=np.uint8)
        got = _read_into(f, memoryview(out.reshape(-1)))
        if got != out.size or f.read(1):
            raise ValueError(f"{path}: IDX body has {'fewer' if got != out.size else 'more'} bytes than the "
                             f"header's shape {shape}")
    return out


def _read_into(f, view: memoryview) -> int:
    """Fill ``view`` from ``f`` (reads may come back short); return the number of bytes read."""
    got = 0
    while got < len(view) and (n := f.readinto(view[got:])):
        got += n
    return got


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a uint8 array as a gzip-compressed IDX file, reproducibly (no name, mtime 0)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, _UBYTE, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    with open(path, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", compresslevel=9, mtime=0) as f:
        f.write(header + array.tobytes())


IdxSplits = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def load_idx_dataset(dataset: str, files: Sequence[FileSpec], mirrors: Sequence[str], *,
                     path: str | os.PathLike | None, sample: bool, mirror_override: Sequence[str] | str | None,
                     verify: bool) -> IdxSplits:
    """``((x_train, y_train), (x_test, y_test))`` from the four IDX files (train images, train labels, test
    images, test labels): the shipped sample, a Keras ``.npz`` file, a directory, the cache or a download."""
    if sample:
        paths = [SAMPLE_DIR / dataset / f.name for f in files]
    elif path is not None and str(path).endswith(".npz"):
        return _load_keras_npz(path)
    else:
        hint = f"shendu.datasets.{dataset.replace('-', '_')}.load_data(sample=True) loads the bundled subset."
        paths = fetch(dataset, files, mirrors, path=path, mirrors=mirror_override, verify_checksums=verify,
                      sample_hint=hint)
    x_train, y_train, x_test, y_test = (read_idx(p) for p in paths)
    for images, labels, split in ((x_train, y_train, "training"), (x_test, y_test, "test")):
        if images.ndim != 3 or labels.shape != images.shape[:1]:
            raise ValueError(f"{dataset}: the {split} files do not match: images {images.shape}, labels "
                             f"{labels.shape} (expected (n, rows, cols) and (n,))")
    return (x_train, y_train), (x_test, y_test)


def _load_keras_npz(path: str | os.PathLike) -> IdxSplits:
    """Keras's ``mnist.npz`` layout: arrays x_train, y_train, x_test, y_test (no pickled objects allowed)."""
    with np.load(path, allow_pickle=False) as f:
        return (f["x_train"], f["y_train"]), (f["x_test"], f["y_test"])
