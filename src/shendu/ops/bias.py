"""The end of Dense, Conv2D and Conv2DTranspose: the bias, and the ReLU when the activation is 'relu', in one pass.

    y = z + b            (in place on the product z),    db = sum(gy) over every axis but the last
    y = max(z + b, 0)    (fused ReLU),                    dz = gy * (y > 0), then the rules above with dz

A separate ReLU would read z and write a new y, and its op would keep both arrays for backward; fused, the
layer makes one pass over its output and keeps only y. The fast paths are parallel kernels
(:mod:`shendu.kernels.conv` for the bias, :mod:`shendu.kernels.elementwise` for a ReLU without one); the NumPy
lines are the reference, and both give the same bits.
"""

from __future__ import annotations

from typing import Any

from shendu import kernels
from shendu.backend import get_array_module
from shendu.kernels import conv as conv_kernels
from shendu.ops.elementwise import relu_gradient, relu_in_place
from shendu.ops.reduce import reduce_sum

ACTIVATIONS = (None, "relu")  # what the fused ops take


def check_activation(op: str, activation: Any) -> bool:
    """True for 'relu', False for None; a clear error for anything else."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"{op}: activation must be one of {ACTIVATIONS} (the ones fused into the op), got "
                         f"{activation!r}; apply any other activation to the op's output")
    return activation == "relu"


def add_bias(y: Any, b: Any, relu: bool = False) -> Any:
    """y += b, then y = max(y, 0) when ``relu``, in place (y (..., O), b (O,) of y's dtype, or None); returns y."""
    if b is None:
        return relu_in_place(y) if relu else y
    if (y.size >= conv_kernels.MIN_SIZE and kernels.fast(y, b) and b.shape == y.shape[-1:]  # size first: cheapest
            and b.dtype == y.dtype and y.flags.c_contiguous):
        rows = y.reshape(-1, b.shape[0])
        conv_kernels.add_bias_relu(rows, b) if relu else conv_kernels.add_bias(rows, b)
        return y
    y += b
    return get_array_module(y).maximum(y, 0, out=y) if relu else y


def bias_grad(gy: Any) -> Any:
    """db = sum(gy) over every axis but the last; fast path: :func:`shendu.kernels.conv.bias_grad` on large arrays."""
    if gy.size >= conv_kernels.MIN_SIZE and kernels.fast(gy) and gy.flags.c_contiguous:
        return conv_kernels.bias_grad(gy.reshape(-1, gy.shape[-1]), get_array_module(gy).empty(gy.shape[-1], gy.dtype))
    return reduce_sum(gy, axis=tuple(range(gy.ndim - 1)))


class ReluEnd:
    """Mixin for an op that ends in the fused ReLU (``LinearReluOp(ReluEnd, LinearOp)``, ...): it sets ``relu`` (the
    forward's :func:`add_bias` applies it), keeps the output, and its backward is dz = gy * (y > 0) followed by
    the plain op's rules with dz."""

    relu = True
    saves_output = True

    def backward(self, gy: Any, *inputs_and_output: Any) -> Any:
        y = inputs_and_output[-1]
        return super().backward(relu_gradient(gy, y), *inputs_and_output)  # type: ignore[misc]
