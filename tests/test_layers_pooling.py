"""Pooling and image reshaping layers (shendu.layers.pooling, shendu.layers.reshaping): Keras shapes and
semantics, PyTorch agreement, data_format, get_config round trips, functional-model use, gradients."""

import numpy as np
import pytest

import shendu
from shendu.layers import Input
from shendu.layers.pooling import (
    AveragePooling1D,
    AveragePooling2D,
    GlobalAveragePooling1D,
    GlobalAveragePooling2D,
    GlobalMaxPooling1D,
    GlobalMaxPooling2D,
    MaxPooling1D,
    MaxPooling2D,
)
from shendu.layers.reshaping import Cropping2D, SpatialDropout2D, UpSampling2D, ZeroPadding2D
from shendu.models import Model


def _x(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


LAYERS = [  # (layer factory, input shape without batch)
    (lambda: MaxPooling2D(), (6, 5, 3)),
    (lambda: MaxPooling2D(3, strides=2, padding="same"), (7, 6, 3)),
    (lambda: AveragePooling2D((2, 3), strides=1, padding="same"), (5, 6, 2)),
    (lambda: AveragePooling2D(2, data_format="channels_first"), (3, 6, 5)),
    (lambda: MaxPooling1D(3, strides=2), (9, 4)),
    (lambda: AveragePooling1D(2, padding="same"), (7, 4)),
    (lambda: GlobalAveragePooling2D(), (5, 4, 3)),
    (lambda: GlobalMaxPooling2D(keepdims=True), (5, 4, 3)),
    (lambda: GlobalAveragePooling1D(data_format="channels_first"), (3, 7)),
    (lambda: GlobalMaxPooling1D(), (7, 3)),
    (lambda: UpSampling2D((2, 3)), (3, 4, 2)),
    (lambda: UpSampling2D(2, data_format="channels_first"), (2, 3, 4)),
    (lambda: UpSampling2D((3, 2), interpolation="bilinear"), (3, 4, 2)),
    (lambda: ZeroPadding2D(((1, 0), (2, 3))), (3, 4, 2)),
    (lambda: ZeroPadding2D(1, data_format="channels_first"), (2, 3, 4)),
    (lambda: Cropping2D(((1, 0), (0, 2))), (4, 5, 2)),
    (lambda: Cropping2D(1), (4, 5, 2)),
    (lambda: SpatialDropout2D(0.5), (4, 5, 2)),
]


@pytest.mark.parametrize("make, shape", LAYERS)
def test_output_shape_config_and_functional_use(make, shape):
    layer = make()
    y = layer(_x(2, *shape))
    assert y.shape == (2, *layer.compute_output_shape((None, *shape))[1:])
    clone = type(layer).from_config(layer.get_config())
    np.testing.assert_allclose(clone(_x(2, *shape)).data, y.data)
    inputs = Input(shape=shape)
    model = Model(inputs, make()(inputs))
    assert model.predict(_x(3, *shape), verbose=0).shape == (3, *y.shape[1:])


def test_keras_pooling_names_and_defaults():
    shendu.layers.reset_name_counters()
    layer = MaxPooling2D()
    assert layer.name == "max_pooling2d" and layer.pool_size == (2, 2) and layer.strides == (2, 2)
    assert GlobalAveragePooling2D().name == "global_average_pooling2d"


def test_max_pooling_layer_matches_torch():
    torch = pytest.importorskip("torch")
    x = shendu.tensor(_x(2, 6, 6, 3), dtype="float64", requires_grad=True)
    y = MaxPooling2D(3, strides=2, dtype="float64")(x)
    tx = torch.tensor(x.data.transpose(0, 3, 1, 2), requires_grad=True)
    ty = torch.nn.functional.max_pool2d(tx, 3, 2)
    gy = _x(*y.shape, seed=1)
    y.backward(gy)
    ty.backward(torch.tensor(gy.transpose(0, 3, 1, 2)))
    np.testing.assert_allclose(y.data, ty.detach().numpy().transpose(0, 2, 3, 1))
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy().transpose(0, 2, 3, 1))


