"""Pictures of a training run: learning curves, the model, and the autograd graph of one step.

    python examples/plots.py [--out DIR] [--epochs N]

Trains a small CNN with augmentation on the MNIST sample shipped with shendu (no files or network needed),
with a learning-rate schedule, and writes to DIR (default ``plots/``):

* ``curves.png``: loss and accuracy, training vs validation, the learning rate on a second axis;
* ``model.png``: the layers with their output shapes and parameter counts;
* ``graph.dot`` and ``graph.png``: the autograd graph of one loss computation (``dot`` renders it when
  Graphviz is installed, matplotlib draws it otherwise).
"""

import argparse
import os

import shendu
from shendu.callbacks import LearningRateScheduler
from shendu.datasets import mnist
from shendu.layers import Conv2D, Dense, Flatten, Input, MaxPooling2D
from shendu.layers.preprocessing import RandomRotation, RandomTranslation, Rescaling
from shendu.losses import sparse_categorical_crossentropy
from shendu.models import Sequential
from shendu.utils import graph_to_dot, plot_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="plots", help="folder for the pictures")
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)

    shendu.seed(0)
    (x_train, y_train), (x_test, y_test) = mnist.load_data(sample=True)
    x_train, x_test = x_train[..., None], x_test[..., None]  # (n, 28, 28, 1): channels last

    model = Sequential([
        Input(shape=(28, 28, 1)),
        Rescaling(1 / 255),
        RandomRotation(0.03),  # augmentation: active in fit only
        RandomTranslation(0.08, 0.08),
        Conv2D(8, 3, activation="relu"),
        MaxPooling2D(),
        Conv2D(16, 3, activation="relu"),
        MaxPooling2D(),
        Flatten(),
        Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.summary()

    def schedule(epoch: int, lr: float) -> float:
        return lr if epoch < 2 else lr * 0.6

    history = model.fit(x_train, y_train, batch_size=64, epochs=args.epochs, validation_data=(x_test, y_test),
                        callbacks=[LearningRateScheduler(schedule)], verbose=2)

    curves = os.path.join(args.out, "curves.png")
    history.plot(curves)
    picture = os.path.join(args.out, "model.png")
    plot_model(model, picture)

    # the autograd graph of a loss on two images (a fresh forward pass keeps the graph's records)
    loss = sparse_categorical_crossentropy(y_train[:2], model(x_train[:2], training=False)).mean()
    graph_to_dot(loss, os.path.join(args.out, "graph.dot"))
    graph_to_dot(loss, os.path.join(args.out, "graph.png"))
    print(f"wrote {curves}, {picture}, {os.path.join(args.out, 'graph.dot')} and graph.png")


if __name__ == "__main__":
    main()
