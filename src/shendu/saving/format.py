"""The ``.shendu`` container: one zip of JSON documents and safetensors blobs, read defensively.

Entries (see docs/saving-format.md): ``meta.json``, ``config.json``, ``weights.safetensors`` (always), and
``optimizer.json`` + ``optimizer.safetensors``, ``training.json`` (when there is something to store).
Nothing else is allowed in the zip. Reading never trusts the file: every declared size is checked
against caps before anything is decompressed, entry names must be exactly the known ones (no paths, no
duplicates), JSON must parse to an object, and a safetensors header is validated (dtypes, shapes, offsets
that tile the buffer exactly) before its arrays are touched. Every problem raises :class:`FormatError`
naming the file and the entry.
"""

from __future__ import annotations

import io
import json
import math
import os
import struct
import zipfile
import zlib
from typing import Any

import numpy as np

from shendu.saving.atomic import atomic_write

FORMAT_NAME = "shendu.model"
FORMAT_VERSION = 1
#: the versions this release reads (a newer file is rejected: it may hold things this version cannot honour)
READABLE_VERSIONS = (1,)

REQUIRED_ENTRIES = ("meta.json", "config.json", "weights.safetensors")
OPTIONAL_ENTRIES = ("optimizer.json", "optimizer.safetensors", "training.json")
ENTRIES = REQUIRED_ENTRIES + OPTIONAL_ENTRIES

MAX_JSON_BYTES = 64 * 2**20  # one JSON entry, decompressed
MAX_TOTAL_BYTES = 16 * 2**30  # everything in the zip, decompressed
MAX_HEADER_BYTES = 100 * 2**20  # a safetensors header (the reference implementation's limit)
MAX_COMPRESSION_RATIO = 1000  # deflate cannot do much better than ~1000:1; more is a zip bomb

_DTYPES = {"BOOL": np.bool_, "U8": np.uint8, "I8": np.int8, "U16": np.uint16, "I16": np.int16, "F16": np.float16,
           "U32": np.uint32, "I32": np.int32, "F32": np.float32, "U64": np.uint64, "I64": np.int64,
           "F64": np.float64}
_CODES = {np.dtype(v): k for k, v in _DTYPES.items()}
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, ValueError, struct.error,
               NotImplementedError, OverflowError, UnicodeError, KeyError, IndexError, RuntimeError, TypeError)


class FormatError(ValueError):
    """A model/weights file that is truncated, corrupt, of an unknown version, or unsafe to load."""


def fail(path: Any, what: str, hint: str = "") -> FormatError:
    """A FormatError naming the file: ``"<path>: <what>[; <hint>]"``."""
    return FormatError(f"{os.fspath(path) if isinstance(path, (str, os.PathLike)) else path}: {what}"
                       + (f"; {hint}" if hint else ""))


# ---------------------------------------------------------------------------- JSON
def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def encode_json(document: Any, indent: int | None = 1) -> bytes:
    """UTF-8 JSON, keys in insertion order (NumPy scalars become numbers); ``indent=None`` for compact output."""
    separators = (",", ":") if indent is None else None
    return json.dumps(document, default=_json_default, indent=indent, separators=separators).encode()


def decode_json(path: Any, entry: str, data: bytes) -> dict[str, Any]:
    """Parse ``data`` as a JSON object, or raise FormatError naming ``path`` and ``entry``."""
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise fail(path, f"entry {entry} is not valid JSON ({type(e).__name__}: {str(e)[:200]})",
                   "the file is corrupt") from None
    if not isinstance(document, dict):
        raise fail(path, f"entry {entry} must hold a JSON object, found {type(document).__name__}")
    return document


# ---------------------------------------------------------------------------- safetensors
def encode_arrays(arrays: dict[str, np.ndarray]) -> bytes:
    """The safetensors bytes of a name -> array dict (``safetensors.numpy``)."""
    from safetensors.numpy import save

    return save({k: np.ascontiguousarray(v) for k, v in arrays.items()})


