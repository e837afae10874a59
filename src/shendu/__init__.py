"""shendu (深度, "deep"): a deep-learning library on NumPy you can read, with a Keras-style API.

The core: :class:`Tensor` with reverse-mode autograd, ops as a derivative table (``shendu.ops``),
``no_grad``/``enable_grad``, ``grad``, ``seed`` and gradient checks.

``import shendu as keras`` gives Keras 3's namespace: ``keras.Input``, ``keras.Sequential``, ``keras.Model``,
``keras.Layer`` (the classes of ``shendu.layers``/``shendu.models``, loaded on first use) and the submodules
``keras.layers``, ``keras.ops`` (this package's ops, with Keras's signatures), ``keras.random``, ``keras.saving``,
``keras.utils``, ``keras.callbacks``, ``keras.losses``, ``keras.metrics``, ``keras.optimizers``, ``keras.models``,
``keras.activations``, ``keras.initializers``, ``keras.regularizers`` and ``keras.datasets``.
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
from shendu.random import seed  # also binds shendu.random (Keras 3's keras.random)
from shendu.testing import gradcheck, gradgradcheck
from shendu.version import __version__

# dtype names, so PyTorch-style code can write dtype=shendu.float64 (NumPy dtypes underneath)
float16, float32, float64 = _np.float16, _np.float32, _np.float64
int32, int64, bool_ = _np.int32, _np.int64, _np.bool_

__all__ = ["OP_REGISTRY", "Op", "Parameter", "Tensor", "Variable", "__version__", "arange", "backend", "bool_",
           "enable_grad", "eye", "float16", "float32", "float64", "full", "full_like", "grad", "gradcheck",
           "gradgradcheck", "int32", "int64", "is_grad_enabled", "no_grad", "ones", "ones_like", "rand", "rand_like",
           "randn", "randn_like", "seed", "set_grad_enabled", "tensor", "zeros", "zeros_like",
           *(n for n in _op_names if n not in ("all", "any", "round"))]  # star imports keep those builtins

#: subpackages loaded on first use, so ``import shendu`` stays light and ``shendu.layers.Dense`` just works
_SUBMODULES = frozenset({"activations", "callbacks", "data", "datasets", "export", "functional", "initializers",
                         "layers", "losses", "metrics", "models", "optimizers", "regularizers", "saving",
                         "testing", "utils"})

#: Keras 3's top-level names (``import shendu as keras``; ``keras.Sequential``): each is the class of the module
#: named here, loaded on first use; no second copy of anything
_KERAS_NAMES = {"Input": "layers", "InputSpec": "layers", "Layer": "layers", "Sequential": "models",
                "Model": "models", "Loss": "losses", "Metric": "metrics", "Optimizer": "optimizers",
                "Initializer": "initializers", "Regularizer": "regularizers"}
Variable = Parameter  # Keras 3's name for a layer's weight (assign, assign_add, value, numpy, ...)


def __getattr__(name: str):
    if name in _SUBMODULES:
        return _importlib.import_module(f"shendu.{name}")
    if name in _KERAS_NAMES:
        return getattr(_importlib.import_module(f"shendu.{_KERAS_NAMES[name]}"), name)
    raise AttributeError(f"module 'shendu' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_SUBMODULES, *_KERAS_NAMES})
