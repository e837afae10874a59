"""Random tensors, Keras 3's ``keras.random``: ``normal``, ``uniform``, ``truncated_normal``, ``randint``,
``dropout``, ``shuffle``, ``categorical`` and ``SeedGenerator``; also shendu's ``seed``, ``get_rng``,
``get_state`` and ``set_state`` (from :mod:`shendu.rng`, which holds the generators and their rules for threads).

``seed=`` works as in Keras 3:

* ``None``: draw from shendu's generator (:func:`shendu.rng.get_rng`, the calling thread's), so results follow
  ``shendu.seed(n)``: the same program after the same seed draws the same numbers, and successive calls differ;
* an int: a fresh generator seeded with it, so the same call gives the same numbers every time;
* a :class:`SeedGenerator`: its own generator, which advances with every call (reproducible from its seed, and
  untouched by other draws).

The numbers come from NumPy's PCG64 on the host, so they equal neither Keras's nor PyTorch's for the same seed.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from shendu import backend
from shendu.autograd.op import raw
from shendu.autograd.tensor import Tensor
from shendu.ops.nn import DropoutOp
from shendu.ops.shaping import take
from shendu.rng import get_rng, get_state, seed, set_state

__all__ = ["SeedGenerator", "categorical", "dropout", "get_rng", "get_state", "normal", "randint", "seed",
           "set_state", "shuffle", "truncated_normal", "uniform"]


class SeedGenerator:
    """A stream of random draws of its own, as Keras 3's ``keras.random.SeedGenerator``: give it as ``seed=``
    to the functions here (or keep one in a layer) and each call draws new numbers, reproducibly from ``seed``.

    ``seed=None`` takes a seed from shendu's generator, so ``shendu.seed(n)`` fixes it too.
    """

    def __init__(self, seed: int | None = None, name: str | None = None, **kwargs: Any) -> None:
        if kwargs:
            raise TypeError(f"SeedGenerator: unexpected arguments {sorted(kwargs)}")
        self.seed = int(get_rng().integers(0, 2**31 - 1)) if seed is None else int(seed)
        self.name = name or "seed_generator"
        self.generator = np.random.default_rng(self.seed)

    def next(self) -> int:
        """A new integer seed from this stream (advances it)."""
        return int(self.generator.integers(0, 2**31 - 1))

    def get_config(self) -> dict[str, Any]:
        return {"seed": self.seed}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> SeedGenerator:
        return cls(**config)


def _generator(seed: int | SeedGenerator | None) -> np.random.Generator:
    if seed is None:
        return get_rng()
    if isinstance(seed, SeedGenerator):
        return seed.generator
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return np.random.default_rng(int(seed))
    raise TypeError(f"seed must be None, an int or a SeedGenerator, got {type(seed).__name__}")


def _float(dtype: Any) -> np.dtype:
    return np.dtype(backend.default_float_dtype() if dtype is None else dtype)


def _tensor(array: np.ndarray) -> Tensor:
    return Tensor(backend.as_array(array, dtype=array.dtype))


def normal(shape: Sequence[int], mean: float = 0.0, stddev: float = 1.0, dtype: Any = None,
           seed: int | SeedGenerator | None = None) -> Tensor:
    """Samples from the normal distribution N(mean, stddev**2) (float32 unless ``dtype``)."""
    return _tensor((_generator(seed).standard_normal(tuple(shape)) * stddev + mean).astype(_float(dtype)))


def uniform(shape: Sequence[int], minval: float = 0.0, maxval: float = 1.0, dtype: Any = None,
            seed: int | SeedGenerator | None = None) -> Tensor:
    """Samples from the uniform distribution on [minval, maxval)."""
    return _tensor(_generator(seed).uniform(minval, maxval, tuple(shape)).astype(_float(dtype)))


def truncated_normal(shape: Sequence[int], mean: float = 0.0, stddev: float = 1.0, dtype: Any = None,
                     seed: int | SeedGenerator | None = None) -> Tensor:
    """Normal samples with those more than two standard deviations from the mean drawn again (Keras's rule)."""
    rng, shape = _generator(seed), tuple(shape)
    values = rng.standard_normal(shape)
    outside = np.abs(values) > 2.0
    while outside.any():
        values[outside] = rng.standard_normal(int(outside.sum()))
        outside = np.abs(values) > 2.0
    return _tensor((values * stddev + mean).astype(_float(dtype)))


def randint(shape: Sequence[int], minval: int, maxval: int, dtype: Any = "int32",
            seed: int | SeedGenerator | None = None) -> Tensor:
    """Integers drawn uniformly from [minval, maxval)."""
    return _tensor(_generator(seed).integers(minval, maxval, tuple(shape)).astype(np.dtype(dtype)))


def dropout(inputs: Any, rate: float, noise_shape: Sequence[int] | None = None,
            seed: int | SeedGenerator | None = None) -> Any:
    """Each entry of ``inputs`` zeroed with probability ``rate``, the rest scaled by ``1 / (1 - rate)``; the mask
    broadcasts from ``noise_shape`` (default: the shape of ``inputs``). Always applied: unlike the ``Dropout``
    layer there is no training flag. Gradients flow through the kept entries."""
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout: rate must be in [0, 1), got {rate}")
    return DropoutOp(rate, None if noise_shape is None else tuple(noise_shape), _generator(seed))(inputs)


def shuffle(x: Any, axis: int = 0, seed: int | SeedGenerator | None = None) -> Any:
    """``x`` with its entries along ``axis`` in a random order (gradients flow back to their places)."""
    order = _generator(seed).permutation(raw(x).shape[axis])
    return take(x, order, axis=axis)


def categorical(logits: Any, num_samples: int, dtype: Any = "int32",
                seed: int | SeedGenerator | None = None) -> Tensor:
    """For each row of ``logits`` (batch, classes), ``num_samples`` class indices drawn with probabilities
    softmax(logits) (by the Gumbel-max trick): shape (batch, num_samples)."""
    scores = np.asarray(backend.to_numpy(raw(logits)), dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"categorical: logits must be 2-D (batch, classes), got shape {scores.shape}")
    gumbel = _generator(seed).gumbel(size=(scores.shape[0], num_samples, scores.shape[1]))
    return _tensor(np.argmax(scores[:, None, :] + gumbel, axis=-1).astype(np.dtype(dtype)))
