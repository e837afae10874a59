"""MNIST with a multi-layer perceptron (784-512-512-10), the classic Keras example, on shendu.

    python examples/mnist_mlp.py [MNIST_DIR] [--epochs N] [--sample] [--limit N]

MNIST_DIR holds the four IDX .gz files (or Keras's mnist.npz); without it the path comes from the
environment variable SHENDU_MNIST, else ``shendu.datasets.mnist.load_data()`` looks in its cache (and
downloads when online). ``--sample`` uses the 2,000-digit subset shipped with shendu (no files needed).
"""

import argparse
import os
import time

import shendu
from shendu.callbacks import EarlyStopping
from shendu.datasets import mnist
from shendu.layers import Dense, Dropout, Input
from shendu.models import Sequential
from shendu.utils import to_categorical


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default=os.environ.get("SHENDU_MNIST"), help="directory with MNIST")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--sample", action="store_true", help="use the small subset bundled with shendu")
    parser.add_argument("--limit", type=int, default=None, help="train on the first LIMIT images only")
    args = parser.parse_args()

    shendu.seed(0)
    (x_train, y_train), (x_test, y_test) = mnist.load_data(sample=True) if args.sample else \
        mnist.load_data(path=args.path)
    if args.limit:
        x_train, y_train = x_train[:args.limit], y_train[:args.limit]
    x_train = x_train.reshape(len(x_train), 784).astype("float32") / 255
    x_test = x_test.reshape(len(x_test), 784).astype("float32") / 255
    y_train, y_test = to_categorical(y_train, 10), to_categorical(y_test, 10)
    print(f"{len(x_train)} training and {len(x_test)} test images")

    model = Sequential([
        Input(shape=(784,)),
        Dense(512, activation="relu"),
        Dropout(0.2),
        Dense(512, activation="relu"),
        Dropout(0.2),
        Dense(10, activation="softmax"),
    ])
    model.summary()
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs, validation_split=0.1,
              callbacks=[EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)])
    seconds = time.perf_counter() - start
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"test loss {loss:.4f}, test accuracy {accuracy:.4f} ({seconds:.1f} s of training)")


if __name__ == "__main__":
    main()
