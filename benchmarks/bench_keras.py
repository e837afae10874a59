"""The Keras-style training loop (issue 3, item 10): the seed program's fit and an MNIST-shaped MLP.

(a) The seed program: ``Sequential([Dense(1, input_dim=1)])``, ``SGD(lr=0.01, momentum=0.9)``, MSE, 100
    samples, batch 32 (4 steps per epoch, the last one partial), shuffled every epoch, ``verbose=0``; timed
    over whole ``fit`` calls (1,000 epochs = 4,000 steps; 100 epochs with --quick) and reported per step.
    Compared with a hand-written PyTorch loop doing the same (``torch.randperm`` shuffle, ``nn.Linear``,
    ``optim.SGD(momentum=0.9)``) and with Keras 3 itself on its PyTorch backend when it is installed
    (the Keras time goes in the ``torch`` column of its own row), and with the same maths written by hand
    in NumPy (float32 arrays, permutation shuffle, forward, MSE, gradient, momentum update in place).
    Targets: <= 35 us/step, 2x faster than the PyTorch loop, 30x faster than Keras 3 (issue 3); at most
    2.0x the hand NumPy loop (issue 8).
(b) An MLP 784-512-512-10 (ReLU, logits + sparse softmax cross-entropy), batch 128, Adam, on random
    MNIST-shaped data, shuffled per epoch: samples per second of ``fit`` against a hand-written PyTorch
    loop and a hand-written NumPy implementation (buffers reused with ``out=``, fused softmax
    cross-entropy, no gradient for the input, in-place Adam: what a careful NumPy programmer writes).
    Targets (issue 8): >= 1.3x PyTorch and >= 1.0x NumPy.

shendu, PyTorch and NumPy are timed in interleaved rounds (medians). The target rows also give shendu's
first step (a ``fit`` of one batch: Numba compile or cache load included) and the workload's wall time.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from common import Tracked, interleaved, keras_on_torch, median_time, row, setup_torch, us

import shendu
from shendu import losses
from shendu.layers import Dense, Input
from shendu.models import Sequential
from shendu.optimizers import SGD, Adam

SEED_SAMPLES, SEED_BATCH = 100, 32
MLP_SIZES, MLP_BATCH = (784, 512, 512, 10), 128


# ---------------------------------------------------------------------------- (a) the seed program
def _seed_data() -> tuple[np.ndarray, np.ndarray]:
    X = np.random.default_rng(0).random((SEED_SAMPLES, 1))
    return X, X ** 2


def _steps(epochs: int) -> int:
    return epochs * -(-SEED_SAMPLES // SEED_BATCH)


def seed_shendu(epochs: int) -> tuple[Any, Any]:
    """The seed program's ``fit`` over ``epochs`` epochs, and a ``fit`` of one batch (the first step)."""
    shendu.seed(0)
    X, y = _seed_data()
    model = Sequential()
    model.add(Dense(1, input_dim=1))
    model.compile(optimizer=SGD(lr=0.01, momentum=0.9), loss="mean_squared_error")
    return (lambda: model.fit(X, y, epochs=epochs, verbose=0),
            lambda: model.fit(X[:SEED_BATCH], y[:SEED_BATCH], batch_size=SEED_BATCH, epochs=1, verbose=0))


