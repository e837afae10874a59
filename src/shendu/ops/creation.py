"""Creating tensors: ``tensor``, ``zeros``, ``ones``, ``full``, ``arange``, ``eye``, ``rand``, ``randn`` and ``*_like``.

Floats default to float32 (``shendu.backend.default_float_dtype()``); pass ``dtype=`` for others.
They live in ``shendu.ops`` because Keras 3's ``keras.ops`` has them (``ops.ones(shape)``, ``ops.zeros``,
``ops.full``, ``ops.arange``, ``ops.eye``, ``ops.*_like``); ``shendu.creation`` re-exports them. The shape is
taken both ways: Keras/NumPy's ``ones((2, 3))`` or ``ones(shape=(2, 3))``, and PyTorch's ``ones(2, 3)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shendu import backend
from shendu.autograd.tensor import Tensor
from shendu.rng import get_rng


def _shape(shape: Any, *more: Any) -> tuple[int, ...]:
    """``(2, 3)``, ``[2, 3]``, ``2`` or ``2, 3`` (PyTorch's varargs) as a tuple of ints."""
    if more:
        return (int(shape), *(int(n) for n in more))
    if isinstance(shape, (int, np.integer)):
        return (int(shape),)
    return tuple(int(n) for n in shape)


def _make(array: Any, requires_grad: bool, device: str | None) -> Tensor:
    return Tensor(backend.as_array(array, dtype=array.dtype, device=device or "cpu"), requires_grad=requires_grad)


def _xp(device: str | None):
    return backend.module_for(device or "cpu")


def _float(dtype: Any) -> Any:
    return backend.default_float_dtype() if dtype is None else dtype


def tensor(data: Any, dtype: Any = None, requires_grad: bool = False, device: str | None = None) -> Tensor:
    """A new leaf tensor holding a copy of ``data`` (a list, scalar, array or Tensor), as ``torch.tensor``.

    Python floats become float32 unless ``dtype`` says otherwise; NumPy arrays keep their dtype.

    >>> import shendu
    >>> shendu.tensor([[1.0, 2.0]]).dtype, shendu.tensor([1, 2]).dtype
    (dtype('float32'), dtype('int64'))
    """
    if isinstance(data, Tensor):
        data = data.data
    array = backend.as_array(data, dtype=dtype, device=device)
    if array is data:  # as_array converts or moves everything else into a new array already
        array = array.copy()
    return Tensor(array, requires_grad=requires_grad)


def zeros(shape: Any = (), *more: int, dtype: Any = None, requires_grad: bool = False,
          device: str | None = None) -> Tensor:
    """A tensor of zeros: ``zeros((2, 3))``, ``zeros(shape=(2, 3))`` or ``zeros(2, 3)``."""
    return _make(_xp(device).zeros(_shape(shape, *more), dtype=_float(dtype)), requires_grad, device)


def ones(shape: Any = (), *more: int, dtype: Any = None, requires_grad: bool = False,
         device: str | None = None) -> Tensor:
    """A tensor of ones: ``ones((2, 3))``, ``ones(shape=(2, 3))`` or ``ones(2, 3)``."""
    return _make(_xp(device).ones(_shape(shape, *more), dtype=_float(dtype)), requires_grad, device)


def full(shape: Any, fill_value: Any, dtype: Any = None, requires_grad: bool = False,
         device: str | None = None) -> Tensor:
    """A tensor filled with ``fill_value``."""
    shape = _shape(shape)
    if dtype is None:
        dtype = _float(None) if isinstance(fill_value, float) else np.asarray(fill_value).dtype
    return _make(_xp(device).full(shape, fill_value, dtype=dtype), requires_grad, device)


def arange(start: Any, stop: Any = None, step: Any = None, dtype: Any = None, requires_grad: bool = False,
           device: str | None = None) -> Tensor:
    """Evenly spaced values in [start, stop) by ``step`` (default 1; integers stay integers, floats become
    float32)."""
    step = 1 if step is None else step
    values = np.arange(start, stop, step) if stop is not None else np.arange(start)
    if dtype is None and values.dtype.kind == "f":
        dtype = _float(None)
    return _make(values.astype(dtype) if dtype is not None else values, requires_grad, device)


def eye(N: int, M: int | None = None, k: int = 0, dtype: Any = None, requires_grad: bool = False,  # noqa: N803
        device: str | None = None) -> Tensor:
    """An N x M matrix (M = N by default) of ones on the k-th diagonal (k > 0 above the main one), zeros elsewhere
    (Keras's and NumPy's names)."""
    return _make(_xp(device).eye(N, M, k, dtype=_float(dtype)), requires_grad, device)


def rand(*shape: Any, dtype: Any = None, requires_grad: bool = False, device: str | None = None) -> Tensor:
    """Uniform samples in [0, 1) from shendu's seeded generator (drawn on the host, so every device sees the
    same numbers after ``shendu.seed``)."""
    return _make(get_rng().random(_shape(*shape) if shape else ()).astype(_float(dtype)), requires_grad, device)


def randn(*shape: Any, dtype: Any = None, requires_grad: bool = False, device: str | None = None) -> Tensor:
    """Standard normal samples from shendu's seeded generator."""
    samples = get_rng().standard_normal(_shape(*shape) if shape else ())
    return _make(samples.astype(_float(dtype)), requires_grad, device)


def _like(fn: Any, x: Any, dtype: Any, requires_grad: bool, float_only: bool = False) -> Tensor:
    data = x.data if isinstance(x, Tensor) else backend.as_array(x)
    if dtype is None:
        dtype = data.dtype if data.dtype.kind == "f" or not float_only else _float(None)
    return fn(data.shape, dtype=dtype, requires_grad=requires_grad, device=backend.device_of(data))


def zeros_like(x: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Zeros with the shape, dtype and device of ``x``."""
    return _like(zeros, x, dtype, requires_grad)


def ones_like(x: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Ones with the shape, dtype and device of ``x``."""
    return _like(ones, x, dtype, requires_grad)


def full_like(x: Any, fill_value: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """``fill_value`` with the shape, dtype and device of ``x``."""
    data = x.data if isinstance(x, Tensor) else backend.as_array(x)
    return full(data.shape, fill_value, dtype=data.dtype if dtype is None else dtype, requires_grad=requires_grad,
                device=backend.device_of(data))


def rand_like(x: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Uniform samples with the shape, dtype (float32 for non-float ``x``) and device of ``x``."""
    return _like(rand, x, dtype, requires_grad, float_only=True)


def randn_like(x: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Normal samples with the shape, dtype (float32 for non-float ``x``) and device of ``x``."""
    return _like(randn, x, dtype, requires_grad, float_only=True)
