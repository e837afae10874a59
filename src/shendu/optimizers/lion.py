"""Lion, the sign-momentum optimiser found by program search (Chen et al., 2023)."""

from __future__ import annotations

from typing import Any

from shendu.autograd.tensor import Tensor
from shendu.backend import get_array_module
from shendu.optimizers.adam import _moving_average, _zeros
from shendu.optimizers.optimizer import Optimizer


class Lion(Optimizer):
    """Lion (EvoLved Sign Momentum), as in the paper and Keras 3::

        w = w - lr * sign(beta_1 * m + (1 - beta_1) * g)
        m = beta_2 * m + (1 - beta_2) * g

    Defaults: ``learning_rate=0.001, beta_1=0.9, beta_2=0.99``. Every coordinate moves by exactly ``lr``, so
    use a learning rate 3-10x smaller than Adam's (and a larger ``weight_decay``, which is decoupled here too).
    """

    hyper = {"beta_1": 0.9, "beta_2": 0.99}

    def check_hyper(self) -> None:
        if not 0.0 < self.beta_1 <= 1.0:
            raise ValueError("Argument `beta_1` must be in the [0, 1] range. Otherwise, the optimizer degenerates "
                             f"to SignSGD. Received: beta_1={self.beta_1}.")

    def init_state(self, param: Tensor) -> dict[str, Any]:
        return _zeros(param, "momentum")

    def update(self, param: Tensor, grad: Any, state: dict[str, Any], lr: float) -> None:
        w, m = param.data, state["momentum"]
        xp = get_array_module(w)
        tmp = self.scratch(w)
        xp.subtract(grad, m, out=tmp)
        tmp *= 1 - self.beta_1
        tmp += m                         # beta_1 * m + (1 - beta_1) * g
        xp.sign(tmp, out=tmp)
        tmp *= lr
        w -= tmp
        _moving_average(m, grad, 1 - self.beta_2, tmp)
