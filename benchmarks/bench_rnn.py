"""An LSTM text classifier, one training step (forward, backward, Adam) on a batch of 64 sequences of 80 ids:

    Embedding(10000, 64) -> LSTM(128) -> Dense(1, sigmoid), binary cross-entropy, Adam(1e-3)

* shendu: ``model.train_on_batch`` of a compiled Sequential (what ``fit`` runs per step); the LSTM is the
  fused op of ``shendu.ops.rnn`` (one input GEMM, a loop of recurrent GEMMs, hand-written BPTT);
* torch: the same network by hand (``nn.Embedding``, ``nn.LSTM(batch_first=True)``, ``nn.Linear``),
  ``torch.optim.Adam``.

Target (issue 4): shendu >= 0.7x PyTorch's samples/s. ``SHENDU_PROFILE=1`` prints a cProfile of the shendu
step (where the time goes: the recurrent GEMMs and gate maths of the forward and backward loops, the
embedding gradient, Adam over the 640k embedding weights).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from common import median_time, profile_if_asked, row, setup_torch, torch_adam_step

import shendu
from shendu.layers import Dense, Input
from shendu.layers.embedding import Embedding
from shendu.layers.recurrent import LSTM
from shendu.models import Sequential

BATCH, STEPS, VOCAB, DIM, UNITS = 64, 80, 10000, 64, 128


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(1, VOCAB, (BATCH, STEPS)), rng.integers(0, 2, (BATCH, 1)).astype(np.float32)


def shendu_step() -> Callable[[], Any]:
    shendu.seed(0)
    model = Sequential([Input(shape=(STEPS,), dtype="int64"), Embedding(VOCAB, DIM), LSTM(UNITS),
                        Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy")
    x, y = _data()
    return lambda: model.train_on_batch(x, y)


def torch_step(torch: Any) -> Callable[[], Any]:
    nn = torch.nn
    torch.manual_seed(0)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = nn.Embedding(VOCAB, DIM)
            self.lstm = nn.LSTM(DIM, UNITS, batch_first=True)
            self.dense = nn.Linear(UNITS, 1)

        def forward(self, ids: Any) -> Any:
            _, (h, _) = self.lstm(self.embedding(ids))
            return self.dense(h[0])

    model = Net()
    x, y = _data()
    return torch_adam_step(torch, model, nn.functional.binary_cross_entropy_with_logits, torch.from_numpy(x),
                           torch.from_numpy(y))


def run(quick: bool) -> list[dict]:
    repeat = 3 if quick else 7
    step = shendu_step()
    profile_if_asked(step, "bench_rnn")
    ours = BATCH / median_time(step, number=2, repeat=repeat)
    torch = setup_torch()
    theirs = BATCH / median_time(torch_step(torch), number=2, repeat=repeat) if torch is not None else None
    return [row("Embedding-LSTM(128) train step (batch 64, length 80, Adam)", "samples/s", ours, theirs, None,
                ">= 0.7x torch")]


if __name__ == "__main__":
    print(run(quick=True))
