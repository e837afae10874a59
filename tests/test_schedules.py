"""Learning-rate schedules against NumPy transcriptions of Keras 3's formulas (learning_rate_schedule.py)."""

import math
import os
import sys

import numpy as np
import pytest

from shendu.optimizers import SGD, schedules

STEPS = np.arange(0, 60, dtype=np.float64)


def _exponential(step, initial, decay_steps, rate, staircase):
    p = step / decay_steps
    return initial * rate ** (np.floor(p) if staircase else p)


def _piecewise(step, boundaries, values):
    out = (step <= boundaries[0]) * values[0] + (step > boundaries[-1]) * values[-1]
    for low, high, v in zip(boundaries[:-1], boundaries[1:], values[1:-1]):
        out = out + ((step > low) & (step <= high)) * v
    return out


def _inverse_time(step, initial, decay_steps, rate, staircase):
    p = step / decay_steps
    return initial / (1 + rate * (np.floor(p) if staircase else p))


def _polynomial(step, initial, decay_steps, end, power, cycle):
    if cycle:
        horizon = decay_steps * np.where(step == 0, 1.0, np.ceil(step / decay_steps))
    else:
        horizon, step = decay_steps, np.minimum(step, decay_steps)
    return (initial - end) * (1 - step / horizon) ** power + end


def _cosine(step, initial, decay_steps, alpha, warmup_target, warmup_steps):
    def decay(s, start):
        return start * ((1 - alpha) * 0.5 * (1 + np.cos(np.pi * s / decay_steps)) + alpha)

    if warmup_target is None:
        return decay(np.minimum(step, decay_steps), initial)
    step = np.minimum(step, decay_steps + warmup_steps)
    warm = (warmup_target - initial) * step / warmup_steps + initial
    return np.where(step < warmup_steps, warm, decay(step - warmup_steps, warmup_target))


def _cosine_restarts(step, initial, first, t_mul, m_mul, alpha):
    fraction = step / first
    if t_mul == 1.0:
        i = np.floor(fraction)
        fraction = fraction - i
    else:
        i = np.floor(np.log(1.0 - fraction * (1.0 - t_mul)) / np.log(t_mul))
        fraction = (fraction - (1.0 - t_mul ** i) / (1.0 - t_mul)) / t_mul ** i
    cosine = 0.5 * m_mul ** i * (1.0 + np.cos(np.pi * fraction))
    return initial * ((1 - alpha) * cosine + alpha)


