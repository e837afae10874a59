"""tiny-shakespeare: 1,115,394 characters of Shakespeare's plays (Karpathy's char-rnn corpus).

Plain ASCII, 65 distinct characters. The text is in the public domain (the char-rnn repository is MIT,
© 2014 Andrej Karpathy). The package ships its first 200,000 characters (cut at a line end) for offline
use: ``load_data(sample=True)``. The usual split (nanoGPT) is the first 90% for training::

    text = load_data()
    n = int(0.9 * len(text))
    train_text, val_text = text[:n], text[n:]
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Sequence
from pathlib import Path

from shendu.datasets.download import FileSpec, fetch

NAME = "tiny-shakespeare"
MIRRORS: list[str] = [
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/",
]
FILES = (FileSpec("input.txt", "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed", 1115394),)
SAMPLE_FILE = Path(__file__).parent / "_sample" / NAME / "input.txt.gz"


def load_data(path: str | os.PathLike | None = None, *, sample: bool = False,
              mirrors: Sequence[str] | str | None = None, verify: bool = True) -> str:
    """Return the corpus as one string.

    Looks in ``path`` (a directory holding ``input.txt``), else the cache
    ``~/.shendu/datasets/tiny-shakespeare/`` (``$SHENDU_DATA_DIR/...``), else downloads from ``mirrors``
    and verifies SHA-256. ``sample=True`` returns the bundled first 200,000 characters.

    >>> text = load_data(sample=True)
    >>> text[:14], len(set(text)) <= 65
    ('First Citizen:', True)
    """
    if sample:
        return gzip.decompress(SAMPLE_FILE.read_bytes()).decode("ascii")
    hint = "shendu.datasets.tiny_shakespeare.load_data(sample=True) loads the bundled first 200,000 characters."
    (file,) = fetch(NAME, FILES, MIRRORS, path=path, mirrors=mirrors, verify_checksums=verify, sample_hint=hint)
    return file.read_text(encoding="utf-8")
