"""The only module that knows NumPy from CuPy.

Every op is written once against the array module of its inputs::

    xp = get_array_module(x)
    return xp.exp(x)

so a CuPy array flows through unchanged. CuPy is optional: when it is not installed
(or no GPU is present) everything runs on NumPy.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

try:  # pragma: no cover - exercised only on GPU machines
    import cupy as _cupy

    _cupy.cuda.runtime.getDeviceCount()
except Exception:  # ImportError, or CUDA present but no device
    _cupy = None

try:
    from scipy import special as _scipy_special
except ImportError:  # pragma: no cover - scipy is optional
    _scipy_special = None

_DEFAULT_FLOAT = np.float32


def cupy_available() -> bool:
    """True when CuPy is importable and sees a GPU."""
    return _cupy is not None


def get_array_module(*arrays: Any):
    """Return ``cupy`` if any argument is a CuPy array, else ``numpy``."""
    if _cupy is not None:
        for a in arrays:
            if isinstance(a, _cupy.ndarray):
                return _cupy
    return np


def is_array(x: Any) -> bool:
    """True for a NumPy or CuPy ndarray."""
    return isinstance(x, np.ndarray) or (_cupy is not None and isinstance(x, _cupy.ndarray))


def ensure_array(y: Any):
    """Turn NumPy scalars (what NumPy reductions return) into 0-d arrays."""
    if type(y) is np.ndarray:
        return y
    if isinstance(y, np.generic):
        return np.asarray(y)
    return y


def module_for(device: str):
    """The array module for ``device``: ``numpy`` for 'cpu', ``cupy`` for 'cuda' (or 'gpu')."""
    if device == "cpu":
        return np
    if device in ("cuda", "gpu"):
        if _cupy is None:
            raise RuntimeError(f"device={device!r} needs CuPy and a CUDA GPU, and none was found; install CuPy "
                               "(e.g. pip install cupy-cuda12x) on a machine with a GPU, or use device='cpu'")
        return _cupy
    raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")


def as_array(data: Any, dtype: Any = None, device: str | None = None):
    """Convert ``data`` to an ndarray on ``device`` ('cpu' or 'cuda'; None: where it is); floats default to
    float32. Arrays already of the right kind and dtype are returned as they are (no copy)."""
    xp = get_array_module(data) if device is None else module_for(device)
    if xp is np and _cupy is not None and isinstance(data, _cupy.ndarray):
        data = data.get()
    if dtype is None and not is_array(data):
        arr = np.asarray(data)
        if arr.dtype == np.float64 and not isinstance(data, np.generic):
            arr = arr.astype(_DEFAULT_FLOAT)
        return xp.asarray(arr)
    return xp.asarray(data, dtype=dtype)


def to_numpy(x: Any) -> np.ndarray:
    """Copy a CuPy array to the host; NumPy arrays are returned as they are."""
    if _cupy is not None and isinstance(x, _cupy.ndarray):
        return x.get()
    return np.asarray(x)


def device_of(x: Any) -> str:
    """'cuda' for a CuPy array, 'cpu' otherwise."""
    return "cuda" if get_array_module(x) is not np else "cpu"


def default_float_dtype():
    """The dtype given to Python floats and new parameters (float32 unless changed)."""
    return _DEFAULT_FLOAT


def set_default_float_dtype(dtype: Any) -> None:
    """Set the default float dtype ('float32' or 'float64')."""
    global _DEFAULT_FLOAT
    dtype = np.dtype(dtype).type
    if dtype not in (np.float32, np.float64, np.float16):
        raise ValueError(f"default float dtype must be float16/32/64, got {dtype}")
    _DEFAULT_FLOAT = dtype


_erf_scalar = np.vectorize(math.erf, otypes=[np.float64])


def erf(x):
    """The error function, elementwise, on the array module of ``x``."""
    xp = get_array_module(x)
    if xp is not np:  # pragma: no cover - GPU only
        from cupyx.scipy import special

        return special.erf(x)
    if _scipy_special is not None:
        return _scipy_special.erf(x)
    return _erf_scalar(x).astype(x.dtype, copy=False)