def seed_torch(torch: Any, epochs: int) -> Any:
    """The same training as a hand-written PyTorch loop."""
    torch.manual_seed(0)
    X, y = (torch.tensor(a, dtype=torch.float32) for a in _seed_data())
    model = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = torch.nn.MSELoss()

    def fit() -> None:
        for _ in range(epochs):
            perm = torch.randperm(SEED_SAMPLES)
            for s in range(0, SEED_SAMPLES, SEED_BATCH):
                idx = perm[s:s + SEED_BATCH]
                loss = loss_fn(model(X[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()

    return fit


def seed_numpy(epochs: int) -> Any:
    """The same maths by hand in NumPy: shuffle, ``x @ W + b``, MSE (its value too, as ``fit`` logs it),
    its gradient, and Keras's momentum rule (``v = 0.9 v - lr g; w += v``) in place."""
    rng = np.random.default_rng(0)
    X, y = (a.astype(np.float32) for a in _seed_data())
    W = rng.uniform(-1, 1, (1, 1)).astype(np.float32)
    b = np.zeros(1, np.float32)
    vW, vb = np.zeros_like(W), np.zeros_like(b)
    lr, momentum = np.float32(0.01), np.float32(0.9)

    def fit() -> None:
        for _ in range(epochs):
            perm = rng.permutation(SEED_SAMPLES)
            for s in range(0, SEED_SAMPLES, SEED_BATCH):
                idx = perm[s:s + SEED_BATCH]
                xb, yb = X[idx], y[idx]
                err = xb @ W + b - yb
                float(np.mean(err * err))  # the loss
                err *= np.float32(2 / len(idx))
                for p, v, g in ((W, vW, xb.T @ err), (b, vb, err.sum(0))):
                    v *= momentum
                    v -= lr * g
                    p += v

    return fit


def seed_keras(epochs: int) -> float | None:
    """Keras 3 on its PyTorch backend running the seed program (None where :func:`common.keras_on_torch` is)."""
    keras = keras_on_torch()
    if keras is None:
        return None
    keras.utils.set_random_seed(0)
    X, y = _seed_data()
    model = keras.models.Sequential([keras.Input(shape=(1,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01, momentum=0.9), loss="mean_squared_error")
    return median_time(lambda: model.fit(X, y, epochs=epochs, verbose=0), number=1, repeat=3) / _steps(epochs)


# ---------------------------------------------------------------------------- (b) MNIST-shaped MLP
def _mlp_data(batches: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    n = batches * MLP_BATCH
    return rng.random((n, MLP_SIZES[0]), dtype=np.float32), rng.integers(0, MLP_SIZES[-1], n)


def mlp_model() -> Sequential:
    """The MLP, compiled with Adam and sparse softmax cross-entropy on logits."""
    shendu.seed(0)
    model = Sequential([Input(shape=(MLP_SIZES[0],)), Dense(MLP_SIZES[1], activation="relu"),
                        Dense(MLP_SIZES[2], activation="relu"), Dense(MLP_SIZES[3])])
    model.compile(optimizer=Adam(1e-3), loss=losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def mlp_shendu(batches: int) -> tuple[Any, Any]:
    """One epoch of ``fit`` over ``batches`` batches, and a ``fit`` of one batch (the first step)."""
    x, y = _mlp_data(batches)
    model = mlp_model()
    return (lambda: model.fit(x, y, batch_size=MLP_BATCH, epochs=1, verbose=0),
            lambda: model.fit(x[:MLP_BATCH], y[:MLP_BATCH], batch_size=MLP_BATCH, epochs=1, verbose=0))


def mlp_torch(torch: Any, batches: int) -> Any:
    torch.manual_seed(0)
    x_np, y_np = _mlp_data(batches)
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)
    a, b, c, d = MLP_SIZES
    nn = torch.nn
    model = nn.Sequential(nn.Linear(a, b), nn.ReLU(), nn.Linear(b, c), nn.ReLU(), nn.Linear(c, d))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    loss_fn = nn.CrossEntropyLoss()

    def epoch() -> None:
        perm = torch.randperm(len(x))
        for s in range(0, len(x), MLP_BATCH):
            idx = perm[s:s + MLP_BATCH]
            loss = loss_fn(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()

    return epoch


class NumpyMLP:
    """The MLP by hand in NumPy: forward, backward and Adam with every buffer allocated once."""

    def __init__(self, sizes: tuple[int, ...], batch: int, lr: float = 1e-3, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-7) -> None:
        rng = np.random.default_rng(0)
        f32 = np.float32
        self.W = [rng.uniform(-1, 1, (i, o)).astype(f32) * f32(np.sqrt(6 / (i + o)))
                  for i, o in zip(sizes[:-1], sizes[1:])]
        self.b = [np.zeros(o, f32) for o in sizes[1:]]
        self.params = [p for pair in zip(self.W, self.b) for p in pair]
        self.grads = [np.empty_like(p) for p in self.params]
        self.m = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params]
        self.tmp = [np.empty_like(p) for p in self.params]
        self.h = [np.empty((batch, o), f32) for o in sizes[1:]]        # activations (post-ReLU; last: logits)
        self.dh = [np.empty((batch, o), f32) for o in sizes[1:]]       # gradients of the pre-activations
        self.lr, self.beta_1, self.beta_2, self.epsilon, self.t = lr, beta_1, beta_2, epsilon, 0

    def step(self, x: np.ndarray, labels: np.ndarray) -> float:
        n = len(x)
        h = [buf[:n] for buf in self.h]
        dh = [buf[:n] for buf in self.dh]
        inputs = [x] + h[:-1]
        for i, (W, b) in enumerate(zip(self.W, self.b)):               # forward
            np.matmul(inputs[i], W, out=h[i])
            h[i] += b
            if i < len(self.W) - 1:
                np.maximum(h[i], 0, out=h[i])
        logits, d = h[-1], dh[-1]                                      # fused softmax cross-entropy
        np.subtract(logits, logits.max(axis=1, keepdims=True), out=d)
        np.exp(d, out=d)
        d /= d.sum(axis=1, keepdims=True)
        rows = np.arange(n)
        loss = -float(np.log(d[rows, labels]).mean())
        d[rows, labels] -= 1
        d /= n
        for i in range(len(self.W) - 1, -1, -1):                      # backward
            np.matmul(inputs[i].T, dh[i], out=self.grads[2 * i])
            np.sum(dh[i], axis=0, out=self.grads[2 * i + 1])
            if i > 0:
                np.matmul(dh[i], self.W[i].T, out=dh[i - 1])
                dh[i - 1] *= h[i - 1] > 0
        self.t += 1                                                    # Adam, Keras form, in place
        b1, b2 = self.beta_1, self.beta_2
        lr = self.lr * math.sqrt(1 - b2 ** self.t) / (1 - b1 ** self.t)  # a float: float32 maths
        for p, g, m, v, tmp in zip(self.params, self.grads, self.m, self.v, self.tmp):
            m *= b1
            m += (1 - b1) * g
            np.multiply(g, g, out=tmp)
            v *= b2
            tmp *= 1 - b2
            v += tmp
            np.sqrt(v, out=tmp)
            tmp += self.epsilon
            np.divide(m, tmp, out=tmp)
            tmp *= lr
            p -= tmp
        return loss


def mlp_numpy(batches: int) -> Any:
    x, y = _mlp_data(batches)
    net = NumpyMLP(MLP_SIZES, MLP_BATCH)
    rng = np.random.default_rng(0)

    def epoch() -> None:
        perm = rng.permutation(len(x))
        for s in range(0, len(x), MLP_BATCH):
            idx = perm[s:s + MLP_BATCH]
            net.step(x[idx], y[idx])

    return epoch


# ---------------------------------------------------------------------------- the rows
def run(quick: bool) -> list[dict]:
    torch = setup_torch()
    epochs = 100 if quick else 1000
    rounds = 3 if quick else 5
    seed = Tracked(lambda: seed_shendu(epochs))
    fits = {"shendu": seed, "torch": seed_torch(torch, epochs) if torch is not None else None,
            "numpy": seed_numpy(epochs)}
    per_step = {name: us(seconds) / _steps(epochs) for name, seconds in interleaved(fits, rounds, 1).items()}
    keras = seed_keras(25 if quick else 250)
    ours, seed_pt, seed_np = per_step["shendu"], per_step.get("torch"), per_step["numpy"]
    name = "seed fit: Dense(1), SGD momentum, batch 32"
    rows = [row(name, "us/step", ours, seed_pt, seed_np, "<= 35 us/step"),
            row(name + " vs hand-written torch loop", "us/step", ours, seed_pt, seed_np, "<= 0.5x torch"),
            row(name + " vs hand-written NumPy loop", "us/step", ours, seed_pt, seed_np, "<= 2.0x numpy",
                key="seed", tracked=seed),
            row(name + " vs Keras 3 torch backend (torch column)", "us/step", ours,
                None if keras is None else us(keras), None, "<= 0.0333x torch")]
    batches = 6 if quick else 40
    mlp = Tracked(lambda: mlp_shendu(batches))
    epochs_ = {"shendu": mlp, "torch": mlp_torch(torch, batches) if torch is not None else None,
               "numpy": mlp_numpy(batches)}
    rate = {name: batches * MLP_BATCH / seconds for name, seconds in interleaved(epochs_, rounds, 1).items()}
    name = "MLP 784-512-512-10, batch 128, Adam"
    rows += [row(name + " vs torch", "samples/s", rate["shendu"], rate.get("torch"), rate["numpy"], ">= 1.3x torch",
                 key="mlp-torch", tracked=mlp),
             row(name + " vs numpy", "samples/s", rate["shendu"], rate.get("torch"), rate["numpy"], ">= 1.0x numpy",
                 key="mlp-numpy", tracked=mlp)]
    return rows
