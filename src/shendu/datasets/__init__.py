"""Real datasets, Keras-compatible: ``mnist``, ``fashion_mnist``, ``digits``, ``tiny_shakespeare``.

``mnist.load_data()`` returns ``(x_train, y_train), (x_test, y_test)`` exactly as Keras does. Files come
from ``path=``, else the cache (``~/.shendu/datasets``, or ``$SHENDU_DATA_DIR``), else a verified download
(:mod:`shendu.datasets.download`). Offline, ``load_data(sample=True)`` returns the real subset shipped
with the package.
"""

from shendu.datasets import digits, fashion_mnist, mnist, tiny_shakespeare
from shendu.datasets.download import ChecksumError, DatasetNotFoundError, data_home

__all__ = ["ChecksumError", "DatasetNotFoundError", "data_home", "digits", "fashion_mnist", "mnist",
           "tiny_shakespeare"]
