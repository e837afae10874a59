"""The 8x8 handwritten digits of scikit-learn (UCI "Optical Recognition of Handwritten Digits" test set).

1,797 images, 8x8 pixel counts 0..16, labels 0..9. Small enough to ship whole with the package, so
:func:`load_data` always works offline. Licence: scikit-learn's BSD-3-Clause; data from E. Alpaydin and
C. Kaynak (UCI, 1998).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from shendu.datasets.download import FileSpec, verify

FILE = FileSpec("digits.csv.gz", "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22", 57523)
SAMPLE_DIR = Path(__file__).parent / "_sample" / "digits"


def load_digits(path: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 digits: images uint8 (1797, 8, 8) with values 0..16, labels uint8 (1797,), in file order.

    ``path`` is a directory holding scikit-learn's ``digits.csv.gz`` (default: the copy in the package).
    """
    file = (Path(path).expanduser() if path is not None else SAMPLE_DIR) / FILE.name
    verify(file, FILE)
    table = np.loadtxt(file, delimiter=",", dtype=np.float64)
    images = table[:, :64].astype(np.uint8).reshape(-1, 8, 8)
    return images, table[:, 64].astype(np.uint8)


def load_data(path: str | os.PathLike | None = None, test_split: float = 0.2,
              seed: int = 113) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``(x_train, y_train), (x_test, y_test)`` after a seeded shuffle, the last ``test_split`` held out.

    The split follows ``keras.datasets.boston_housing.load_data``: a ``numpy.random.RandomState(seed)``
    permutation, then the first ``1 - test_split`` of the samples for training.

    >>> (x_train, y_train), (x_test, y_test) = load_data()
    >>> x_train.shape, x_test.shape, int(x_train.max())
    ((1437, 8, 8), (360, 8, 8), 16)
    """
    if not 0.0 <= test_split < 1.0:
        raise ValueError(f"digits.load_data: test_split must be in [0, 1), got {test_split}")
    images, labels = load_digits(path)
    order = np.arange(len(images))
    np.random.RandomState(seed).shuffle(order)
    images, labels = images[order], labels[order]
    n_train = int(len(images) * (1 - test_split))
    return (images[:n_train], labels[:n_train]), (images[n_train:], labels[n_train:])