def check_safetensors_header(path: Any, entry: str, data: bytes) -> dict[str, tuple[np.dtype, tuple, int, int]]:
    """Validate a safetensors blob's header without reading its arrays: name -> (dtype, shape, start, end).

    Checks: the 8-byte header length fits the data and the cap, the header is a JSON object, every tensor
    has a known dtype, a shape of non-negative ints and ``[start, end]`` offsets whose length equals
    ``prod(shape) * itemsize``, and the tensors tile the data buffer exactly (no gaps, no overlaps).
    """
    if len(data) < 8:
        raise fail(path, f"entry {entry} is truncated ({len(data)} bytes; a safetensors blob has at least 8)")
    (size,) = struct.unpack("<Q", data[:8])
    if size > MAX_HEADER_BYTES or size > len(data) - 8:
        raise fail(path, f"entry {entry} declares a header of {size} bytes but holds {len(data) - 8}",
                   "the file is truncated or corrupt")
    header = decode_json(path, entry + " (header)", bytes(data[8:8 + size]))
    body = len(data) - 8 - size
    spans: list[tuple[int, int]] = []
    out: dict[str, tuple[np.dtype, tuple, int, int]] = {}
    for name, spec in header.items():
        if name == "__metadata__":
            if not isinstance(spec, dict):
                raise fail(path, f"entry {entry}: __metadata__ must be an object")
            continue
        if not isinstance(spec, dict) or set(spec) != {"dtype", "shape", "data_offsets"}:
            raise fail(path, f"entry {entry}: tensor {name!r} must have exactly dtype, shape and data_offsets")
        dtype, shape, offsets = spec["dtype"], spec["shape"], spec["data_offsets"]
        if not isinstance(dtype, str) or dtype not in _DTYPES:
            raise fail(path, f"entry {entry}: tensor {name!r} has unsupported dtype {dtype!r}",
                       f"supported: {sorted(_DTYPES)}")
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            raise fail(path, f"entry {entry}: tensor {name!r} has an invalid shape {shape!r}")
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(type(o) is int for o in offsets)
                or not 0 <= offsets[0] <= offsets[1] <= body):
            raise fail(path, f"entry {entry}: tensor {name!r} has offsets {offsets!r} outside the data "
                       f"({body} bytes)", "the file is truncated or corrupt")
        np_dtype = np.dtype(_DTYPES[dtype])
        if offsets[1] - offsets[0] != math.prod(shape) * np_dtype.itemsize:
            raise fail(path, f"entry {entry}: tensor {name!r} of shape {shape} and dtype {dtype} needs "
                       f"{math.prod(shape) * np_dtype.itemsize} bytes, its offsets span {offsets[1] - offsets[0]}")
        spans.append((offsets[0], offsets[1]))
        out[name] = (np_dtype, tuple(shape), 8 + size + offsets[0], 8 + size + offsets[1])
    position = 0
    for start, end in sorted(spans):
        if start != position:
            raise fail(path, f"entry {entry}: tensors overlap or leave gaps in the data buffer")
        position = end
    if position != body:
        raise fail(path, f"entry {entry}: the data buffer has {body - position} bytes that belong to no tensor")
    return out


def decode_arrays(path: Any, entry: str, data: bytes) -> dict[str, np.ndarray]:
    """The arrays of a safetensors blob, after :func:`check_safetensors_header` (each a fresh writable copy)."""
    layout = check_safetensors_header(path, entry, data)
    arrays = {}
    for name, (dtype, shape, start, _) in layout.items():
        array = np.frombuffer(data, dtype=dtype.newbyteorder("<"), count=math.prod(shape), offset=start)
        arrays[name] = array.reshape(shape).astype(dtype)  # native byte order, own memory
    return arrays


# ---------------------------------------------------------------------------- the zip
def write_container(path: str | os.PathLike, entries: dict[str, bytes]) -> None:
    """Write the entries as one zip, atomically (JSON deflated, safetensors stored)."""
    unknown = set(entries) - set(ENTRIES)
    if unknown or not set(REQUIRED_ENTRIES) <= set(entries):
        raise ValueError(f"write_container: entries must include {REQUIRED_ENTRIES} and may add "
                         f"{OPTIONAL_ENTRIES}; got {sorted(entries)}")

    def write(tmp: str) -> None:
        with zipfile.ZipFile(tmp, "w") as archive:
            for name in ENTRIES:
                if name in entries:
                    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                    info.compress_type = zipfile.ZIP_DEFLATED if name.endswith(".json") else zipfile.ZIP_STORED
                    info.external_attr = 0o644 << 16
                    archive.writestr(info, entries[name])

    atomic_write(path, write)


