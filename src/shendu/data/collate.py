"""``default_collate``: stacking samples into a batch (used by ``DataLoader`` and ``Subset``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from shendu.autograd.tensor import Tensor
from shendu.backend import get_array_module, is_array


def default_collate(samples: list[Any]) -> Any:
    """Stack a list of samples into a batch, field by field.

    Tuples and lists give a tuple/list of batches, dicts a dict, arrays and Tensors are stacked on a new
    first axis (as arrays), numbers become an array, strings stay a list.

    >>> import numpy as np
    >>> x, y = default_collate([(np.zeros(2), 1), (np.ones(2), 0)])
    >>> x.shape, y
    ((2, 2), array([1, 0]))
    """
    first = samples[0]
    if isinstance(first, (tuple, list)):
        fields = [default_collate([s[i] for s in samples]) for i in range(len(first))]
        return fields if isinstance(first, list) else tuple(fields)
    if isinstance(first, dict):
        return {key: default_collate([s[key] for s in samples]) for key in first}
    if isinstance(first, Tensor):
        samples = [s.data for s in samples]
        first = samples[0]
    if is_array(first):
        return get_array_module(first).stack(samples)
    if isinstance(first, (str, bytes)):
        return list(samples)
    return np.asarray(samples)
