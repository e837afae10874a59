"""Convolution layers (shendu.layers.conv): Keras arguments and shapes, weights against PyTorch, data_format,
get_config round trips, Sequential / functional / PyTorch-style use."""

import numpy as np
import pytest

import shendu
from shendu.layers import Dense, Flatten, Input
from shendu.layers.conv import Conv1D, Conv2D, Conv2DTranspose, DepthwiseConv2D, SeparableConv2D
from shendu.layers.pooling import GlobalAveragePooling2D, MaxPooling2D
from shendu.models import Model, Sequential
from shendu.optimizers import Adam


def _x(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


LAYERS = [  # (layer factory, input shape without batch)
    (lambda: Conv2D(4, 3), (7, 6, 2)),
    (lambda: Conv2D(4, (3, 2), strides=2, padding="same", activation="relu"), (7, 6, 2)),
    (lambda: Conv2D(4, 3, dilation_rate=2, groups=2, use_bias=False), (8, 8, 2)),
    (lambda: Conv2D(3, 2, data_format="channels_first"), (2, 5, 6)),
    (lambda: Conv1D(5, 3, padding="causal", dilation_rate=2), (9, 3)),
    (lambda: Conv1D(4, 2, strides=2, padding="same"), (9, 3)),
    (lambda: DepthwiseConv2D(3, depth_multiplier=2, padding="same"), (5, 6, 3)),
    (lambda: SeparableConv2D(4, 3, strides=2, depth_multiplier=2), (7, 7, 3)),
    (lambda: Conv2DTranspose(3, 3, strides=2, padding="same"), (4, 5, 2)),
    (lambda: Conv2DTranspose(3, 3, strides=2), (4, 5, 2)),
    (lambda: Conv2DTranspose(3, 3, strides=2, padding="same", output_padding=0), (4, 5, 2)),
    (lambda: Conv2DTranspose(3, (2, 3), strides=(2, 1), data_format="channels_first"), (2, 4, 5)),
]


@pytest.mark.parametrize("make, shape", LAYERS)
def test_output_shape_matches_compute_output_shape_and_config_round_trip(make, shape):
    layer = make()
    y = layer(_x(2, *shape))
    assert y.shape == (2, *layer.compute_output_shape((None, *shape))[1:])
    clone = type(layer).from_config(layer.get_config())
    clone(_x(2, *shape))
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(clone(_x(2, *shape, seed=1)).data, layer(_x(2, *shape, seed=1)).data, rtol=1e-6)


@pytest.mark.parametrize("make, shape", LAYERS)
def test_symbolic_call_gives_the_same_shape(make, shape):
    inputs = Input(shape=shape)
    outputs = make()(inputs)
    model = Model(inputs, outputs)
    assert model.predict(_x(3, *shape), verbose=0).shape == (3, *outputs.shape[1:])


def test_keras_names_and_kernel_layouts():
    shendu.layers.reset_name_counters()
    conv = Conv2D(8, 3, input_shape=(10, 10, 3))
    depthwise, transpose = DepthwiseConv2D(3, depth_multiplier=2), Conv2DTranspose(5, 3)
    conv(_x(1, 10, 10, 3)), depthwise(_x(1, 10, 10, 3)), transpose(_x(1, 10, 10, 3))
    assert (conv.name, depthwise.name, transpose.name) == ("conv2d", "depthwise_conv2d", "conv2d_transpose")
    assert [w.shape for w in conv.weights] == [(3, 3, 3, 8), (8,)]
    assert depthwise.kernel.shape == (3, 3, 3, 2) and transpose.kernel.shape == (3, 3, 5, 3)


def test_conv2d_layer_matches_torch_forward_and_backward():
    torch = pytest.importorskip("torch")
    layer = Conv2D(4, 3, strides=2, padding="same", dilation_rate=1, dtype="float64", activation="tanh")
    x = shendu.tensor(_x(2, 8, 8, 3), dtype="float64", requires_grad=True)  # same: pads (0, 1)
    y = layer(x)
    w, b = (p.data for p in layer.weights)
    tx = torch.tensor(x.data.transpose(0, 3, 1, 2), requires_grad=True)
    tw = torch.tensor(w.transpose(3, 2, 0, 1), requires_grad=True)
    tb = torch.tensor(b, requires_grad=True)
    ty = torch.tanh(torch.nn.functional.conv2d(torch.nn.functional.pad(tx, (0, 1, 0, 1)), tw, tb, stride=2))
    np.testing.assert_allclose(y.data, ty.detach().numpy().transpose(0, 2, 3, 1), rtol=1e-10)
    gy = _x(*y.shape, seed=3)
    y.backward(gy)
    ty.backward(torch.tensor(gy.transpose(0, 3, 1, 2)))
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(layer.kernel.grad.data, tw.grad.numpy().transpose(2, 3, 1, 0), rtol=1e-9)
    np.testing.assert_allclose(layer.bias.grad.data, tb.grad.numpy(), rtol=1e-9)


def test_depthwise_and_separable_match_torch_groups():
    torch = pytest.importorskip("torch")
    x = _x(2, 6, 6, 3)
    sep = SeparableConv2D(5, 3, depth_multiplier=2, padding="same", dtype="float64")
    y = sep(x)
    dk, pk, b = (p.data for p in sep.weights)
    tx = torch.tensor(x.transpose(0, 3, 1, 2))
    depth = torch.nn.functional.conv2d(tx, torch.tensor(dk.reshape(3, 3, 1, 6).transpose(3, 2, 0, 1)), padding=1,
                                       groups=3)
    ty = torch.nn.functional.conv2d(depth, torch.tensor(pk.transpose(3, 2, 0, 1)), torch.tensor(b))
    np.testing.assert_allclose(y.data, ty.numpy().transpose(0, 2, 3, 1), rtol=1e-9, atol=1e-12)


def test_channels_first_layer_equals_channels_last_layer():
    last, first = Conv2D(4, 3, padding="same", dtype="float64"), Conv2D(4, 3, padding="same", dtype="float64",
                                                                      data_format="channels_first")
    x = _x(2, 5, 6, 3)
    last(x), first(x.transpose(0, 3, 1, 2))
    first.set_weights(last.get_weights())
    np.testing.assert_allclose(first(x.transpose(0, 3, 1, 2)).data, last(x).data.transpose(0, 3, 1, 2), rtol=1e-12)


def test_layer_weights_gradcheck():
    layer = Conv2D(2, 3, strides=2, padding="same", dtype="float64")
    x = shendu.tensor(_x(1, 5, 5, 2), dtype="float64", requires_grad=True)
    layer(x)
    stand_ins = [shendu.tensor(p.data.copy(), dtype="float64", requires_grad=True) for p in layer.trainable_weights]
    shendu.gradcheck(lambda x, k, b: layer.stateless_call([k, b], [], x)[0], x, *stand_ins)


def test_small_convnet_trains_with_fit():
    shendu.seed(0)
    rng = np.random.default_rng(0)
    rows, cols = rng.integers(0, 8, 64), rng.integers(0, 8, 64)
    x = np.zeros((64, 8, 8, 1), dtype="float32")
    x[np.arange(64), rows, cols] = 1.0
    y = (rows < 4).astype("int64")  # is the bright pixel in the top half?
    model = Sequential([Input(shape=(8, 8, 1)), Conv2D(4, 3, padding="same", activation="relu"), MaxPooling2D(),
                        Conv2D(8, 3, activation="relu"), Flatten(), Dense(2, activation="softmax")])
    model.compile(optimizer=Adam(learning_rate=0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=16, epochs=15, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert history.history["accuracy"][-1] > 0.9


def test_pytorch_style_loop_updates_conv_weights():
    from shendu.optimizers import SGD

    shendu.seed(0)
    conv, head = Conv2D(3, 3), GlobalAveragePooling2D()
    x = shendu.tensor(_x(4, 6, 6, 2).astype("float32"))
    conv(x)
    opt = SGD(0.1, params=conv.parameters())
    before = conv.kernel.data.copy()
    loss = (head(conv(x)) ** 2).mean()
    loss.backward()
    opt.step()
    opt.zero_grad()
    assert not np.allclose(before, conv.kernel.data)


@pytest.mark.parametrize("kwargs, message", [
    (dict(filters=0, kernel_size=3), "filters"),
    (dict(filters=4, kernel_size=3, padding="full"), "padding"),
    (dict(filters=4, kernel_size=3, groups=3), "groups"),
    (dict(filters=4, kernel_size=(3, 3, 3)), "kernel_size"),
    (dict(filters=4, kernel_size=3, strides=2, dilation_rate=2), "dilation"),
])
def test_conv2d_argument_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Conv2D(**kwargs)


def test_wrong_input_rank_names_layer_and_hints():
    with pytest.raises(ValueError, match=r"conv.*4-D.*channel axis"):
        Conv2D(4, 3)(np.zeros((2, 28, 28)))
    layer = Conv2D(4, 3)
    layer(np.zeros((1, 5, 5, 3)))
    with pytest.raises(ValueError, match="expected"):
        layer(np.zeros((1, 5, 5, 2)))


def test_compute_output_shape_before_build_and_regularizer_losses():
    depthwise = DepthwiseConv2D(3, depth_multiplier=3, padding="same")
    assert depthwise.compute_output_shape((None, 8, 8, 2)) == (None, 8, 8, 6)
    layer = Conv2D(2, 3, kernel_regularizer=shendu.regularizers.l2(0.1), dtype="float64")
    layer(_x(1, 4, 4, 1))
    (penalty,) = layer.losses
    np.testing.assert_allclose(penalty.data, 0.1 * (layer.kernel.data ** 2).sum())


def test_unknown_keyword_is_rejected():
    with pytest.raises(TypeError, match="kernel_size"):
        Conv2D(4, kernel_sizes=3)


def test_depthwise_conv2d_matches_per_channel_convolutions():
    x, k = _x(2, 5, 5, 3), _x(3, 3, 3, 2, seed=1)
    y = shendu.ops.convolution.depthwise_conv2d(x, k, padding="same")
    for c in range(3):
        np.testing.assert_allclose(y[..., 2 * c:2 * c + 2],
                                   shendu.ops.convolution.conv2d(x[..., c:c + 1], k[:, :, c:c + 1], padding="same"),
                                   rtol=1e-12)



def _fused_and_plain(fused, plain, x):
    """Outputs and gradients of ``fused`` (a layer with activation='relu') and of ``plain`` (the same layer and
    weights without it) followed by ReLU, and the op names of the fused graph."""
    fused.build(x.shape)
    plain.build(x.shape)
    plain.set_weights([w + 0 for w in fused.get_weights()])
    results, names = [], set()
    for layer, after in ((fused, lambda y: y), (plain, shendu.relu)):
        xt = shendu.tensor(x, requires_grad=True)
        y = after(layer(xt))
        if layer is fused:
            names = {type(op).__name__ for op in _ops_of(y)}
        (y * y).sum().backward()
        results.append([y.data, xt.grad.data, layer.kernel.grad.data, layer.bias.grad.data])
    return results, names


def _ops_of(y):
    ops, stack = [], [y.creator]
    while stack:
        op = stack.pop()
        if op is not None:
            ops.append(op)
            stack += [t.creator for t in op.inputs if isinstance(t, shendu.Tensor)]
    return ops


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv2d_relu_is_one_op_and_equals_conv_then_relu(data_format, dtype):
    """Conv2D(activation='relu') runs one Conv2DReluOp; outputs and gradients are those of Conv2D followed by
    a ReLU, bit for bit (a large output: the parallel bias+ReLU kernel). Channels-first, the bias gradient may
    round differently: the ReLU's gradient reaches the bias sum in another memory layout."""
    shape = (4, 20, 20, 3) if data_format == "channels_last" else (4, 3, 20, 20)
    x = _x(*shape).astype(dtype)
    make = lambda **kw: Conv2D(32, 3, data_format=data_format, dtype=np.dtype(dtype).name, **kw)  # noqa: E731
    (got, want), names = _fused_and_plain(make(activation="relu"), make(), x)
    assert "Conv2DReluOp" in names and "ReluOp" not in names
    for a, b in zip(got[:3], want[:3]):
        np.testing.assert_array_equal(a, b)
    if data_format == "channels_last":
        np.testing.assert_array_equal(got[3], want[3])
    np.testing.assert_allclose(got[3], want[3], rtol=1e-6 if dtype == np.float32 else 1e-14)


def test_conv2d_transpose_relu_is_one_op_and_equals_the_layer_then_relu():
    x = _x(8, 14, 14, 16).astype(np.float32)
    make = lambda **kw: Conv2DTranspose(32, 3, strides=2, padding="same", **kw)  # noqa: E731
    (got, want), names = _fused_and_plain(make(activation="relu"), make(), x)
    assert "Conv2DTransposeReluOp" in names and "ReluOp" not in names
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def test_dense_relu_is_one_op_and_equals_dense_then_relu():
    x = _x(128, 64).astype(np.float32)
    (got, want), names = _fused_and_plain(Dense(512, activation="relu"), Dense(512), x)
    assert "LinearReluOp" in names and "ReluOp" not in names
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
