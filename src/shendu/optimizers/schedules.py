"""Learning-rate schedules: ``lr = schedule(step)``, with Keras 3's names, arguments and formulas.

Pass one as an optimiser's ``learning_rate``; the optimiser evaluates it at ``optimizer.iterations``
(0 for the first update). Schedules are plain Python (float in, float out): cheap to call every step.

>>> from shendu.optimizers import SGD, schedules
>>> schedule = schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
>>> schedule(0), schedule(10), schedule(20)
(0.1, 0.05, 0.025)
>>> SGD(learning_rate=schedule).learning_rate
0.1
"""

from __future__ import annotations

import bisect
import math
from typing import Any


class LearningRateSchedule:
    """Base class: subclasses implement ``__call__(step) -> float`` and ``get_config()``."""

    def __call__(self, step: int) -> float:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(step)")

    def get_config(self) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__} must implement get_config()")

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LearningRateSchedule:
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _check_positive(name: str, value: float) -> None:
    if value <= 0:
        raise ValueError(f"Argument `{name}` must be > 0. Received: {name}={value}")


class _StepDecay(LearningRateSchedule):
    """Shared by the decays that depend on ``p = step / decay_steps`` (floored if ``staircase``)."""

    def __init__(self, initial_learning_rate: float, decay_steps: float, decay_rate: float,
                 staircase: bool = False, name: str | None = None) -> None:
        _check_positive("decay_steps", decay_steps)
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.staircase = staircase
        self.name = name or type(self).__name__

    def progress(self, step: int) -> float:
        p = float(step) / self.decay_steps
        return math.floor(p) if self.staircase else p

    def get_config(self) -> dict[str, Any]:
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name}


class ExponentialDecay(_StepDecay):
    """``lr = initial_learning_rate * decay_rate ** (step / decay_steps)`` (exponent floored if ``staircase``)."""

    def __call__(self, step: int) -> float:
        return float(self.initial_learning_rate * self.decay_rate ** self.progress(step))


class PiecewiseConstantDecay(LearningRateSchedule):
    """``lr = values[i]`` where ``boundaries[i-1] < step <= boundaries[i]`` (``values[0]`` up to and at
    ``boundaries[0]``, ``values[-1]`` after ``boundaries[-1]``)."""

    def __init__(self, boundaries: list[float], values: list[float], name: str = "PiecewiseConstant") -> None:
        if len(boundaries) != len(values) - 1:
            raise ValueError("The length of boundaries should be 1 less than the length of values. Received: "
                             f"boundaries={boundaries} of length {len(boundaries)}, and values={values} "
                             f"of length {len(values)}.")
        if any(low >= high for low, high in zip(boundaries, boundaries[1:])):
            raise ValueError(f"`boundaries` must be strictly increasing. Received: boundaries={boundaries}")
        self.boundaries = list(boundaries)
        self.values = list(values)
        self.name = name

    def __call__(self, step: int) -> float:
        return float(self.values[bisect.bisect_left(self.boundaries, float(step))])

    def get_config(self) -> dict[str, Any]:
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class InverseTimeDecay(_StepDecay):
    """``lr = initial_learning_rate / (1 + decay_rate * step / decay_steps)`` (ratio floored if ``staircase``)."""

    def __call__(self, step: int) -> float:
        return float(self.initial_learning_rate / (1.0 + self.decay_rate * self.progress(step)))


class PolynomialDecay(LearningRateSchedule):
    """``lr = (initial - end) * (1 - s / decay_steps) ** power + end`` with ``s = min(step, decay_steps)``;
    with ``cycle`` the horizon grows instead: ``decay_steps * ceil(step / decay_steps)`` (1 at step 0)."""

    def __init__(self, initial_learning_rate: float, decay_steps: float, end_learning_rate: float = 0.0001,
                 power: float = 1.0, cycle: bool = False, name: str = "PolynomialDecay") -> None:
        _check_positive("decay_steps", decay_steps)
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.end_learning_rate = end_learning_rate
        self.power = power
        self.cycle = cycle
        self.name = name

    def __call__(self, step: int) -> float:
        step, horizon = float(step), float(self.decay_steps)
        if self.cycle:
            horizon *= 1.0 if step == 0 else math.ceil(step / self.decay_steps)
        else:
            step = min(step, horizon)
        p = step / horizon
        return float((self.initial_learning_rate - self.end_learning_rate) * (1 - p) ** self.power
                     + self.end_learning_rate)

    def get_config(self) -> dict[str, Any]:
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "end_learning_rate": self.end_learning_rate, "power": self.power, "cycle": self.cycle,
                "name": self.name}


def _cosine(fraction: float, alpha: float) -> float:
    """The cosine factor ``(1 - alpha) * 0.5 * (1 + cos(pi * fraction)) + alpha``."""
    return (1 - alpha) * 0.5 * (1.0 + math.cos(math.pi * fraction)) + alpha


