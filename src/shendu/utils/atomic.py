"""Atomic file writes: a crash (or an exception) mid-write never leaves a half-written file behind.

``atomic_write(path, write)`` lets ``write(tmp)`` fill a temporary file in the same directory as ``path``,
flushes it to disk (``fsync``), renames it over ``path`` with ``os.replace`` (atomic on POSIX and Windows)
and finally syncs the directory so the rename itself survives a power cut. If ``write`` raises, the
temporary file is removed and the previous ``path`` is untouched.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable


def _fsync_path(path: str, directory: bool = False) -> None:
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:  # directories cannot be opened on Windows: nothing to sync there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _file_mode(path: str) -> int:
    """The replaced file's permissions, or the usual ones for a new file (``mkstemp`` makes it 0600)."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` on a fresh temporary file beside ``path``, fsync it, then ``os.replace`` it onto
    ``path``. On any exception the temporary file is deleted and ``path`` keeps its previous content."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, _file_mode(path))
        _fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_path(directory, directory=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    atomic_write(path, write)
