"""The one reader and writer of weight-array files: ``.safetensors`` and ``.npz``, validated before use.

Everything in shendu that reads or writes named arrays goes through here: ``model.save_weights`` /
``load_weights``, the ``weights.safetensors`` entry of a ``.shendu`` model file (:mod:`shendu.saving`),
``BackupAndRestore`` and :func:`save_weights_file`/:func:`load_weights_file`. Files are written atomically
(:func:`shendu.utils.atomic.atomic_write`). Reading never trusts the file: a safetensors header is checked
(known dtypes, shapes, offsets that tile the data exactly) and every ``.npy`` header of an ``.npz`` (numeric
dtype, size within its member) before any array is touched, and the bytes a file declares are held to a
bound scaled to the file's size (:func:`byte_limit`; raise it with ``max_bytes=``), so a small hostile file
cannot claim large memory. Problems raise :class:`FormatError` (a ``ValueError``) naming the file.

The format is chosen by content, never by the extension: an ``.npz`` is a zip (``PK``), anything else is read
as safetensors. Arrays are stored under keys ``"0000/dense/kernel"`` (position, then name) so their order
survives the round trip.
"""

from __future__ import annotations

import json
import math
import os
import struct
import zipfile
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from shendu.utils.atomic import atomic_write

__all__ = ["FormatError", "byte_limit", "decode_arrays", "encode_arrays", "load_arrays", "load_weights_file",
           "save_arrays", "save_weights_file"]

FORMATS = (".npz", ".safetensors")
MAX_HEADER_BYTES = 100 * 2**20  # a safetensors header (the reference implementation's limit)
#: the default bound on what a file may declare: this many bytes, or ``FILE_SIZE_FACTOR`` times its size
MIN_BYTE_LIMIT = 64 * 2**20
FILE_SIZE_FACTOR = 4

_DTYPES = {"BOOL": np.bool_, "U8": np.uint8, "I8": np.int8, "U16": np.uint16, "I16": np.int16, "F16": np.float16,
           "U32": np.uint32, "I32": np.int32, "F32": np.float32, "U64": np.uint64, "I64": np.int64,
           "F64": np.float64}
_NPZ_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error, RuntimeError,
               struct.error, NotImplementedError, OverflowError)


class FormatError(ValueError):
    """A model/weights file that is truncated, corrupt, of an unknown version, or unsafe to load."""


def fail(path: Any, what: str, hint: str = "") -> FormatError:
    """A FormatError naming the file: ``"<path>: <what>[; <hint>]"``."""
    return FormatError(f"{os.fspath(path) if isinstance(path, (str, os.PathLike)) else path}: {what}"
                       + (f"; {hint}" if hint else ""))


def byte_limit(file_size: int, max_bytes: int | None = None) -> int:
    """The most bytes a file of ``file_size`` bytes may declare: ``max_bytes`` when given, else
    ``max(MIN_BYTE_LIMIT, FILE_SIZE_FACTOR * file_size)`` (weights are stored uncompressed, so an honest file
    never declares much more than its own size)."""
    if max_bytes is not None:
        if type(max_bytes) is not int or max_bytes <= 0:
            raise ValueError(f"max_bytes must be a positive int (a number of bytes), got {max_bytes!r}; e.g. "
                             "max_bytes=8 * 2**30 for a model of up to 8 GiB")
        return max_bytes
    return max(MIN_BYTE_LIMIT, FILE_SIZE_FACTOR * file_size)


def over_limit(path: Any, what: str, declared: int, limit: int, given: bool = False) -> FormatError:
    """The refusal for a file that declares more than ``limit`` bytes, saying how to raise the limit
    (``given``: the limit is the caller's ``max_bytes``, not the default)."""
    source = ("the max_bytes passed" if given
              else f"by default max({MIN_BYTE_LIMIT:,}, {FILE_SIZE_FACTOR} x the file's size)")
    return fail(path, f"{what}: {declared:,} bytes declared, over the limit of {limit:,} bytes ({source})",
                f"if you trust the file, raise the limit with max_bytes={declared}")


# ---------------------------------------------------------------------------- safetensors
def encode_arrays(arrays: dict[str, np.ndarray]) -> bytes:
    """The safetensors bytes of a name -> array dict (``safetensors.numpy``)."""
    from safetensors.numpy import save

    return save({k: np.ascontiguousarray(v) for k, v in arrays.items()})


