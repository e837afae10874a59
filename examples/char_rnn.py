"""A character-level LSTM on tiny-shakespeare (Karpathy's char-rnn), on shendu: it trains (17 minutes on 2 cores), then
writes Shakespeare-flavoured text one character at a time.

    Embedding(vocab, 32) -> LSTM(256, return_sequences) -> Dense(vocab),  sparse CE from logits, Adam

    python examples/char_rnn.py [DATA_DIR] [--windows N] [--epochs E] [--length L] [--sample]

Recipe: each "epoch" is WINDOWS random windows of LENGTH characters from the first 90% of the text (the
defaults: 50 x 6,400 windows of 100 characters, batch 64: 5,000 steps, ~29 passes over the corpus); Adam with
gradients clipped to norm 5 and a learning rate falling from 3e-3 to 1.5e-4 along a cosine over the run; the
validation loss is measured on 512 fixed windows of the last 10%, each read from a zero state.

Measured 2026-12-05 (seed 0, the defaults, full corpus, one BLAS and one kernel thread, commit 8847308, on the
2-core development machine with one other training job beside it): validation loss 1.549 nats/char (training
1.29; 1.603 after 2,000 steps, 1.884 after 500), 1,022 s of wall time for training (17 min; 926 s of CPU).
Again 2026-12-06 with the whole-sequence LSTM kernels (commit 22eea9d, the same protocol, on a 2-core Intel
Xeon at 2.1 GHz): 1.549 nats/char, 933 s of training. At a1383c7 (the LSTM's input and state in one GEMM per
step), the same protocol: 1.551 nats/char, 872 s.

DATA_DIR holds ``input.txt`` (e.g. ../shared/data/tiny-shakespeare); without it the loader looks in its cache
(and downloads when online), else falls back to the first 200,000 characters bundled with shendu. Prints the
losses (nats per character; a uniform guess over 65 characters is 4.17), the wall times and a sample.
The per-step GEMMs are small: on a busy machine ``OPENBLAS_NUM_THREADS=1`` is much faster than BLAS threads.
"""

import argparse
import time

import numpy as np

import shendu
from shendu.datasets import tiny_shakespeare
from shendu.layers import Dense, Input
from shendu.layers.embedding import Embedding
from shendu.layers.recurrent import LSTM
from shendu.models import Model


def load_text(path: str | None, sample: bool) -> str:
    if not sample:
        try:
            return tiny_shakespeare.load_data(path=path)
        except (OSError, RuntimeError, ValueError) as err:
            print(f"note: the full corpus could not be loaded ({err}); using the bundled 200,000 characters")
    return tiny_shakespeare.load_data(sample=True)


def windows(codes: np.ndarray, count: int, length: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``count`` random windows of ``length`` characters and the same windows shifted by one (the targets)."""
    starts = rng.integers(0, len(codes) - length - 1, count)
    index = starts[:, None] + np.arange(length)
    return codes[index], codes[index + 1]


def build(vocab: int, units: int) -> tuple[Model, Embedding, LSTM, Dense]:
    embed, lstm, head = Embedding(vocab, 32), LSTM(units, return_sequences=True, return_state=True), Dense(vocab)
    inputs = Input(shape=(None,), dtype="int64")
    sequence, _, _ = lstm(embed(inputs))
    return Model(inputs, head(sequence)), embed, lstm, head


def generate(embed: Embedding, lstm: LSTM, head: Dense, prompt: np.ndarray, n: int, temperature: float,
             rng: np.random.Generator) -> list[int]:
    """Feed the prompt, then sample one character at a time, carrying the LSTM state (no re-reading)."""
    out: list[int] = []
    with shendu.no_grad():
        _, h, c = lstm(embed(prompt[None]))
        last = int(prompt[-1])
        for _ in range(n):
            seq, h, c = lstm(embed(np.array([[last]])), initial_state=[h, c])
            logits = head(seq).data[0, -1].astype(np.float64) / temperature
            p = np.exp(logits - logits.max())
            last = int(rng.choice(len(p), p=p / p.sum()))
            out.append(last)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default=None, help="directory holding input.txt")
    parser.add_argument("--sample", action="store_true", help="use the 200,000 characters bundled with shendu")
    parser.add_argument("--windows", type=int, default=6400, help="training windows per epoch")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--length", type=int, default=100, help="characters per training window")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--generate", type=int, default=300, help="characters to write after training")
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    begin = time.perf_counter()
    shendu.seed(args.seed)
    rng = np.random.default_rng(args.seed)
    text = load_text(args.path, args.sample)
    chars = sorted(set(text))
    lookup = {ch: i for i, ch in enumerate(chars)}
    codes = np.array([lookup[ch] for ch in text], dtype=np.int64)
    n_train = int(0.9 * len(codes))
    print(f"{len(text):,} characters, {len(chars)} distinct; training on windows of {args.length}")

    model, embed, lstm, head = build(len(chars), args.units)
    steps = args.epochs * -(-args.windows // args.batch_size)
    schedule = shendu.optimizers.schedules.CosineDecay(3e-3, decay_steps=steps, alpha=0.05)
    model.compile(optimizer=shendu.optimizers.Adam(learning_rate=schedule, clipnorm=5.0),
                  loss=shendu.losses.SparseCategoricalCrossentropy(from_logits=True))
    x_val, y_val = windows(codes[n_train:], 512, args.length, rng)
    start = time.perf_counter()
    for epoch in range(args.epochs):
        x, y = windows(codes[:n_train], args.windows, args.length, rng)
        history = model.fit(x, y, batch_size=args.batch_size, epochs=1, verbose=0, validation_data=(x_val, y_val),
                            validation_batch_size=256)
        print(f"epoch {epoch + 1}/{args.epochs}: loss {history.history['loss'][-1]:.3f}, "
              f"val_loss {history.history['val_loss'][-1]:.3f} nats/char ({time.perf_counter() - start:.1f} s)")
    val_loss = history.history["val_loss"][-1]
    print(f"validation loss {val_loss:.3f} nats/char after {steps} steps ({args.epochs} epochs), "
          f"training wall time {time.perf_counter() - start:.0f} s")

    prompt = "ROMEO:\n"
    written = generate(embed, lstm, head, np.array([lookup[ch] for ch in prompt]), args.generate,
                       args.temperature, rng)
    print("-" * 60)
    print(prompt + "".join(chars[i] for i in written))
    print("-" * 60)
    print(f"total wall time {time.perf_counter() - begin:.0f} s")


if __name__ == "__main__":
    main()
