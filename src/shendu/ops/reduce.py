"""Reductions over an ``axis`` (None: all axes; NumPy naming, ``keepdims``) and softmax-like ops."""

from __future__ import annotations

from typing import Any

from shendu.autograd.op import Op, raw
from shendu.backend import get_array_module
from shendu.ops.arithmetic import astype
from shendu.ops.elementwise import exp, maximum, minimum, where
from shendu.ops.shaping import broadcast_to, reshape


def _normalize_axis(axis: Any, shape: tuple[int, ...], op: str) -> tuple[int, ...] | None:
    if axis is None:
        return None
    ndim = len(shape)
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out = []
    for a in axes:
        if not -ndim <= a < max(ndim, 1):
            raise ValueError(f"{op}: axis {a} is out of range for a tensor of shape {shape} ({ndim} dimensions); "
                             f"use an axis in [{-ndim}, {ndim - 1}]")
        out.append(a % ndim if ndim else 0)
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: axis {axis} repeats an axis of a tensor of shape {shape}")
    return tuple(sorted(out))


def _kept_shape(shape: tuple[int, ...], axes: tuple[int, ...] | None) -> tuple[int, ...]:
    if axes is None:
        return (1,) * len(shape)
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def _count(shape: tuple[int, ...], axes: tuple[int, ...] | None) -> int:
    n = 1
    for i, d in enumerate(shape):
        if axes is None or i in axes:
            n *= d
    return n


class _Reduction(Op):
    """Shared bookkeeping: the axes, keepdims and how to put gy back in x's shape."""

    def __init__(self, axis: Any = None, keepdims: bool = False) -> None:
        self.axis, self.keepdims = axis, keepdims

    def _setup(self, x):
        self.axes = _normalize_axis(self.axis, x.shape, type(self).__name__.removesuffix("Op").lower())
        self.shape = x.shape

    def expand(self, g):
        """Reshape a reduced gradient so it broadcasts against x."""
        return g if self.keepdims else reshape(g, _kept_shape(self.shape, self.axes))


class SumOp(_Reduction):
    """y = sum(x, axis);   dx = gy broadcast back over the summed axes"""

    def forward(self, x):
        self._setup(x)
        return x.sum(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy, x, y):
        return broadcast_to(self.expand(gy), self.shape)


class MeanOp(_Reduction):
    """y = mean(x, axis) = sum(x, axis) / n;   dx = gy / n broadcast back"""

    def forward(self, x):
        self._setup(x)
        return x.mean(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy, x, y):
        return broadcast_to(self.expand(gy) / _count(self.shape, self.axes), self.shape)


class VarOp(_Reduction):
    """y = sum((x - mean)^2) / (n - ddof);   dx = gy * 2 (x - mean) / (n - ddof)"""

    def __init__(self, axis: Any = None, ddof: int = 0, keepdims: bool = False) -> None:
        super().__init__(axis, keepdims)
        self.ddof = ddof

    def forward(self, x):
        self._setup(x)
        return x.var(axis=self.axes, ddof=self.ddof, keepdims=self.keepdims)

    def backward(self, gy, x, y):
        centred = x - mean(x, self.axes, keepdims=True)
        return self.expand(gy) * centred * (2.0 / (_count(self.shape, self.axes) - self.ddof))


class StdOp(VarOp):
    """y = sqrt(var(x));   dx = gy * (x - mean) / ((n - ddof) y)   (0 where y = 0, as PyTorch)"""

    saves_output = True

    def forward(self, x):
        return get_array_module(x).sqrt(super().forward(x))

    def backward(self, gy, x, y):
        constant = raw(y) == 0
        if constant.any():  # a slice without spread: no gradient rather than 0/0
            gy, y = where(constant, 0.0, gy), where(constant, 1.0, y)
        centred = x - mean(x, self.axes, keepdims=True)
        return self.expand(gy / y) * centred * (1.0 / (_count(self.shape, self.axes) - self.ddof))