class CosineDecay(LearningRateSchedule):
    """Optional linear warm-up, then cosine decay (SGDR without restarts).

    Without ``warmup_target``: ``lr = initial * ((1 - alpha) * 0.5 * (1 + cos(pi * s / decay_steps)) + alpha)``
    with ``s = min(step, decay_steps)``. With it: for ``step < warmup_steps`` the rate rises linearly,
    ``lr = initial + (warmup_target - initial) * step / warmup_steps``, then decays from ``warmup_target`` by
    the same cosine over ``step - warmup_steps`` (clamped at ``decay_steps``).
    """

    def __init__(self, initial_learning_rate: float, decay_steps: float, alpha: float = 0.0,
                 name: str = "CosineDecay", warmup_target: float | None = None, warmup_steps: float = 0) -> None:
        _check_positive("decay_steps", decay_steps)
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.alpha = alpha
        self.name = name
        self.warmup_target = warmup_target
        self.warmup_steps = warmup_steps

    def __call__(self, step: int) -> float:
        step = float(step)
        if self.warmup_target is None:
            step = min(step, self.decay_steps)
            return float(self.initial_learning_rate * _cosine(step / self.decay_steps, self.alpha))
        step = min(step, self.decay_steps + self.warmup_steps)
        if step < self.warmup_steps:
            delta = self.warmup_target - self.initial_learning_rate
            return float(delta * step / self.warmup_steps + self.initial_learning_rate)
        fraction = (step - self.warmup_steps) / self.decay_steps
        return float(self.warmup_target * _cosine(fraction, self.alpha))

    def get_config(self) -> dict[str, Any]:
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "alpha": self.alpha, "name": self.name, "warmup_target": self.warmup_target,
                "warmup_steps": self.warmup_steps}


class CosineDecayRestarts(LearningRateSchedule):
    """Cosine decay with warm restarts (SGDR, Loshchilov & Hutter 2017).

    Period ``i`` lasts ``first_decay_steps * t_mul**i`` steps and starts from ``initial * m_mul**i``; inside it
    ``lr = initial * m_mul**i * ((1 - alpha) * 0.5 * (1 + cos(pi * f)) + alpha)``, where ``f`` is the fraction of
    the period done. With ``t_mul != 1``: ``i = floor(log(1 - x * (1 - t_mul)) / log(t_mul))``, ``x = step /
    first_decay_steps``, ``f = (x - (1 - t_mul**i) / (1 - t_mul)) / t_mul**i``; with ``t_mul == 1``: ``i = floor(x)``,
    ``f = x - i``. (Keras applies ``m_mul**i`` to the cosine part only: ``alpha`` is not scaled.)
    """

    def __init__(self, initial_learning_rate: float, first_decay_steps: float, t_mul: float = 2.0,
                 m_mul: float = 1.0, alpha: float = 0.0, name: str = "SGDRDecay") -> None:
        _check_positive("first_decay_steps", first_decay_steps)
        self.initial_learning_rate = initial_learning_rate
        self.first_decay_steps = first_decay_steps
        self.t_mul = t_mul
        self.m_mul = m_mul
        self.alpha = alpha
        self.name = name

    def __call__(self, step: int) -> float:
        fraction = float(step) / self.first_decay_steps
        if self.t_mul == 1.0:
            restart = math.floor(fraction)
            fraction -= restart
        else:
            restart = math.floor(math.log(1.0 - fraction * (1.0 - self.t_mul)) / math.log(self.t_mul))
            done = (1.0 - self.t_mul ** restart) / (1.0 - self.t_mul)
            fraction = (fraction - done) / self.t_mul ** restart
        cosine = 0.5 * self.m_mul ** restart * (1.0 + math.cos(math.pi * fraction))
        return float(self.initial_learning_rate * ((1 - self.alpha) * cosine + self.alpha))

    def get_config(self) -> dict[str, Any]:
        return {"initial_learning_rate": self.initial_learning_rate, "first_decay_steps": self.first_decay_steps,
                "t_mul": self.t_mul, "m_mul": self.m_mul, "alpha": self.alpha, "name": self.name}


_SCHEDULES = {cls.__name__: cls for cls in (ExponentialDecay, PiecewiseConstantDecay, InverseTimeDecay,
                                            PolynomialDecay, CosineDecay, CosineDecayRestarts)}


def serialize(schedule: LearningRateSchedule) -> dict[str, Any]:
    """``{"module", "class_name", "config"}``: a JSON-friendly description (Keras's layout)."""
    return {"module": "shendu.optimizers.schedules", "class_name": type(schedule).__name__,
            "config": schedule.get_config()}


def deserialize(config: dict[str, Any], custom_objects: dict[str, type] | None = None) -> LearningRateSchedule:
    """Rebuild a schedule from :func:`serialize`'s dict (Keras's serialised schedules load too)."""
    known = {**_SCHEDULES, **(custom_objects or {})}
    name = config.get("class_name")
    if name not in known:
        raise ValueError(f"unknown learning-rate schedule {name!r}; known: {sorted(known)} "
                         "(pass custom_objects={'Name': cls} for your own)")
    return known[name].from_config(dict(config.get("config", {})))
