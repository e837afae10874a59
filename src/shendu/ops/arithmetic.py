"""Arithmetic: y = a (+ - * / **) b, with NumPy broadcasting (the engine sums gradients back)."""

from __future__ import annotations

from typing import Any

from shendu.autograd.op import Op
from shendu.ops.elementwise import log


def _check_broadcast(op: str, a: Any, b: Any) -> None:
    sa, sb = getattr(a, "shape", ()), getattr(b, "shape", ())
    if sa == sb:
        return
    for da, db in zip(reversed(sa), reversed(sb)):
        if da != db and da != 1 and db != 1:
            raise ValueError(f"{op}: shapes {tuple(sa)} and {tuple(sb)} cannot be broadcast together "
                             f"(axis sizes {da} and {db} differ and neither is 1); reshape or expand_dims one "
                             "of them")


class Add(Op):
    """y = a + b;   da = gy,  db = gy"""

    def forward(self, a, b):
        _check_broadcast("add", a, b)
        return a + b

    def backward(self, gy, a, b, y):
        return gy, gy


class Sub(Op):
    """y = a - b;   da = gy,  db = -gy"""

    def forward(self, a, b):
        _check_broadcast("sub", a, b)
        return a - b

    def backward(self, gy, a, b, y):
        return gy, -gy


class Mul(Op):
    """y = a * b;   da = gy * b,  db = gy * a"""

    def forward(self, a, b):
        _check_broadcast("mul", a, b)
        return a * b

    def backward(self, gy, a, b, y):
        return (gy * b if self.needs_grad[0] else None), (gy * a if self.needs_grad[1] else None)


class Div(Op):
    """y = a / b;   da = gy / b,  db = -gy * a / b**2"""

    def forward(self, a, b):
        _check_broadcast("div", a, b)
        return a / b

    def backward(self, gy, a, b, y):
        ga = gy / b
        return ga, (-ga * a / b if self.needs_grad[1] else None)


class Neg(Op):
    """y = -x;   dx = -gy"""

    def forward(self, x):
        return -x

    def backward(self, gy, x, y):
        return -gy


class Pow(Op):
    """y = a ** b;   da = gy * b * a**(b-1),  db = gy * y * log(a)"""

    saves_output = True

    def forward(self, a, b):
        _check_broadcast("pow", a, b)
        return a**b

    def backward(self, gy, a, b, y):
        ga = gy * b * a ** (b - 1) if self.needs_grad[0] else None
        gb = gy * y * log(a) if self.needs_grad[1] else None
        return ga, gb


class Astype(Op):
    """y = x converted to ``dtype``;   dx = gy converted back to x's dtype"""

    def __init__(self, dtype: Any) -> None:
        self.dtype = dtype

    def forward(self, x):
        self.in_dtype = x.dtype
        return x.astype(self.dtype, copy=False)

    def backward(self, gy, x, y):
        return astype(gy, self.in_dtype)


def add(a: Any, b: Any) -> Any:
    """a + b, broadcasting."""
    return Add()(a, b)


def sub(a: Any, b: Any) -> Any:
    """a - b, broadcasting."""
    return Sub()(a, b)


def mul(a: Any, b: Any) -> Any:
    """a * b, broadcasting."""
    return Mul()(a, b)


def div(a: Any, b: Any) -> Any:
    """a / b, broadcasting."""
    return Div()(a, b)


def neg(x: Any) -> Any:
    """-x."""
    return Neg()(x)


def pow(a: Any, b: Any) -> Any:  # noqa: A001 - NumPy/PyTorch name
    """a ** b (b a tensor or a scalar)."""
    return Pow()(a, b)


def astype(x: Any, dtype: Any) -> Any:
    """x converted to ``dtype`` (gradients flow between float dtypes)."""
    if getattr(x, "dtype", None) == dtype:
        return x
    return Astype(dtype)(x)


