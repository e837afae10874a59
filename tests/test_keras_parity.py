"""shendu against Keras 3 itself (PyTorch backend), on identical weights and data, without shuffling:
the same losses, metrics, History keys, weights after training, and callback order.

Skipped when Keras is not installed (``pip install keras``; it runs with ``KERAS_BACKEND=torch``)."""

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Keras's own NumPy 2 notices

if keras.backend.backend() != "torch":  # pragma: no cover - another backend was chosen before us
    pytest.skip("these comparisons need Keras on its PyTorch backend", allow_module_level=True)

import shendu  # noqa: E402
from shendu import callbacks as cbs  # noqa: E402
from shendu.layers import Dense, Input  # noqa: E402
from shendu.models import Sequential  # noqa: E402
from shendu.optimizers import SGD, Adam  # noqa: E402


def _twins(units, activations, input_dim, optimizer, loss, metrics=None):
    """A shendu model and a Keras model with the same architecture and the same initial weights."""
    shendu.seed(0)
    ours = Sequential([Input(shape=(input_dim,))] + [Dense(u, activation=a) for u, a in zip(units, activations)])
    theirs = keras.Sequential([keras.Input(shape=(input_dim,))]
                              + [keras.layers.Dense(u, activation=a) for u, a in zip(units, activations)])
    theirs.set_weights(ours.get_weights())  # both keep the kernel as (in, out)
    ours.compile(optimizer=optimizer[0], loss=loss, metrics=metrics)
    theirs.compile(optimizer=optimizer[1], loss=loss, metrics=metrics)
    return ours, theirs


def _assert_histories_close(ours, theirs, rtol):
    assert list(ours.history) == list(theirs.history)
    for key in ours.history:
        np.testing.assert_allclose(ours.history[key], theirs.history[key], rtol=rtol, atol=1e-7, err_msg=key)


def test_seed_program_one_epoch_same_loss_and_weights():
    X = np.random.default_rng(0).random((100, 1))
    y = X ** 2
    ours, theirs = _twins([1], [None], 1, (SGD(lr=0.01, momentum=0.9),
                                           keras.optimizers.SGD(learning_rate=0.01, momentum=0.9)),
                          "mean_squared_error")
    h1 = ours.fit(X, y, epochs=1, shuffle=False, verbose=0)
    h2 = theirs.fit(X, y, epochs=1, shuffle=False, verbose=0)
    _assert_histories_close(h1, h2, rtol=1e-6)
    h1 = ours.fit(X, y, epochs=20, shuffle=False, verbose=0)
    h2 = theirs.fit(X, y, epochs=20, shuffle=False, verbose=0)
    _assert_histories_close(h1, h2, rtol=1e-5)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours.predict(X, verbose=0), theirs.predict(X, verbose=0), rtol=1e-5, atol=1e-6)


def test_classifier_with_validation_split_and_accuracy():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(120, 6)).astype(np.float32)
    labels = (x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1).astype(np.int64)
    ours, theirs = _twins([16, 3], ["relu", "softmax"], 6, (Adam(0.01), keras.optimizers.Adam(0.01)),
                          "sparse_categorical_crossentropy", metrics=["accuracy"])
    h1 = ours.fit(x, labels, batch_size=16, epochs=3, shuffle=False, validation_split=0.25, verbose=0)
    h2 = theirs.fit(x, labels, batch_size=16, epochs=3, shuffle=False, validation_split=0.25, verbose=0)
    assert list(h1.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    _assert_histories_close(h1, h2, rtol=2e-5)
    e1 = ours.evaluate(x, labels, verbose=0, return_dict=True)
    e2 = theirs.evaluate(x, labels, verbose=0, return_dict=True)
    assert list(e1) == list(e2)
    np.testing.assert_allclose(list(e1.values()), list(e2.values()), rtol=2e-5)


def test_binary_classifier_metrics_and_train_on_batch():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    y = (x.sum(1) > 0).astype(np.float32).reshape(-1, 1)
    ours, theirs = _twins([8, 1], ["tanh", "sigmoid"], 4, (SGD(0.1), keras.optimizers.SGD(0.1)),
                          "binary_crossentropy", metrics=["accuracy", "mae"])
    np.testing.assert_allclose(ours.train_on_batch(x, y), theirs.train_on_batch(x, y), rtol=1e-5)
    np.testing.assert_allclose(ours.test_on_batch(x, y), theirs.test_on_batch(x, y), rtol=1e-5)
    h1 = ours.fit(x, y, batch_size=10, epochs=2, shuffle=False, verbose=0, validation_data=(x[:20], y[:20]))
    h2 = theirs.fit(x, y, batch_size=10, epochs=2, shuffle=False, verbose=0, validation_data=(x[:20], y[:20]))
    _assert_histories_close(h1, h2, rtol=1e-5)


def _recorder(base):
    class Recorder(base):
        def __init__(self):
            super().__init__()
            self.calls = []

    for hook in ("on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end", "on_test_begin", "on_test_end",
                 "on_train_batch_begin", "on_train_batch_end", "on_test_batch_begin", "on_test_batch_end"):
        setattr(Recorder, hook, (lambda name: lambda self, *args, **kw: self.calls.append(name))(hook))
    return Recorder()


def test_callback_order_and_batches_per_epoch_match_keras():
    x = np.random.default_rng(3).random((70, 2)).astype(np.float32)
    y = x[:, :1]
    ours, theirs = _twins([1], [None], 2, (SGD(0.01), keras.optimizers.SGD(0.01)), "mse")
    rec_ours, rec_theirs = _recorder(cbs.Callback), _recorder(keras.callbacks.Callback)
    ours.fit(x, y, batch_size=32, epochs=2, validation_data=(x[:40], y[:40]), verbose=0, callbacks=[rec_ours])
    theirs.fit(x, y, batch_size=32, epochs=2, validation_data=(x[:40], y[:40]), verbose=0, callbacks=[rec_theirs])
    assert rec_ours.calls == rec_theirs.calls
    assert rec_ours.calls.count("on_train_batch_end") == 6  # ceil(70 / 32) = 3 per epoch


def test_learning_rate_scheduler_history_matches_keras():
    x = np.random.default_rng(4).random((16, 2)).astype(np.float32)
    y = x[:, 1:]
    ours, theirs = _twins([1], [None], 2, (SGD(0.1), keras.optimizers.SGD(0.1)), "mse")
    schedule = lambda epoch, lr: lr * 0.5  # noqa: E731
    h1 = ours.fit(x, y, epochs=3, shuffle=False, verbose=0, callbacks=[cbs.LearningRateScheduler(schedule)])
    h2 = theirs.fit(x, y, epochs=3, shuffle=False, verbose=0,
                    callbacks=[keras.callbacks.LearningRateScheduler(schedule)])
    np.testing.assert_allclose(h1.history["learning_rate"], h2.history["learning_rate"], rtol=1e-6)
    np.testing.assert_allclose(h1.history["loss"], h2.history["loss"], rtol=1e-5)
