"""Thread safety: per-call layer state (training flag, call depth, call id) and the random generator belong to
the calling thread, so a training in one thread never changes what another thread computes.

The first two tests are deterministic: one thread is held inside a layer call (as a training thread is most
of the time) while the main thread works. The last ones run real trainings side by side.
"""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest

import shendu
from shendu.layers import Dense, Dropout, Layer
from shendu.models import Model, Sequential

TIMEOUT = 30


class _Held(Layer):
    """A layer whose call waits until released: holds its thread inside a (training) layer call."""

    def __init__(self, inside: threading.Event, release: threading.Event, **kwargs):
        super().__init__(**kwargs)
        self.inside, self.release = inside, release

    def call(self, x, training=None):
        self.inside.set()
        assert self.release.wait(TIMEOUT)
        return x


class _HeldThread:
    """Context manager: another thread sits inside ``layer(x, training=True)`` for the duration of the block."""

    def __enter__(self):
        self.inside, self.release = threading.Event(), threading.Event()
        layer = _Held(self.inside, self.release)
        self.errors: list[BaseException] = []

        def run():
            try:
                layer(np.ones((2, 3), dtype="float32"), training=True)
            except BaseException as e:  # reported by __exit__
                self.errors.append(e)

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert self.inside.wait(TIMEOUT)
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.thread.join(TIMEOUT)
        assert not self.errors, self.errors


class _DropoutNet(Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = Dense(64, activation="relu")
        self.drop = Dropout(0.5)
        self.out = Dense(2)

    def call(self, x, training=None):
        return self.out(self.drop(self.hidden(x)))


def test_training_in_another_thread_does_not_switch_dropout_on_in_predict():
    shendu.seed(0)
    net = _DropoutNet()
    x = np.random.default_rng(0).random((32, 8)).astype("float32")
    expected = net.predict(x, verbose=0)
    with _HeldThread():
        np.testing.assert_array_equal(net.predict(x, verbose=0), expected)
        # training=None: the layers' default (inference), not the other thread's training=True
        np.testing.assert_array_equal(net(x).detach().numpy(), expected)


def _regularized_training(x, y):
    shendu.seed(3)
    model = Sequential([Dense(4, input_dim=3, activation="tanh", activity_regularizer="l2"), Dense(1)])
    model.compile("sgd", "mse")
    history = model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    return history.history["loss"], model.get_weights()


def test_activity_regularizer_trains_while_another_thread_is_inside_a_layer_call():
    data = np.random.default_rng(1)
    x, y = data.random((8, 3)).astype("float32"), data.random((8, 1)).astype("float32")
    alone_loss, alone_weights = _regularized_training(x, y)
    with _HeldThread():  # was: "Trying to backward through the graph a second time"
        loss, weights = _regularized_training(x, y)
    assert loss == alone_loss
    for a, b in zip(alone_weights, weights):
        np.testing.assert_array_equal(a, b)


def _seeded_training(seed: int, barrier: threading.Barrier | None = None) -> list[np.ndarray]:
    shendu.seed(seed)
    model = Sequential([Dense(16, input_dim=4, activation="relu"), Dropout(0.3), Dense(1)])
    model.compile(shendu.optimizers.Adam(0.01), "mse")
    data = np.random.default_rng(100)  # the same data for every run
    x, y = data.random((64, 4)).astype("float32"), data.random((64, 1)).astype("float32")
    if barrier is not None:
        barrier.wait(TIMEOUT)  # both threads have seeded and built before either trains
    model.fit(x, y, batch_size=8, epochs=3, shuffle=True, verbose=0)
    return model.get_weights()


@pytest.fixture
def fast_switching():
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # interleave the threads as much as possible
    yield
    sys.setswitchinterval(previous)


def test_two_seeded_trainings_in_two_threads_each_equal_the_training_alone(fast_switching):
    seeds = (11, 22)
    alone = {s: _seeded_training(s) for s in seeds}
    assert not all(np.array_equal(a, b) for a, b in zip(alone[11], alone[22]))  # the seeds do matter
    for _ in range(3):
        results = _run_in_threads([lambda barrier, s=s: _seeded_training(s, barrier) for s in seeds])
        for s, weights in zip(seeds, results):
            assert all(np.array_equal(a, b) for a, b in zip(alone[s], weights)), f"seed {s} differs from alone"


def _run_in_threads(jobs: list) -> list:
    """Run ``job(barrier)`` for each job in its own thread, all at once; their results, errors re-raised."""
    barrier = threading.Barrier(len(jobs))
    results: list = [None] * len(jobs)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            results[i] = jobs[i](barrier)
        except BaseException as e:  # re-raised below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT * 4)
    assert not errors, errors
    return results


def test_predict_stays_exact_while_another_thread_trains(fast_switching):
    shendu.seed(5)
    net = _DropoutNet()
    x = np.random.default_rng(2).random((16, 8)).astype("float32")
    expected = net.predict(x, verbose=0)
    stop = threading.Event()
    errors: list[BaseException] = []

    def train() -> None:
        try:
            shendu.seed(6)
            other = _DropoutNet()
            other.compile("sgd", "mse")
            xt, yt = np.ones((64, 8), "float32"), np.ones((64, 2), "float32")
            while not stop.is_set():
                other.fit(xt, yt, batch_size=4, epochs=1, verbose=0)
        except BaseException as e:  # re-raised below
            errors.append(e)

    trainer = threading.Thread(target=train)
    trainer.start()
    try:
        differing = sum(not np.array_equal(net.predict_on_batch(x), expected) for _ in range(3000))
    finally:
        stop.set()
        trainer.join(TIMEOUT)
    assert not errors, errors
    assert differing == 0


def test_seed_in_a_thread_leaves_the_main_threads_generator_alone():
    shendu.seed(1)
    expected = np.random.default_rng(1).random(3)
    worker = threading.Thread(target=shendu.seed, args=(2,))
    worker.start()
    worker.join(TIMEOUT)
    np.testing.assert_array_equal(shendu.random.get_rng().random(3), expected)
