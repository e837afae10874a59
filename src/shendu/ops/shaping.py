"""Shape ops: they move, copy or sum elements; the gradient moves them back.

expand_dims, squeeze and flatten are reshapes; take, repeat, tile, gather and split are indexing.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from shendu.autograd.op import Op, raw
from shendu.autograd.tensor import Tensor
from shendu.backend import get_array_module


def broadcast_error(op: str, *arrays: Any) -> ValueError:
    """The error for operands whose shapes do not broadcast: names the op and every shape."""
    shapes = " and ".join(str(tuple(getattr(a, "shape", ()))) for a in arrays)
    return ValueError(f"{op}: shapes {shapes} cannot be broadcast together (NumPy rules: trailing axes must be "
                      "equal or 1); reshape or expand_dims one of them")


class ReshapeOp(Op):
    """y = x viewed with a new shape;   dx = reshape(gy, x.shape)"""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape

    def forward(self, x):
        self.in_shape = x.shape
        try:
            return x.reshape(self.shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} ({x.size} elements) into "
                             f"shape {self.shape}; the number of elements must stay the same") from None

    def backward(self, gy, x, y):
        return reshape(gy, self.in_shape)


class TransposeOp(Op):
    """y = x with its axes permuted;   dx = gy permuted back by the inverse permutation"""

    def __init__(self, axes: Sequence[int] | None) -> None:
        self.axes = axes

    def forward(self, x):
        if self.axes is None:
            self.axes = tuple(range(x.ndim - 1, -1, -1))
        elif sorted(a % x.ndim for a in self.axes) != list(range(x.ndim)):
            raise ValueError(f"transpose: axes {tuple(self.axes)} are not a permutation of the {x.ndim} axes "
                             f"of a tensor of shape {x.shape}")
        return x.transpose(self.axes)

    def backward(self, gy, x, y):
        return transpose(gy, tuple(np.argsort([a % x.ndim for a in self.axes])))


class BroadcastToOp(Op):
    """y = x broadcast to ``shape``;   dx = gy summed over the broadcast axes (sum_to)"""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = tuple(shape)

    def forward(self, x):
        self.in_shape = x.shape
        try:
            return get_array_module(x).broadcast_to(x, self.shape)
        except ValueError:
            raise ValueError(f"broadcast_to: a tensor of shape {x.shape} cannot be broadcast to "
                             f"{self.shape}") from None

    def backward(self, gy, x, y):
        return sum_to(gy, self.in_shape)


def sum_keepdims(x: Any, axes: tuple[int, ...]) -> Any:
    """An array summed over ``axes`` (sorted, non-negative) with keepdims. For float arrays the two common cases
    (the last axis; every axis but the last, as in bias and batch-norm gradients) are a matrix-vector
    product, which BLAS does several times faster than ``x.sum`` (below ~8192 elements the overhead eats that)."""
    last = x.ndim - 1
    if x.size >= 8192 and x.dtype.kind == "f" and x.flags.c_contiguous:
        xp = get_array_module(x)
        if axes == (last,):
            return (x @ xp.ones(x.shape[-1], x.dtype))[..., None]
        if last > 0 and axes == tuple(range(last)):
            return (xp.ones(x.size // x.shape[-1], x.dtype) @ x.reshape(-1, x.shape[-1])).reshape(
                (1,) * last + x.shape[-1:])
    return x.sum(axis=axes, keepdims=True)


class SumToOp(Op):
    """y = x summed down to ``shape`` (the reverse of broadcasting);   dx = broadcast_to(gy, x.shape)"""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = tuple(shape)

    def forward(self, x):
        self.in_shape = x.shape
        lead = x.ndim - len(self.shape)
        squeezed = tuple(lead + i for i, n in enumerate(self.shape) if n == 1 and x.shape[lead + i] != 1)
        axes = tuple(range(lead)) + squeezed
        y = sum_keepdims(x, axes) if axes else x
        return y.reshape(self.shape) if lead else y

    def backward(self, gy, x, y):
        return broadcast_to(gy, self.in_shape)


class ConcatenateOp(Op):
    """y = [x1, x2, ...] joined along ``axis``;   dx_i = the slice of gy where x_i landed"""

    def __init__(self, axis: int = 0) -> None:
        self.axis = axis

    def forward(self, *xs):
        xp = get_array_module(*xs)
        self.sizes = [x.shape[self.axis] for x in xs]
        try:
            return xp.concatenate(xs, axis=self.axis)
        except ValueError:
            shapes = ", ".join(str(x.shape) for x in xs)
            raise ValueError(f"concatenate along axis {self.axis}: shapes {shapes} must agree on every "
                             "other axis") from None

    def backward(self, gy, *xs_y):
        lead = (slice(None),) * (self.axis % gy.ndim)
        grads, start = [], 0
        for n in self.sizes:
            grads.append(gy[lead + (slice(start, start + n),)])
            start += n
        return tuple(grads)


class StackOp(Op):
    """y = [x1, x2, ...] stacked on a new ``axis``;   dx_i = gy[..., i, ...]"""

    def __init__(self, axis: int = 0) -> None:
        self.axis = axis

    def forward(self, *xs):
        xp = get_array_module(*xs)
        try:
            return xp.stack(xs, axis=self.axis)
        except ValueError:
            shapes = ", ".join(str(x.shape) for x in xs)
            raise ValueError(f"stack: all shapes must be equal, got {shapes}") from None

    def backward(self, gy, *xs_y):
        lead = (slice(None),) * (self.axis % gy.ndim)
        return tuple(gy[lead + (i,)] for i in range(len(xs_y) - 1))


class PadOp(Op):
    """y = x padded with a constant;   dx = gy with the padding cut off"""

    def __init__(self, pad_width: Any, value: float = 0.0) -> None:
        self.pad_width, self.value = pad_width, value

    def forward(self, x):
        widths = np.broadcast_to(np.asarray(self.pad_width, dtype=int), (x.ndim, 2))
        self.key = tuple(slice(int(b), int(b) + n) for (b, _), n in zip(widths, x.shape))
        return get_array_module(x).pad(x, [tuple(int(v) for v in w) for w in widths], constant_values=self.value)

    def backward(self, gy, x, y):
        return gy[self.key]


def _is_basic(key: tuple) -> bool:
    return all(k is None or k is Ellipsis or isinstance(k, (int, np.integer, slice)) for k in key)


class GetItemOp(Op):
    """y = x[key] (basic or advanced indexing);   dx = zeros with gy added at the indexed places
    (repeated indices accumulate)"""

    def __init__(self, key: Any) -> None:
        self.key = key

    def forward(self, x):
        self.in_shape = x.shape
        try:
            return x[self.key]
        except IndexError as e:
            raise IndexError(f"getitem: index {self.key!r} does not fit a tensor of shape {x.shape}: {e}") from None

    def backward(self, gy, x, y):
        return IndexAddOp(self.key, self.in_shape)(gy)


class IndexAddOp(Op):
    """y = zeros(shape) with x added at ``key`` (the gradient of getitem);   dx = gy[key]"""

    def __init__(self, key: Any, shape: tuple[int, ...]) -> None:
        self.key, self.shape = key, shape

    def forward(self, x):
        xp = get_array_module(x)
        out = xp.zeros(self.shape, dtype=x.dtype)
        key = self.key if isinstance(self.key, tuple) else (self.key,)
        if _is_basic(key):  # no index repeats: plain assignment
            out[self.key] = x
        else:  # advanced indices may repeat: unbuffered add accumulates them
            xp.add.at(out, self.key, x)
        return out

    def backward(self, gy, x, y):
        return gy[self.key]


def unwrap_index(key: Any) -> Any:
    """Turn Tensors and lists inside an index into arrays, and boolean masks into integer indices."""
    if isinstance(key, tuple):
        parts = []
        for k in key:
            k = _unwrap_one(k)
            if hasattr(k, "dtype") and k.dtype == bool and k.ndim > 0:
                parts.extend(k.nonzero())
            else:
                parts.append(k)
        return tuple(parts)
    k = _unwrap_one(key)
    if hasattr(k, "dtype") and k.dtype == bool and k.ndim > 0:
        return tuple(k.nonzero())
    return k


def _unwrap_one(k: Any) -> Any:
    k = raw(k)
    if isinstance(k, list):
        return np.asarray(k)
    return k


def reshape(x: Any, newshape: Any) -> Any:
    """x with a new shape (one entry may be -1)."""
    shape = (newshape,) if isinstance(newshape, int) else tuple(newshape)
    if raw(x).shape == shape:
        return x
    if not isinstance(x, Tensor):  # a raw array (an ordinary backward pass): skip the op machinery
        try:
            return x.reshape(shape)
        except (ValueError, AttributeError):
            pass  # let the op raise its readable error (or record itself, on a functional model's symbolic tensor)
    return ReshapeOp(shape)(x)


def transpose(x: Any, axes: Sequence[int] | None = None) -> Any:
    """Permute the axes (reverse them when ``axes`` is None)."""
    if not isinstance(x, Tensor) and axes is not None and len(axes) == x.ndim:  # raw array: a plain view
        try:
            return x.transpose(axes)
        except AttributeError:
            pass  # a functional model's symbolic tensor: the op records itself
    return TransposeOp(None if axes is None else tuple(axes))(x)


permute = transpose


def swapaxes(x: Any, axis1: int, axis2: int) -> Any:
    """Exchange two axes."""
    axes = list(range(raw(x).ndim))
    axes[axis1], axes[axis2] = axes[axis2], axes[axis1]
    return transpose(x, axes)


def _shape_probe(shape: tuple[int, ...]) -> np.ndarray:
    """A zero-memory array of ``shape``, to let NumPy work out shapes (and raise its errors) for us."""
    return np.broadcast_to(np.empty((), dtype=bool), shape)


#: stands for a symbolic tensor's unknown (None) size while NumPy works out a new shape
_UNKNOWN = 2**31 - 1


def _new_shape(shape: tuple, change: Any) -> tuple:
    """``change`` applied to a probe of ``shape``; an unknown (None) size of a functional model's symbolic tensor
    comes back as -1, for reshape to infer."""
    if None not in shape:
        return change(_shape_probe(shape)).shape
    probe = _shape_probe(tuple(_UNKNOWN if d is None else d for d in shape))
    return tuple(-1 if d == _UNKNOWN else d for d in change(probe).shape)


def expand_dims(x: Any, axis: int | Sequence[int]) -> Any:
    """Insert size-1 axes at ``axis``."""
    return reshape(x, _new_shape(raw(x).shape, lambda a: np.expand_dims(a, axis)))


def squeeze(x: Any, axis: int | Sequence[int] | None = None) -> Any:
    """Remove size-1 axes (all of them, or those in ``axis``)."""
    try:
        shape = _new_shape(raw(x).shape, lambda a: np.squeeze(a, axis))
    except ValueError:
        raise ValueError(f"squeeze: axis {axis} of a tensor of shape {raw(x).shape} is not of size 1") from None
    return reshape(x, shape)


def flatten(x: Any, start_axis: int = 0, end_axis: int = -1) -> Any:
    """Merge the axes from ``start_axis`` to ``end_axis`` into one."""
    shape = raw(x).shape
    n = len(shape)
    if n == 0:
        return reshape(x, (1,))
    s, e = start_axis % n, end_axis % n
    return reshape(x, shape[:s] + (int(np.prod(shape[s:e + 1])),) + shape[e + 1:])


def broadcast_to(x: Any, shape: Sequence[int]) -> Any:
    """x broadcast to ``shape`` (for a raw array, as in an ordinary backward pass: a new writable array)."""
    shape = tuple(shape)
    if raw(x).shape == shape:
        return x
    if not isinstance(x, Tensor) and len(shape) >= x.ndim:
        out = get_array_module(x).empty(shape, dtype=x.dtype)
        try:
            out[...] = x  # faster than np.broadcast_to for small arrays, and never a read-only view
            return out
        except ValueError:
            pass  # let the op raise its readable error
    return BroadcastToOp(shape)(x)


def sum_to(x: Any, shape: Sequence[int]) -> Any:
    """Sum x down to ``shape`` (undoes broadcasting)."""
    shape = tuple(shape)
    if raw(x).shape == shape:
        return x
    return SumToOp(shape)(x)


def concatenate(xs: Sequence[Any], axis: int = 0) -> Any:
    """Join tensors along an existing axis."""
    return ConcatenateOp(axis)(*xs)


def stack(x: Sequence[Any], axis: int = 0) -> Any:
    """Join tensors along a new axis."""
    return StackOp(axis)(*x)


def split(x: Any, indices_or_sections: int | Sequence[int], axis: int = 0) -> list[Any]:
    """Split into pieces along ``axis`` (NumPy's convention: a count of equal sections, or split points)."""
    n = raw(x).shape[axis]
    if isinstance(indices_or_sections, int):
        if n % indices_or_sections:
            raise ValueError(f"split: axis {axis} of size {n} does not divide into {indices_or_sections} equal "
                             "sections; pass split points instead")
        step = n // indices_or_sections
        points = [step * i for i in range(1, indices_or_sections)]
    else:
        points = list(indices_or_sections)
    lead = (slice(None),) * (axis % raw(x).ndim)
    bounds = [0] + points + [n]
    return [getitem(x, lead + (slice(a, b),)) for a, b in zip(bounds[:-1], bounds[1:])]


def pad(x: Any, pad_width: Any, mode: str = "constant", constant_values: float | None = None) -> Any:
    """Pad ``x``; ``pad_width`` as in NumPy (int, (before, after) or one pair per axis). ``mode`` 'constant' (with
    ``constant_values``, default 0), or 'reflect', 'symmetric', 'edge', 'wrap' (NumPy's): those gather entries of
    ``x`` along each axis, so gradients add up where an entry is repeated."""
    if mode == "constant":
        return PadOp(pad_width, 0.0 if constant_values is None else constant_values)(x)
    if mode not in ("reflect", "symmetric", "edge", "wrap"):
        raise ValueError(f"pad: mode must be 'constant', 'reflect', 'symmetric', 'edge' or 'wrap', got {mode!r}")
    if constant_values is not None:
        raise ValueError(f"pad: constant_values is for mode='constant', not {mode!r}")
    shape = raw(x).shape
    widths = np.broadcast_to(np.asarray(pad_width, dtype=int), (len(shape), 2))
    for axis, (n, (before, after)) in enumerate(zip(shape, widths)):
        if before or after:
            x = take(x, np.pad(np.arange(n), (int(before), int(after)), mode=mode), axis=axis)
    return x


def getitem(x: Any, key: Any) -> Any:
    """x[key]: basic and advanced indexing; gradients of repeated indices accumulate."""
    return GetItemOp(unwrap_index(key))(x)


def take(x: Any, indices: Any, axis: int | None = None) -> Any:
    """Elements at ``indices`` along ``axis`` (np.take; over the flattened tensor when axis is None)."""
    indices = raw(indices)
    indices = np.asarray(indices) if isinstance(indices, list) else indices
    if axis is None:
        return getitem(reshape(x, (-1,)), indices)
    return getitem(x, (slice(None),) * (axis % raw(x).ndim) + (indices,))


def take_along_axis(x: Any, indices: Any, axis: int | None = None) -> Any:
    """out[i][j][k] = x[i][indices[i][j][k]][k] for axis=1 (np.take_along_axis, PyTorch's gather); with ``axis``
    None, over the flattened ``x``."""
    idx = raw(indices)
    if axis is None:
        x, idx, axis = reshape(x, (-1,)), idx.reshape(-1), 0
    xp = get_array_module(idx)
    ndim = idx.ndim
    axis %= ndim
    key = tuple(idx if i == axis else xp.arange(n).reshape((1,) * i + (n,) + (1,) * (ndim - i - 1))
                for i, n in enumerate(idx.shape))
    return getitem(x, key)


gather = take_along_axis


def repeat(x: Any, repeats: int | Sequence[int], axis: int | None = None) -> Any:
    """Repeat each element ``repeats`` times along ``axis`` (np.repeat)."""
    if axis is None:
        x, axis = reshape(x, (-1,)), 0
    n = raw(x).shape[axis]
    return take(x, np.repeat(np.arange(n), repeats), axis)


def tile(x: Any, repeats: int | Sequence[int]) -> Any:
    """Repeat the whole tensor ``reps`` times along each axis (np.tile)."""
    reps = (repeats,) if isinstance(repeats, int) else tuple(repeats)
    shape = raw(x).shape
    if len(reps) > len(shape):
        x = reshape(x, (1,) * (len(reps) - len(shape)) + shape)
    reps = (1,) * (raw(x).ndim - len(reps)) + reps
    for axis, r in enumerate(reps):
        if r != 1:
            x = take(x, np.tile(np.arange(raw(x).shape[axis]), r), axis)
    return x