def _header(path: Any, entry: str, data: bytes) -> dict[str, Any]:
    if len(data) < 8:
        raise fail(path, f"{entry} is truncated ({len(data)} bytes; a safetensors blob has at least 8)")
    (size,) = struct.unpack("<Q", data[:8])
    if size > MAX_HEADER_BYTES or size > len(data) - 8:
        raise fail(path, f"{entry} declares a header of {size} bytes but holds {len(data) - 8}",
                   "the file is truncated or corrupt")
    return decode_json_object(path, f"{entry}'s header", bytes(data[8:8 + size]))


def decode_json_object(path: Any, what: str, data: bytes) -> dict[str, Any]:
    """Parse ``data`` as a JSON object, or raise FormatError naming ``path`` and ``what`` was read."""
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise fail(path, f"{what} is not valid JSON ({type(e).__name__}: {str(e)[:200]})",
                   "the file is corrupt") from None
    if not isinstance(document, dict):
        raise fail(path, f"{what} must hold a JSON object, found {type(document).__name__}")
    return document


def check_safetensors_header(path: Any, entry: str, data: bytes) -> dict[str, tuple[np.dtype, tuple, int, int]]:
    """Validate a safetensors blob's header without reading its arrays: name -> (dtype, shape, start, end).

    Checks: the 8-byte header length fits the data and the cap, the header is a JSON object, every tensor
    has a known dtype, a shape of non-negative ints and ``[start, end]`` offsets whose length equals
    ``prod(shape) * itemsize``, and the tensors tile the data buffer exactly (no gaps, no overlaps).
    """
    header = _header(path, entry, data)
    (size,) = struct.unpack("<Q", data[:8])
    body = len(data) - 8 - size
    spans: list[tuple[int, int]] = []
    out: dict[str, tuple[np.dtype, tuple, int, int]] = {}
    for name, spec in header.items():
        if name == "__metadata__":
            if not isinstance(spec, dict):
                raise fail(path, f"{entry}: __metadata__ must be an object")
            continue
        if not isinstance(spec, dict) or set(spec) != {"dtype", "shape", "data_offsets"}:
            raise fail(path, f"{entry}: tensor {name!r} must have exactly dtype, shape and data_offsets")
        dtype, shape, offsets = spec["dtype"], spec["shape"], spec["data_offsets"]
        if not isinstance(dtype, str) or dtype not in _DTYPES:
            raise fail(path, f"{entry}: tensor {name!r} has unsupported dtype {dtype!r}",
                       f"supported: {sorted(_DTYPES)}")
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            raise fail(path, f"{entry}: tensor {name!r} has an invalid shape {shape!r}")
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(type(o) is int for o in offsets)
                or not 0 <= offsets[0] <= offsets[1] <= body):
            raise fail(path, f"{entry}: tensor {name!r} has offsets {offsets!r} outside the data ({body} bytes)",
                       "the file is truncated or corrupt")
        np_dtype = np.dtype(_DTYPES[dtype])
        if offsets[1] - offsets[0] != math.prod(shape) * np_dtype.itemsize:
            raise fail(path, f"{entry}: tensor {name!r} of shape {shape} and dtype {dtype} needs "
                       f"{math.prod(shape) * np_dtype.itemsize} bytes, its offsets span {offsets[1] - offsets[0]}")
        spans.append((offsets[0], offsets[1]))
        out[name] = (np_dtype, tuple(shape), 8 + size + offsets[0], 8 + size + offsets[1])
    position = 0
    for start, end in sorted(spans):
        if start != position:
            raise fail(path, f"{entry}: tensors overlap or leave gaps in the data buffer")
        position = end
    if position != body:
        raise fail(path, f"{entry}: the data buffer has {body - position} bytes that belong to no tensor")
    return out


def decode_arrays(path: Any, entry: str, data: bytes) -> dict[str, np.ndarray]:
    """The arrays of a safetensors blob, after :func:`check_safetensors_header` (each a fresh writable copy)."""
    layout = check_safetensors_header(path, entry, data)
    arrays = {}
    for name, (dtype, shape, start, _) in layout.items():
        array = np.frombuffer(data, dtype=dtype.newbyteorder("<"), count=math.prod(shape), offset=start)
        arrays[name] = array.reshape(shape).astype(dtype)  # native byte order, own memory
    return arrays


