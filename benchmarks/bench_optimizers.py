"""Optimiser update cost: one ``step()`` over a model's parameters, gradients already in ``.grad``.

* Adam over the 784-512-512-10 MLP's parameters (669,706 float32 values; the MNIST workload of issue 3),
  against ``torch.optim.Adam`` with ``foreach=False`` (a loop of per-tensor kernels) and ``foreach=True``
  (multi-tensor kernels), and against the textbook NumPy rule (``m = b1*m + (1-b1)*g`` ..., fresh arrays).
* SGD with momentum over the seed program's two one-element parameters (``Dense(1, input_dim=1)``), where
  the step is all per-call overhead.
* Adam over the 24 parameters of twelve Dense(64) layers: steps update every parameter in one kernel call
  (``shendu.kernels.optim.Table``); the second row is the same step one call per parameter (the fallback
  path, ``_fuses`` off), against the same PyTorch and NumPy figures.

Target: shendu's Adam step at most PyTorch's (the issue notes Adam is a third of PyTorch's MLP step).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
from common import median_time, row, setup_torch, us

import shendu
from shendu.optimizers import SGD, Adam

MLP_SHAPES = [(784, 512), (512,), (512, 512), (512,), (512, 10), (10,)]
SEED_SHAPES = [(1, 1), (1,)]
DEEP_SHAPES = [(64, 64), (64,)] * 12


def _weights_and_grads(shapes: list[tuple[int, ...]]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(0)
    weights = [rng.standard_normal(s).astype(np.float32) * 0.05 for s in shapes]
    grads = [rng.standard_normal(s).astype(np.float32) * 0.01 for s in shapes]
    return weights, grads


def _shendu_step(make: Callable[[list], Any], shapes: list[tuple[int, ...]], each: bool = False) -> Callable[[], Any]:
    """``make(params).step``; ``each``: one kernel call per parameter instead of one for all."""
    weights, grads = _weights_and_grads(shapes)
    params = [shendu.Parameter(w) for w in weights]
    for p, g in zip(params, grads):
        p.grad = shendu.tensor(g)
    opt = make(params)
    if each:
        opt._fuses = False
    return opt.step


def _torch_step(torch: Any, make: Callable[[list], Any], shapes: list[tuple[int, ...]]) -> Callable[[], Any]:
    weights, grads = _weights_and_grads(shapes)
    params = [torch.nn.Parameter(torch.from_numpy(w)) for w in weights]
    for p, g in zip(params, grads):
        p.grad = torch.from_numpy(g)
    return make(params).step


def _numpy_adam(shapes: list[tuple[int, ...]]) -> Callable[[], None]:
    """The rule as one writes it in NumPy: readable, with fresh temporaries."""
    weights, grads = _weights_and_grads(shapes)
    ms = [np.zeros_like(w) for w in weights]
    vs = [np.zeros_like(w) for w in weights]
    b1, b2, eps, lr = 0.9, 0.999, 1e-7, 1e-3
    t = [0]

    def step() -> None:
        t[0] += 1
        alpha = lr * math.sqrt(1 - b2 ** t[0]) / (1 - b1 ** t[0])
        for w, g, m, v in zip(weights, grads, ms, vs):
            m[...] = b1 * m + (1 - b1) * g
            v[...] = b2 * v + (1 - b2) * g * g
            w -= alpha * m / (np.sqrt(v) + eps)

    return step


def _numpy_momentum(shapes: list[tuple[int, ...]]) -> Callable[[], None]:
    weights, grads = _weights_and_grads(shapes)
    velocities = [np.zeros_like(w) for w in weights]

    def step() -> None:
        for w, g, v in zip(weights, grads, velocities):
            v *= 0.9
            v -= 0.01 * g
            w += v

    return step


def run(quick: bool) -> list[dict]:
    torch = setup_torch()
    repeat = 3 if quick else 7
    rows = []
    adam = us(median_time(_shendu_step(lambda p: Adam(1e-3, params=p), MLP_SHAPES), repeat=repeat))
    numpy_adam = us(median_time(_numpy_adam(MLP_SHAPES), repeat=repeat))
    for foreach in (False, True):
        torch_adam = None
        if torch is not None:
            make = lambda p, fe=foreach: torch.optim.Adam(p, lr=1e-3, eps=1e-7, foreach=fe)  # noqa: E731
            torch_adam = us(median_time(_torch_step(torch, make, MLP_SHAPES), repeat=repeat))
        rows.append(row(f"Adam step, 784-512-512-10 MLP params (torch foreach={foreach})", "us/step", adam,
                        torch_adam, numpy_adam, "<= 1.0x torch"))
    sgd = us(median_time(_shendu_step(lambda p: SGD(0.01, params=p, momentum=0.9), SEED_SHAPES), repeat=repeat))
    torch_sgd = None
    if torch is not None:
        make = lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9)  # noqa: E731
        torch_sgd = us(median_time(_torch_step(torch, make, SEED_SHAPES), repeat=repeat))
    numpy_sgd = us(median_time(_numpy_momentum(SEED_SHAPES), repeat=repeat))
    rows.append(row("SGD momentum step, seed model (2 one-element params)", "us/step", sgd, torch_sgd, numpy_sgd,
                    "<= 0.25x torch"))
    make_adam = lambda p: Adam(1e-3, params=p)  # noqa: E731
    deep = {each: us(median_time(_shendu_step(make_adam, DEEP_SHAPES, each), repeat=repeat)) for each in (False, True)}
    torch_deep = None
    if torch is not None:
        make = lambda p: torch.optim.Adam(p, lr=1e-3, eps=1e-7, foreach=True)  # noqa: E731
        torch_deep = us(median_time(_torch_step(torch, make, DEEP_SHAPES), repeat=repeat))
    numpy_deep = us(median_time(_numpy_adam(DEEP_SHAPES), repeat=repeat))
    name = "Adam step, 12 Dense(64) layers (24 params, torch foreach=True)"
    rows.append(row(name + ", all in one call", "us/step", deep[False], torch_deep, numpy_deep, "<= 1.0x torch"))
    rows.append(row(name + ", one call per param", "us/step", deep[True], torch_deep, numpy_deep, "-"))
    return rows
