"""RMSprop (Hinton's lecture 6e), with momentum and the centered variant (Graves, 2013)."""

from __future__ import annotations

from typing import Any

from shendu.autograd.tensor import Tensor
from shendu.backend import get_array_module
from shendu.kernels import optim
from shendu.optimizers.adam import _moving_average, _zeros
from shendu.optimizers.optimizer import Optimizer


class RMSprop(Optimizer):
    """RMSprop in Keras 3's form::

        v = rho * v + (1 - rho) * g**2
        a = rho * a + (1 - rho) * g                      # centered=True only
        step = lr * g / sqrt(v + epsilon)                # centered: sqrt(v - a**2 + epsilon)
        s = momentum * s + step;  w = w - s              # momentum > 0
        w = w - step                                     # otherwise

    Defaults: ``learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False``. Keras puts epsilon
    inside the square root, PyTorch outside (``sqrt(v) + eps``); they agree when epsilon is 0.
    """

    hyper = {"rho": 0.9, "momentum": 0.0, "epsilon": 1e-7, "centered": False}
    fused_slots = {"v": "velocity", "average": "average_gradient", "s": "momentum"}

    def init_state(self, param: Tensor) -> dict[str, Any]:
        names = ["velocity"] + ["momentum"] * (self.momentum > 0) + ["average_gradient"] * bool(self.centered)
        return _zeros(param, *names)

    def update_all(self, table: optim.Table, lrs: list[float], decays: list[float]) -> None:
        optim.rmsprop_all(table, lrs, decays, 1 - self.rho, self.epsilon, self.momentum)

    def update(self, param: Tensor, grad: Any, state: dict[str, Any], lr: float, decay: float = 1.0) -> None:
        w, v = param.data, state["velocity"]
        average, s = state.get("average_gradient"), state.get("momentum")
        if optim.ready(w, grad, v, average, s):  # the same rule (and decay), fused into one multi-threaded pass
            return optim.rmsprop(w, grad, v, average, s, 1 - self.rho, lr, self.epsilon, self.momentum, decay)
        if decay != 1.0:
            w *= decay                   # decoupled weight decay (see Optimizer)
        xp = get_array_module(w)
        tmp = self.scratch(w)
        xp.multiply(grad, grad, out=tmp)
        _moving_average(v, tmp, 1 - self.rho, tmp)
        if self.centered:
            average = state["average_gradient"]
            _moving_average(average, grad, 1 - self.rho, tmp)
            xp.multiply(average, average, out=tmp)
            xp.subtract(v, tmp, out=tmp)
            tmp += self.epsilon
        else:
            xp.add(v, self.epsilon, out=tmp)
        xp.sqrt(tmp, out=tmp)
        xp.divide(grad, tmp, out=tmp)
        tmp *= lr
        if "momentum" in state:
            s = state["momentum"]
            s *= self.momentum
            s += tmp
            w -= s
        else:
            w -= tmp
