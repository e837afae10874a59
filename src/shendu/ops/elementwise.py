"""Elementwise functions and activations: y = f(x), dx = gy * f'(x).

Where f' is cheaper from the output (exp, tanh, sigmoid, sqrt) the op saves y and reuses it.

The common activations (relu, leaky_relu, sigmoid, tanh, elu, gelu) have a fast path: for large float arrays
(``fused.fits``) a multi-threaded kernel from :mod:`shendu.kernels.elementwise` computes the same expression
in one pass; the NumPy lines beside it are the reference, and the tests tie the two (bit-identical).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from shendu import backend
from shendu.autograd.op import Op, raw
from shendu.autograd.tensor import Tensor
from shendu.backend import get_array_module
from shendu.kernels import elementwise as fused
from shendu.ops.shaping import broadcast_error

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def match_dtypes(a: Any, b: Any) -> tuple[Any, Any]:
    """Operands in PyTorch's promotion where NumPy's would widen: an integer array meeting a float array, or
    a 0-d float meeting a float array with axes, takes that array's dtype (float32 stays float32)."""
    da, db = getattr(a, "dtype", None), getattr(b, "dtype", None)
    if da is None or db is None or da == db:
        return a, b
    if da.kind == "f" and (db.kind in "iu" or (db.kind == "f" and b.ndim == 0 and a.ndim > 0)):
        return a, b.astype(da)
    if db.kind == "f" and (da.kind in "iu" or (da.kind == "f" and a.ndim == 0 and b.ndim > 0)):
        return a.astype(db), b
    return a, b


class _BinaryOp(Op):
    """Base of the broadcasting binary ops. Each ``forward`` first matches dtypes (:func:`match_dtypes`), then
    states its maths; operands whose shapes do not broadcast get an error naming the op (``name``) and shapes."""

    name = "binary op"

    def __call__(self, a: Any, b: Any) -> Any:
        try:
            return Op.__call__(self, a, b)
        except ValueError:
            try:
                np.broadcast_shapes(*(getattr(raw(v), "shape", ()) for v in (a, b)))
            except ValueError:
                raise broadcast_error(self.name, raw(a), raw(b)) from None
            raise


def _float_buffer(xp: Any, x: Any) -> Any:
    """A new array shaped like x for a float result (x's dtype if float), filled by ``out=`` ufunc calls."""
    return xp.empty(x.shape, dtype=x.dtype if x.dtype.kind == "f" else backend.default_float_dtype())


def _mask(condition: Any, like: Any) -> Any:
    """A boolean array as 0/1 in ``like``'s dtype: multiplying by it is many times faster than np.where."""
    return condition.astype(raw(like).dtype)


def _choose(condition: Any, a: float, b: float, like: Any) -> Any:
    """a where condition else b, as an array in ``like``'s dtype (the constants rounded to it once)."""
    dtype = raw(like).dtype
    return get_array_module(condition).where(condition, dtype.type(a), dtype.type(b))


def _tie_split(wins: Any, ties: Any, like: Any) -> Any:
    """1 where the first operand wins, 0.5 at ties, else 0 (in ``like``'s dtype)."""
    share = _mask(ties, like)
    share *= 0.5
    share += wins
    return share


def sigmoid_array(x: Any, out: Any = None) -> Any:
    """1 / (1 + exp(-x)) on arrays, as 0.5 tanh(x / 2) + 0.5: stable for any |x|, one transcendental, one buffer
    (a new one, or ``out``; ``out=x`` works in place, as the fused recurrent ops do)."""
    xp = get_array_module(x)
    y = xp.multiply(x, 0.5, out=_float_buffer(xp, x) if out is None else out)
    xp.tanh(y, out=y)
    if fused.fits(y):
        flat = y.reshape(-1)
        fused.half_affine(flat, flat)
        return y
    y *= 0.5
    y += 0.5
    return y


class ExpOp(Op):
    """y = exp(x);   dx = gy * y"""

    saves_output = True

    def forward(self, x):
        return get_array_module(x).exp(x)

    def backward(self, gy, x, y):
        return gy * y


class LogOp(Op):
    """y = log(x);   dx = gy / x"""

    def forward(self, x):
        return get_array_module(x).log(x)

    def backward(self, gy, x, y):
        return gy / x


class Log1pOp(Op):
    """y = log(1 + x);   dx = gy / (1 + x)"""

    def forward(self, x):
        return get_array_module(x).log1p(x)

    def backward(self, gy, x, y):
        return gy / (1 + x)


