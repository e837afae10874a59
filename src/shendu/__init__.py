"""shendu (深度, "deep"): a deep-learning library on NumPy you can read, with a Keras-style API.

The core: :class:`Tensor` with reverse-mode autograd, ops as a derivative table (``shendu.ops``),
``no_grad``/``enable_grad``, ``grad``, ``seed`` and gradient checks.
"""

import importlib as _importlib

import numpy as _np

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
from shendu.version import __version__

# dtype names, so PyTorch-style code can write dtype=shendu.float64 (NumPy dtypes underneath)
float16, float32, float64 = _np.float16, _np.float32, _np.float64
int32, int64, bool_ = _np.int32, _np.int64, _np.bool_

__all__ = ["OP_REGISTRY", "Op", "Parameter", "Tensor", "__version__", "arange", "backend", "bool_", "enable_grad",
           "eye", "float16", "float32", "float64", "full", "full_like", "grad", "gradcheck", "gradgradcheck", "int32",
           "int64", "is_grad_enabled", "no_grad", "ones", "ones_like", "rand", "rand_like", "randn", "randn_like",
           "seed", "set_grad_enabled", "tensor", "zeros", "zeros_like", *_op_names]

#: subpackages loaded on first use, so ``import shendu`` stays light and ``shendu.layers.Dense`` just works
_SUBMODULES = frozenset({"activations", "callbacks", "data", "datasets", "functional", "initializers", "layers",
                         "losses", "metrics", "models", "optimizers", "random", "regularizers", "saving", "testing",
                         "utils"})


def __getattr__(name: str):
    if name in _SUBMODULES:
        return _importlib.import_module(f"shendu.{name}")
    raise AttributeError(f"module 'shendu' has no attribute {name!r}")
