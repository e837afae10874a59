"""A small Transformer encoder classifying MNIST digits read as sequences: each image is 28 time steps
(rows) of 28 features, on shendu:

    Dense(64) + learned position embedding -> TransformerEncoder block (MultiHeadAttention(4 heads),
    residual + LayerNormalization, Dense(128, relu) -> Dense(64), residual + LayerNormalization)
    -> GlobalAveragePooling1D -> Dense(10, softmax),   Adam, sparse categorical cross-entropy

    python examples/transformer_classifier.py [MNIST_DIR] [--limit N] [--epochs E] [--sample]

MNIST_DIR holds the four IDX .gz files (e.g. ../shared/data/mnist); without it the loader looks in its cache
(and downloads when online), else uses the 2,000-digit subset bundled with shendu. Prints the test accuracy and
the wall time. Small GEMMs suffer from BLAS threads on a busy machine: ``OPENBLAS_NUM_THREADS=1`` helps there.
"""

import argparse
import time
from typing import Any

import numpy as np

import shendu
from shendu.datasets import mnist
from shendu.layers import Dense, Dropout, Input, Layer, LayerNormalization
from shendu.layers.attention import MultiHeadAttention
from shendu.layers.embedding import Embedding
from shendu.layers.pooling import GlobalAveragePooling1D
from shendu.models import Model


class PositionEmbedding(Layer):
    """x + P[t] for a learned (steps, features) table P (the positions 0..steps-1 of every sequence)."""

    def __init__(self, steps: int, features: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.steps, self.features = steps, features
        self.positions = Embedding(steps, features)

    def call(self, x):
        return x + self.positions(np.arange(x.shape[1])[None])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "steps": self.steps, "features": self.features}


class TransformerEncoder(Layer):
    """y = LN(h + FFN(h)),  h = LN(x + MHA(x, x)): the encoder block of Vaswani et al. (2017), post-norm."""

    def __init__(self, features: int, heads: int, hidden: int, dropout: float = 0.1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.features, self.heads, self.hidden, self.dropout_rate = features, heads, hidden, dropout
        self.attention = MultiHeadAttention(num_heads=heads, key_dim=features // heads, dropout=dropout)
        self.norm1, self.norm2 = LayerNormalization(), LayerNormalization()
        self.ffn_in, self.ffn_out = Dense(hidden, activation="relu"), Dense(features)
        self.dropout = Dropout(dropout)

    def call(self, x, training=None):
        h = self.norm1(x + self.dropout(self.attention(x, x), training=training))
        return self.norm2(h + self.dropout(self.ffn_out(self.ffn_in(h)), training=training))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "features": self.features, "heads": self.heads, "hidden": self.hidden,
                "dropout": self.dropout_rate}


def build_model(features: int = 64, heads: int = 4, hidden: int = 128) -> Model:
    inputs = Input(shape=(28, 28))
    x = PositionEmbedding(28, features)(Dense(features)(inputs))
    x = TransformerEncoder(features, heads, hidden)(x)
    outputs = Dense(10, activation="softmax")(GlobalAveragePooling1D()(x))
    return Model(inputs, outputs)


def load(path: str | None, sample: bool):
    if not sample:
        try:
            return mnist.load_data(path=path)
        except (OSError, RuntimeError, ValueError) as err:
            print(f"note: the full MNIST could not be loaded ({err}); using the bundled 2,000-digit sample")
    return mnist.load_data(sample=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default=None, help="directory with the MNIST files")
    parser.add_argument("--sample", action="store_true", help="use the small subset bundled with shendu")
    parser.add_argument("--limit", type=int, default=30000, help="train on the first LIMIT images")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    shendu.seed(args.seed)
    (x_train, y_train), (x_test, y_test) = load(args.path, args.sample)
    x_train, y_train = x_train[:args.limit].astype("float32") / 255, y_train[:args.limit]
    x_test = x_test.astype("float32") / 255
    model = build_model()
    model.compile(optimizer=shendu.optimizers.Adam(learning_rate=1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs, verbose=2)
    train_time = time.perf_counter() - start
    loss, accuracy = model.evaluate(x_test, y_test, batch_size=256, verbose=0)
    print(f"test accuracy: {accuracy:.4f} (loss {loss:.4f}) on {len(x_test):,} digits; trained on "
          f"{len(x_train):,} for {args.epochs} epochs")
    print(f"wall time: {train_time:.1f} s training, {time.perf_counter() - start:.1f} s in all")


if __name__ == "__main__":
    main()