class SqrtOp(Op):
    """y = sqrt(x);   dx = gy / (2 y)"""

    saves_output = True

    def forward(self, x):
        return get_array_module(x).sqrt(x)

    def backward(self, gy, x, y):
        return gy / (2 * y)


class AbsOp(Op):
    """y = |x|;   dx = gy * sign(x)   (0 at x = 0, as PyTorch)"""

    def forward(self, x):
        return get_array_module(x).abs(x)

    def backward(self, gy, x, y):
        return gy * sign(x)


class SignOp(Op):
    """y = sign(x);   dx = 0   (piecewise constant: no gradient flows, as in PyTorch)"""

    def forward(self, x):
        return get_array_module(x).sign(x)

    def backward(self, gy, x, y):
        return gy * 0


class SinOp(Op):
    """y = sin(x);   dx = gy * cos(x)"""

    def forward(self, x):
        return get_array_module(x).sin(x)

    def backward(self, gy, x, y):
        return gy * cos(x)


class CosOp(Op):
    """y = cos(x);   dx = -gy * sin(x)"""

    def forward(self, x):
        return get_array_module(x).cos(x)

    def backward(self, gy, x, y):
        return -gy * sin(x)


class TanhOp(Op):
    """y = tanh(x);   dx = gy * (1 - y^2)"""

    saves_output = True

    def forward(self, x):
        return get_array_module(x).tanh(x)

    def backward(self, gy, x, y):
        if fused.fits(gy, y):
            return fused.run(fused.tanh_grad, gy, y)
        return gy * (1 - y * y)


class SigmoidOp(Op):
    """y = 1 / (1 + exp(-x));   dx = gy * y * (1 - y)"""

    saves_output = True

    def forward(self, x):
        return sigmoid_array(x)

    def backward(self, gy, x, y):
        if fused.fits(gy, y):
            return fused.run(fused.sigmoid_grad, gy, y)
        return gy * y * (1 - y)


class ReluOp(Op):
    """y = max(x, 0);   dx = gy * (x > 0)"""

    saves_output = True

    def forward(self, x):
        if fused.fits(x):
            return fused.run(fused.relu, x)
        return get_array_module(x).maximum(x, 0)

    def backward(self, gy, x, y):
        return relu_gradient(gy, y)


def relu_gradient(gy: Any, y: Any) -> Any:
    """gy * (y > 0), from ReLU's output y (also the rule of the layers that fuse a ReLU, shendu.ops.bias)."""
    if fused.fits(gy, y):
        return fused.run(fused.relu_grad, gy, y)
    return gy * (y > 0)


def relu_in_place(y: Any) -> Any:
    """y = max(y, 0), written into y (the fused layers' forward; ReluOp keeps its input and makes a new array)."""
    if fused.fits(y):
        flat = y.reshape(-1)
        fused.relu(flat, flat)
        return y
    return get_array_module(y).maximum(y, 0, out=y)


class LeakyReluOp(Op):
    """y = x if x > 0 else alpha x;   dx = gy * (1 if x > 0 else alpha)"""

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha

    def forward(self, x):
        if fused.fits(x):
            return fused.run(fused.leaky_relu, x, constants=(self.alpha,))
        xp = get_array_module(x)
        y = xp.multiply(x, self.alpha, out=_float_buffer(xp, x))
        if 0 <= self.alpha <= 1:  # then max(x, alpha x) picks the right branch: no mask needed
            return xp.maximum(y, x, out=y)
        return xp.where(x > 0, x, y)

    def backward(self, gy, x, y):
        if fused.fits(gy, x):
            return fused.run(fused.leaky_relu_grad, gy, x, constants=(self.alpha,))
        return gy * _choose(raw(x) > 0, 1, self.alpha, gy)


class EluOp(Op):
    """y = x if x > 0 else alpha (exp(x) - 1);   dx = gy * (1 if x > 0 else y + alpha)"""

    saves_output = True

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha

    def forward(self, x):
        xp = get_array_module(x)
        y = xp.minimum(x, 0, out=_float_buffer(xp, x))  # alpha (exp(min(x, 0)) - 1) + max(x, 0)
        xp.expm1(y, out=y)
        y *= self.alpha
        y += xp.maximum(x, 0)
        return y

    def backward(self, gy, x, y):
        if fused.fits(gy, x, y):
            return fused.run(fused.elu_grad, gy, x, y, constants=(self.alpha,))
        return gy * where(raw(x) > 0, 1.0, y + self.alpha)


