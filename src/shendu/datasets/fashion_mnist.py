"""Fashion-MNIST (Zalando Research), as ``keras.datasets.fashion_mnist``.

60,000 training and 10,000 test images of clothes, 28x28 uint8, labels 0..9 (:data:`CLASS_NAMES`).
Licence: MIT, © 2017 Zalando SE (Xiao, Rasul & Vollgraf, arXiv:1708.07747). The package ships the first
2,000 training and first 500 test images for offline use: ``load_data(sample=True)``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from shendu.datasets.download import FileSpec
from shendu.datasets.idx import IdxSplits, load_idx_dataset

NAME = "fashion-mnist"
MIRRORS: list[str] = [
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
]
FILES = (
    FileSpec("train-images-idx3-ubyte.gz", "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
             26421880),
    FileSpec("train-labels-idx1-ubyte.gz", "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845", 29515),
    FileSpec("t10k-images-idx3-ubyte.gz", "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073", 4422102),
    FileSpec("t10k-labels-idx1-ubyte.gz", "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5", 5148),
)
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot")


def load_data(path: str | os.PathLike | None = None, *, sample: bool = False,
              mirrors: Sequence[str] | str | None = None, verify: bool = True) -> IdxSplits:
    """``(x_train, y_train), (x_test, y_test)``: uint8 arrays (60000, 28, 28), (60000,), (10000, 28, 28), (10000,).

    Looks in ``path`` (a directory holding the four IDX ``.gz`` files, or a Keras-layout ``.npz``), else the
    cache ``~/.shendu/datasets/fashion-mnist/`` (``$SHENDU_DATA_DIR/fashion-mnist/``), else downloads from
    ``mirrors`` (default :data:`MIRRORS`, or ``$SHENDU_DATA_MIRRORS``) and verifies SHA-256. ``sample=True``
    returns the bundled subset (2,000 train / 500 test).

    >>> (x_train, y_train), _ = load_data(sample=True)
    >>> x_train.shape, CLASS_NAMES[y_train[0]]
    ((2000, 28, 28), 'Ankle boot')
    """
    return load_idx_dataset(NAME, FILES, MIRRORS, path=path, sample=sample, mirror_override=mirrors, verify=verify)
