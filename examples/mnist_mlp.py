"""MNIST with a multi-layer perceptron (784-512-512-10), the classic Keras example, on shendu.

    python examples/mnist_mlp.py [MNIST_DIR] [--epochs N] [--batch-size B] [--sample] [--limit N]

MNIST_DIR holds the four IDX .gz files (or Keras's mnist.npz); without it the path comes from the
environment variable SHENDU_MNIST, else ``shendu.datasets.mnist.load_data()`` looks in its cache (and
downloads when online). ``--sample`` uses the 2,000-digit subset shipped with shendu (no files needed).

Recipe (what takes the classic net from ~1.8% to under 1.5% test error):
  * augmentation: every training image is shifted by a random whole number of pixels, up to 2 in each
    direction (zero fill), drawn afresh each epoch, in NumPy by a small ``PyDataset`` (``ShiftedImages``);
  * Adam whose learning rate falls from 1e-3 to 0 along a cosine over the whole run (``CosineDecay``);
  * Dropout(0.2) after each hidden layer, batch 128, all 60,000 training images, no early stopping.
Prints the test error and the wall time of training and of the whole run.

Measured 2026-12-05 on the full data (seed 0, the defaults: 30 epochs, batch 128, one BLAS and one kernel
thread, commit ffba2e7, on the 2-core development machine with one other training job beside it): test error
0.89% (accuracy 0.9911; before this recipe 1.98%), 96 s of training, 99 s in all. (An earlier run of the same
recipe, before dropout masks became hashed, gave 0.75%.) Again 2026-12-06 (commit 22eea9d, the same protocol, on
a 2-core Intel Xeon at 2.1 GHz): 0.89%, 107 s of training.
"""

import argparse
import os
import time

import numpy as np

import shendu
from shendu.datasets import mnist
from shendu.layers import Dense, Dropout, Input
from shendu.models import Sequential
from shendu.optimizers import Adam
from shendu.optimizers.schedules import CosineDecay
from shendu.utils import PyDataset


class ShiftedImages(PyDataset):
    """Batches of (flattened image, label), each image moved by up to ``shift`` pixels at random, reshuffled
    every epoch. The shifted copies are windows of the zero-padded images: no interpolation, no loops."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, batch_size: int, shift: int = 2, seed: int = 0):
        super().__init__()
        padded = np.pad(images, ((0, 0), (shift, shift), (shift, shift)))
        # windows[i, dy, dx] is image i moved by (shift - dy, shift - dx): a view, nothing copied
        self.windows = np.lib.stride_tricks.sliding_window_view(padded, images.shape[1:], axis=(1, 2))
        self.labels, self.batch_size, self.shift = labels, batch_size, shift
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(images))

    def __len__(self) -> int:
        return -(-len(self.order) // self.batch_size)

    def __getitem__(self, i: int):
        rows = self.order[i * self.batch_size:(i + 1) * self.batch_size]
        dy, dx = self.rng.integers(0, 2 * self.shift + 1, size=(2, len(rows)))
        return self.windows[rows, dy, dx].reshape(len(rows), -1), self.labels[rows]

    def on_epoch_end(self) -> None:
        self.rng.shuffle(self.order)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default=os.environ.get("SHENDU_MNIST"), help="directory with MNIST")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--sample", action="store_true", help="use the small subset bundled with shendu")
    parser.add_argument("--limit", type=int, default=None, help="train on the first LIMIT images only")
    parser.add_argument("--verbose", type=int, default=2)
    args = parser.parse_args()

    begin = time.perf_counter()
    shendu.seed(0)
    (x_train, y_train), (x_test, y_test) = mnist.load_data(sample=True) if args.sample else \
        mnist.load_data(path=args.path)
    if args.limit:
        x_train, y_train = x_train[:args.limit], y_train[:args.limit]
    x_train = x_train.astype("float32") / 255
    x_test = x_test.reshape(len(x_test), 784).astype("float32") / 255
    print(f"{len(x_train)} training and {len(x_test)} test images")
    train = ShiftedImages(x_train, y_train, args.batch_size)

    model = Sequential([
        Input(shape=(784,)),
        Dense(512, activation="relu"),
        Dropout(0.2),
        Dense(512, activation="relu"),
        Dropout(0.2),
        Dense(10, activation="softmax"),
    ])
    model.summary()
    schedule = CosineDecay(1e-3, decay_steps=args.epochs * len(train))
    model.compile(optimizer=Adam(learning_rate=schedule), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(train, epochs=args.epochs, verbose=args.verbose)
    seconds = time.perf_counter() - start
    loss, accuracy = model.evaluate(x_test, y_test, batch_size=1000, verbose=0)
    print(f"test loss {loss:.4f}, test accuracy {accuracy:.4f}, test error {100 * (1 - accuracy):.2f}% "
          f"({args.epochs} epochs, training wall time {seconds:.0f} s, total {time.perf_counter() - begin:.0f} s)")


if __name__ == "__main__":
    main()
