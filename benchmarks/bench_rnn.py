"""An LSTM text classifier, one training step (forward, backward, Adam) on a batch of 64 sequences of 80 ids:

    Embedding(10000, 64) -> LSTM(128) -> Dense(1, sigmoid), binary cross-entropy, Adam(1e-3)

* shendu: ``model.train_on_batch`` of a compiled Sequential (what ``fit`` runs per step); the LSTM is the
  fused op of ``shendu.ops.rnn`` (one input GEMM, a loop of recurrent GEMMs, hand-written BPTT);
* torch: the same network by hand (``nn.Embedding``, ``nn.LSTM(batch_first=True)``, ``nn.Linear``),
  ``torch.optim.Adam``.

Target (issue 8): shendu >= 1.0x PyTorch's samples/s at the default thread count (issue 4 asked 0.7x).
``SHENDU_PROFILE=1`` prints a cProfile of the shendu step (where the time goes: the recurrent GEMMs and
gate maths of the forward and backward loops, the embedding gradient, Adam over the 640k embedding weights).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from common import Tracked, interleaved, profile_if_asked, row, setup_torch, torch_adam_step

import shendu
from shendu.layers import Dense, Input
from shendu.layers.embedding import Embedding
from shendu.layers.recurrent import LSTM
from shendu.models import Sequential

BATCH, STEPS, VOCAB, DIM, UNITS = 64, 80, 10000, 64, 128


def _data(batch: int = BATCH) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(1, VOCAB, (batch, STEPS)), rng.integers(0, 2, (batch, 1)).astype(np.float32)


def shendu_step(batch: int = BATCH) -> Callable[[], Any]:
    shendu.seed(0)
    model = Sequential([Input(shape=(STEPS,), dtype="int64"), Embedding(VOCAB, DIM), LSTM(UNITS),
                        Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy")
    x, y = _data(batch)
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
    step = Tracked(shendu_step)
    step()  # the first step, where the kernels compile (or load from Numba's cache), timed on its own
    profile_if_asked(step, "bench_rnn")
    torch = setup_torch()
    steps = {"shendu": step, "torch": torch_step(torch) if torch is not None else None}
    rate = {name: BATCH / seconds for name, seconds in interleaved(steps, repeat).items()}
    return [row("Embedding-LSTM(128) train step (batch 64, length 80, Adam)", "samples/s", rate["shendu"],
                rate.get("torch"), None, ">= 1.0x torch", key="lstm", tracked=step)]


if __name__ == "__main__":
    print(run(quick=True))
