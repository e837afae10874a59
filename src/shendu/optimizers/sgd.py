"""Gradient descent and stochastic gradient descent with (Nesterov) momentum."""

from __future__ import annotations

from typing import Any

from shendu.autograd.tensor import Tensor
from shendu.backend import get_array_module
from shendu.kernels import optim
from shendu.optimizers.optimizer import Optimizer


class GD(Optimizer):
    """Gradient descent, the seed article's first optimiser: ``w = w - lr * g``.

    The update rule is SGD's without momentum; what makes it *full-batch* gradient descent is the gradient
    it is given: train with ``fit(x, y, batch_size=len(x))`` (or one PyTorch-style step per pass over all the
    data) so ``g`` is the gradient of the loss over the whole training set. Default ``learning_rate=0.01``.
    """

    default_learning_rate = 0.01
    fused_slots = {"v": "momentum"}  # SGD's velocity; GD keeps none, so the kernel gets None

    def update_all(self, table: optim.Table, lrs: list[float], decays: list[float]) -> None:
        optim.sgd_all(table, lrs, decays, 0.0, False)

    def update(self, param: Tensor, grad: Any, state: dict[str, Any], lr: float, decay: float = 1.0) -> None:
        w = param.data
        if optim.ready(w, grad):  # the same rule (and decay) in one pass, multi-threaded for large parameters
            return optim.sgd(w, grad, None, lr, 0.0, False, decay)
        if decay != 1.0:
            w *= decay                   # decoupled weight decay (see Optimizer)
        xp = get_array_module(w)
        step = xp.multiply(grad, self.scalar(lr, w), out=self.scratch(w))
        xp.subtract(w, step, out=w)


class SGD(GD):
    """Stochastic gradient descent with optional momentum (Keras 3 semantics; ``learning_rate=0.01``).

    Without momentum: ``w = w - lr * g``. With ``momentum=m`` (velocity ``v`` starts at 0)::

        v = m * v - lr * g
        w = w + v                      # nesterov=False
        w = w + m * v - lr * g         # nesterov=True (uses the new v)

    The seed article prints momentum as ``W_new = W_old - a*dL/dW + b*(W_old - W_new)``, which is circular
    (``W_new`` on both sides); the form above is the standard one (Keras's). PyTorch's
    ``buf = m * buf + g; w -= lr * buf`` is the same update while ``lr`` is constant (``v = -lr * buf``).
    The Keras 2 spelling ``SGD(lr=0.01, momentum=0.9)`` is accepted (``lr`` is ``learning_rate``'s alias).
    """

    hyper = {"momentum": 0.0, "nesterov": False}

    def check_hyper(self) -> None:
        if not 0.0 <= self.momentum <= 1.0:
            raise ValueError(f"`momentum` must be a float between [0, 1]. Received: momentum={self.momentum}")

    def init_state(self, param: Tensor) -> dict[str, Any]:
        if not self.momentum:
            return {}
        return {"momentum": get_array_module(param.data).zeros_like(param.data)}

    def update_all(self, table: optim.Table, lrs: list[float], decays: list[float]) -> None:
        optim.sgd_all(table, lrs, decays, self.momentum, self.nesterov)

    def update(self, param: Tensor, grad: Any, state: dict[str, Any], lr: float, decay: float = 1.0) -> None:
        if not state:
            return super().update(param, grad, state, lr, decay)
        w, v = param.data, state["momentum"]
        if optim.ready(w, grad, v):  # the same rule (and decay) in one pass, multi-threaded for large parameters
            return optim.sgd(w, grad, v, lr, self.momentum, self.nesterov, decay)
        if decay != 1.0:
            w *= decay                   # decoupled weight decay (see Optimizer)
        xp = get_array_module(w)
        m = self.scalar(self.momentum, w)
        lr_g = xp.multiply(grad, self.scalar(lr, w), out=self.scratch(w))
        xp.multiply(v, m, out=v)
        xp.subtract(v, lr_g, out=v)        # v = m*v - lr*g
        if self.nesterov:
            xp.subtract(w, lr_g, out=w)
            xp.multiply(v, m, out=lr_g)
            xp.add(w, lr_g, out=w)         # w = w + m*v - lr*g
        else:
            xp.add(w, v, out=w)
