"""Adadelta (Zeiler, 2012)."""

from __future__ import annotations

from typing import Any

from shendu.autograd.tensor import Tensor
from shendu.backend import get_array_module
from shendu.optimizers.adam import _moving_average, _zeros
from shendu.optimizers.optimizer import Optimizer


class Adadelta(Optimizer):
    """Adadelta in Keras 3's form (the same as PyTorch's)::

        acc_g = rho * acc_g + (1 - rho) * g**2
        delta = -sqrt(acc_dx + epsilon) / sqrt(acc_g + epsilon) * g
        acc_dx = rho * acc_dx + (1 - rho) * delta**2
        w = w + lr * delta

    Defaults: ``learning_rate=0.001, rho=0.95, epsilon=1e-7`` (the paper's rule has no learning rate:
    ``learning_rate=1.0``, PyTorch's default, recovers it).
    """

    hyper = {"rho": 0.95, "epsilon": 1e-7}

    def init_state(self, param: Tensor) -> dict[str, Any]:
        return _zeros(param, "accumulated_grad", "accumulated_delta_var")

    def update(self, param: Tensor, grad: Any, state: dict[str, Any], lr: float) -> None:
        w, acc_g, acc_dx = param.data, state["accumulated_grad"], state["accumulated_delta_var"]
        xp = get_array_module(w)
        tmp, step = self.scratch(w), self.scratch(w, slot=1)
        xp.multiply(grad, grad, out=tmp)
        _moving_average(acc_g, tmp, 1 - self.rho, tmp)
        xp.add(acc_g, self.epsilon, out=tmp)
        xp.add(acc_dx, self.epsilon, out=step)
        xp.sqrt(step, out=step)
        xp.sqrt(tmp, out=tmp)
        step /= tmp
        step *= grad                     # step = -delta
        xp.multiply(step, step, out=tmp)
        _moving_average(acc_dx, tmp, 1 - self.rho, tmp)
        step *= lr
        w -= step
