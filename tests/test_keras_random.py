"""``shendu.random`` as Keras 3's ``keras.random``: signatures, ``seed=`` (None, int, SeedGenerator),
reproducibility from ``shendu.seed``, distributions, and the old ``seed``/``get_rng``/state functions."""

import inspect
import os
import threading

import numpy as np
import pytest

import shendu
from shendu import random

os.environ.setdefault("KERAS_BACKEND", "torch")
NAMES = ["categorical", "dropout", "normal", "randint", "shuffle", "truncated_normal", "uniform"]


@pytest.mark.parametrize("name", NAMES)
def test_signatures_are_keras_3s(name):
    keras = pytest.importorskip("keras")
    ours = [(p.name, p.default) for p in inspect.signature(getattr(random, name)).parameters.values()]
    theirs = [(p.name, p.default) for p in inspect.signature(getattr(keras.random, name)).parameters.values()]
    assert ours == theirs


def test_seed_none_follows_shendu_seed_and_advances():
    shendu.seed(3)
    first, second = random.normal((4,)), random.normal((4,))
    shendu.seed(3)
    np.testing.assert_array_equal(random.normal((4,)).numpy(), first.numpy())
    assert not np.array_equal(first.numpy(), second.numpy())


def test_int_seed_repeats_and_seed_generator_advances_reproducibly():
    np.testing.assert_array_equal(random.uniform((5,), seed=7).numpy(), random.uniform((5,), seed=7).numpy())
    a, b = random.SeedGenerator(42), random.SeedGenerator(42)
    first = random.normal((3,), seed=a)
    assert not np.array_equal(first.numpy(), random.normal((3,), seed=a).numpy())  # the stream advances
    np.testing.assert_array_equal(first.numpy(), random.normal((3,), seed=b).numpy())  # and repeats from its seed
    assert random.SeedGenerator.from_config(a.get_config()).seed == 42
    shendu.seed(0)
    unseeded = random.SeedGenerator().seed
    shendu.seed(0)
    assert random.SeedGenerator().seed == unseeded  # seed=None takes its seed from shendu.seed
    with pytest.raises(TypeError, match="SeedGenerator"):
        random.normal((2,), seed="7")


def test_distributions():
    n = 200_000
    x = random.normal((n,), mean=2.0, stddev=3.0, seed=1).numpy()
    assert x.dtype == np.float32 and abs(x.mean() - 2.0) < 0.05 and abs(x.std() - 3.0) < 0.05
    u = random.uniform((n,), minval=-1.0, maxval=3.0, dtype="float64", seed=1).numpy()
    assert u.dtype == np.float64 and u.min() >= -1.0 and u.max() < 3.0 and abs(u.mean() - 1.0) < 0.02
    t = random.truncated_normal((n,), stddev=2.0, seed=1).numpy()
    assert np.abs(t).max() <= 4.0 and abs(t.std() - 2.0 * 0.8796) < 0.02  # std of N(0,1) cut at +-2: 0.8796
    i = random.randint((n,), 3, 7, seed=1).numpy()
    assert i.dtype == np.int32 and set(np.unique(i)) == {3, 4, 5, 6}
    logits = np.log(np.array([[0.1, 0.6, 0.3], [1.0, 1e-9, 1e-9]], dtype=np.float32))
    c = random.categorical(logits, 20_000, seed=1).numpy()
    assert c.shape == (2, 20_000) and c.dtype == np.int32
    np.testing.assert_allclose(np.bincount(c[0], minlength=3) / 20_000, [0.1, 0.6, 0.3], atol=0.015)
    assert (c[1] == 0).all()


def test_dropout_scales_kept_entries_and_passes_gradients():
    x = shendu.ones((1000, 10), requires_grad=True)
    y = random.dropout(x, 0.25, seed=5)
    values = y.numpy()
    assert set(np.unique(values)) <= {0.0, np.float32(1 / 0.75)} and abs((values == 0).mean() - 0.25) < 0.02
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, values)  # d(x * mask / 0.75)/dx = mask / 0.75
    rows = random.dropout(shendu.ones((6, 50)), 0.5, noise_shape=(6, 1), seed=2).numpy()
    assert all(len(np.unique(row)) == 1 for row in rows)  # the mask broadcasts along noise_shape's 1s
    with pytest.raises(ValueError, match="rate"):
        random.dropout(x, 1.0)


def test_shuffle_permutes_along_an_axis_with_gradients():
    x = shendu.tensor(np.arange(12.0).reshape(4, 3), requires_grad=True)
    y = random.shuffle(x, axis=0, seed=3)
    assert sorted(map(tuple, y.numpy())) == sorted(map(tuple, x.numpy()))
    (y * shendu.tensor(np.arange(12.0).reshape(4, 3))).sum().backward()
    assert sorted(map(tuple, x.grad)) == sorted(map(tuple, np.arange(12.0).reshape(4, 3)))


def test_old_names_still_work_and_threads_keep_their_own_generators():
    assert random.seed is shendu.seed and random.get_rng is shendu.rng.get_rng
    state = random.get_state()
    a = random.normal((3,)).numpy()
    random.set_state(state)
    np.testing.assert_array_equal(random.normal((3,)).numpy(), a)
    results = {}

    def draw(n):
        shendu.seed(n)
        results[threading.current_thread().name] = random.normal((4,)).numpy()

    threads = [threading.Thread(target=draw, args=(9,), name=f"t{i}") for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    np.testing.assert_array_equal(results["t0"], results["t1"])
