"""shendu (深度, "deep"): a deep-learning library on NumPy you can read, with a Keras-style API.

The core: :class:`Tensor` with reverse-mode autograd, ops as a derivative table (``shendu.ops``),
``no_grad``/``enable_grad``, ``grad``, ``seed`` and gradient checks.
"""

from shendu import backend
from shendu.autograd import (
                             OP_REGISTRY,
                             Op,
                             Parameter,
                             Tensor,
                             enable_grad,
                             grad,
                             is_grad_enabled,
                             no_grad,
                             set_grad_enabled,
)
from shendu.creation import (
                             arange,
                             eye,
                             full,
                             full_like,
                             ones,
                             ones_like,
                             rand,
                             rand_like,
                             randn,
                             randn_like,
                             tensor,
                             zeros,
                             zeros_like,
)
from shendu.ops import *  # noqa: F403 - the op functions: shendu.exp, shendu.matmul, ...
from shendu.ops import __all__ as _op_names
from shendu.random import seed
from shendu.testing import gradcheck, gradgradcheck

__version__ = "0.1.0"

__all__ = ["OP_REGISTRY", "Op", "Parameter", "Tensor", "__version__", "arange", "backend", "enable_grad", "eye",
           "full", "full_like", "grad", "gradcheck", "gradgradcheck", "is_grad_enabled", "no_grad", "ones",
           "ones_like", "rand", "rand_like", "randn", "randn_like", "seed", "set_grad_enabled", "tensor", "zeros",
           "zeros_like", *_op_names]
