"""Find a dataset's files: a given directory, else the cache, else a verified download from mirrors.

Every dataset file is described by a :class:`FileSpec` (name, SHA-256, size). :func:`fetch` returns
the paths of a dataset's files, looking in this order:

1. ``path=`` (a directory the caller names), used as it is (never written to);
2. the cache, ``data_home()/<dataset>/`` (``~/.shendu/datasets/<dataset>/``, or
   ``$SHENDU_DATA_DIR/<dataset>/``), whose layout matches the original distribution (so
   ``SHENDU_DATA_DIR`` can point at a read-only copy of the data);
3. a download from each mirror in turn, into a temporary file in the cache directory, hashed while it
   streams, renamed into place only when its SHA-256 matches. A partial, oversize or corrupted
   download is deleted, so the cache only ever holds verified files.

When nothing works, :class:`DatasetNotFoundError` says which files are missing, the exact directory
to put them in, and every mirror tried with the reason it failed.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from shendu.utils.atomic import atomic_write

CHUNK_BYTES = 1 << 20
TIMEOUT_S = 30.0


@dataclass(frozen=True)
class FileSpec:
    """One file of a dataset: its name (also its name on every mirror), SHA-256 and size in bytes."""

    name: str
    sha256: str
    size: int


class DatasetNotFoundError(FileNotFoundError):
    """Raised when a dataset's files are neither given, cached nor downloadable."""


class ChecksumError(OSError):
    """Raised when a file's SHA-256 is not the published one."""


