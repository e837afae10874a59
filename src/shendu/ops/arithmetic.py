"""Arithmetic: y = a (+ - * / **) b, with NumPy broadcasting (the engine sums gradients back)."""

from __future__ import annotations

import math
from typing import Any

from shendu.autograd.op import Op, raw
from shendu.ops.elementwise import _BinaryOp, log, match_dtypes, where


class AddOp(_BinaryOp):
    """y = a + b;   da = gy,  db = gy"""

    name = "add"

    def forward(self, a, b):
        a, b = match_dtypes(a, b)
        return a + b

    def backward(self, gy, a, b, y):
        return gy, gy


class SubOp(_BinaryOp):
    """y = a - b;   da = gy,  db = -gy"""

    name = "sub"

    def forward(self, a, b):
        a, b = match_dtypes(a, b)
        return a - b

    def backward(self, gy, a, b, y):
        return gy, -gy


class MulOp(_BinaryOp):
    """y = a * b;   da = gy * b,  db = gy * a"""

    name = "mul"

    def forward(self, a, b):
        a, b = match_dtypes(a, b)
        return a * b

    def backward(self, gy, a, b, y):
        return (gy * b if self.needs_grad[0] else None), (gy * a if self.needs_grad[1] else None)


class DivOp(_BinaryOp):
    """y = a / b;   da = gy / b,  db = -gy * a / b**2"""

    name = "div"

    def forward(self, a, b):
        a, b = match_dtypes(a, b)
        return a / b

    def backward(self, gy, a, b, y):
        ga = gy / b
        return ga, (-ga * a / b if self.needs_grad[1] else None)


class NegOp(Op):
    """y = -x;   dx = -gy"""

    def forward(self, x):
        return -x

    def backward(self, gy, x, y):
        return -gy


class PowOp(_BinaryOp):
    """y = a ** b;   da = gy * b * a**(b-1),  db = gy * y * log(a)
    (PyTorch's conventions at the edges: da = 0 where b == 0; db = 0 where a == 0)"""

    saves_output = True

    name = "pow"

    def forward(self, a, b):
        a, b = match_dtypes(a, b)
        return a**b

    def backward(self, gy, a, b, y):
        ga = gb = None
        if self.needs_grad[0]:
            if isinstance(b, (int, float)):
                ga = gy * b * a ** (b - 1) if b != 0 else gy * 0
            else:
                ga = gy * b * a ** (b - 1)
                b_zero = raw(b) == 0
                if b_zero.any():  # a**0 is constant, also at a == 0 where a**(b-1) is infinite
                    ga = where(b_zero, 0.0, ga)
        if self.needs_grad[1]:
            if isinstance(a, (int, float)):  # a Python scalar base: keep it weakly typed
                gb = gy * y * math.log(a)
            else:
                a_zero = raw(a) == 0
                gb = gy * y * log(where(a_zero, 1.0, a) if a_zero.any() else a)
        return ga, gb


class AstypeOp(Op):
    """y = x converted to ``dtype``;   dx = gy converted back to x's dtype"""

    def __init__(self, dtype: Any) -> None:
        self.dtype = dtype

    def forward(self, x):
        self.in_dtype = x.dtype
        return x.astype(self.dtype, copy=False)

    def backward(self, gy, x, y):
        return astype(gy, self.in_dtype)


def add(x1: Any, x2: Any) -> Any:
    """x1 + x2, broadcasting (Keras: ``ops.add``)."""
    return AddOp()(x1, x2)


def sub(x1: Any, x2: Any) -> Any:
    """x1 - x2, broadcasting (Keras: ``ops.subtract``)."""
    return SubOp()(x1, x2)


def mul(x1: Any, x2: Any) -> Any:
    """x1 * x2, broadcasting (Keras: ``ops.multiply``)."""
    return MulOp()(x1, x2)


def div(x1: Any, x2: Any) -> Any:
    """x1 / x2, broadcasting (Keras: ``ops.divide``)."""
    return DivOp()(x1, x2)


def neg(x: Any) -> Any:
    """-x."""
    return NegOp()(x)


def power(x1: Any, x2: Any) -> Any:
    """x1 ** x2 (x2 a tensor or a scalar)."""
    return PowOp()(x1, x2)


def astype(x: Any, dtype: Any) -> Any:
    """x converted to ``dtype`` (gradients flow between float dtypes)."""
    if getattr(x, "dtype", None) == dtype:
        return x
    return AstypeOp(dtype)(x)