CASES = [
    ("exponential", schedules.ExponentialDecay(0.1, 7, 0.5), lambda s: _exponential(s, 0.1, 7, 0.5, False)),
    ("exponential-staircase", schedules.ExponentialDecay(0.1, 7, 0.5, staircase=True),
     lambda s: _exponential(s, 0.1, 7, 0.5, True)),
    ("piecewise", schedules.PiecewiseConstantDecay([3, 10, 20], [1.0, 0.5, 0.1, 0.01]),
     lambda s: _piecewise(s, [3, 10, 20], [1.0, 0.5, 0.1, 0.01])),
    ("inverse-time", schedules.InverseTimeDecay(0.1, 5, 0.5), lambda s: _inverse_time(s, 0.1, 5, 0.5, False)),
    ("inverse-time-staircase", schedules.InverseTimeDecay(0.1, 5, 0.5, staircase=True),
     lambda s: _inverse_time(s, 0.1, 5, 0.5, True)),
    ("polynomial", schedules.PolynomialDecay(0.1, 25, power=2.0),
     lambda s: _polynomial(s, 0.1, 25, 0.0001, 2.0, False)),
    ("polynomial-cycle", schedules.PolynomialDecay(0.1, 10, end_learning_rate=0.01, power=0.5, cycle=True),
     lambda s: _polynomial(s, 0.1, 10, 0.01, 0.5, True)),
    ("cosine", schedules.CosineDecay(0.1, 30, alpha=0.1), lambda s: _cosine(s, 0.1, 30, 0.1, None, 0)),
    ("cosine-warmup", schedules.CosineDecay(0.0, 30, alpha=0.1, warmup_target=0.2, warmup_steps=8),
     lambda s: _cosine(s, 0.0, 30, 0.1, 0.2, 8)),
    ("cosine-restarts", schedules.CosineDecayRestarts(0.1, 4, t_mul=2.0, m_mul=0.5, alpha=0.1),
     lambda s: _cosine_restarts(s, 0.1, 4, 2.0, 0.5, 0.1)),
    ("cosine-restarts-constant-period", schedules.CosineDecayRestarts(0.1, 6, t_mul=1.0, m_mul=0.8),
     lambda s: _cosine_restarts(s, 0.1, 6, 1.0, 0.8, 0.0)),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
def test_schedule_matches_keras_formula(case):
    _, schedule, reference = case
    actual = np.array([schedule(int(s)) for s in STEPS])
    np.testing.assert_allclose(actual, reference(STEPS), rtol=1e-12, atol=1e-15)
    assert all(isinstance(schedule(s), float) for s in (0, 5, np.int64(7)))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
def test_schedule_config_round_trip(case):
    _, schedule, _ = case
    clone = schedules.deserialize(schedules.serialize(schedule))
    assert type(clone) is type(schedule) and clone.get_config() == schedule.get_config()
    assert [clone(s) for s in range(0, 40, 3)] == [schedule(s) for s in range(0, 40, 3)]


def test_landmark_values():
    assert schedules.PiecewiseConstantDecay([10], [1.0, 0.5])(10) == 1.0  # boundary belongs to the left piece
    assert schedules.PiecewiseConstantDecay([10], [1.0, 0.5])(11) == 0.5
    cosine = schedules.CosineDecay(0.0, 100, warmup_target=1.0, warmup_steps=10)
    assert cosine(5) == pytest.approx(0.5) and cosine(10) == 1.0 and cosine(60) == pytest.approx(0.5)
    assert cosine(10_000) == pytest.approx(0.0)
    restarts = schedules.CosineDecayRestarts(1.0, 10, t_mul=2.0, m_mul=0.5)
    assert restarts(10) == pytest.approx(0.5) and restarts(30) == pytest.approx(0.25)  # periods 10, 20, 40...
    assert schedules.PolynomialDecay(1.0, 10, end_learning_rate=0.0)(15) == 0.0
    assert schedules.ExponentialDecay(1.0, 2, 0.5)(3) == pytest.approx(2 ** -1.5)


def test_invalid_arguments_raise():
    with pytest.raises(ValueError, match="decay_steps"):
        schedules.ExponentialDecay(0.1, 0, 0.5)
    with pytest.raises(ValueError, match="decay_steps"):
        schedules.CosineDecay(0.1, -1)
    with pytest.raises(ValueError, match="first_decay_steps"):
        schedules.CosineDecayRestarts(0.1, 0)
    with pytest.raises(ValueError, match="1 less than"):
        schedules.PiecewiseConstantDecay([1, 2], [1.0, 0.5])
    with pytest.raises(ValueError, match="increasing"):
        schedules.PiecewiseConstantDecay([5, 2], [1.0, 0.5, 0.1])
    with pytest.raises(ValueError, match="unknown learning-rate schedule"):
        schedules.deserialize({"class_name": "Warmup", "config": {}})


def test_keras_serialized_schedule_and_custom_schedule():
    keras_style = {"module": "keras.optimizers.schedules", "class_name": "InverseTimeDecay",
                   "config": {"initial_learning_rate": 0.1, "decay_steps": 1, "decay_rate": 0.5,
                              "staircase": False, "name": "InverseTimeDecay"}, "registered_name": None}
    assert schedules.deserialize(keras_style)(2) == pytest.approx(0.05)

    class Halving(schedules.LearningRateSchedule):
        def __init__(self, start):
            self.start = start

        def __call__(self, step):
            return self.start * 0.5 ** step

        def get_config(self):
            return {"start": self.start}

    config = {"class_name": "Halving", "config": {"start": 1.0}}
    assert schedules.deserialize(config, custom_objects={"Halving": Halving})(3) == 0.125
    opt = SGD(Halving(1.0))
    assert opt.learning_rate == 1.0
    assert opt.get_config()["learning_rate"]["class_name"] == "Halving"
    assert "start=1.0" in repr(Halving(1.0))


def test_schedule_drives_the_optimizer_step_by_step():
    schedule = schedules.CosineDecay(0.1, 5)
    opt = SGD(schedule)
    seen = []
    for _ in range(7):
        seen.append(opt.learning_rate)
        opt.iterations += 1
    assert seen == [schedule(t) for t in range(7)]
    assert seen[-1] == 0.0 and math.isclose(seen[0], 0.1)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_schedules_match_keras_3_itself():
    """Runs when Keras is already imported (tests/test_keras_parity.py) or SHENDU_KERAS_TESTS=1: its import is slow."""
    if "keras" not in sys.modules and os.environ.get("SHENDU_KERAS_TESTS") != "1":
        pytest.skip("Keras not imported yet; set SHENDU_KERAS_TESTS=1 to compare with Keras 3 itself")
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    for _, schedule, _ in CASES:
        theirs = keras.optimizers.schedules.deserialize(
            {"class_name": type(schedule).__name__, "config": schedule.get_config()})
        expected = [float(theirs(int(step))) for step in STEPS]  # Keras computes in float32
        np.testing.assert_allclose([schedule(int(step)) for step in STEPS], expected, rtol=2e-5, atol=1e-9)
        assert theirs.get_config() == schedule.get_config()
