"""Preprocessing and augmentation layers: Keras 3 semantics, random only in training, reproducible with shendu.seed."""

from __future__ import annotations

import os

import numpy as np
import pytest

import shendu
from shendu.data import DataLoader, TensorDataset
from shendu.layers import Dense, Flatten, Input
from shendu.layers.preprocessing import (
    Normalization,
    RandomCrop,
    RandomFlip,
    RandomRotation,
    RandomTranslation,
    RandomZoom,
    Rescaling,
    resize,
)
from shendu.models import Sequential

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")  # keras
RNG = np.random.default_rng(0)
IMAGES = RNG.normal(size=(4, 7, 9, 3)).astype("float32")
RANDOM_LAYERS = [lambda: RandomFlip(), lambda: RandomTranslation(0.2, 0.3), lambda: RandomRotation(0.2),
                 lambda: RandomZoom(0.3), lambda: RandomCrop(5, 6)]


def _out(layer, x, training):
    return np.asarray(layer(x, training=training).data)


def test_rescaling_scales_casts_and_takes_one_value_per_channel():
    pixels = np.array([[[[0, 128, 255]]]], dtype=np.uint8)
    y = Rescaling(1 / 127.5, offset=-1.0)(pixels)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.data.ravel(), [-1.0, 128 / 127.5 - 1, 1.0], atol=1e-6)
    per_channel = Rescaling([1.0, 2.0, 3.0], offset=[0.0, 1.0, 2.0], dtype="float64")
    np.testing.assert_array_equal(per_channel(np.ones((2, 3))).data, np.tile([1.0, 3.0, 5.0], (2, 1)))
    assert Rescaling.from_config(per_channel.get_config()).get_config() == per_channel.get_config()


def test_normalization_adapt_matches_numpy_statistics():
    data = RNG.normal(3.0, 2.0, size=(50, 4)) * np.arange(1, 5)
    layer = Normalization(dtype="float64")
    layer.adapt(data)
    np.testing.assert_allclose(layer.mean.data, data.mean(0), rtol=1e-12)
    np.testing.assert_allclose(layer.variance.data, data.var(0), rtol=1e-12)
    np.testing.assert_allclose(layer(data).data, (data - data.mean(0)) / data.std(0), rtol=1e-10, atol=1e-12)
    assert [w.name.split("/")[-1] for w in layer.weights] == ["mean", "variance"]
    assert layer.trainable_weights == []


def test_normalization_adapt_from_batches_equals_one_pass():
    data = RNG.normal(size=(37, 3, 2))
    whole = Normalization(axis=(1, 2), dtype="float64")
    whole.adapt(data)
    loader = DataLoader(TensorDataset(data, np.zeros(37)), batch_size=8)
    batched = Normalization(axis=(1, 2), dtype="float64")
    batched.adapt(loader)  # (x, y) batches: x is used
    split = Normalization(axis=(1, 2), dtype="float64")
    split.adapt(data, batch_size=5)
    for other in (batched, split):
        np.testing.assert_allclose(other.mean.data, whole.mean.data, rtol=1e-12)
        np.testing.assert_allclose(other.variance.data, whole.variance.data, rtol=1e-12)
    assert whole.mean.shape == (3, 2)


def test_normalization_scalar_axis_none_invert_and_given_statistics():
    data = RNG.normal(5.0, 3.0, size=(20, 3))
    scalar = Normalization(axis=None, dtype="float64")
    scalar.adapt(data)
    np.testing.assert_allclose(scalar(data).data, (data - data.mean()) / data.std(), rtol=1e-10)
    given = Normalization(mean=[1.0, 2.0], variance=[4.0, 0.0], dtype="float64")
    np.testing.assert_allclose(given(np.array([[3.0, 2.5]])).data, [[1.0, 0.5 / 1e-7]])  # std floored at 1e-7
    inverse = Normalization(mean=[1.0, 2.0], variance=[4.0, 9.0], invert=True, dtype="float64")
    np.testing.assert_allclose(inverse(np.array([[1.0, -1.0]])).data, [[3.0, -1.0]])
    with pytest.raises(ValueError, match="both mean and variance"):
        Normalization(mean=1.0)
    with pytest.raises(ValueError, match="adapt"):
        given.adapt(data[:, :2])


@pytest.mark.parametrize("make", RANDOM_LAYERS)
def test_random_layers_are_identity_in_inference_and_random_in_training(make):
    layer = make()
    if isinstance(layer, RandomCrop):
        assert _out(layer, IMAGES, False).shape == (4, 5, 6, 3)
    else:
        np.testing.assert_array_equal(_out(layer, IMAGES, False), IMAGES)
        np.testing.assert_array_equal(_out(layer, IMAGES, None), IMAGES)
    shendu.seed(3)
    first = _out(layer, IMAGES, True)
    shendu.seed(3)
    np.testing.assert_array_equal(_out(layer, IMAGES, True), first)  # shendu.seed repeats the draws
    assert first.shape == _out(layer, IMAGES, False).shape
    assert not np.array_equal(first, _out(layer, IMAGES, True))  # a fresh draw differs
    seeded = [type(layer).from_config({**layer.get_config(), "seed": 7, "name": None}) for _ in range(2)]
    np.testing.assert_array_equal(_out(seeded[0], IMAGES, True), _out(seeded[1], IMAGES, True))


