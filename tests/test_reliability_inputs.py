"""Bad data for fit/evaluate/predict gives a clear error naming the argument, what was expected and a fix,
never a silent loss of 0.0 or an error from deep inside an op ("len() of unsized object", a matmul
UFuncTypeError). The checks run once per call on the whole arrays."""

from __future__ import annotations

import numpy as np
import pytest

from shendu.layers import Dense
from shendu.models import Sequential
from shendu.models.data_adapter import EpochIterator


@pytest.fixture
def model():
    m = Sequential([Dense(1, input_dim=2)])
    m.compile("sgd", "mse")
    return m


Y2 = np.zeros((2, 1), dtype="float32")


def test_fit_and_evaluate_on_zero_samples_raise(model):
    x, y = np.zeros((0, 2), dtype="float32"), np.zeros((0, 1), dtype="float32")
    with pytest.raises(ValueError, match=r"fit: x has 0 samples \(shapes \(0, 2\), \(0, 1\)\).*at least one sample"):
        model.fit(x, y, verbose=0)
    with pytest.raises(ValueError, match="evaluate: x has 0 samples"):
        model.evaluate(x, y, verbose=0)
    with pytest.raises(ValueError, match="predict: x has 0 samples"):
        model.predict(x, verbose=0)
    with pytest.raises(ValueError, match=r"fit \(validation_data\): x has 0 samples"):
        model.fit(np.zeros((2, 2), "float32"), Y2, validation_data=(x, y), verbose=0)


def test_fit_and_evaluate_on_an_empty_generator_raise(model):
    with pytest.raises(ValueError, match="fit: the data produced no batches"):
        model.fit(iter([]), verbose=0)
    with pytest.raises(ValueError, match="evaluate: the data produced no batches"):
        model.evaluate(iter([]), verbose=0)


def test_ragged_list_names_x_and_suggests_padding(model):
    with pytest.raises(TypeError, match=r"fit: x is a list of Python numbers.*different lengths \(\[2, 1\]\).*"
                                        r"pad_sequences"):
        model.fit([[1.0, 2.0], [3.0]], Y2, verbose=0)


def test_nested_list_of_numbers_suggests_one_array(model):
    with pytest.raises(TypeError, match=r"x is a list of Python numbers.*np.asarray\(x, dtype='float32'\) "
                                        r"\(shape \(2, 2\)\)"):
        model.fit([[1.0, 2.0], [3.0, 4.0]], Y2, verbose=0)
    with pytest.raises(TypeError, match="evaluate: y is a list of Python numbers"):
        model.evaluate(np.zeros((2, 2), "float32"), [0.0, 1.0], verbose=0)


def test_string_arrays_are_refused_with_a_hint(model):
    with pytest.raises(TypeError, match=r"fit: x has dtype <U1 \(strings\) with shape \(2, 2\); expected a numeric "
                                        r"array. Turn text into integer token ids"):
        model.fit(np.array([["a", "b"], ["c", "d"]]), Y2, verbose=0)
    with pytest.raises(TypeError, match=r"predict: x holds Python strings \(e.g. 'a'\)"):
        model.predict(["a", "b"], verbose=0)
    with pytest.raises(TypeError, match=r"fit: y has dtype <U3 .*Encode labels as integers"):
        model.fit(np.zeros((2, 2), "float32"), np.array(["cat", "dog"]), verbose=0)


def test_object_arrays_are_refused(model):
    ragged = np.array([np.zeros(2), np.zeros(3)], dtype=object)
    with pytest.raises(TypeError, match=r"fit: x has dtype object .*shape \(2,\).*pad_sequences"):
        model.fit(ragged, Y2, verbose=0)


def test_good_inputs_still_train(model):
    x = np.ones((4, 2), dtype="float32")
    y = np.ones((4, 1), dtype="float32")
    history = model.fit(x, y, verbose=0, epochs=2)
    assert len(history.history["loss"]) == 2 and history.history["loss"][0] > 0
    assert isinstance(model.evaluate({"x": x}["x"], y, verbose=0), float)


def test_the_check_runs_once_per_call_not_per_batch(monkeypatch):
    import shendu.models.data_adapter as data_adapter

    calls = []
    real = data_adapter.check_data
    monkeypatch.setattr(data_adapter, "check_data", lambda *a, **k: calls.append(1) or real(*a, **k))
    it = EpochIterator(np.zeros((64, 2), "float32"), np.zeros((64, 1), "float32"), batch_size=4)
    assert sum(1 for _ in it) == 16 and sum(1 for _ in it) == 16
    assert len(calls) == 1


def test_single_batch_methods_check_too(model):
    with pytest.raises(TypeError, match="train_on_batch: x is a list of Python numbers.*different lengths"):
        model.train_on_batch([[1.0, 2.0], [3.0]], Y2)
    with pytest.raises(TypeError, match="test_on_batch: y has dtype <U1"):
        model.test_on_batch(np.zeros((2, 2), "float32"), np.array(["a", "b"]))
    with pytest.raises(ValueError, match="train_on_batch: x has 0 samples"):
        model.train_on_batch(np.zeros((0, 2), "float32"), np.zeros((0, 1), "float32"))
