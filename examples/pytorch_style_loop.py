"""The same objects, PyTorch style: a model, ``model.parameters()``, an optimiser, and your own loop.

    python examples/pytorch_style_loop.py

Trains a small classifier on the 8x8 digits bundled with shendu (``shendu.datasets.digits``) with
``loss.backward(); opt.step(); opt.zero_grad()``, batching with ``shendu.data.DataLoader``.
"""

import numpy as np

import shendu
import shendu.functional as F
from shendu.data import DataLoader, TensorDataset
from shendu.datasets import digits
from shendu.layers import Dense
from shendu.models import Sequential
from shendu.optimizers import Adam


def main(epochs: int = 10) -> float:
    shendu.seed(0)
    (x_train, y_train), (x_test, y_test) = digits.load_data()
    x_train = x_train.reshape(len(x_train), -1).astype(np.float32) / 16
    x_test = x_test.reshape(len(x_test), -1).astype(np.float32) / 16

    model = Sequential([Dense(64, activation="relu", input_dim=64), Dense(10)])  # logits
    opt = Adam(learning_rate=1e-2, params=model.parameters())
    loader = DataLoader(TensorDataset(x_train, y_train.astype(np.int64)), batch_size=64, shuffle=True)

    for epoch in range(epochs):
        model.train()
        total = 0.0
        for xb, yb in loader:
            loss = F.cross_entropy(model(xb), yb)  # PyTorch argument order: (input, target)
            loss.backward()
            opt.step()
            opt.zero_grad()
            total += float(loss) * len(xb)
        model.eval()
        with shendu.no_grad():
            accuracy = float((model(x_test).data.argmax(axis=1) == y_test).mean())
        print(f"epoch {epoch + 1}: loss {total / len(x_train):.4f}, test accuracy {accuracy:.4f}")
    return accuracy


if __name__ == "__main__":
    main()