class MaxOp(_Reduction):
    """y = max(x, axis);   dx = gy at the positions equal to the max, split evenly between ties"""

    saves_output = True
    largest = True

    def forward(self, x):
        self._setup(x)
        if self.largest:
            return x.max(axis=self.axes, keepdims=self.keepdims)
        return x.min(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy, x, y):
        at_extreme = astype(x == self.expand(y), x.dtype)
        return self.expand(gy) * at_extreme / reduce_sum(at_extreme, self.axes, keepdims=True)


class MinOp(MaxOp):
    """y = min(x, axis);   dx = gy at the positions equal to the min, split evenly between ties"""

    largest = False


class ProdOp(_Reduction):
    """y = prod(x, axis);   dx_i = gy * (product of the other elements) = gy * y / x_i where no x is 0"""

    saves_output = True

    def forward(self, x):
        self._setup(x)
        return x.prod(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy, x, y):
        zero = raw(x) == 0
        if not zero.any():
            return self.expand(gy * y) / x
        # with zeros: the product of the others is P / x_i (P: product of the slice's nonzero elements) times
        # the slice's zeros other than x_i. Those are written with x itself (not as constant 0), so that the
        # double backward is right too: d(others_i)/dx_k is nonzero when x_k is the only other zero.
        nonzero_x = where(zero, 1.0, x)
        n_zeros = zero.sum(axis=self.axes, keepdims=True)
        zeros_sum = reduce_sum(where(zero, x, 0.0), self.axes, keepdims=True)  # the lone zero, when there is one
        other_zeros = where(n_zeros == 0, 1.0,
                            where(n_zeros == 1, where(zero, 1.0, zeros_sum),
                                  where(n_zeros == 2, where(zero, zeros_sum - x, 0.0), 0.0)))
        others = prod(nonzero_x, self.axes, keepdims=True) / nonzero_x * other_zeros
        return self.expand(gy) * others


class LogsumexpOp(_Reduction):
    """y = log(sum(exp(x), axis)) (shifted by the max for stability);   dx = gy * exp(x - y)"""

    saves_output = True

    def forward(self, x):
        self._setup(x)
        xp = get_array_module(x)
        m = x.max(axis=self.axes, keepdims=True)
        m = xp.where(xp.isfinite(m), m, 0)
        s = xp.log(xp.exp(x - m).sum(axis=self.axes, keepdims=True)) + m
        return s if self.keepdims else s.reshape(y_shape(self.shape, self.axes))

    def backward(self, gy, x, y):
        return self.expand(gy) * exp(x - self.expand(y))


class SoftmaxOp(Op):
    """y = exp(x - max) / sum(exp(x - max), axis);   dx = y * (gy - reduce_sum(gy * y, axis))"""

    saves_output = True

    def __init__(self, axis: int = -1) -> None:
        self.axis = axis

    def forward(self, x):
        xp = get_array_module(x)
        e = xp.exp(x - x.max(axis=self.axis, keepdims=True))
        e /= e.sum(axis=self.axis, keepdims=True)
        return e

    def backward(self, gy, x, y):
        return y * (gy - reduce_sum(gy * y, self.axis, keepdims=True))


class LogSoftmaxOp(Op):
    """y = x - logsumexp(x, axis);   dx = gy - exp(y) * sum(gy, axis)"""

    saves_output = True

    def __init__(self, axis: int = -1) -> None:
        self.axis = axis

    def forward(self, x):
        xp = get_array_module(x)
        shifted = x - x.max(axis=self.axis, keepdims=True)
        return shifted - xp.log(xp.exp(shifted).sum(axis=self.axis, keepdims=True))

    def backward(self, gy, x, y):
        return gy - exp(y) * reduce_sum(gy, self.axis, keepdims=True)


