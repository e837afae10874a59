"""Atomic file writes: a crash (or an exception) mid-write never leaves a half-written file behind.

``atomic_write(path, write)`` lets ``write(tmp)`` fill a temporary file in the same directory as ``path``,
flushes it to disk (``fsync``), renames it over ``path`` with ``os.replace`` (atomic on POSIX and Windows)
and finally syncs the directory so the rename itself survives a power cut. If ``write`` raises, the
temporary file is removed and the previous ``path`` is untouched.

A process killed mid-write (``kill -9``, power cut) cannot remove its temporary file. So the temporary's
name carries the writer's process id, ``.<name>.<pid>.<random>.tmp``, and every write first removes the
temporaries *of the same target* whose writer process no longer exists (on POSIX, where ``os.kill(pid, 0)``
tells). A temporary of a live writer (another process or thread saving right now) is never touched.

This module sits low in the house (``shendu.utils``) so that saving, weights files and dataset downloads
all share it.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable

__all__ = ["atomic_write", "atomic_write_bytes", "remove_stale_temporaries", "temporary_prefix"]


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


def temporary_prefix(path: str | os.PathLike) -> str:
    """The start of the names of ``path``'s temporaries: ``.<name>.`` (then ``<pid>.<random>.tmp``)."""
    return f".{os.path.basename(os.fspath(path))}."


def _process_exists(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists (POSIX)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists but belongs to another user
        return True
    return True


def remove_stale_temporaries(path: str | os.PathLike) -> list[str]:
    """Delete the temporaries of ``path`` left by writers that were killed; return the removed paths.

    Only names of the form ``.<name>.<pid>.<random>.tmp`` whose ``<pid>`` is no longer running are removed;
    on platforms without ``os.kill(pid, 0)`` (Windows) nothing is removed.
    """
    if os.name != "posix":
        return []
    path = os.path.abspath(os.fspath(path))
    directory = os.path.dirname(path)
    pattern = re.compile(re.escape(temporary_prefix(path)) + r"(\d+)\.[A-Za-z0-9_]+\.tmp")
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    for name in names:
        match = pattern.fullmatch(name)
        if match and not _process_exists(int(match.group(1))):
            try:
                os.remove(os.path.join(directory, name))
                removed.append(os.path.join(directory, name))
            except OSError:  # removed by someone else meanwhile, or not ours to remove
                pass
    return removed


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` on a fresh temporary file beside ``path``, fsync it, then ``os.replace`` it onto
    ``path``. On any exception the temporary file is deleted and ``path`` keeps its previous content.
    Temporaries of ``path`` left by killed writers are removed first (see the module docstring)."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f"{temporary_prefix(path)}{os.getpid()}.", suffix=".tmp")
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
