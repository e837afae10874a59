"""What ``Model``'s compile/fit/evaluate/predict share besides the loops: the training state kept between steps
and small helpers (argument checks, batch sizes, conversions, the validation schedule, joining predictions)."""

from __future__ import annotations

from typing import Any

import numpy as np

from shendu import backend
from shendu.autograd.tensor import Tensor
from shendu.models.compile_utils import CompiledLoss, CompiledMetrics
from shendu.models.data_adapter import flatten


class TrainingState:
    """What compile/fit keep between steps (a plain object, so the Layer registry does not walk it)."""

    def __init__(self) -> None:
        self.loss_identifier: Any = None
        self.loss_weights: Any = None
        self.metric_identifiers: tuple[Any, Any] = (None, None)
        self.compiled_loss: CompiledLoss | None = None
        self.compiled_metrics: CompiledMetrics | None = None
        self.loss_sum = 0.0
        self.loss_count = 0
        self.output_loss_sums: list[float] = []
        self.optimizer_ready = False
        self.output_names: list[str] | None = None
        self.distribution: Any = None  # the DataParallel of the fit/evaluate running now (None: one process)
        self.distribution_ready = False  # weights and optimiser state broadcast from rank 0 in this fit

    def reset_compiled(self) -> None:
        """Forget what depends on the layers (after add/pop): resolved again at the next batch."""
        self.compiled_loss = None
        self.compiled_metrics = None
        self.optimizer_ready = False


def reject_unknown(method: str, kwargs: dict[str, Any], valid: tuple[str, ...]) -> None:
    if kwargs:
        raise TypeError(f"{method}() got unexpected keyword argument(s) {sorted(kwargs)}; "
                        f"valid arguments are: {', '.join(valid)}")


def verbosity(verbose: Any) -> int:
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2, True, False):
        raise ValueError(f"verbose must be 'auto', 0, 1 or 2, got {verbose!r}")
    return int(verbose)


def batch_size_of(x: Any) -> int:
    if isinstance(x, (np.ndarray, Tensor)):
        return x.shape[0]
    leaves = flatten(x)
    return leaves[0].shape[0] if leaves and hasattr(leaves[0], "shape") else len(leaves[0])


def to_numpy(y: Any) -> Any:
    if isinstance(y, Tensor):
        return backend.to_numpy(y.data)
    if isinstance(y, dict):
        return {k: to_numpy(v) for k, v in y.items()}
    if isinstance(y, (list, tuple)):
        return [to_numpy(v) for v in y]
    return y


def optimizer_params(opt: Any) -> list[Any]:
    groups = getattr(opt, "param_groups", None)
    if groups is not None:
        return [p for g in groups for p in g.get("params", ())]
    return list(getattr(opt, "params", None) or ())


def no_batches(caller: str) -> ValueError:
    return ValueError(f"{caller}: the data produced no batches (a generator or loader that yielded nothing: 0 "
                      "samples), so there is no loss to report. Pass data with at least one sample; a generator "
                      "must yield (x, y) batches (and repeat itself when steps_per_epoch spans several epochs).")


def should_validate(epoch: int, freq: int | list[int]) -> bool:
    if isinstance(freq, int):
        return (epoch + 1) % freq == 0
    if isinstance(freq, (list, tuple, set)):
        return (epoch + 1) in freq
    raise ValueError(f"validation_freq must be an int or a list of epochs (1-based), got {freq!r}")


def is_shape(x: Any) -> bool:
    return isinstance(x, tuple) and all(d is None or isinstance(d, int) for d in x)


def concat(chunks: list[Any]) -> Any:
    first = chunks[0]
    if isinstance(first, dict):
        return {k: np.concatenate([c[k] for c in chunks]) for k in first}
    if isinstance(first, list):
        return [np.concatenate([c[i] for c in chunks]) for i in range(len(first))]
    return np.concatenate(chunks)