class CumsumOp(Op):
    """y_i = sum_{j <= i} x_j along axis;   dx_i = sum_{j >= i} gy_j   (a cumsum of gy reversed)"""

    def __init__(self, axis: int | None = None) -> None:
        self.axis = axis

    def forward(self, x):
        self.shape = x.shape
        return x.cumsum(axis=self.axis)

    def backward(self, gy, x, y):
        axis = 0 if self.axis is None else self.axis % gy.ndim
        reverse = (slice(None),) * axis + (slice(None, None, -1),)
        return reshape(cumsum(gy[reverse], axis)[reverse], self.shape)


def y_shape(shape: tuple[int, ...], axes: tuple[int, ...] | None) -> tuple[int, ...]:
    """The shape after reducing ``axes`` without keepdims."""
    if axes is None:
        return ()
    return tuple(n for i, n in enumerate(shape) if i not in axes)


def reduce_sum(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """Sum over ``axis`` (all axes when None)."""
    return SumOp(axis, keepdims)(x)


def mean(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """Arithmetic mean over ``axis``."""
    return MeanOp(axis, keepdims)(x)


def var(x: Any, axis: Any = None, keepdims: bool = False, ddof: int = 0) -> Any:
    """Variance over ``axis`` (``ddof=0``: the population variance, as NumPy; PyTorch's default is ddof=1)."""
    return VarOp(axis, ddof, keepdims)(x)


def std(x: Any, axis: Any = None, keepdims: bool = False, ddof: int = 0) -> Any:
    """Standard deviation over ``axis`` (``ddof`` as in :func:`var`)."""
    return StdOp(axis, ddof, keepdims)(x)


def reduce_max(x: Any, axis: Any = None, keepdims: bool = False, initial: Any = None) -> Any:
    """Maximum over ``axis`` (and ``initial``, when given); the gradient goes to the maximal elements, split
    evenly between ties.

    >>> import shendu
    >>> x = shendu.tensor([1.0, 3.0, 3.0], requires_grad=True)
    >>> shendu.max(x).backward()
    >>> x.grad
    tensor([0. , 0.5, 0.5])
    """
    y = MaxOp(axis, keepdims)(x)
    return y if initial is None else maximum(y, initial)


def reduce_min(x: Any, axis: Any = None, keepdims: bool = False, initial: Any = None) -> Any:
    """Minimum over ``axis`` (and ``initial``, when given); the gradient goes to the minimal elements, split
    evenly between ties."""
    y = MinOp(axis, keepdims)(x)
    return y if initial is None else minimum(y, initial)


def prod(x: Any, axis: Any = None, keepdims: bool = False, dtype: Any = None) -> Any:
    """Product over ``axis`` (of ``x`` cast to ``dtype`` when given); gradients (and second derivatives) stay
    right when elements are zero.

    >>> import shendu
    >>> x = shendu.tensor([2.0, 0.0, 3.0], requires_grad=True)
    >>> shendu.prod(x).backward()
    >>> x.grad
    tensor([0., 6., 0.])
    """
    if dtype is not None:
        x = astype(x, dtype)
    return ProdOp(axis, keepdims)(x)


def logsumexp(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """log(sum(exp(x))) over ``axis``, numerically stable."""
    return LogsumexpOp(axis, keepdims)(x)


def softmax(x: Any, axis: int = -1) -> Any:
    """exp(x) / sum(exp(x)) along ``axis``, numerically stable."""
    return SoftmaxOp(axis)(x)


def log_softmax(x: Any, axis: int = -1) -> Any:
    """log(softmax(x)) along ``axis``, computed stably as x - logsumexp(x)."""
    return LogSoftmaxOp(axis)(x)


def cumsum(x: Any, axis: int | None = None, dtype: Any = None) -> Any:
    """Cumulative sum along ``axis`` (over the flattened tensor when None), of ``x`` cast to ``dtype`` if given."""
    return CumsumOp(axis)(x if dtype is None else astype(x, dtype))
