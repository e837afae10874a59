"""MNIST handwritten digits (LeCun, Cortes & Burges), as ``keras.datasets.mnist``.

60,000 training and 10,000 test images, 28x28 grey levels 0..255 (uint8), labels 0..9 (uint8).
Licence: CC BY-SA 3.0, © Yann LeCun and Corinna Cortes. The package ships the first 2,000 training
and first 500 test digits for offline use: ``load_data(sample=True)``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from shendu.datasets.download import FileSpec
from shendu.datasets.idx import IdxSplits, load_idx_dataset

NAME = "mnist"
MIRRORS: list[str] = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
]
FILES = (
    FileSpec("train-images-idx3-ubyte.gz", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", 9912422),
    FileSpec("train-labels-idx1-ubyte.gz", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", 28881),
    FileSpec("t10k-images-idx3-ubyte.gz", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", 1648877),
    FileSpec("t10k-labels-idx1-ubyte.gz", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", 4542),
)


def load_data(path: str | os.PathLike | None = None, *, sample: bool = False,
              mirrors: Sequence[str] | str | None = None, verify: bool = True) -> IdxSplits:
    """``(x_train, y_train), (x_test, y_test)``: uint8 arrays (60000, 28, 28), (60000,), (10000, 28, 28), (10000,).

    Looks in ``path`` (a directory holding the four IDX ``.gz`` files, or Keras's ``mnist.npz``), else the
    cache ``~/.shendu/datasets/mnist/`` (``$SHENDU_DATA_DIR/mnist/``), else downloads from ``mirrors``
    (default :data:`MIRRORS`, or ``$SHENDU_DATA_MIRRORS``) and verifies SHA-256. ``sample=True`` returns the
    bundled subset (2,000 train / 500 test) with no file access outside the package.

    >>> (x_train, y_train), (x_test, y_test) = load_data(sample=True)
    >>> x_train.shape, x_train.dtype, y_test.shape
    ((2000, 28, 28), dtype('uint8'), (500,))
    """
    return load_idx_dataset(NAME, FILES, MIRRORS, path=path, sample=sample, mirror_override=mirrors, verify=verify)