def test_global_pooling_values_and_masked_average():
    x = _x(2, 4, 3, 5)
    np.testing.assert_allclose(GlobalAveragePooling2D(dtype="float64")(x).data, x.mean(axis=(1, 2)))
    np.testing.assert_allclose(GlobalMaxPooling2D(dtype="float64")(x).data, x.max(axis=(1, 2)))
    seq = _x(2, 4, 3)
    mask = np.array([[True, True, False, False], [True, True, True, True]])
    y = GlobalAveragePooling1D(dtype="float64")(seq, mask=mask).data
    np.testing.assert_allclose(y, [seq[0, :2].mean(axis=0), seq[1].mean(axis=0)])


def test_upsampling_zero_padding_cropping_values_and_gradients():
    x = np.arange(6.0).reshape(1, 2, 3, 1)
    up = UpSampling2D((2, 1), dtype="float64")(x).data[0, :, :, 0]
    np.testing.assert_array_equal(up, np.repeat(x[0, :, :, 0], 2, axis=0))
    padded = ZeroPadding2D(((1, 0), (0, 1)), dtype="float64")(x).data[0, :, :, 0]
    np.testing.assert_array_equal(padded, np.pad(x[0, :, :, 0], ((1, 0), (0, 1))))
    cropped = Cropping2D(((0, 1), (1, 1)), dtype="float64")(x).data[0, :, :, 0]
    np.testing.assert_array_equal(cropped, [[1.0]])
    t = shendu.tensor(_x(1, 3, 3, 2), dtype="float64", requires_grad=True)
    for layer in (UpSampling2D(2, dtype="float64"), ZeroPadding2D(1, dtype="float64"), Cropping2D(1, dtype="float64")):
        shendu.gradcheck(layer, t)


@pytest.mark.parametrize("size", [(2, 2), (3, 2)])
def test_bilinear_upsampling_matches_torch_half_pixel(size):
    torch = pytest.importorskip("torch")
    x = shendu.tensor(_x(2, 3, 4, 2), dtype="float64", requires_grad=True)
    y = UpSampling2D(size, interpolation="bilinear", dtype="float64")(x)
    tx = torch.tensor(x.data.transpose(0, 3, 1, 2), requires_grad=True)
    ty = torch.nn.functional.interpolate(tx, scale_factor=size, mode="bilinear", align_corners=False)
    gy = _x(*y.shape, seed=2)
    y.backward(gy)
    ty.backward(torch.tensor(gy.transpose(0, 3, 1, 2)))
    np.testing.assert_allclose(y.data, ty.detach().numpy().transpose(0, 2, 3, 1), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-10, atol=1e-12)


def test_spatial_dropout_drops_whole_feature_maps():
    shendu.seed(0)
    x = np.ones((8, 4, 4, 6))
    layer = SpatialDropout2D(0.5, dtype="float64")
    np.testing.assert_array_equal(layer(x).data, x)  # inference: the identity
    y = layer(x, training=True).data
    per_map = y.reshape(8, 16, 6)
    assert np.all(per_map.min(axis=1) == per_map.max(axis=1))  # each (sample, channel) map all kept or all dropped
    assert set(np.unique(y)) <= {0.0, 2.0} and 0 < (y == 0).mean() < 1
    first = SpatialDropout2D(0.5, data_format="channels_first", seed=3)(x.transpose(0, 3, 1, 2), training=True).data
    assert np.all(first.reshape(8, 6, 16).min(axis=2) == first.reshape(8, 6, 16).max(axis=2))


@pytest.mark.parametrize("make, message", [
    (lambda: MaxPooling2D(padding="causal"), "padding"),
    (lambda: MaxPooling2D(pool_size=0), "pool_size"),
    (lambda: ZeroPadding2D((1, 2, 3)), "padding"),
    (lambda: UpSampling2D(interpolation="bicubic"), "interpolation"),
    (lambda: SpatialDropout2D(1.5), "rate"),
])
def test_argument_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_cropping_everything_is_an_error():
    with pytest.raises(ValueError, match="Cropping2D"):
        Cropping2D(2)(np.zeros((1, 4, 5, 1)))
