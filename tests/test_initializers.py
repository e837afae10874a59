"""Initializers: Keras names, variances from the formulas, bounds, orthogonality, seeding, configs."""

import json

import numpy as np
import pytest

import shendu
from shendu import initializers

NAMES = ["zeros", "ones", "constant", "random_normal", "random_uniform", "truncated_normal", "glorot_normal",
         "glorot_uniform", "he_normal", "he_uniform", "lecun_normal", "lecun_uniform", "orthogonal", "identity",
         "variance_scaling"]


@pytest.mark.parametrize("name", NAMES)
def test_every_initializer_gives_the_requested_shape_and_dtype(name):
    init = initializers.get(name)
    assert init((5, 3)).shape == (5, 3) and init((5, 3)).dtype == np.float32
    assert init((5, 3), dtype="float64").dtype == np.float64
    config = json.loads(json.dumps(initializers.serialize(init)))
    assert type(initializers.deserialize(config)) is type(init)


# (name, expected variance as a function of (fan_in, fan_out))
VARIANCES = [
    ("glorot_uniform", lambda fi, fo: 2 / (fi + fo)),
    ("glorot_normal", lambda fi, fo: 2 / (fi + fo)),
    ("he_uniform", lambda fi, fo: 2 / fi),
    ("he_normal", lambda fi, fo: 2 / fi),
    ("lecun_uniform", lambda fi, fo: 1 / fi),
    ("lecun_normal", lambda fi, fo: 1 / fi),
    ("random_normal", lambda fi, fo: 0.05 ** 2),
    ("random_uniform", lambda fi, fo: 0.1 ** 2 / 12),
    ("truncated_normal", lambda fi, fo: 0.05 ** 2 * 0.8796256610342398 ** 2),
]


@pytest.mark.parametrize("name,variance", VARIANCES, ids=[v[0] for v in VARIANCES])
@pytest.mark.parametrize("shape", [(300, 200), (3, 3, 16, 32)], ids=["dense", "conv"])
def test_variance_matches_the_formula(name, variance, shape):
    shendu.seed(1)
    w = initializers.get(name)(shape, dtype="float64")
    fan_in, fan_out = initializers.compute_fans(shape)
    assert abs(w.mean()) < 0.05 * np.sqrt(variance(fan_in, fan_out))
    assert w.var() == pytest.approx(variance(fan_in, fan_out), rel=0.04)


def test_fans_follow_keras():
    assert initializers.compute_fans((3, 3, 16, 32)) == (144, 288)
    assert initializers.compute_fans((7,)) == (7, 7)
    assert initializers.compute_fans(()) == (1, 1)


def test_uniform_and_truncated_bounds():
    shendu.seed(2)
    limit = np.sqrt(6 / (50 + 70))
    w = initializers.GlorotUniform()((50, 70))
    assert np.abs(w).max() <= limit
    t = initializers.TruncatedNormal(mean=1.0, stddev=0.5)((200, 100))
    assert t.min() >= 0.0 and t.max() <= 2.0
    h = initializers.HeNormal()((400, 10), dtype="float64")
    assert np.abs(h).max() <= 2 * np.sqrt(2 / 400) / 0.87962566103423978 + 1e-12


@pytest.mark.parametrize("shape", [(6, 4), (4, 6), (2, 3, 5)])
def test_orthogonal_has_orthonormal_rows_or_columns(shape):
    w = initializers.Orthogonal(gain=2.0)(shape, dtype="float64")
    flat = w.reshape(-1, shape[-1]) / 2.0
    gram = flat.T @ flat if flat.shape[0] >= flat.shape[1] else flat @ flat.T
    np.testing.assert_allclose(gram, np.eye(gram.shape[0]), atol=1e-12)


def test_constant_identity_zeros_ones():
    np.testing.assert_array_equal(initializers.Constant(2.5)((2, 2)), np.full((2, 2), 2.5, np.float32))
    np.testing.assert_array_equal(initializers.Identity(gain=3.0)((2, 3)), 3 * np.eye(2, 3))
    assert not initializers.get("zeros")((3,)).any() and initializers.get("Ones")((3,)).all()
    with pytest.raises(ValueError, match="2-D"):
        initializers.Identity()((2, 2, 2))


def test_global_seed_and_initializer_seed_reproduce_values():
    shendu.seed(7)
    first = initializers.get("he_uniform")((4, 4))
    shendu.seed(7)
    np.testing.assert_array_equal(first, initializers.get("he_uniform")((4, 4)))
    assert not np.array_equal(initializers.get("he_uniform")((4, 4)), initializers.get("he_uniform")((4, 4)))
    seeded = initializers.RandomNormal(seed=3)
    np.testing.assert_array_equal(seeded((3, 2)), seeded((3, 2)))


def test_get_accepts_names_configs_classes_and_callables_and_rejects_the_rest():
    assert isinstance(initializers.get("HeNormal"), initializers.HeNormal)
    assert isinstance(initializers.get(initializers.LecunUniform), initializers.LecunUniform)
    custom = initializers.get({"class_name": "VarianceScaling",
                               "config": {"scale": 3.0, "mode": "fan_out", "distribution": "uniform"}})
    assert custom.get_config() == {"scale": 3.0, "mode": "fan_out", "distribution": "uniform", "seed": None}

    def fn(shape, dtype=None):
        return np.full(shape, 0.5, dtype=dtype)

    assert initializers.get(fn) is fn
    assert initializers.get(None) is None
    with pytest.raises(ValueError, match="unknown initializer 'glorot'"):
        initializers.get("glorot")
    with pytest.raises(ValueError, match="mode"):
        initializers.VarianceScaling(mode="fan_sum")
    with pytest.raises(ValueError, match="cannot serialise"):
        initializers.serialize(fn)


def test_layers_use_initializers_by_name_and_callable():
    layer = shendu.layers.Dense(3, kernel_initializer=lambda shape, dtype=None: np.ones(shape, dtype),
                                bias_initializer=initializers.Constant(0.5))
    layer(np.zeros((1, 2)))
    np.testing.assert_array_equal(layer.kernel.data, np.ones((2, 3)))
    np.testing.assert_array_equal(layer.bias.data, np.full(3, 0.5))
