"""Matrix products.

Dtypes: the products (matmul, linear, conv) follow the one rule of every shendu op with two operands,
:func:`~shendu.ops.elementwise.match_dtypes`: an integer or boolean operand takes the float operand's dtype (so
float32 weights never turn integer data into float64 work), and two float arrays of different precision promote
to the wider one, as NumPy and PyTorch's elementwise ops do (float64 data @ float32 weights is float64; each
gradient comes back in its own input's dtype). A Python scalar takes the dtype of the tensor it meets.
PyTorch's matmul raises on mixed floats instead; shendu keeps one rule for all ops.
"""

from __future__ import annotations

from typing import Any, Sequence

from shendu.autograd.op import Op, raw
from shendu.backend import get_array_module
from shendu.ops.elementwise import match_dtypes
from shendu.ops.shaping import broadcast_to, reshape, sum_to, swapaxes


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


def _parse_einsum(subscripts: str, ndims: Sequence[int]) -> tuple[list[str], str]:
    """Each operand's letters and the output's, with ``...`` written out as letters the subscripts do not use
    (right-aligned, as NumPy broadcasts) and the implicit output (letters used once, sorted) made explicit."""
    subscripts = subscripts.replace(" ", "")
    inputs, arrow, output = subscripts.partition("->")
    operands = inputs.split(",")
    if len(operands) != len(ndims):
        raise ValueError(f"einsum: {subscripts!r} names {len(operands)} operands, got {len(ndims)}")
    spare = [c for c in "ZYXWVUTSRQPONMLKJIHGFEDCBAzyxwvutsrqponmlkjihgfedcba" if c not in subscripts]
    width = max((n - len(s.replace("...", "")) for s, n in zip(operands, ndims) if "..." in s), default=0)
    ellipsis = "".join(spare[:width])
    expanded = [s.replace("...", ellipsis[width - (n - len(s.replace("...", ""))):]) for s, n in zip(operands, ndims)]
    if not arrow:
        counts = {c: "".join(expanded).count(c) for c in "".join(expanded)}
        output = ellipsis + "".join(sorted(c for c, k in counts.items() if k == 1 and c not in ellipsis))
    return expanded, output.replace("...", ellipsis)


class EinsumOp(Op):
    """y = einsum(subscripts, x_1, ..., x_n);   dx_i = einsum(out, x_others -> letters of x_i) gy, broadcast
    along the letters that only x_i has (summed in the forward)"""

    def __init__(self, subscripts: str) -> None:
        self.subscripts = subscripts

    def forward(self, *xs):
        xs = match_dtypes(*xs) if len(xs) == 2 else xs  # the products' dtype rule (module docstring)
        self.letters, self.output = _parse_einsum(self.subscripts, [x.ndim for x in xs])
        return get_array_module(*xs).einsum(self.subscripts, *xs)

    def backward(self, gy, *xs_y):
        xs = xs_y[:-1]
        grads = []
        for i, letters in enumerate(self.letters):
            if not self.needs_grad[i]:
                grads.append(None)
                continue
            if len(set(letters)) != len(letters):
                raise NotImplementedError(f"einsum: no gradient for an operand with a repeated letter ({letters!r}, "
                                          "a diagonal); take the diagonal with another op first")
            others = [s for j, s in enumerate(self.letters) if j != i]
            elsewhere = set(self.output).union(*others)
            kept = "".join(c for c in letters if c in elsewhere)
            spec = ",".join([self.output, *others]) + "->" + kept
            g = einsum(spec, gy, *(x for j, x in enumerate(xs) if j != i))
            if kept != letters:  # letters summed within x_i alone: the gradient is the same along them
                g = reshape(g, tuple(n if c in elsewhere else 1 for c, n in zip(letters, raw(xs[i]).shape)))
                g = broadcast_to(g, raw(xs[i]).shape)
            grads.append(g)
        return tuple(grads)


def einsum(subscripts: str, *operands: Any, **kwargs: Any) -> Any:
    """Einstein summation, NumPy's ``einsum`` (``'ij,jk->ik'``, ``'...ij,jk'``, implicit outputs); gradients
    flow to every operand without a repeated letter. Keyword arguments are refused (none are needed)."""
    if kwargs:
        raise TypeError(f"einsum: unexpected keyword arguments {sorted(kwargs)}")
    return EinsumOp(subscripts)(*operands)
