"""Adam and its relatives: AdamW, Adamax, Nadam (Keras 3 formulas, Keras epsilon placement)."""

from __future__ import annotations

import math
from typing import Any

from shendu.autograd.tensor import Tensor
from shendu.backend import get_array_module
from shendu.kernels import optim
from shendu.optimizers.optimizer import Optimizer


def _zeros(param: Tensor, *names: str) -> dict[str, Any]:
    xp = get_array_module(param.data)
    return {name: xp.zeros_like(param.data) for name in names}


def _moving_average(average: Any, value: Any, rate: float, tmp: Any) -> None:
    """``average += (value - average) * rate`` in place, i.e. ``average = (1 - rate) * average + rate * value``."""
    get_array_module(average).subtract(value, average, out=tmp)
    tmp *= rate
    average += tmp


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) as Keras 3 writes it; ``t = iterations + 1``::

        m = m + (g - m) * (1 - beta_1)
        v = v + (g**2 - v) * (1 - beta_2)
        v_hat = max(v_hat, v)                                 # amsgrad=True; then v_hat replaces v below
        w = w - lr * sqrt(1 - beta_2**t) / (1 - beta_1**t) * m / (sqrt(v) + epsilon)

    Defaults: ``learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False``.
    Epsilon is Keras's: added to ``sqrt(v)`` *before* the bias correction. PyTorch adds it after
    (``m_hat / (sqrt(v_hat) + eps)``), so Keras's ``epsilon`` equals PyTorch's ``eps * sqrt(1 - beta_2**t)``.
    """

    hyper = {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7, "amsgrad": False}
    fused_slots = {"m": "momentum", "v": "velocity", "v_hat": "velocity_hat"}

    def init_state(self, param: Tensor) -> dict[str, Any]:
        names = ("momentum", "velocity", "velocity_hat") if self.amsgrad else ("momentum", "velocity")
        return _zeros(param, *names)

    def _alpha(self, lr: float) -> float:
        """The step size with both bias corrections: ``lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)``."""
        t = self.iterations + 1
        return lr * math.sqrt(1 - self.beta_2 ** t) / (1 - self.beta_1 ** t)

    def update_all(self, table: optim.Table, lrs: list[float], decays: list[float]) -> None:
        optim.adam_all(table, [self._alpha(lr) for lr in lrs], decays, 1 - self.beta_1, 1 - self.beta_2,
                       self.epsilon)

    def update(self, param: Tensor, grad: Any, state: dict[str, Any], lr: float, decay: float = 1.0) -> None:
        w, m, v = param.data, state["momentum"], state["velocity"]
        alpha = self._alpha(lr)
        v_hat = state.get("velocity_hat")
        if optim.ready(w, grad, m, v, v_hat):  # the same rule (and decay), fused into one multi-threaded pass
            return optim.adam(w, grad, m, v, v_hat, 1 - self.beta_1, 1 - self.beta_2, alpha, self.epsilon, decay)
        if decay != 1.0:
            w *= decay                   # decoupled weight decay (see Optimizer)
        xp = get_array_module(w)
        tmp = self.scratch(w)
        _moving_average(m, grad, 1 - self.beta_1, tmp)
        xp.multiply(grad, grad, out=tmp)
        _moving_average(v, tmp, 1 - self.beta_2, tmp)
        if v_hat is not None:
            v = xp.maximum(v_hat, v, out=v_hat)
        xp.sqrt(v, out=tmp)
        tmp += self.epsilon
        xp.divide(m, tmp, out=tmp)
        tmp *= alpha
        w -= tmp


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019); ``weight_decay=0.004`` by default::

        w = w - lr * weight_decay * w        # first, as for any optimiser given weight_decay
        w = adam_update(w, g)                # then exactly Adam's rule

    Equal to PyTorch's ``AdamW`` (``w *= 1 - lr * weight_decay``) with the epsilon mapping noted on Adam.
    """

    default_weight_decay = 0.004


class Adamax(Optimizer):
    """Adamax, Adam with the infinity norm (Kingma & Ba, 2015, section 7); ``t = iterations + 1``::

        m = m + (g - m) * (1 - beta_1)
        u = max(beta_2 * u, |g|)
        w = w - lr * m / ((1 - beta_1**t) * (u + epsilon))

    Defaults: ``learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7``. (PyTorch puts epsilon
    inside the max, ``u = max(beta_2 * u, |g| + eps)``; the two agree when epsilon is 0.)
    """

    hyper = {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}

    def init_state(self, param: Tensor) -> dict[str, Any]:
        return _zeros(param, "m", "u")

    def update(self, param: Tensor, grad: Any, state: dict[str, Any], lr: float) -> None:
        w, m, u = param.data, state["m"], state["u"]
        xp = get_array_module(w)
        tmp = self.scratch(w)
        _moving_average(m, grad, 1 - self.beta_1, tmp)
        u *= self.beta_2
        xp.maximum(u, xp.abs(grad, out=tmp), out=u)
        xp.add(u, self.epsilon, out=tmp)
        xp.divide(m, tmp, out=tmp)
        tmp *= lr / (1 - self.beta_1 ** (self.iterations + 1))
        w -= tmp


class Nadam(Optimizer):
    """Nadam, Adam with Nesterov momentum (Dozat, 2016), in Keras 3's form; ``t = iterations + 1``::

        mu_t = beta_1 * (1 - 0.5 * 0.96**t)          # momentum schedule; prod_t = mu_1 * ... * mu_t
        m = m + (g - m) * (1 - beta_1)
        v = v + (g**2 - v) * (1 - beta_2)
        m_hat = mu_{t+1} * m / (1 - prod_t * mu_{t+1}) + (1 - mu_t) * g / (1 - prod_t)
        w = w - lr * m_hat / (sqrt(v / (1 - beta_2**t)) + epsilon)

    Defaults: ``learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7``. This is PyTorch's ``NAdam``
    with ``momentum_decay=1`` (PyTorch's default 0.004 makes its schedule ``0.96**(0.004 t)``).
    """

    hyper = {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}

    def _mu(self, t: int) -> float:
        return self.beta_1 * (1.0 - 0.5 * 0.96 ** t)

    def prepare_step(self) -> None:
        self._mu_product *= self._mu(self.iterations + 1)

    def restore_step_values(self) -> None:
        self._mu_product = 1.0
        for t in range(1, self.iterations + 1):
            self._mu_product *= self._mu(t)

    def init_state(self, param: Tensor) -> dict[str, Any]:
        return _zeros(param, "momentum", "velocity")

    def update(self, param: Tensor, grad: Any, state: dict[str, Any], lr: float) -> None:
        w, m, v = param.data, state["momentum"], state["velocity"]
        xp = get_array_module(w)
        t = self.iterations + 1
        mu, mu_next, product = self._mu(t), self._mu(t + 1), self._mu_product
        tmp, m_hat = self.scratch(w), self.scratch(w, slot=1)
        _moving_average(m, grad, 1 - self.beta_1, tmp)
        xp.multiply(grad, grad, out=tmp)
        _moving_average(v, tmp, 1 - self.beta_2, tmp)
        xp.multiply(m, mu_next / (1 - product * mu_next), out=m_hat)
        xp.multiply(grad, (1 - mu) / (1 - product), out=tmp)
        m_hat += tmp
        xp.multiply(v, 1 / (1 - self.beta_2 ** t), out=tmp)
        xp.sqrt(tmp, out=tmp)
        tmp += self.epsilon
        xp.divide(m_hat, tmp, out=tmp)
        tmp *= lr
        w -= tmp