class GeluOp(Op):
    """y = x Phi(x) (Phi the normal CDF);   dx = gy * (Phi(x) + x phi(x))

    Phi(x) = (1 + erf(x / sqrt 2)) / 2 is kept from the forward for backward (erf costs most of the op)."""

    def forward(self, x):
        cdf = backend.erf(x * _INV_SQRT_2)
        cdf += 1
        cdf *= 0.5
        self.cdf = cdf
        return x * cdf

    def backward(self, gy, x, y):
        if isinstance(gy, Tensor) or isinstance(x, Tensor):  # create_graph: the same rule, differentiable
            cdf = 0.5 * (1 + erf(x * _INV_SQRT_2))
            return gy * (cdf + x * (exp(-0.5 * x * x) * _INV_SQRT_2PI))
        xp = get_array_module(x)
        e = xp.multiply(x, x, out=_float_buffer(xp, x))  # exp(-x^2 / 2), in one buffer
        e *= -0.5
        xp.exp(e, out=e)
        if fused.fits(gy, x, self.cdf, e):
            return fused.run(fused.gelu_grad, gy, x, self.cdf, e, constants=(_INV_SQRT_2PI,))
        return gy * (self.cdf + x * (e * _INV_SQRT_2PI))


class GeluTanhOp(Op):
    """y = x/2 (1 + tanh(u)), u = sqrt(2/pi)(x + 0.044715 x^3);
    dx = gy * (1/2 (1 + t) + x/2 (1 - t^2) sqrt(2/pi)(1 + 3 * 0.044715 x^2)),  t = tanh(u)"""

    def forward(self, x):
        xp = get_array_module(x)
        y = xp.multiply(x, x, out=_float_buffer(xp, x))
        y *= x
        y *= 0.044715
        y += x
        y *= _SQRT_2_OVER_PI
        xp.tanh(y, out=y)
        y += 1
        y *= x
        y *= 0.5
        return y

    def backward(self, gy, x, y):
        t = tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x * x * x))
        du = _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x)
        return gy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du)


class ErfOp(Op):
    """y = erf(x);   dx = gy * 2/sqrt(pi) exp(-x^2)"""

    def forward(self, x):
        return backend.erf(x)

    def backward(self, gy, x, y):
        return gy * (2 * _INV_SQRT_2PI * math.sqrt(2)) * exp(-x * x)


class SoftplusOp(Op):
    """y = log(1 + exp(x)) (computed stably);   dx = gy * sigmoid(x)"""

    def forward(self, x):
        xp = get_array_module(x)
        y = xp.abs(x, out=_float_buffer(xp, x))  # log(1 + exp(-|x|)) + max(x, 0), in one buffer
        xp.negative(y, out=y)
        xp.exp(y, out=y)
        xp.log1p(y, out=y)
        y += xp.maximum(x, 0)
        return y

    def backward(self, gy, x, y):
        return gy * sigmoid(x)


class SiluOp(Op):
    """y = x sigmoid(x);   dx = gy * s (1 + x (1 - s)),  s = sigmoid(x)"""

    def forward(self, x):
        y = sigmoid_array(x)
        y *= x
        return y

    def backward(self, gy, x, y):
        s = sigmoid(x)
        return gy * s * (1 + x * (1 - s))


class ClipOp(Op):
    """y = min(max(x, lo), hi);   dx = gy where lo <= x <= hi (there y == x), else 0 (as PyTorch's clamp)"""

    saves_output = True

    def __init__(self, lo: Any, hi: Any) -> None:
        self.lo, self.hi = lo, hi

    def forward(self, x):
        # array bounds are constants: give them x's dtype so that float32 stays float32
        lo, hi = (b.astype(x.dtype, copy=False) if hasattr(b, "dtype") else b for b in (self.lo, self.hi))
        return get_array_module(x).clip(x, lo, hi)

    def backward(self, gy, x, y):
        return gy * (x == y)


class MaximumOp(_BinaryOp):
    """y = max(a, b);   da = gy where a > b, db = gy where b > a, ties split gy evenly (as PyTorch)"""

    name = "maximum"

    def forward(self, a, b):
        a, b = match_dtypes(a, b)
        return get_array_module(a, b).maximum(a, b)

    def backward(self, gy, a, b, y):
        ga = gy * _tie_split(raw(a) > raw(b), raw(a) == raw(b), gy)
        return ga, (gy - ga if self.needs_grad[1] else None)


class MinimumOp(_BinaryOp):
    """y = min(a, b);   da = gy where a < b, db = gy where b < a, ties split gy evenly (as PyTorch)"""

    name = "minimum"

    def forward(self, a, b):
        a, b = match_dtypes(a, b)
        return get_array_module(a, b).minimum(a, b)

    def backward(self, gy, a, b, y):
        ga = gy * _tie_split(raw(a) < raw(b), raw(a) == raw(b), gy)
        return ga, (gy - ga if self.needs_grad[1] else None)


