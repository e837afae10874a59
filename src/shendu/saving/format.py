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
import os
import struct
import zipfile
import zlib
from typing import Any

import numpy as np

from shendu.utils.atomic import atomic_write
from shendu.utils.weights_io import (
    FormatError,
    byte_limit,
    check_safetensors_header,
    decode_arrays,
    decode_json_object,
    encode_arrays,
    fail,
    over_limit,
)

__all__ = ["ENTRIES", "FORMAT_NAME", "FORMAT_VERSION", "FormatError", "READABLE_VERSIONS", "check_safetensors_header",
           "decode_arrays", "decode_json", "encode_arrays", "encode_json", "fail", "read_container",
           "write_container"]

KERAS_ENTRIES = ("metadata.json", "model.weights.h5")  # what a Keras 3 .keras zip holds beside config.json
FORMAT_NAME = "shendu.model"
FORMAT_VERSION = 1
#: the versions this release reads (a newer file is rejected: it may hold things this version cannot honour)
READABLE_VERSIONS = (1,)

REQUIRED_ENTRIES = ("meta.json", "config.json", "weights.safetensors")
OPTIONAL_ENTRIES = ("optimizer.json", "optimizer.safetensors", "training.json")
ENTRIES = REQUIRED_ENTRIES + OPTIONAL_ENTRIES

MAX_JSON_BYTES = 64 * 2**20  # one JSON entry, decompressed
MAX_COMPRESSION_RATIO = 1000  # deflate cannot do much better than ~1000:1; more is a zip bomb
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, ValueError, struct.error,
               NotImplementedError, OverflowError, UnicodeError, KeyError, IndexError, RuntimeError, TypeError)


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
    return decode_json_object(path, f"entry {entry}", data)


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
        if name in KERAS_ENTRIES:
            raise fail(path, f"this is a Keras 3 .keras file (it holds {name!r}), not a shendu model",
                       "build the same model in shendu and call model.load_weights(path): it reads the Keras weights")
        if name not in ENTRIES:
            raise fail(path, f"unexpected entry {name!r} in the zip", f"a .shendu file holds only {list(ENTRIES)}")
    missing = [name for name in REQUIRED_ENTRIES if name not in seen]
    if missing:
        raise fail(path, f"missing entries {missing}", "the file is incomplete or not a shendu model")
    if ("optimizer.json" in seen) != ("optimizer.safetensors" in seen):
        raise fail(path, "optimizer.json and optimizer.safetensors must come together")


def _check_sizes(path: Any, infos: list[zipfile.ZipInfo], file_size: int, max_bytes: int | None) -> None:
    """Declared sizes, before anything is decompressed: each JSON entry within MAX_JSON_BYTES, every ratio
    within MAX_COMPRESSION_RATIO, and all entries together within :func:`byte_limit` of the file's size."""
    limit = byte_limit(file_size, max_bytes)
    total = 0
    for info in infos:
        if info.flag_bits & 0x1:
            raise fail(path, f"entry {info.filename} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise fail(path, f"entry {info.filename} uses compression method {info.compress_type}",
                       "only stored and deflated entries are read")
        if info.filename.endswith(".json") and info.file_size > MAX_JSON_BYTES:
            raise fail(path, f"entry {info.filename} declares {info.file_size} bytes, over the limit of "
                       f"{MAX_JSON_BYTES} for a JSON entry", "the file is corrupt or hostile")
        if info.compress_size > file_size:
            raise fail(path, f"entry {info.filename} declares {info.compress_size} compressed bytes but the file "
                       f"has only {file_size}", "the file is truncated")
        if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
            raise fail(path, f"stored entry {info.filename} has inconsistent sizes")
        if info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1) + 4096:
            raise fail(path, f"entry {info.filename} claims a compression ratio over {MAX_COMPRESSION_RATIO}:1",
                       "refusing a possible zip bomb")
        total += info.file_size
    if total > limit:
        raise over_limit(path, "the zip's entries together", total, limit, max_bytes is not None)


def read_container(path: str | os.PathLike | bytes, max_bytes: int | None = None) -> dict[str, bytes]:
    """The entries of a ``.shendu`` zip (a path, or the file's bytes), checked before and while reading;
    ``max_bytes`` raises the bound on the decompressed size (default :func:`byte_limit` of the file's size)."""
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
                _check_sizes(label, infos, file_size, max_bytes)
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


_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def detect_format(path: str | os.PathLike) -> str:
    """What a file holds, from its first bytes (never its name): ``"shendu"``, ``"npz"``, ``"safetensors"``,
    ``"keras"`` (a Keras 3 ``.keras`` zip), ``"hdf5"``, ``"torch"`` (a ``torch.save`` zip), ``"pickle"`` or
    ``"unknown"``. Only the zip's directory is read, never its entries."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as e:
        raise FileNotFoundError(f"{os.fspath(path)}: cannot open the file ({e.strerror})") from None
    if head.startswith(_HDF5_MAGIC):
        return "hdf5"
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except _ZIP_ERRORS:
            return "unknown"
        if "meta.json" in names and "weights.safetensors" in names:
            return "shendu"
        if names and all(name.endswith(".npy") for name in names):
            return "npz"
        if "model.weights.h5" in names or "metadata.json" in names:
            return "keras"
        if any(name.endswith("data.pkl") for name in names):
            return "torch"
        return "unknown"
    if head[:1] == b"\x80":
        return "pickle"
    if len(head) >= 9 and head[8:9] == b"{":
        return "safetensors"
    return "unknown"
