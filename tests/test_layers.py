"""The Layer contract (registry, weights, trainable, config, errors, symbolic calls) and the core layers."""

import json

import numpy as np
import pytest

import shendu
from shendu import layers
from shendu.layers import (
    Activation,
    Dense,
    Dropout,
    Flatten,
    Input,
    InputLayer,
    Lambda,
    Layer,
    Permute,
    RepeatVector,
    Reshape,
)


def _t64(*shape, seed=0):
    rng = np.random.default_rng(seed + 7 * len(shape) + sum(shape))
    return shendu.tensor(rng.uniform(-1.0, 1.0, shape), dtype=np.float64, requires_grad=True)


def _weights64(layer, seed=10):
    return [_t64(*w.shape, seed=seed + i) for i, w in enumerate(layer.trainable_weights)]


class Scale(Layer):
    """A user layer: y = x * w (one weight per feature)."""

    def build(self, input_shape):
        self.w = self.add_weight("w", (input_shape[-1],), initializer="ones")

    def call(self, x):
        return x * self.w


class Block(Layer):
    """A user layer with sublayers: attributes, a list, and a shared layer used twice."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.first = Dense(4, name="first")
        self.stack = [Dense(4, name="second"), Scale(name="scale")]
        self.again = self.first
        self.dropout = Dropout(0.5, seed=1)

    def call(self, x):
        h = self.dropout(self.first(x))
        for layer in self.stack:
            h = layer(h)
        return h


# ------------------------------------------------------------------------------- Dense
def test_dense_matches_torch_linear():
    torch = pytest.importorskip("torch")
    layer = Dense(3, activation="tanh", dtype="float64")
    x = np.random.default_rng(0).normal(size=(5, 4))
    y = layer(x)
    gy = np.random.default_rng(1).standard_normal(y.shape)
    y.backward(gy)
    linear = torch.nn.Linear(4, 3, dtype=torch.float64)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor(layer.kernel.data.T))
        linear.bias.copy_(torch.tensor(layer.bias.data))
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.tanh(linear(tx))
    ty.backward(torch.tensor(gy))
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(layer.kernel.grad.data, linear.weight.grad.numpy().T, rtol=1e-10)
    np.testing.assert_allclose(layer.bias.grad.data, linear.bias.grad.numpy(), rtol=1e-10)


def test_dense_applies_to_the_last_axis_of_nd_inputs():
    layer = Dense(2, use_bias=False, dtype="float64")
    x = np.random.default_rng(2).normal(size=(3, 5, 4))
    y = layer(x)
    assert y.shape == (3, 5, 2) and layer.weights == [layer.kernel]
    np.testing.assert_allclose(y.data, x @ layer.kernel.data)


@pytest.mark.parametrize("shape", [(4, 3), (2, 2, 3)])
def test_dense_gradcheck_inputs_and_weights(shape):
    layer = Dense(2, activation="sigmoid", dtype="float64")
    x = _t64(*shape)
    layer(x.detach())
    assert shendu.gradcheck(lambda t, k, b: layer.stateless_call([k, b], [], t)[0], x, *_weights64(layer))


def test_dense_defaults_follow_keras():
    shendu.seed(3)
    layer = Dense(50, input_dim=200)
    layer(np.zeros((1, 200)))
    limit = np.sqrt(6 / 250)
    assert layer.kernel.dtype == np.float32 and layer.kernel.shape == (200, 50)
    assert np.abs(layer.kernel.data).max() <= limit and np.abs(layer.kernel.data).max() > 0.9 * limit
    assert not layer.bias.data.any()
    assert layer.input_shape == (None, 200)
    assert Dense(1, input_dim=1).input_shape == (None, 1)
    assert Dense(1, input_shape=(3, 2), batch_size=8).input_shape == (8, 3, 2)


def test_seed_makes_initialisation_bit_identical():
    def init():
        shendu.seed(42)
        layer = Dense(7)
        layer(np.zeros((1, 5)))
        return layer.get_weights()

    first, second = init(), init()
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------------------- the Layer contract
def test_automatic_names_are_unique_like_keras():
    layers.reset_name_counters()
    assert [Dense(1).name, Dense(1).name, layers.BatchNormalization().name] == ["dense", "dense_1",
                                                                                  "batch_normalization"]
    assert Dense(1, name="out").name == "out"


def test_unknown_keyword_arguments_are_rejected_with_the_valid_ones():
    with pytest.raises(TypeError, match=r"'activaton' \(did you mean 'activation'\?\).*valid arguments are: units"):
        Dense(3, activaton="relu")
    with pytest.raises(TypeError, match="input_dim"):
        Layer(inputdim=3)


def test_user_layer_registry_orders_weights_and_sublayers():
    block = Block(name="block")
    y = block(np.ones((2, 3)))
    assert y.shape == (2, 4)
    names = [w.name for w in block.weights]
    assert names == ["first/kernel", "first/bias", "second/kernel", "second/bias", "scale/w"]
    assert [layer.name for layer in block.children()] == ["first", "second", "scale", "dropout"]
    assert block.count_params() == 3 * 4 + 4 + 4 * 4 + 4 + 4
    assert [w.name for w in block.parameters()] == names


def test_freezing_a_layer_freezes_its_weights_and_sublayers():
    block = Block()
    block(np.ones((2, 3)))
    block.stack[0].trainable = False
    assert len(block.trainable_weights) == 3 and len(block.non_trainable_weights) == 2
    assert not block.stack[0].kernel.requires_grad
    block.trainable = False
    assert block.trainable_weights == [] and len(block.non_trainable_weights) == 5
    assert not block.first.trainable
    block.trainable = True
    assert len(block.trainable_weights) == 5 and all(w.requires_grad for w in block.weights)
    frozen = Dense(2, trainable=False)
    frozen(np.ones((1, 2)))
    assert frozen.trainable_weights == [] and not frozen.kernel.requires_grad


def test_get_and_set_weights_round_trip_and_check_shapes():
    a, b = Dense(3, name="a"), Dense(3, name="b")
    a(np.ones((1, 2)))
    b(np.ones((1, 2)))
    b.set_weights(a.get_weights())
    x = np.random.default_rng(0).normal(size=(4, 2))
    np.testing.assert_array_equal(a(x).data, b(x).data)
    with pytest.raises(ValueError, match=r"layer 'b' has 2 weights .* received 1"):
        b.set_weights(a.get_weights()[:1])
    with pytest.raises(ValueError, match=r"'b/kernel' has shape \(2, 3\) but set_weights received shape \(3, 2\)"):
        b.set_weights([np.zeros((3, 2)), np.zeros(3)])
    with pytest.raises(ValueError, match="not built"):
        Dense(2).count_params()


def test_losses_hold_regularisation_and_activity_penalties():
    layer = Dense(2, kernel_regularizer=shendu.regularizers.l2(0.1), bias_initializer="ones",
                  bias_regularizer="l1", activity_regularizer=shendu.regularizers.L1(0.5), dtype="float64")
    x = np.array([[1.0, -2.0, 0.5], [0.3, 0.2, -1.0]])
    y = layer(x)
    kernel_penalty, bias_penalty, activity = layer.losses
    np.testing.assert_allclose(kernel_penalty.data, 0.1 * (layer.kernel.data ** 2).sum())
    np.testing.assert_allclose(bias_penalty.data, 0.01 * 2)
    np.testing.assert_allclose(activity.data, 0.5 * np.abs(y.data).sum() / len(x))  # per sample, as Keras 3
    sum(layer.losses).backward()
    np.testing.assert_allclose(layer.kernel.grad.data, 0.2 * layer.kernel.data + 0.25 * x.T @ np.sign(y.data))
    layer(x)
    assert len(layer.losses) == 3  # activity losses are those of the latest forward pass, not accumulated


def test_training_flag_propagates_to_nested_layers():
    block = Block()
    x = np.ones((64, 3))
    np.testing.assert_array_equal(block(x).data, block(x, training=False).data)
    trained = block(x, training=True).data
    assert not np.allclose(trained, block(x).data)
    block.train()
    assert not np.allclose(block(x).data, block(x, training=False).data)
    block.eval()
    np.testing.assert_array_equal(block(x).data, block(x, training=False).data)


def test_inputs_are_converted_to_the_layer_dtype():
    layer64 = Dense(2, dtype="float64")
    assert layer64(np.ones((1, 3), np.float32)).dtype == np.float64
    assert Dense(2)(np.ones((1, 3), np.int64)).dtype == np.float32
    assert Dense(2)(shendu.tensor(np.ones((1, 3)), dtype=np.float64)).dtype == np.float32
    assert layer64.dtype == "float64"


def test_shape_errors_name_the_layer_and_hint_at_a_fix():
    dense = Dense(10, name="head")
    dense(np.zeros((2, 784)))
    with pytest.raises(ValueError, match=r"layer 'head' \(Dense\) expected an input of shape \(None, 784\).*"
                                         r"received shape \(2, 28, 28, 1\).*add a Flatten\(\) layer"):
        dense(np.zeros((2, 28, 28, 1)))
    declared = Dense(10, input_shape=(32, 784), name="declared")
    with pytest.raises(ValueError, match=r"received shape \(32, 784\).*must not include the batch axis.*"
                                         r"input_shape=\(784,\)"):
        declared(np.zeros((32, 784)))
    with pytest.raises(ValueError, match=r"no batch axis"):
        dense(np.zeros(784))
    with pytest.raises(ValueError, match=r"layer 'head'.*\(None, 784\).*\(2, 5\)"):
        dense(np.zeros((2, 5)))


# ------------------------------------------------------------------------------- other core layers
def test_activation_layer_by_name_and_callable():
    x = np.array([[-1.0, 0.0, 2.0]])
    np.testing.assert_allclose(Activation("softplus")(x).data, np.log1p(np.exp(x)), rtol=1e-6)
    np.testing.assert_allclose(Activation(lambda t: t * 3)(x).data, 3 * x)
    with pytest.raises(ValueError, match="unknown activation 'relux'"):
        Activation("relux")


def test_dropout_is_identity_in_inference_and_scales_in_training():
    x = np.ones((200, 50))
    layer = Dropout(0.3)
    np.testing.assert_array_equal(layer(x).data, x)
    y = layer(x, training=True).data
    assert set(np.unique(y)) <= {0.0, np.float32(1 / 0.7)}
    assert abs((y == 0).mean() - 0.3) < 0.02
    shared = Dropout(0.5, noise_shape=(None, 1))(np.ones((6, 4)), training=True).data
    assert all(len(set(row)) == 1 for row in shared)
    assert Dropout(1.0)(x, training=True).data.sum() == 0
    with pytest.raises(ValueError, match="rate"):
        Dropout(1.5)


def test_dropout_masks_follow_the_seed():
    def masks(seeded_layer):
        shendu.seed(5)
        layer = Dropout(0.5, seed=9) if seeded_layer else Dropout(0.5)
        return layer(np.ones((4, 8)), training=True).data

    np.testing.assert_array_equal(masks(False), masks(False))
    np.testing.assert_array_equal(masks(True), masks(True))


def test_dropout_gradient_uses_the_same_mask():
    x = _t64(5, 6)
    y = Dropout(0.5, dtype="float64")(x, training=True)
    y.backward(np.ones(y.shape))
    np.testing.assert_array_equal(x.grad.data, (y.data != 0) * 2.0)


@pytest.mark.parametrize("layer,shape,expected", [
    (Flatten(dtype="float64"), (2, 3, 4), lambda x: x.reshape(2, -1)),
    (Flatten(data_format="channels_first", dtype="float64"), (2, 3, 2, 2),
     lambda x: x.transpose(0, 2, 3, 1).reshape(2, -1)),
    (Reshape((2, -1), dtype="float64"), (3, 8), lambda x: x.reshape(3, 2, 4)),
    (Permute((2, 1), dtype="float64"), (2, 3, 4), lambda x: x.transpose(0, 2, 1)),
    (RepeatVector(3, dtype="float64"), (2, 4), lambda x: np.repeat(x[:, None], 3, axis=1)),
    (Lambda(lambda t: (t * t).sum(axis=-1, keepdims=True), dtype="float64"), (3, 4),
     lambda x: (x * x).sum(-1, keepdims=True)),
], ids=["flatten", "flatten_channels_first", "reshape", "permute", "repeat_vector", "lambda"])
def test_shape_layers_match_numpy_and_gradcheck(layer, shape, expected):
    x = _t64(*shape)
    y = layer(x)
    np.testing.assert_allclose(y.data, expected(x.data))
    assert layer.compute_output_shape((None, *shape[1:]))[1:] == y.shape[1:]
    assert shendu.gradcheck(layer, x)


def test_reshape_and_permute_errors_name_the_layer():
    with pytest.raises(ValueError, match=r"layer 'rs' \(Reshape\) cannot reshape .* \(3, 5\)"):
        Reshape((2, 2), name="rs")(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="permutation"):
        Permute((1, 3))
    with pytest.raises(ValueError, match=r"layer 'p' \(Permute\).*3-D"):
        Permute((2, 1), name="p")(np.zeros((2, 3)))


@pytest.mark.parametrize("layer", [
    Dense(4, activation="relu", kernel_initializer=shendu.initializers.HeNormal(seed=2), kernel_regularizer="l2",
          use_bias=False, input_shape=(3,)),
    Activation("gelu"), Dropout(0.25, noise_shape=(None, 1), seed=3), Flatten(), Reshape((3, 1)), Permute((1,)),
    RepeatVector(2),
], ids=lambda layer: type(layer).__name__)
def test_config_round_trips_through_json(layer):
    config = json.loads(json.dumps(layers.serialize(layer)))
    clone = layers.deserialize(config)
    assert type(clone) is type(layer) and clone.get_config() == layer.get_config()
    x = np.random.default_rng(0).normal(size=(2, 3))
    if isinstance(layer, Dense):
        layer(x)
        clone(x)
        clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(clone(x).data, layer(x).data)


def test_lambda_refuses_to_serialise_code():
    with pytest.raises(ValueError, match="never serialises Python code"):
        Lambda(lambda x: x).get_config()


# ------------------------------------------------------------------------------- symbolic (functional) calls
def test_symbolic_calls_record_a_walkable_history():
    inputs = Input(shape=(6,), name="features")
    assert inputs.shape == (None, 6) and inputs.dtype == "float32"
    assert isinstance(inputs.node.layer, InputLayer) and inputs.node.parents == []
    shared = Dense(3, name="shared")
    inner = Dense(6)
    a, b = shared(inputs), shared(inner(inputs))
    assert len(shared.inbound_nodes) == 2 and shared.output is a
    out = layers.add([a, b])
    assert out.shape == (None, 3) and out.node.parents == [a, b] and out.index == 0

    values = {id(inputs): shendu.tensor(np.ones((2, 6)))}
    order, seen = [], set()

    def visit(t):
        for parent in t.node.parents:
            if id(parent) not in seen:
                seen.add(id(parent))
                visit(parent)
        order.append(t)

    visit(out)
    for t in order[1:]:
        values[id(t)] = t.node.replay(values)
    x = np.ones((2, 6), np.float32)
    expected = shared(x).data + shared(inner(x)).data
    np.testing.assert_allclose(values[id(out)].data, expected, rtol=1e-6)


def test_symbolic_shapes_are_inferred_when_a_layer_does_not_define_them():
    sequence = Input(shape=(None, 4))
    summed = Lambda(lambda t: t.sum(axis=1))(sequence)
    doubled = Lambda(lambda t: t * 2)(sequence)
    user = Scale()(sequence)
    assert summed.shape == (None, 4) and doubled.shape == (None, None, 4) and user.shape == (None, None, 4)
    assert Lambda(lambda t: t[:, :2], output_shape=(2,))(Input(shape=(5,))).shape == (None, 2)


def test_symbolic_calls_check_shapes_and_declared_inputs():
    dense = Dense(2, name="d2")
    dense(Input(shape=(3,)))
    with pytest.raises(ValueError, match=r"layer 'd2'.*\(None, 5\)"):
        dense(Input(shape=(5,)))
    with pytest.raises(ValueError, match="pass shape"):
        Input()
    with pytest.raises(TypeError, match="truth value"):
        bool(Input(shape=(1,)))
    int_input = Input(shape=(3,), dtype="int32")
    assert int_input.dtype == "int32"
    assert int_input.node.layer(np.array([[1, 2, 3]])).dtype == np.int32


def test_weights_argument_sets_the_initial_weights_once_built():
    kernel, bias = np.arange(6.0).reshape(2, 3), np.ones(3)
    layer = Dense(3, weights=[kernel, bias])
    np.testing.assert_allclose(layer(np.array([[1.0, 1.0]])).data, [[4.0, 6.0, 8.0]])
    with pytest.raises(ValueError, match="set_weights received shape"):
        Dense(2, weights=[kernel, bias])(np.ones((1, 2)))


def test_stateless_call_checks_the_number_of_weights():
    layer = Dense(2)
    layer(np.ones((1, 2)))
    with pytest.raises(ValueError, match="expected 2 trainable and 0 non-trainable"):
        layer.stateless_call([layer.kernel], [], np.ones((1, 2)))


def test_to_cpu_keeps_weights_and_later_weights_follow():
    block = Block()
    block.to("cpu")
    y = block(np.ones((2, 3)))
    assert y.device == "cpu" and all(w.device == "cpu" for w in block.weights)
    with pytest.raises((RuntimeError, ValueError)):
        Dense(2).to("tpu")(np.ones((1, 2)))


def test_regularizers_values_get_and_serialize():
    w = shendu.tensor([[1.0, -2.0], [0.5, 0.0]], dtype=np.float64)
    regs = shendu.regularizers
    assert float(regs.L1(0.1)(w)) == pytest.approx(0.35)
    assert float(regs.L2(0.1)(w)) == pytest.approx(0.525)
    assert float(regs.l1_l2()(w)) == pytest.approx(0.035 + 0.0525)
    assert float(regs.L1L2()(w)) == 0.0
    assert regs.get("l2").get_config() == {"l2": 0.01}
    clone = regs.deserialize(json.loads(json.dumps(regs.serialize(regs.L1L2(l1=0.2, l2=0.3)))))
    assert clone.get_config() == {"l1": 0.2, "l2": 0.3}
    assert regs.get(None) is None
    with pytest.raises(ValueError, match="unknown regularizer 'l3'"):
        regs.get("l3")
    with pytest.raises(ValueError, match="l1 must be >= 0"):
        regs.L1(-1.0)


class Offset(Layer):
    """A user layer without get_config: its plain constructor arguments are recorded automatically."""

    def __init__(self, amount, scale=1.0, **kwargs):
        super().__init__(**kwargs)
        self.amount, self.scale = amount, scale

    def call(self, x):
        return x * self.scale + self.amount


def test_user_layers_get_their_constructor_arguments_as_config():
    layer = Offset(2.0, scale=3.0, name="offset")
    config = json.loads(json.dumps(layer.get_config()))
    assert config["amount"] == 2.0 and config["scale"] == 3.0 and config["name"] == "offset"
    clone = layers.deserialize({"class_name": "Offset", "config": config})
    np.testing.assert_allclose(clone(np.ones((1, 2))).data, [[5.0, 5.0]])
    with pytest.raises(NotImplementedError, match="define get_config"):
        Offset(np.ones(2)).get_config()


def test_a_layer_that_skips_super_init_gets_a_clear_error():
    class Forgetful(Layer):
        def __init__(self, units):
            self.units = units

        def call(self, x):
            return x

    with pytest.raises(AttributeError, match=r"call super\(\).__init__"):
        Forgetful(3)(np.ones((1, 2)))
    with pytest.raises(ValueError, match="dtype must be a NumPy dtype"):
        Dense(2, dtype="mixed_float16")


def test_nested_python_lists_are_one_input_and_lists_of_arrays_are_several():
    layer = Dense(2, kernel_initializer="ones", dtype="float64")
    np.testing.assert_allclose(layer([[1.0, 2.0]]).data, [[3.0, 3.0]])
    joined = layers.concatenate([np.ones((1, 2)), shendu.zeros(1, 3)])
    np.testing.assert_allclose(joined.data, [[1.0, 1.0, 0.0, 0.0, 0.0]])


# ------------------------------------------------------------------------------- Keras 3 itself as the oracle
@pytest.fixture(scope="module")
def keras():
    """Keras 3 on its PyTorch backend (imported lazily: it takes seconds)."""
    import os

    pytest.importorskip("torch")
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras as keras_module
    except Exception as e:  # not installed, or no usable backend
        pytest.skip(f"keras unavailable: {e}")
    return keras_module


def _keras_value(t):
    return np.asarray(t.detach().cpu().numpy() if hasattr(t, "detach") else t)


def test_activations_match_keras(keras):
    x = np.linspace(-7.0, 7.0, 29).reshape(1, -1).astype(np.float32)
    for name in ["relu", "sigmoid", "tanh", "softmax", "log_softmax", "elu", "selu", "gelu", "silu", "swish",
                 "softplus", "softsign", "leaky_relu", "relu6", "hard_sigmoid", "exponential", "linear"]:
        ours = shendu.activations.get(name)(shendu.tensor(x)).data
        np.testing.assert_allclose(ours, _keras_value(keras.activations.get(name)(x)), rtol=2e-6, atol=2e-6,
                                   err_msg=name)


@pytest.mark.filterwarnings("ignore:You passed `rms_scaling=True`")
def test_batchnorm_and_layernorm_match_keras(keras):
    x = np.random.default_rng(0).normal(1.0, 2.0, (8, 3)).astype(np.float32)
    ours, theirs = layers.BatchNormalization(momentum=0.9), keras.layers.BatchNormalization(momentum=0.9)
    np.testing.assert_allclose(ours(x, training=True).data, _keras_value(theirs(x, training=True)), rtol=1e-5,
                               atol=1e-6)
    for ours_w, theirs_w in zip(ours.weights, theirs.weights):
        np.testing.assert_allclose(ours_w.data, _keras_value(theirs_w.value), rtol=1e-6)
    np.testing.assert_allclose(ours(x).data, _keras_value(theirs(x)), rtol=1e-5, atol=1e-6)
    rms = layers.LayerNormalization(rms_scaling=True)
    np.testing.assert_allclose(rms(x).data, _keras_value(keras.layers.LayerNormalization(rms_scaling=True)(x)),
                               rtol=1e-5, atol=1e-6)


def test_activity_regularisation_and_dot_match_keras(keras):
    x = np.random.default_rng(1).normal(size=(4, 3)).astype(np.float32)
    ours = Dense(2, activity_regularizer="l1")
    theirs = keras.layers.Dense(2, activity_regularizer="l1")
    theirs.build((None, 3))
    ours(x)
    ours.set_weights([_keras_value(w.value) for w in theirs.weights])
    ours(x)
    theirs(x)
    np.testing.assert_allclose(float(ours.losses[0]), float(_keras_value(theirs.losses[0])), rtol=1e-5)
    a, b = x, x[:, ::-1].copy()
    np.testing.assert_allclose(layers.Dot(axes=1, normalize=True)([a, b]).data,
                               _keras_value(keras.layers.Dot(axes=1, normalize=True)([a, b])), rtol=1e-5)


def test_output_shapes_match_keras(keras):
    cases = [(Reshape((2, -1)), (None, 3, 4)), (Permute((2, 1)), (None, 3, 4)), (RepeatVector(5), (None, 4)),
             (Flatten(), (None, 2, 3, 4)), (Dense(7), (None, 5, 3))]
    for layer, shape in cases:
        theirs = getattr(keras.layers, type(layer).__name__).from_config(
            {k: v for k, v in layer.get_config().items() if k not in ("dtype", "kernel_constraint",
                                                                     "bias_constraint")})
        expected = (None, *theirs.compute_output_shape(shape)[1:])
        assert layer(Input(shape=shape[1:])).shape == expected, type(layer).__name__


class PaddingMask(Layer):
    """Makes a mask (True where the first feature is nonzero), as Embedding(mask_zero=True) does."""

    def call(self, x):
        return x

    def compute_mask(self, inputs, previous_mask=None):
        return inputs.data[..., 0] != 0


class MaskedMean(Layer):
    """Mean over time of the unmasked steps: receives the mask through call(mask=)."""

    def call(self, x, mask=None):
        weights = np.ones(x.shape[:2]) if mask is None else mask.astype(x.dtype)
        return (x * weights[..., None]).sum(axis=1) / weights.sum(axis=1, keepdims=True)


def test_masks_flow_from_the_layer_that_makes_them_to_the_layer_that_uses_them():
    x = np.array([[[1.0, 2.0], [3.0, 4.0], [0.0, 9.0]]])
    h = PaddingMask()(x)
    assert layers.masking.get_mask(h).tolist() == [[True, True, False]]
    dense = Dense(2, kernel_initializer="identity", dtype="float64")
    y = dense(h)  # Dense supports masking: the mask passes through
    assert layers.masking.get_mask(y).tolist() == [[True, True, False]]
    np.testing.assert_allclose(MaskedMean()(y).data, [[2.0, 3.0]])
    assert layers.masking.get_mask(Flatten()(y)) is None  # Flatten does not support masking
    both = layers.add([y, y])
    assert layers.masking.get_mask(both).tolist() == [[True, True, False]]
    np.testing.assert_allclose(MaskedMean()(x).data, [[4.0 / 3, 5.0]])


def test_add_weight_takes_keras_keywords_and_rejects_a_positional_shape():
    layer = Layer(name="holder", dtype="float64")
    w = layer.add_weight(shape=(2, 3), initializer="random_normal", trainable=False)
    assert w.shape == (2, 3) and w.dtype == np.float64 and w.name == "holder/weight_0" and not w.requires_grad
    assert layer.non_trainable_weights == [w]
    with pytest.raises(TypeError, match="pass the shape by keyword"):
        layer.add_weight((2, 3))


def test_a_user_class_named_like_a_builtin_does_not_replace_it():
    class Dense(layers.Layer):  # a user's own "Dense": same class name as shendu's
        def __init__(self, units=1, **kwargs):
            super().__init__(**kwargs)
            self.units = units

        def call(self, x):
            return x

    assert layers.LAYER_REGISTRY["Dense"] is shendu.layers.Dense
    builtin = layers.deserialize({"class_name": "Dense", "config": {"units": 3}})  # existing files mean shendu's
    assert type(builtin) is shendu.layers.Dense and builtin.units == 3
    spec = layers.serialize(Dense(units=2))
    assert spec["class_name"] == f"{__name__}>test_a_user_class_named_like_a_builtin_does_not_replace_it.<locals>.Dense"
    restored = layers.deserialize(spec)
    assert type(restored) is Dense and restored.units == 2
    assert type(layers.deserialize(spec, custom_objects={"Dense": Dense})) is Dense  # Keras-style custom_objects
    with pytest.raises(ValueError, match="unknown layer class 'NoSuchLayer'"):
        layers.deserialize({"class_name": "NoSuchLayer", "config": {}})


def test_redefining_a_user_class_replaces_the_earlier_definition():
    def define():
        class RedefinedScale(layers.Layer):
            def call(self, x):
                return x

        return RedefinedScale

    first, second = define(), define()
    assert layers.LAYER_REGISTRY["RedefinedScale"] is second is not first
    assert layers.registered_name(second) == "RedefinedScale"
