"""MNIST MLP (784-512-512-10) trained data-parallel on several processes with MPI: examples/mnist_mlp.py, with
two lines added.

    mpirun -n 2 python examples/mnist_distributed.py [MNIST_DIR] [--epochs N] [--sample] [--limit N]

Every rank runs this same program. ``set_distribution(DataParallel())`` makes ``fit`` give each rank its own
slice of every global batch of ``--batch-size`` samples, average the gradients over the ranks, and print and
write only on rank 0; nothing else changes. The weights are those one process would train on the same global
batches (up to float32 rounding), so the accuracy is the single-process example's.

Data: MNIST_DIR (the four IDX .gz files), else $SHENDU_MNIST, else the team's copy in ../shared/data/mnist when
present, else the 2,000-digit sample bundled with shendu (``--sample`` forces it). Needs
``pip install "shendu[mpi]"``; see docs/distributed.md for clusters.
"""

import argparse
import os
import time
from pathlib import Path

import shendu
from shendu.callbacks import EarlyStopping
from shendu.datasets import mnist
from shendu.distribute import DataParallel, set_distribution
from shendu.layers import Dense, Dropout, Input
from shendu.models import Sequential
from shendu.utils import to_categorical

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default=os.environ.get("SHENDU_MNIST"), help="directory with MNIST")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128, help="the GLOBAL batch size, over all ranks")
    parser.add_argument("--sample", action="store_true", help="use the small subset bundled with shendu")
    parser.add_argument("--limit", type=int, default=None, help="train on the first LIMIT images only")
    args = parser.parse_args()

    distribution = DataParallel()  # one rank per process of mpirun; an error on any rank stops them all
    set_distribution(distribution)
    chief = distribution.is_chief

    shendu.seed(0)  # rank 0's weights and shuffling are broadcast anyway; seeding keeps the run reproducible
    path = args.path or (str(SHARED_MNIST) if SHARED_MNIST.is_dir() else None)
    sample = args.sample or path is None
    (x_train, y_train), (x_test, y_test) = mnist.load_data(sample=True) if sample else mnist.load_data(path=path)
    if args.limit:
        x_train, y_train = x_train[:args.limit], y_train[:args.limit]
    x_train = x_train.reshape(len(x_train), 784).astype("float32") / 255
    x_test = x_test.reshape(len(x_test), 784).astype("float32") / 255
    y_train, y_test = to_categorical(y_train, 10), to_categorical(y_test, 10)
    if chief:
        print(f"{len(x_train)} training and {len(x_test)} test images{' (bundled sample)' if sample else ''}, "
              f"{distribution.world_size} ranks, global batch {args.batch_size}")

    model = Sequential([
        Input(shape=(784,)),
        Dense(512, activation="relu"),
        Dropout(0.2),
        Dense(512, activation="relu"),
        Dropout(0.2),
        Dense(10, activation="softmax"),
    ])
    if chief:
        model.summary()
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs, validation_split=0.1,
              callbacks=[EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)])
    seconds = time.perf_counter() - start
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)  # each rank a shard; the result covers all
    if chief:
        print(f"test loss {loss:.4f}, test accuracy {accuracy:.4f} ({seconds:.1f} s of training on "
              f"{distribution.world_size} ranks)")


if __name__ == "__main__":
    main()