def test_random_flip_flips_whole_images_independently():
    shendu.seed(0)
    out = _out(RandomFlip("horizontal"), IMAGES, True)
    flipped = [np.array_equal(o, x[:, ::-1]) for o, x in zip(out, IMAGES)]
    kept = [np.array_equal(o, x) for o, x in zip(out, IMAGES)]
    assert all(f or k for f, k in zip(flipped, kept))
    both = _out(RandomFlip(seed=1), np.repeat(IMAGES[:1], 64, axis=0), True)
    variants = {tuple(np.round(b[0, 0], 5)) for b in both}
    assert len(variants) == 4  # none, horizontal, vertical, both


def test_rotation_by_a_quarter_turn_is_rot90_and_translation_shifts():
    image = np.arange(25.0).reshape(1, 5, 5, 1)
    quarter = RandomRotation((0.25, 0.25), interpolation="nearest", dtype="float64")
    np.testing.assert_allclose(_out(quarter, image, True)[0, :, :, 0], np.rot90(image[0, :, :, 0]), atol=1e-12)
    shift = RandomTranslation((0.2, 0.2), (-0.2, -0.2), fill_mode="constant", fill_value=-1.0, dtype="float64")
    out = _out(shift, image, True)[0, :, :, 0]
    np.testing.assert_allclose(out[1:, :4], image[0, :4, 1:, 0], atol=1e-12)  # down by 1, left by 1
    assert (out[0] == -1).all() and (out[:, 4] == -1).all()


def test_channels_first_and_unbatched_images():
    layer = RandomRotation((0.1, 0.1), data_format="channels_first", dtype="float64")
    channels_first = IMAGES.transpose(0, 3, 1, 2).astype("float64")
    expected = _out(RandomRotation((0.1, 0.1), dtype="float64"), IMAGES.astype("float64"), True)
    np.testing.assert_allclose(_out(layer, channels_first, True), expected.transpose(0, 3, 1, 2), atol=1e-12)
    single = _out(RandomRotation((0.1, 0.1), dtype="float64"), IMAGES[0].astype("float64"), True)
    np.testing.assert_allclose(single, expected[0], atol=1e-12)
    with pytest.raises(ValueError, match="expects images"):
        RandomFlip()(np.zeros((2, 3)), training=True)


def test_random_crop_windows_and_inference_resize():
    shendu.seed(1)
    out = _out(RandomCrop(5, 6), IMAGES, True)
    windows = [(t, s) for t in range(3) for s in range(4) if np.array_equal(out, IMAGES[:, t:t + 5, s:s + 6])]
    assert len(windows) == 1
    center = _out(RandomCrop(7, 7), IMAGES, False)
    np.testing.assert_array_equal(center, IMAGES[:, :, 1:8])  # largest central 7x7 window, no resize needed
    np.testing.assert_allclose(_out(RandomCrop(14, 18), IMAGES, True), resize(IMAGES, 14, 18))
    with pytest.raises(ValueError, match="positive integer"):
        RandomCrop(0, 3)


def test_factor_and_mode_errors_name_the_argument():
    with pytest.raises(ValueError, match="RandomTranslation: height_factor"):
        RandomTranslation((0.5, 0.1), 0.1)
    with pytest.raises(ValueError, match="RandomZoom: height_factor"):
        RandomZoom((-1.5, 0.1))
    with pytest.raises(ValueError, match="fill_mode"):
        RandomRotation(0.1, fill_mode="mirror-ish")
    with pytest.raises(ValueError, match="mode"):
        RandomFlip("diagonal")


def test_augmentation_in_a_model_runs_only_in_fit():
    shendu.seed(0)
    model = Sequential([Input(shape=(7, 9, 3)), Rescaling(0.5), RandomFlip(), RandomRotation(0.1), Flatten(),
                        Dense(2)])
    model.compile("sgd", "mse")
    before = model.predict(IMAGES, verbose=0)
    np.testing.assert_array_equal(model.predict(IMAGES, verbose=0), before)
    history = model.fit(IMAGES, np.zeros((4, 2), "float32"), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.fixture(scope="module")
def keras_layers():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    return keras


@pytest.mark.parametrize("fill_mode", ["reflect", "wrap", "constant", "nearest"])
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_geometric_layers_match_keras_for_fixed_draws(keras_layers, fill_mode, interpolation):
    """Degenerate factor ranges (lower == upper) fix the draw, so Keras and shendu must agree exactly."""
    kw = {"fill_mode": fill_mode, "interpolation": interpolation, "fill_value": 0.5}
    pairs = [("RandomRotation", ((0.1, 0.1),)), ("RandomTranslation", ((0.2, 0.2), (-0.3, -0.3))),
             ("RandomZoom", ((0.4, 0.4), (-0.3, -0.3)))]
    for name, args in pairs:
        theirs = keras_layers.ops.convert_to_numpy(getattr(keras_layers.layers, name)(*args, **kw)(IMAGES,
                                                                                                   training=True))
        ours = _out(getattr(shendu.layers.preprocessing, name)(*args, **kw), IMAGES, True)
        np.testing.assert_allclose(ours, theirs, atol=5e-6, err_msg=name)
    theirs = keras_layers.ops.convert_to_numpy(keras_layers.ops.image.resize(IMAGES, (11, 13)))
    np.testing.assert_allclose(resize(IMAGES, 11, 13), theirs, atol=5e-6)
