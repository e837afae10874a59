"""The classic Keras MNIST convnet, one training step (forward, backward, Adam) on a batch of 64:

    Conv2D(32, 3, relu) -> Conv2D(64, 3, relu) -> MaxPooling2D(2) -> Flatten -> Dense(128, relu)
    -> Dense(10, softmax), sparse categorical cross-entropy, Adam(1e-3)

* shendu: ``model.train_on_batch`` of a compiled Sequential (what ``fit`` runs per step);
* torch: a hand-written loop over the same network (NCHW, ``nn.Conv2d``), ``torch.optim.Adam``;
* numpy: a plain NumPy im2col convnet (stride-tricks im2col, GEMMs, ``np.add.at``-free col2im loop,
  argmax max-pool), the textbook way to write it by hand.

Target (issue 8): shendu >= 1.0x PyTorch's samples/s at the default thread count (issue 4 asked 0.7x).
The row also gives shendu's first step (Numba compile or cache load included) and the workload's wall
time. Set ``SHENDU_PROFILE=1`` to print a cProfile of the shendu step (where the time goes: im2col copy,
GEMMs, col2im).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
from common import Tracked, interleaved, profile_if_asked, row, setup_torch, torch_adam_step

import shendu
from shendu.layers import Dense, Flatten, Input
from shendu.layers.conv import Conv2D
from shendu.layers.pooling import MaxPooling2D
from shendu.models import Sequential

BATCH = 64


def _data(batch: int = BATCH) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.random((batch, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, batch)


def shendu_step(batch: int = BATCH) -> Callable[[], Any]:
    shendu.seed(0)
    model = Sequential([Input(shape=(28, 28, 1)), Conv2D(32, 3, activation="relu"), Conv2D(64, 3, activation="relu"),
                        MaxPooling2D(2), Flatten(), Dense(128, activation="relu"), Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = _data(batch)
    return lambda: model.train_on_batch(x, y)


def torch_step(torch: Any) -> Callable[[], Any]:
    nn = torch.nn
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(9216, 128), nn.ReLU(), nn.Linear(128, 10))
    x, y = _data()
    tx, ty = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), torch.from_numpy(y)
    return torch_adam_step(torch, model, nn.functional.cross_entropy, tx, ty)


def numpy_step() -> Callable[[], Any]:
    """A hand-written NumPy convnet: im2col by stride tricks, one GEMM per layer, col2im by kernel taps."""
    rng = np.random.default_rng(0)

    def glorot(*shape: int) -> np.ndarray:
        fan_in, fan_out = int(np.prod(shape[:-1])), shape[-1]
        return rng.uniform(-1, 1, shape).astype(np.float32) * np.float32(np.sqrt(6 / (fan_in + fan_out)))

    params = [glorot(9, 32), np.zeros(32, np.float32), glorot(288, 64), np.zeros(64, np.float32),
              glorot(9216, 128), np.zeros(128, np.float32), glorot(128, 10), np.zeros(10, np.float32)]
    ms, vs, t = [np.zeros_like(p) for p in params], [np.zeros_like(p) for p in params], [0]
    x, y = _data()

    def im2col(a: np.ndarray) -> np.ndarray:
        n, h, w, c = a.shape
        s = a.strides
        view = np.lib.stride_tricks.as_strided(a, (n, h - 2, w - 2, 3, 3, c), (s[0], s[1], s[2], s[1], s[2], s[3]))
        return view.reshape(-1, 9 * c)

    def col2im(cols: np.ndarray, shape: tuple) -> np.ndarray:
        n, h, w, c = shape
        out = np.zeros(shape, np.float32)
        taps = cols.reshape(n, h - 2, w - 2, 3, 3, c)
        for i in range(3):
            for j in range(3):
                out[:, i:i + h - 2, j:j + w - 2] += taps[:, :, :, i, j]
        return out

    def step() -> None:
        w1, b1, w2, b2, w3, b3, w4, b4 = params
        c1 = im2col(x)
        h1 = np.maximum(c1 @ w1 + b1, 0).reshape(BATCH, 26, 26, 32)
        c2 = im2col(h1)
        h2 = np.maximum(c2 @ w2 + b2, 0).reshape(BATCH, 24, 24, 64)
        win = h2.reshape(BATCH, 12, 2, 12, 2, 64).transpose(0, 1, 3, 5, 2, 4).reshape(BATCH, 12, 12, 64, 4)
        arg = win.argmax(-1)
        p = np.take_along_axis(win, arg[..., None], -1)[..., 0].reshape(BATCH, -1)
        h3 = np.maximum(p @ w3 + b3, 0)
        z = h3 @ w4 + b4
        e = np.exp(z - z.max(1, keepdims=True))
        g = e / e.sum(1, keepdims=True)
        g[np.arange(BATCH), y] -= 1
        g /= BATCH
        grads = [None] * 8
        grads[6], grads[7] = h3.T @ g, g.sum(0)
        g3 = (g @ w4.T) * (h3 > 0)
        grads[4], grads[5] = p.T @ g3, g3.sum(0)
        gp = (g3 @ w3.T).reshape(BATCH, 12, 12, 64)
        gwin = np.zeros(win.shape, np.float32)
        np.put_along_axis(gwin, arg[..., None], gp[..., None], -1)
        g2 = gwin.reshape(BATCH, 12, 12, 64, 2, 2).transpose(0, 1, 4, 2, 5, 3).reshape(BATCH, 24, 24, 64)
        g2 = (g2 * (h2 > 0)).reshape(-1, 64)
        grads[2], grads[3] = c2.T @ g2, g2.sum(0)
        g1 = col2im(g2 @ w2.T, h1.shape).reshape(-1, 32) * (h1.reshape(-1, 32) > 0)
        grads[0], grads[1] = c1.T @ g1, g1.sum(0)
        t[0] += 1
        alpha = 1e-3 * math.sqrt(1 - 0.999 ** t[0]) / (1 - 0.9 ** t[0])  # a float: float32 maths
        for prm, grd, m, v in zip(params, grads, ms, vs):
            m += 0.1 * (grd - m)
            v += 0.001 * (grd * grd - v)
            prm -= alpha * m / (np.sqrt(v) + 1e-7)

    return step


def run(quick: bool) -> list[dict]:
    step = Tracked(shendu_step)
    step()  # the first step, where the kernels compile (or load from Numba's cache), timed on its own
    profile_if_asked(step, "bench_conv", lines=12)
    torch = setup_torch()
    steps = {"shendu": step, "torch": torch_step(torch) if torch is not None else None, "numpy": numpy_step()}
    rate = {name: BATCH / seconds for name, seconds in interleaved(steps, 3 if quick else 7).items()}
    return [row("MNIST convnet train step (batch 64, Adam)", "samples/s", rate["shendu"], rate.get("torch"),
                rate["numpy"], ">= 1.0x torch", key="convnet", tracked=step)]


if __name__ == "__main__":
    print(run(quick=True))
