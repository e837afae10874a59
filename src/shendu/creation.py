"""Creating tensors (``shendu.tensor``, ``zeros``, ``ones``, ...): they live in :mod:`shendu.ops.creation`, because
Keras 3's ``keras.ops`` has them too; this module re-exports them for ``from shendu.creation import ...``."""

from shendu.ops.creation import (
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

__all__ = ["arange", "eye", "full", "full_like", "ones", "ones_like", "rand", "rand_like", "randn", "randn_like",
           "tensor", "zeros", "zeros_like"]