def _check_names(path: Any, infos: list[zipfile.ZipInfo]) -> None:
    seen: set[str] = set()
    for info in infos:
        name = info.filename
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts:
            raise fail(path, f"the zip holds an entry with an unsafe path {name!r} (absolute or with '..')",
                       "refusing to load a hostile file")
        if name in seen:
            raise fail(path, f"the zip holds the entry {name!r} twice", "refusing an ambiguous file")
        seen.add(name)
        if name not in ENTRIES:
            raise fail(path, f"unexpected entry {name!r} in the zip", f"a .shendu file holds only {list(ENTRIES)}")
    missing = [name for name in REQUIRED_ENTRIES if name not in seen]
    if missing:
        raise fail(path, f"missing entries {missing}", "the file is incomplete or not a shendu model")
    if ("optimizer.json" in seen) != ("optimizer.safetensors" in seen):
        raise fail(path, "optimizer.json and optimizer.safetensors must come together")


def _check_sizes(path: Any, infos: list[zipfile.ZipInfo], file_size: int) -> None:
    total = 0
    for info in infos:
        if info.flag_bits & 0x1:
            raise fail(path, f"entry {info.filename} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise fail(path, f"entry {info.filename} uses compression method {info.compress_type}",
                       "only stored and deflated entries are read")
        cap = MAX_JSON_BYTES if info.filename.endswith(".json") else MAX_TOTAL_BYTES
        if info.file_size > cap:
            raise fail(path, f"entry {info.filename} declares {info.file_size} bytes, over the limit of {cap}")
        if info.compress_size > file_size:
            raise fail(path, f"entry {info.filename} declares {info.compress_size} compressed bytes but the file "
                       f"has only {file_size}", "the file is truncated")
        if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
            raise fail(path, f"stored entry {info.filename} has inconsistent sizes")
        if info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1) + 4096:
            raise fail(path, f"entry {info.filename} claims a compression ratio over {MAX_COMPRESSION_RATIO}:1",
                       "refusing a possible zip bomb")
        total += info.file_size
    if total > MAX_TOTAL_BYTES:
        raise fail(path, f"the entries declare {total} bytes in all, over the limit of {MAX_TOTAL_BYTES}")


def read_container(path: str | os.PathLike | bytes) -> dict[str, bytes]:
    """The entries of a ``.shendu`` zip (a path, or the file's bytes), checked before and while reading."""
    label = "<bytes>" if isinstance(path, (bytes, bytearray)) else os.fspath(path)
    try:
        if isinstance(path, (bytes, bytearray)):
            raw = io.BytesIO(bytes(path))
            file_size = len(path)
        else:
            file_size = os.path.getsize(path)
            raw = open(path, "rb")
    except OSError as e:
        raise FileNotFoundError(f"{label}: cannot open the model file ({e.strerror})") from None
    with raw:
        try:
            with zipfile.ZipFile(raw) as archive:
                infos = archive.infolist()
                _check_names(label, infos)
                _check_sizes(label, infos, file_size)
                entries = {}
                for info in infos:
                    with archive.open(info) as f:
                        data = f.read(info.file_size + 1)
                    if len(data) != info.file_size:
                        raise fail(label, f"entry {info.filename} holds {len(data)} bytes, its header says "
                                   f"{info.file_size}", "the file is corrupt")
                    entries[info.filename] = data
                return entries
        except FormatError:
            raise
        except _ZIP_ERRORS as e:
            raise fail(label, f"not a readable shendu model file ({type(e).__name__}: {str(e)[:200]})",
                       "the file is truncated, corrupt or not a zip") from None


def is_container(path: str | os.PathLike) -> bool:
    """Whether ``path`` starts like a zip (``.shendu`` files do)."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"PK\x03\x04"
    except OSError:
        return False
