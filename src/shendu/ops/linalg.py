"""Matrix products.

Dtypes: the products (matmul, linear, conv) follow the one rule of every shendu op with two operands,
:func:`~shendu.ops.elementwise.match_dtypes`: an integer or boolean operand takes the float operand's dtype (so
float32 weights never turn integer data into float64 work), and two float arrays of different precision promote
to the wider one, as NumPy and PyTorch's elementwise ops do (float64 data @ float32 weights is float64; each
gradient comes back in its own input's dtype). A Python scalar takes the dtype of the tensor it meets.
PyTorch's matmul raises on mixed floats instead; shendu keeps one rule for all ops.
"""

from __future__ import annotations

from typing import Any

from shendu.autograd.op import Op
from shendu.ops.elementwise import match_dtypes
from shendu.ops.shaping import reshape, sum_to, swapaxes


class MatMulOp(Op):
    """y = a @ b (1-D, 2-D, batched with broadcasting);   da = gy @ b^T,  db = a^T @ gy"""

    def forward(self, a, b):
        a, b = match_dtypes(a, b)
        try:
            return a @ b
        except ValueError:  # diagnose only on failure: the checks cost nothing on the hot path
            raise _matmul_error(a.shape, b.shape) from None

    def backward(self, gy, a, b, y):
        # lift 1-D operands to matrices so one rule covers every case, then fold the lifted axes back
        a2 = a if a.ndim > 1 else reshape(a, (1, a.shape[0]))
        b2 = b if b.ndim > 1 else reshape(b, (b.shape[0], 1))
        g2 = reshape(gy, _lifted_shape(a, b, gy))
        ga = gb = None
        if self.needs_grad[0]:
            ga = g2 @ swapaxes(b2, -1, -2)
            ga = ga if a.ndim > 1 else reshape(sum_to(ga, a2.shape), a.shape)
        if self.needs_grad[1]:
            gb = swapaxes(a2, -1, -2) @ g2
            gb = gb if b.ndim > 1 else reshape(sum_to(gb, b2.shape), b.shape)
        return ga, gb


def _matmul_error(sa: tuple[int, ...], sb: tuple[int, ...]) -> ValueError:
    if not sa or not sb:
        return ValueError(f"matmul: shapes {sa} and {sb}: both operands need at least one dimension; use * for "
                          "scalars")
    inner = sb[-2] if len(sb) > 1 else sb[0]
    if sa[-1] != inner:
        which = "second-to-last" if len(sb) > 1 else "only"
        return ValueError(f"matmul: shapes {sa} and {sb} are not aligned: {sa[-1]} (last axis of the first) != "
                          f"{inner} ({which} axis of the second); transpose one operand or check the layer sizes")
    return ValueError(f"matmul: the batch axes of shapes {sa} and {sb} ({sa[:-2]} and {sb[:-2]}) cannot be "
                      "broadcast together; they must be equal or 1")


def _lifted_shape(a: Any, b: Any, gy: Any) -> tuple[int, ...]:
    shape = list(gy.shape)
    if a.ndim == 1:
        shape.insert(len(shape) - (0 if b.ndim == 1 else 1), 1)
    if b.ndim == 1:
        shape.append(1)
    return tuple(shape)


def matmul(x1: Any, x2: Any) -> Any:
    """Matrix product a @ b with NumPy's rules for 1-D and batched operands."""
    return MatMulOp()(x1, x2)
