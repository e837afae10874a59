"""Regenerate the offline sample shipped in this folder from the original, verified files.

    python src/shendu/datasets/_sample/make_sample.py [SOURCE_DIR]

SOURCE_DIR holds ``mnist/``, ``fashion-mnist/``, ``tiny-shakespeare/`` and ``sklearn/`` as in the
original distributions (default: the shendu cache, ``$SHENDU_DATA_DIR`` or ``~/.shendu/datasets``).
The output is byte-for-byte reproducible (gzip with no name and mtime 0).
"""

from __future__ import annotations

import gzip
import shutil
import sys
from pathlib import Path

from shendu.datasets import digits, fashion_mnist, mnist, tiny_shakespeare
from shendu.datasets.download import data_home, verify
from shendu.datasets.idx import read_idx, write_idx

HERE = Path(__file__).parent
N_TRAIN, N_TEST = 2000, 500
N_CHARS = 200_000


def make_idx_sample(module, source: Path, out: Path) -> None:
    """The first N_TRAIN training and N_TEST test images and labels, as IDX .gz files."""
    out_dir = out / module.NAME
    out_dir.mkdir(parents=True, exist_ok=True)
    for spec, count in zip(module.FILES, (N_TRAIN, N_TRAIN, N_TEST, N_TEST)):
        src = source / module.NAME / spec.name
        verify(src, spec)
        write_idx(out_dir / spec.name, read_idx(src)[:count])


def make_text_sample(source: Path, out: Path) -> None:
    """The first N_CHARS characters of tiny-shakespeare, cut back to the last line end."""
    src = source / tiny_shakespeare.NAME / "input.txt"
    verify(src, tiny_shakespeare.FILES[0])
    text = src.read_text(encoding="ascii")[:N_CHARS]
    text = text[: text.rindex("\n") + 1]
    target = out / tiny_shakespeare.NAME / tiny_shakespeare.SAMPLE_FILE.name
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "wb") as raw, \
            gzip.GzipFile(filename="", fileobj=raw, mode="wb", compresslevel=9, mtime=0) as f:
        f.write(text.encode("ascii"))


def copy_digits(source: Path, out: Path) -> None:
    """scikit-learn's digits.csv.gz, whole (57 KB)."""
    src = source / "sklearn" / digits.FILE.name
    verify(src, digits.FILE)
    target = out / digits.SAMPLE_DIR.name / digits.FILE.name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, target)


def main(source: Path, out: Path = HERE) -> list[Path]:
    """Write the sample from ``source`` into ``out``; return the files written."""
    make_idx_sample(mnist, source, out)
    make_idx_sample(fashion_mnist, source, out)
    make_text_sample(source, out)
    copy_digits(source, out)
    return sorted(out.rglob("*.gz"))


if __name__ == "__main__":
    for file in main(Path(sys.argv[1]) if len(sys.argv) > 1 else data_home()):
        print(f"{file.relative_to(HERE)}: {file.stat().st_size:,} bytes")
