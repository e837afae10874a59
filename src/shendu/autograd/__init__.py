"""The core: Tensor, Op, the backward engine and grad mode."""

from shendu.autograd.engine import grad
from shendu.autograd.grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from shendu.autograd.op import OP_REGISTRY, Op
from shendu.autograd.tensor import Parameter, Tensor

__all__ = ["OP_REGISTRY", "Op", "Parameter", "Tensor", "enable_grad", "grad", "is_grad_enabled", "no_grad",
           "set_grad_enabled"]
