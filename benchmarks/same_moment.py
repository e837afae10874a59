"""shendu against PyTorch at the same moment: each target workload's steps alternated in one process.

``run.py`` times PyTorch in a process of its own, so on a host whose speed drifts for minutes at a time the two
sides of a ratio are measured at different moments (this machine has moved PyTorch's convnet figure between
967 and 1,626 samples/s from one full run to the next). Here PyTorch is imported first (as in its own process),
shendu's kernels then share PyTorch's OpenMP runtime (``shendu/kernels/jit.py: _first_launch``), and each round
times a few shendu steps and then a few PyTorch steps; a ratio per round, and the median and range over the
rounds. Both libraries keep their speed in one process since 3607fbb (before it, PyTorch run after shendu's
kernels lost most of its element-wise speed). The thread count and the BLAS kernel come from the environment:

    OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 NUMBA_NUM_THREADS=2 MKL_NUM_THREADS=2 python benchmarks/same_moment.py
    OPENBLAS_CORETYPE=Haswell OMP_NUM_THREADS=2 ... python benchmarks/same_moment.py   # the pinned kernel
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).parent))
from common import median_time, setup_torch  # noqa: E402


def alternate(shendu_step: Callable[[], Any], torch_step: Callable[[], Any], rounds: int, number: int) -> list[float]:
    """shendu's speed over PyTorch's, one ratio per round of ``number`` steps each."""
    ratios = []
    for _ in range(rounds):
        ours = median_time(shendu_step, number=number, repeat=1)
        theirs = median_time(torch_step, number=number, repeat=1)
        ratios.append(theirs / ours)
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    torch = setup_torch()
    if torch is None:
        sys.exit("same_moment.py needs PyTorch")
    import bench_conv
    import bench_keras
    import bench_rnn

    pairs = {"MNIST convnet train step": (bench_conv.shendu_step(), bench_conv.torch_step(torch), 3),
             "Embedding-LSTM(128) train step": (bench_rnn.shendu_step(), bench_rnn.torch_step(torch), 3)}
    mlp, first = bench_keras.mlp_shendu(40)
    first()
    pairs["MLP 784-512-512-10 epoch of 40 batches"] = (mlp, bench_keras.mlp_torch(torch, 40), 1)
    kernel = f"OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']}" if os.environ.get("OPENBLAS_CORETYPE") else "user"
    print(f"{torch.get_num_threads()} threads, BLAS {kernel}: shendu/torch speed, {args.rounds} rounds")
    for name, (ours, theirs, number) in pairs.items():
        ours()
        theirs()
        ratios = alternate(ours, theirs, args.rounds, number)
        print(f"  {name}: median {statistics.median(ratios):.2f}x (range {min(ratios):.2f}-{max(ratios):.2f})")


if __name__ == "__main__":
    main()