class WhereOp(Op):
    """y = a where cond else b;   da = gy where cond else 0,  db = gy where not cond else 0"""

    def forward(self, cond, a, b):
        a, b = match_dtypes(a, b)
        try:
            return get_array_module(a, b).where(cond, a, b)
        except ValueError:
            raise broadcast_error("where", cond, a, b) from None

    def backward(self, gy, cond, a, b, y):
        ga = where(cond, gy, 0.0) if self.needs_grad[1] else None
        gb = where(cond, 0.0, gy) if self.needs_grad[2] else None
        return None, ga, gb


def exp(x: Any) -> Any:
    """exp(x), elementwise."""
    return ExpOp()(x)


def log(x: Any) -> Any:
    """Natural logarithm, elementwise."""
    return LogOp()(x)


def log1p(x: Any) -> Any:
    """log(1 + x), accurate for small x."""
    return Log1pOp()(x)


def sqrt(x: Any) -> Any:
    """Square root, elementwise."""
    return SqrtOp()(x)


def absolute(x: Any) -> Any:
    """|x|, elementwise."""
    return AbsOp()(x)


def sign(x: Any) -> Any:
    """sign(x) in {-1, 0, 1}; its gradient is zero."""
    return SignOp()(x)


def sin(x: Any) -> Any:
    """sin(x), elementwise."""
    return SinOp()(x)


def cos(x: Any) -> Any:
    """cos(x), elementwise."""
    return CosOp()(x)


def tanh(x: Any) -> Any:
    """Hyperbolic tangent, elementwise."""
    return TanhOp()(x)


def sigmoid(x: Any) -> Any:
    """Logistic sigmoid 1 / (1 + exp(-x)), elementwise."""
    return SigmoidOp()(x)


def relu(x: Any) -> Any:
    """max(x, 0), elementwise."""
    return ReluOp()(x)


def erf(x: Any) -> Any:
    """The error function, elementwise."""
    return ErfOp()(x)


def softplus(x: Any) -> Any:
    """log(1 + exp(x)), computed stably."""
    return SoftplusOp()(x)


def silu(x: Any) -> Any:
    """x * sigmoid(x) (also called swish)."""
    return SiluOp()(x)


swish = silu


def leaky_relu(x: Any, negative_slope: float = 0.2) -> Any:
    """x if x > 0 else negative_slope * x (Keras's ``ops.leaky_relu`` default 0.2; PyTorch's is 0.01)."""
    return LeakyReluOp(negative_slope)(x)


def elu(x: Any, alpha: float = 1.0) -> Any:
    """x if x > 0 else alpha * (exp(x) - 1)."""
    return EluOp(alpha)(x)


def selu(x: Any) -> Any:
    """scale * elu(x, alpha) with the self-normalising constants of Klambauer et al. (2017)."""
    return EluOp(SELU_ALPHA)(x) * SELU_SCALE


def gelu(x: Any, approximate: bool | str = False) -> Any:
    """x * Phi(x); ``approximate=True`` (or 'tanh') uses the tanh form of Hendrycks and Gimpel."""
    return (GeluTanhOp() if approximate in (True, "tanh") else GeluOp())(x)


def clip(x: Any, x_min: Any = None, x_max: Any = None) -> Any:
    """Clamp x to [x_min, x_max] (either may be None; tensor bounds broadcast and are constants: no gradient)."""
    if x_min is None and x_max is None:
        raise ValueError("clip: give at least one of x_min and x_max")
    return ClipOp(raw(x_min), raw(x_max))(x)


def maximum(x1: Any, x2: Any) -> Any:
    """Elementwise max(x1, x2), broadcasting."""
    return MaximumOp()(x1, x2)


def minimum(x1: Any, x2: Any) -> Any:
    """Elementwise min(x1, x2), broadcasting."""
    return MinimumOp()(x1, x2)


def where(condition: Any, x1: Any = None, x2: Any = None) -> Any:
    """x1 where condition is true, else x2 (condition is not differentiated). With neither x1 nor x2, the indices
    where condition is true, one array per axis (NumPy's ``nonzero``, as Keras's ``ops.where``)."""
    if x1 is None and x2 is None:
        return get_array_module(raw(condition)).nonzero(raw(condition))
    if x1 is None or x2 is None:
        raise ValueError("where: give both x1 and x2, or neither (for the indices where condition is true)")
    return WhereOp()(raw(condition), x1, x2)