# ---------------------------------------------------------------------------- npz
def read_npz(path: str, max_bytes: int | None = None) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz``: member sizes checked against :func:`byte_limit` before anything is
    decompressed, each ``.npy`` header checked (no objects, size within the member) before reading."""
    arrays: dict[str, np.ndarray] = {}
    try:
        limit = byte_limit(os.path.getsize(path), max_bytes)
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            declared = sum(info.file_size for info in infos)
            if declared > limit:
                raise over_limit(path, "the .npz's arrays", declared, limit, max_bytes is not None)
            for info in infos:
                if not info.filename.endswith(".npy") or info.filename[:-4] in arrays:
                    raise fail(path, f"unexpected or duplicate member {info.filename!r} in the .npz")
                with archive.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
                    if version not in readers:
                        raise fail(path, f"array {info.filename!r} uses .npy format version {version}")
                    shape, fortran, dtype = readers[version](f)
                    if dtype.hasobject or dtype.kind not in "biuf":
                        raise fail(path, f"array {info.filename!r} has dtype {dtype}, not a numeric one")
                    size = math.prod(shape) * dtype.itemsize
                    if size > info.file_size:
                        raise fail(path, f"array {info.filename!r} declares {size} bytes but its member holds "
                                   f"{info.file_size}", "the file is truncated or hostile")
                    data = f.read(size + 1)
                if len(data) != size:
                    raise fail(path, f"array {info.filename!r} holds {len(data)} bytes, its header says {size}")
                array = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
                arrays[info.filename[:-4]] = array.copy()
    except FormatError:
        raise
    except _NPZ_ERRORS as e:
        raise fail(path, f"not a readable .npz weights file ({type(e).__name__}: {str(e)[:200]})") from None
    return arrays


# ---------------------------------------------------------------------------- files
def is_zip(path: str | os.PathLike) -> bool:
    """Whether ``path`` starts like a zip (``.npz`` and ``.shendu`` files do)."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"PK\x03\x04"
    except OSError:
        return False


def save_arrays(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Write a name -> array dict atomically, as ``.npz`` or ``.safetensors`` (chosen by the name's suffix)."""
    path = os.fspath(path)
    if not path.endswith(FORMATS):
        raise ValueError(f"weights file {path!r}: the name must end with one of {FORMATS} "
                         "(e.g. 'model.weights.npz' or 'model.weights.safetensors')")
    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            if path.endswith(".npz"):
                np.savez(f, **arrays)
            else:
                f.write(encode_arrays(arrays))

    atomic_write(path, write)


def load_arrays(path: str | os.PathLike, max_bytes: int | None = None) -> dict[str, np.ndarray]:
    """Read a file written by :func:`save_arrays`, validated (see the module docstring), in stored order.

    The format is detected from the content (zip: ``.npz``; else safetensors). ``max_bytes`` raises the bound on
    what the file may declare (default :func:`byte_limit` of its size).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such weights file")
    if is_zip(path):
        return read_npz(path, max_bytes)
    limit = byte_limit(os.path.getsize(path), max_bytes)
    if os.path.getsize(path) > limit:
        raise over_limit(path, "the weights file", os.path.getsize(path), limit, max_bytes is not None)
    with open(path, "rb") as f:
        return decode_arrays(path, "the safetensors file", f.read())


def save_weights_file(path: str | os.PathLike, weights: Sequence[Any], names: Sequence[str] | None = None) -> None:
    """Save a list of arrays (a model's ``get_weights()``) with their names, in order."""
    names = names or [f"weight_{i}" for i in range(len(weights))]
    save_arrays(path, {f"{i:04d}/{name}": np.asarray(w) for i, (w, name) in enumerate(zip(weights, names))})


def load_weights_file(path: str | os.PathLike, max_bytes: int | None = None) -> list[np.ndarray]:
    """The list of arrays saved by :func:`save_weights_file`, in their original order."""
    arrays = load_arrays(path, max_bytes)
    return [arrays[k] for k in sorted(arrays, key=lambda k: int(k.split("/", 1)[0]))]
