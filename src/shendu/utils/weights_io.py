"""Writing and reading lists of weight arrays, atomically, as ``.npz`` or ``.safetensors``.

Arrays are stored under keys ``"0000/dense/kernel"`` (position, then name) so their order survives the round
trip. A file is written to a temporary file in the same directory and then moved into place with
``os.replace`` (:func:`shendu.saving.atomic.atomic_write`): a crash never leaves a half-written file.
``model.save`` (:mod:`shendu.saving`) writes whole models; this is the plain weights-only format.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from shendu.saving.atomic import atomic_write

FORMATS = (".npz", ".safetensors")


def _format_of(path: str) -> str:
    for ext in FORMATS:
        if path.endswith(ext):
            return ext
    raise ValueError(f"weights file {path!r}: the name must end with one of {FORMATS} "
                     "(e.g. 'model.weights.npz' or 'model.safetensors')")


def save_arrays(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Write a name -> array dict atomically (format chosen by the file extension)."""
    path = os.fspath(path)
    fmt = _format_of(path)
    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}

    def write(tmp: str) -> None:
        if fmt == ".npz":
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
        else:
            from safetensors.numpy import save_file

            save_file(arrays, tmp)

    atomic_write(path, write)


def load_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a file written by :func:`save_arrays` (insertion order is kept)."""
    path = os.fspath(path)
    if _format_of(path) == ".npz":
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    from safetensors.numpy import load_file

    return load_file(path)


def save_weights_file(path: str | os.PathLike, weights: Sequence[Any], names: Sequence[str] | None = None) -> None:
    """Save a list of arrays (a model's ``get_weights()``) with their names, in order."""
    names = names or [f"weight_{i}" for i in range(len(weights))]
    save_arrays(path, {f"{i:04d}/{name}": np.asarray(w) for i, (w, name) in enumerate(zip(weights, names))})


def load_weights_file(path: str | os.PathLike) -> list[np.ndarray]:
    """The list of arrays saved by :func:`save_weights_file`, in their original order."""
    arrays = load_arrays(path)
    return [arrays[k] for k in sorted(arrays, key=lambda k: int(k.split("/", 1)[0]))]
