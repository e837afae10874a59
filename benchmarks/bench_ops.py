"""Per-op overhead: forward + backward of add, mul, matmul, sum and relu on 32x32 and 512x512 float32.

Each step computes y = op(a[, b]) and backpropagates an upstream gradient of ones (sum: its implicit
seed) into the leaves' ``.grad``, which is reset between steps as a training loop's ``zero_grad`` does.
shendu and PyTorch (CPU, same thread count) go through their autograd engines; the NumPy column is
the same forward and backward written by hand, i.e. the cost of the arithmetic alone. On 32x32 the
time is almost all framework overhead; on 512x512 it is mostly the arithmetic.
Target: shendu's small-array (32x32) forward+backward at most 1.5x PyTorch's.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from common import median_time, row, setup_torch, us

import shendu

OPS = ("add", "mul", "matmul", "sum", "relu")
SMALL_TARGET = "<= 1.5x torch"


def _forward(lib: Any, name: str, a: Any, b: Any) -> Any:
    if name == "add":
        return a + b
    if name == "mul":
        return a * b
    if name == "matmul":
        return a @ b
    if name == "sum":
        return a.sum()
    return lib.relu(a)


def _numpy_step(name: str, a: np.ndarray, b: np.ndarray, g: np.ndarray) -> Callable[[], Any]:
    """Forward and backward by hand: the arithmetic with no framework around it."""
    if name == "add":
        return lambda: (a + b, g.copy(), g.copy())
    if name == "mul":
        return lambda: (a * b, g * b, g * a)
    if name == "matmul":
        return lambda: (a @ b, g @ b.T, a.T @ g)
    if name == "sum":
        return lambda: (a.sum(), np.ones_like(a))
    return lambda: (np.maximum(a, 0), g * (a > 0))


def _autograd_step(lib: Any, name: str, a: Any, b: Any, g: Any) -> Callable[[], None]:
    def step() -> None:
        y = _forward(lib, name, a, b)
        if name == "sum":
            y.backward()
        else:
            y.backward(g)
        a.grad = None
        b.grad = None

    return step


def _measure(name: str, n: int, quick: bool) -> dict:
    timing = {"repeat": 3, "min_time": 0.01} if quick else {"repeat": 7}
    rng = np.random.default_rng(0)
    a_np = rng.standard_normal((n, n)).astype(np.float32)
    b_np = rng.standard_normal((n, n)).astype(np.float32)
    g_np = np.ones((n, n), dtype=np.float32)
    a, b = shendu.tensor(a_np, requires_grad=True), shendu.tensor(b_np, requires_grad=True)
    shendu_s = median_time(_autograd_step(shendu, name, a, b, g_np), **timing)
    numpy_s = median_time(_numpy_step(name, a_np, b_np, g_np), **timing)
    torch = setup_torch()
    torch_s = None
    if torch is not None:
        ta = torch.tensor(a_np, requires_grad=True)
        tb = torch.tensor(b_np, requires_grad=True)
        torch_s = median_time(_autograd_step(torch, name, ta, tb, torch.tensor(g_np)), **timing)
    target = SMALL_TARGET if n <= 32 else "-"
    return row(f"{name} fwd+bwd {n}x{n} float32", "us/step", us(shendu_s), torch_s and us(torch_s), us(numpy_s),
               target)


def run(quick: bool) -> list[dict]:
    """Rows for every op on 32x32 and 512x512 (``quick``: shorter timing runs)."""
    return [_measure(name, n, quick) for n in (32, 512) for name in OPS]
