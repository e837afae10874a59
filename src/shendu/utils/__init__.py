"""Utilities as Keras has them: ``to_categorical``, ``set_random_seed``, ``PyDataset``, the registry of custom
objects (``register_keras_serializable``, ``get_custom_objects``, ``custom_object_scope``), the progress bar used by
``fit``, and the pictures (``plot_history``, ``plot_model``, ``graph_to_dot``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from shendu.random import seed as _seed
from shendu.utils.batches import pack_x_y_sample_weight, unpack_x_y_sample_weight
from shendu.utils.custom_objects import (
    CustomObjectScope,
    custom_object_scope,
    get_custom_objects,
    get_registered_name,
    get_registered_object,
    register_keras_serializable,
)
from shendu.utils.explain import explain_step, plot_explain
from shendu.utils.plotting import graph_to_dot, model_to_dot, plot_history, plot_model
from shendu.utils.progress import ProgressBar
from shendu.utils.py_dataset import PyDataset, Sequence
from shendu.utils.weights_io import load_weights_file, save_weights_file

__all__ = ["CustomObjectScope", "ProgressBar", "PyDataset", "Sequence", "custom_object_scope", "explain_step",
           "get_custom_objects", "get_registered_name", "get_registered_object", "graph_to_dot", "load_weights_file",
           "model_to_dot", "normalize", "pack_x_y_sample_weight", "plot_explain", "plot_history", "plot_model",
           "register_keras_serializable", "save_weights_file", "set_random_seed", "to_categorical",
           "unpack_x_y_sample_weight"]


def to_categorical(x: Any, num_classes: int | None = None) -> np.ndarray:
    """One-hot encode integer class labels; the class axis goes last (a trailing axis of size 1 is dropped).

    ``y[..., c] = 1`` where ``x == c``, else 0 (float32; Keras returns its float default too).

    >>> to_categorical([0, 2, 1], num_classes=3)
    array([[1., 0., 0.],
           [0., 0., 1.],
           [0., 1., 0.]], dtype=float32)
    """
    labels = np.asarray(x.data if hasattr(x, "data") and not isinstance(x, np.ndarray) else x)
    if labels.dtype.kind == "f":
        if not np.all(labels == np.round(labels)):
            raise ValueError("to_categorical: labels must be whole numbers (class indices), got fractional values; "
                             "did you pass probabilities or already one-hot data?")
    elif labels.dtype.kind not in "iub":
        raise ValueError(f"to_categorical: labels must be integers, got dtype {labels.dtype}")
    labels = labels.astype(np.int64)
    shape = labels.shape
    if len(shape) > 1 and shape[-1] == 1:
        shape = shape[:-1]
    flat = labels.reshape(-1)
    if flat.size and flat.min() < 0:
        raise ValueError(f"to_categorical: labels must be >= 0, got {flat.min()}")
    if num_classes is None:
        num_classes = int(flat.max()) + 1 if flat.size else 0
    elif flat.size and flat.max() >= num_classes:
        raise ValueError(f"to_categorical: label {flat.max()} is out of range for num_classes={num_classes} "
                         f"(labels must lie in 0..{num_classes - 1}); leave num_classes=None to infer it")
    out = np.zeros((flat.size, num_classes), dtype=np.float32)
    out[np.arange(flat.size), flat] = 1
    return out.reshape(shape + (num_classes,))


def set_random_seed(seed: int) -> None:
    """Seed everything random in shendu (initialisation, dropout, shuffling) and NumPy/Python's generators.

    The same as ``shendu.seed(seed)``; Keras's name.
    """
    _seed(seed)


def normalize(x: Any, axis: int = -1, order: int = 2) -> np.ndarray:
    """``x / ||x||_order`` along ``axis`` (zero vectors stay zero), as ``keras.utils.normalize``.

    >>> normalize(np.array([[3.0, 4.0]]))
    array([[0.6, 0.8]])
    """
    x = np.asarray(x)
    norm = np.atleast_1d(np.linalg.norm(x, order, axis))
    norm[norm == 0] = 1
    return x / np.expand_dims(norm, axis)
