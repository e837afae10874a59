"""Adagrad (Duchi, Hazan & Singer, 2011)."""

from __future__ import annotations

from typing import Any

from shendu.autograd.tensor import Tensor
from shendu.backend import get_array_module
from shendu.optimizers.optimizer import Optimizer


class Adagrad(Optimizer):
    """Adagrad in Keras 3's form; the accumulator starts at ``initial_accumulator_value``::

        acc = acc + g**2
        w = w - lr * g / sqrt(acc + epsilon)

    Defaults: ``learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7``. Keras puts epsilon inside
    the square root, PyTorch outside (``sqrt(acc) + eps``, accumulator starting at 0 by default).
    """

    hyper = {"initial_accumulator_value": 0.1, "epsilon": 1e-7}

    def init_state(self, param: Tensor) -> dict[str, Any]:
        return {"accumulator": get_array_module(param.data).full_like(param.data, self.initial_accumulator_value)}

    def update(self, param: Tensor, grad: Any, state: dict[str, Any], lr: float) -> None:
        w, acc = param.data, state["accumulator"]
        xp = get_array_module(w)
        tmp = self.scratch(w)
        xp.multiply(grad, grad, out=tmp)
        acc += tmp
        xp.add(acc, self.epsilon, out=tmp)
        xp.sqrt(tmp, out=tmp)
        xp.divide(grad, tmp, out=tmp)
        tmp *= lr
        w -= tmp