def data_home() -> Path:
    """The cache root: ``$SHENDU_DATA_DIR`` when set, else ``~/.shendu/datasets``."""
    env = os.environ.get("SHENDU_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".shendu" / "datasets"


def mirror_list(dataset: str, default: Sequence[str], mirrors: Sequence[str] | str | None = None) -> list[str]:
    """The base URLs to try, in order: ``mirrors`` if given, else ``$SHENDU_DATA_MIRRORS``, else ``default``.

    A mirror is a base URL to which the file name is appended; ``{name}`` in it becomes the dataset name.
    The environment variable holds URLs separated by commas or whitespace.

    >>> mirror_list("mnist", [], "http://localhost:8000/{name}")
    ['http://localhost:8000/mnist/']
    """
    if mirrors is None:
        mirrors = os.environ.get("SHENDU_DATA_MIRRORS") or list(default)
    if isinstance(mirrors, str):
        mirrors = mirrors.replace(",", " ").split()
    return [m.format(name=dataset).rstrip("/") + "/" for m in mirrors]


def sha256_of(path: str | os.PathLike) -> str:
    """The hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path: str | os.PathLike, spec: FileSpec) -> None:
    """Raise :class:`ChecksumError` unless ``path`` has the SHA-256 in ``spec``."""
    actual = sha256_of(path)
    if actual != spec.sha256:
        raise ChecksumError(f"{path}: SHA-256 is {actual}, expected {spec.sha256} (a corrupted or different "
                            f"file; delete it and let shendu download it again, or pass verify=False if you "
                            f"know it holds the same data)")


def download(url: str, dest: str | os.PathLike, spec: FileSpec, progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` atomically, keeping it only if its size and SHA-256 match ``spec``.

    The bytes stream into a hidden temporary file next to ``dest`` (same filesystem), which is renamed
    to ``dest`` with :func:`os.replace` once verified and deleted on any failure
    (:func:`shendu.utils.atomic.atomic_write`).
    """
    def write(tmp: str) -> None:
        digest = hashlib.sha256()
        received = 0
        with open(tmp, "wb") as out, urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, \
                _progress_bar(spec, url, progress) as bar:
            while chunk := response.read(CHUNK_BYTES):
                received += len(chunk)
                if received > spec.size:
                    raise ChecksumError(f"{url}: more than the expected {spec.size} bytes")
                digest.update(chunk)
                out.write(chunk)
                bar.update(len(chunk))
        if digest.hexdigest() != spec.sha256:
            raise ChecksumError(f"{url}: SHA-256 is {digest.hexdigest()}, expected {spec.sha256} "
                                f"({received} bytes received, {spec.size} expected)")

    dest = Path(dest)
    atomic_write(dest, write)
    return dest


def fetch(dataset: str, files: Sequence[FileSpec], default_mirrors: Sequence[str], *,
          path: str | os.PathLike | None = None, mirrors: Sequence[str] | str | None = None,
          verify_checksums: bool = True, sample_hint: str = "") -> list[Path]:
    """Return the local paths of ``files`` of ``dataset``, downloading (and verifying) those not cached.

    ``path`` (a directory holding the files) skips the cache and downloads entirely. ``sample_hint``
    is appended to the error, e.g. the call that loads the bundled sample instead.
    """
    if path is not None:
        directory = Path(path).expanduser()
        missing = [f for f in files if not (directory / f.name).is_file()]
        if missing:
            raise DatasetNotFoundError(_missing_message(dataset, missing, directory, None, sample_hint))
        found = [directory / f.name for f in files]
        if verify_checksums:
            for p, spec in zip(found, files):
                verify(p, spec)
        return found

    directory = data_home() / dataset
    urls = mirror_list(dataset, default_mirrors, mirrors)
    failures: list[str] = []
    missing: list[FileSpec] = []
    unreachable: set[str] = set()  # mirrors not tried again for the next files
    for spec in files:
        target = directory / spec.name
        if target.is_file():
            try:
                if verify_checksums:
                    verify(target, spec)
                continue
            except ChecksumError:  # a cached file that no longer verifies: replace it
                failures.append(f"{target}: the cached copy failed its SHA-256 check and was removed")
                _remove_quietly(target)
        if not _download_from_mirrors(spec, target, urls, failures, unreachable):
            missing.append(spec)
    if missing:
        raise DatasetNotFoundError(_missing_message(dataset, missing, directory, failures, sample_hint))
    return [directory / f.name for f in files]


def _download_from_mirrors(spec: FileSpec, target: Path, urls: list[str], failures: list[str],
                           unreachable: set[str]) -> bool:
    """Try each reachable mirror in turn; record why each failed; True once one succeeded."""
    for base in urls:
        if base in unreachable:
            continue
        url = base + spec.name
        try:
            download(url, target, spec)
            return True
        except (OSError, http.client.HTTPException, ValueError) as err:  # HTTP errors, timeouts, refused, bad URL
            failures.append(f"{url}: {_reason(err)}")
            if isinstance(err, (urllib.error.URLError, TimeoutError)) and not isinstance(err, urllib.error.HTTPError):
                unreachable.add(base)
    return False


def _remove_quietly(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:  # a read-only data directory: the download below will say so
        pass


def _reason(err: Exception) -> str:
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code} {err.reason}"
    if isinstance(err, urllib.error.URLError):
        return f"unreachable ({err.reason})"
    return str(err)


def _missing_message(dataset: str, missing: Sequence[FileSpec], directory: Path, failures: Sequence[str] | None,
                     sample_hint: str) -> str:
    """``failures`` is None when the files were looked for only in a directory given as ``path=``."""
    names = ", ".join(f.name for f in missing)
    if failures is None:
        return f"{dataset}: {names} not found in {directory} (the directory given as path=). {sample_hint}".strip()
    lines = [f"{dataset}: missing file(s) {names}.",
             f"Put them in {directory} (the cache; set SHENDU_DATA_DIR to use another), or pass path= "
             f"to load_data."]
    if failures:
        lines.append("Download attempts (set SHENDU_DATA_MIRRORS or pass mirrors= to use other mirrors):")
        lines += [f"  - {f}" for f in failures]
    else:
        lines.append("No mirror to download from (mirrors= or SHENDU_DATA_MIRRORS is empty).")
    if sample_hint:
        lines.append(f"Offline? {sample_hint}")
    return "\n".join(lines)


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def _progress_bar(spec: FileSpec, url: str, progress: bool):
    """A tqdm byte counter on an interactive stderr; one plain line in logs."""
    if not progress:
        return _NoBar()
    if not sys.stderr.isatty():
        print(f"Downloading {url} ({spec.size:,} bytes)", file=sys.stderr)
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=spec.size, unit="B", unit_scale=True, desc=f"Downloading {url}", leave=False)
