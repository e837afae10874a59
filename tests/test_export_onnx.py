"""ONNX export (``model.export(path, format="onnx")``): every exported model runs in onnxruntime and matches
``predict`` to 1e-4, at the batch size the model was built with and at others (the batch axis is dynamic).
Every layer kind with a converter has a case; unsupported layers and formats fail with clear errors."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

import shendu
from shendu import activations
from shendu import layers as L
from shendu.export import CONVERTERS, DEFAULT_OPSET, register_onnx_converter
from shendu.export.activations import ACTIVATIONS
from shendu.models import Model, Sequential

try:
    import onnx
    import onnxruntime as ort
except ImportError:  # the optional extra is not installed: the tests that need it skip
    onnx = ort = None

needs_onnx = pytest.mark.skipif(ort is None, reason="needs onnx and onnxruntime (pip install 'shendu[onnx]')")

TOL = 1e-4
BATCHES = (3, 1, 5)  # the models are built with 3 (or with no batch at all); ONNX runs them at each


def randomize(model, seed: int = 0) -> None:
    """Every weight random (biases and moving statistics too), so no path hides behind zeros and ones."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        if "moving_variance" in w.name:
            w.data[...] = rng.uniform(0.5, 1.5, w.shape)
        else:
            w.data[...] = rng.normal(0.0, 0.5, w.shape)


def sample(shape, batch, rng, dtype="float32", high=None):
    if high is not None:
        return rng.integers(0, high, (batch, *shape)).astype(dtype)
    return rng.normal(size=(batch, *shape)).astype(dtype)


def export_and_compare(model, make_inputs, tmp_path, tol=TOL):
    """Export, load in onnxruntime and compare every output with ``predict`` at several batch sizes."""
    path = tmp_path / "model.onnx"
    model.export(str(path), format="onnx")
    assert sorted(os.listdir(tmp_path)) == ["model.onnx"]  # written atomically: no temporaries left
    proto = onnx.load(str(path))
    assert proto.opset_import[0].version == DEFAULT_OPSET
    for value in proto.graph.input:
        assert value.type.tensor_type.shape.dim[0].dim_param == "batch"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    for batch in BATCHES:
        xs = make_inputs(batch, rng)
        xs = xs if isinstance(xs, list) else [xs]
        feeds = {spec.name: x for spec, x in zip(session.get_inputs(), xs)}
        got = session.run(None, feeds)
        want = model.predict(xs if len(xs) > 1 else xs[0], verbose=0)
        want = [np.asarray(w) for w in (want if isinstance(want, (list, tuple)) else [want])]
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.shape == w.shape and g.shape[0] == batch
            np.testing.assert_allclose(g, w, atol=tol, rtol=tol)
    return proto


def seq_case(layers_, shape, high=None):
    """A Sequential of ``layers_`` on inputs (batch, *shape), built with batch 3."""
    def make():
        model = Sequential(layers_())
        dtype = "int64" if high is not None else "float32"
        model.predict(sample(shape, 3, np.random.default_rng(0), dtype, high), verbose=0)  # builds with batch 3
        return model, lambda batch, rng: sample(shape, batch, rng, dtype, high)
    return make


# ---------------------------------------------------------------------------- one case per layer kind
SEQUENTIAL_CASES = {
    "dense_dropout": seq_case(lambda: [L.Dense(8, activation="relu"), L.Dropout(0.5), L.Dense(3, use_bias=False)],
                              (5,)),
    "dense_3d": seq_case(lambda: [L.Dense(4, activation="tanh")], (6, 5)),
    "activation_layers": seq_case(lambda: [L.Activation("gelu"), L.Activation("softmax")], (7,)),
    "relu_layers": seq_case(lambda: [L.ReLU(), L.Dense(6), L.ReLU(max_value=1.0), L.Dense(6),
                                     L.ReLU(negative_slope=0.1, threshold=0.5), L.Dense(6), L.ReLU(threshold=0.3),
                                     L.Dense(6), L.ReLU(max_value=2, negative_slope=0.2, threshold=0.25)], (5,)),
    "leaky_relu_elu": seq_case(lambda: [L.LeakyReLU(), L.Dense(6), L.LeakyReLU(negative_slope=0.05), L.Dense(6),
                                        L.ELU(), L.Dense(6), L.ELU(alpha=0.5)], (5,)),
    "softmax_axes": seq_case(lambda: [L.Dense(4), L.Softmax(), L.Dense(4), L.Softmax(axis=1), L.Dense(4),
                                      L.Softmax(axis=(1, 2))], (3, 5)),
    "prelu": seq_case(lambda: [L.PReLU(), L.Conv2D(4, 3), L.PReLU(shared_axes=[1, 2]), L.Flatten(), L.Dense(5),
                               L.PReLU(alpha_initializer="ones")], (6, 5, 3)),
    "batchnorm_dense": seq_case(lambda: [L.Dense(6), L.BatchNormalization()], (4,)),
    "batchnorm_axis1": seq_case(lambda: [L.BatchNormalization(axis=1, center=False)], (3, 5)),
    "layernorm": seq_case(lambda: [L.LayerNormalization(epsilon=1e-5)], (4, 6)),
    "layernorm_axes": seq_case(lambda: [L.LayerNormalization(axis=(1, 2), scale=False)], (4, 6)),
    "layernorm_rms": seq_case(lambda: [L.LayerNormalization(rms_scaling=True)], (6,)),
    "conv1d": seq_case(lambda: [L.Conv1D(4, 3, activation="relu"), L.Conv1D(4, 3, strides=2, padding="same"),
                                L.Conv1D(6, 2, padding="causal", dilation_rate=2, groups=2)], (11, 3)),
    "conv2d": seq_case(lambda: [L.Conv2D(4, 3, padding="same", activation="relu"),
                                L.Conv2D(6, (3, 2), strides=2, groups=2),
                                L.Conv2D(3, 3, padding="same", dilation_rate=2)], (10, 9, 2)),
    "conv2d_channels_first": seq_case(lambda: [L.Conv2D(4, 3, padding="same", data_format="channels_first"),
                                               L.MaxPooling2D(data_format="channels_first"),
                                               L.GlobalAveragePooling2D(data_format="channels_first")], (2, 8, 8)),
    "depthwise_separable": seq_case(lambda: [L.DepthwiseConv2D(3, depth_multiplier=2, padding="same"),
                                             L.SeparableConv2D(5, 3, strides=2, depth_multiplier=2,
                                                               activation="relu")], (9, 9, 3)),
    "conv2d_transpose": seq_case(lambda: [L.Conv2DTranspose(4, 3, strides=2, padding="same"),
                                          L.Conv2DTranspose(3, 3, strides=2),
                                          L.Conv2DTranspose(2, 1, strides=2, padding="same"),
                                          L.Conv2DTranspose(2, 2, strides=(2, 1), padding="valid"),
                                          L.Conv2DTranspose(2, 3, strides=2, padding="same", output_padding=0)],
                                 (4, 5, 3)),
    "pool2d": seq_case(lambda: [L.MaxPooling2D(), L.AveragePooling2D(3, strides=1, padding="same"),
                                L.MaxPooling2D(3, strides=2, padding="same"), L.AveragePooling2D(2)], (13, 12, 2)),
    "pool1d": seq_case(lambda: [L.MaxPooling1D(2), L.AveragePooling1D(3, strides=1, padding="same"),
                                L.MaxPooling1D(3, strides=2, padding="same")], (15, 3)),
    "global_pool": seq_case(lambda: [L.GlobalMaxPooling2D(keepdims=True), L.GlobalAveragePooling2D()], (5, 4, 3)),
    "global_pool1d": seq_case(lambda: [L.Conv1D(4, 2), L.GlobalAveragePooling1D(keepdims=True),
                                       L.GlobalMaxPooling1D()], (6, 3)),
    "reshaping": seq_case(lambda: [L.Flatten(), L.Dense(12), L.Reshape((3, -1)), L.Permute((2, 1)),
                                   L.Flatten(), L.RepeatVector(2)], (2, 3, 2)),
    "flatten_channels_first": seq_case(lambda: [L.Flatten(data_format="channels_first")], (2, 3, 4)),
    "rescaling_spatial_dropout": seq_case(lambda: [L.Rescaling(1 / 255, offset=-0.5), L.SpatialDropout2D(0.3)],
                                          (4, 4, 2)),
    "pad_crop_upsample": seq_case(lambda: [L.ZeroPadding2D(((1, 2), (0, 1))), L.Cropping2D(((1, 0), (2, 1))),
                                           L.UpSampling2D((2, 3)), L.UpSampling2D(2, interpolation="bilinear")],
                                  (5, 6, 2)),
    "pad_crop_upsample_channels_first": seq_case(
        lambda: [L.ZeroPadding2D(1, data_format="channels_first"), L.Cropping2D((0, 2), data_format="channels_first"),
                 L.UpSampling2D(2, data_format="channels_first", interpolation="bilinear")], (2, 4, 5)),
    "random_augmentation": seq_case(lambda: [L.RandomFlip(), L.RandomRotation(0.1), L.RandomTranslation(0.1, 0.1),
                                             L.RandomZoom(0.1), L.Conv2D(2, 3)], (6, 6, 3)),
    "normalization": seq_case(lambda: [L.Normalization(mean=[1.0, -2.0, 0.5], variance=[4.0, 0.25, 1.0]),
                                       L.Normalization(mean=0.5, variance=2.0, invert=True)], (4, 3)),
    "time_distributed": seq_case(lambda: [L.TimeDistributed(L.Conv2D(3, 3, activation="relu")),
                                          L.TimeDistributed(L.Flatten()), L.TimeDistributed(L.Dense(4)),
                                          L.LSTM(3)], (4, 6, 5, 2)),
    "embedding": seq_case(lambda: [L.Embedding(20, 6), L.GlobalAveragePooling1D()], (7,), high=20),
    "rnns": seq_case(lambda: [L.LSTM(5, return_sequences=True), L.GRU(4, return_sequences=True),
                              L.SimpleRNN(3)], (6, 4)),
    "rnn_options": seq_case(lambda: [L.LSTM(4, recurrent_activation="hard_sigmoid", return_sequences=True,
                                            go_backwards=True),
                                     L.GRU(3, reset_after=False, use_bias=False, return_sequences=True),
                                     L.SimpleRNN(3, activation="relu", go_backwards=True, return_sequences=True),
                                     L.GRU(2, go_backwards=True)], (5, 3)),
    "bidirectional": seq_case(lambda: [L.Bidirectional(L.LSTM(4, return_sequences=True)),
                                       L.Bidirectional(L.GRU(3, return_sequences=True), merge_mode="sum"),
                                       L.Bidirectional(L.SimpleRNN(3, return_sequences=True), merge_mode="mul"),
                                       L.Bidirectional(L.LSTM(2), merge_mode="ave")], (6, 3)),
    "embedding_lstm_dense": seq_case(lambda: [L.Embedding(30, 8), L.Bidirectional(L.LSTM(6)),
                                              L.Dense(2, activation="softmax")], (9,), high=30),
}


@needs_onnx
@pytest.mark.parametrize("case", sorted(SEQUENTIAL_CASES))
def test_sequential_models_match_predict(case, tmp_path):
    shendu.seed(0)
    model, make_inputs = SEQUENTIAL_CASES[case]()
    randomize(model)
    export_and_compare(model, make_inputs, tmp_path)


@needs_onnx
@pytest.mark.parametrize("name", sorted(activations.serialize(fn) for fn in ACTIVATIONS))
def test_every_exportable_activation_matches(name, tmp_path):
    shendu.seed(0)
    model = Sequential([L.Dense(6, activation=name, input_shape=(4,))])
    randomize(model)
    export_and_compare(model, lambda batch, rng: sample((4,), batch, rng), tmp_path)


def test_every_shendu_activation_is_exportable():
    assert set(activations._BY_NAME.values()) <= set(ACTIVATIONS)


def two_inputs(shape_a, shape_b):
    return lambda batch, rng: [sample(shape_a, batch, rng), sample(shape_b, batch, rng)]


@needs_onnx
def test_functional_merges_multi_input_multi_output(tmp_path):
    shendu.seed(0)
    a, b = L.Input(shape=(4,), name="left"), L.Input(shape=(4,), name="right")
    ha, hb = L.Dense(4, activation="tanh")(a), L.Dense(4)(b)
    merged = [L.Add()([ha, hb, a]), L.Subtract()([ha, hb]), L.Multiply()([ha, hb, b]), L.Average()([ha, hb]),
              L.Maximum()([ha, hb, a]), L.Minimum()([ha, hb])]
    joined = L.Concatenate()(merged)
    dots = [L.Dot(axes=1)([ha, hb]), L.Dot(axes=1, normalize=True)([ha, hb])]
    model = Model([a, b], [L.Dense(2, name="head")(joined), L.Concatenate(name="dots")(dots)])
    randomize(model)
    proto = export_and_compare(model, two_inputs((4,), (4,)), tmp_path)
    assert [i.name for i in proto.graph.input] == ["left", "right"]
    assert [o.name for o in proto.graph.output] == ["head", "dots"]


@needs_onnx
def test_functional_dot_3d_concatenate_axis_and_nested_sequential(tmp_path):
    shendu.seed(0)
    x, y = L.Input(shape=(5, 3)), L.Input(shape=(4, 3))
    inner = Sequential([L.Dense(3, activation="relu"), L.LayerNormalization()])
    scores = L.Dot(axes=(2, 2))([inner(x), inner(y)])  # a shared nested model, called twice
    out = L.Concatenate(axis=1)([L.Permute((2, 1))(scores), L.Dense(5)(y)])
    model = Model([x, y], out)
    randomize(model)
    export_and_compare(model, two_inputs((5, 3), (4, 3)), tmp_path)


@needs_onnx
def test_functional_rnn_states_and_bidirectional_outputs(tmp_path):
    shendu.seed(0)
    x = L.Input(shape=(6, 3), name="series")
    seq, h, c = L.LSTM(4, return_sequences=True, return_state=True)(x)
    gru_out, gru_h = L.GRU(3, return_state=True, go_backwards=True)(seq)
    fw, bw = L.Bidirectional(L.SimpleRNN(2, return_sequences=True), merge_mode=None)(x)
    both, *states = L.Bidirectional(L.GRU(2, return_state=True))(x)
    model = Model(x, [seq, h, c, gru_out, gru_h, fw, bw, both, *states])
    randomize(model)
    export_and_compare(model, lambda batch, rng: sample((6, 3), batch, rng), tmp_path)


@needs_onnx
def test_functional_embedding_with_integer_input(tmp_path):
    shendu.seed(0)
    ids = L.Input(shape=(5,), dtype="int32", name="ids")
    out = L.GRU(4)(L.Embedding(12, 3)(ids))
    model = Model(ids, out)
    randomize(model)
    proto = export_and_compare(model, lambda batch, rng: sample((5,), batch, rng, "int32", 12), tmp_path)
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.INT32


@needs_onnx
def test_multi_head_attention(tmp_path):
    shendu.seed(0)
    q, v = L.Input(shape=(5, 8), name="query"), L.Input(shape=(6, 8), name="value")
    self_att = L.MultiHeadAttention(num_heads=2, key_dim=4)(q, q, use_causal_mask=True)
    x = L.LayerNormalization()(L.Add()([q, self_att]))
    cross, scores = L.MultiHeadAttention(3, 2, value_dim=3, output_shape=7)(x, v, return_attention_scores=True)
    keyed = L.MultiHeadAttention(2, 3, use_bias=False)(x, v, key=L.Dense(8)(v))
    model = Model([q, v], [cross, scores, keyed])
    randomize(model)
    export_and_compare(model, two_inputs((5, 8), (6, 8)), tmp_path)


@needs_onnx
def test_multi_head_attention_with_a_mask_input(tmp_path):
    shendu.seed(0)
    q, v = L.Input(shape=(4, 6)), L.Input(shape=(5, 6))
    mask = L.Input(shape=(4, 5), name="mask")
    out = L.MultiHeadAttention(2, 3)(q, v, attention_mask=mask)
    model = Model([q, v, mask], out)
    randomize(model)

    def make(batch, rng):
        m = rng.random((batch, 4, 5)) < 0.7
        m[:, :, 0] = True  # every query sees at least one key
        return [sample((4, 6), batch, rng), sample((5, 6), batch, rng), m.astype("float32")]
    export_and_compare(model, make, tmp_path)


def test_every_converter_has_a_case():
    """The cases above name every layer class in the table (a new converter needs a test)."""
    source = open(__file__, encoding="utf-8").read()
    missing = [cls.__name__ for cls in CONVERTERS if f"L.{cls.__name__}(" not in source]
    assert not missing, f"converters without a test case: {missing}"


# ---------------------------------------------------------------------------- errors and options
@needs_onnx
def test_unsupported_layer_names_the_layer_and_its_class(tmp_path):
    model = Sequential([L.Dense(3, input_shape=(2,)), L.Lambda(lambda t: t * 2, name="doubler")])
    with pytest.raises(NotImplementedError, match=r"layer 'doubler' \(Lambda\) has no ONNX converter.*"
                                                  r"register_onnx_converter"):
        model.export(str(tmp_path / "m.onnx"))
    assert not os.listdir(tmp_path)  # nothing written


class Doubler(L.Layer):
    def call(self, inputs):
        return inputs * 2


@needs_onnx
def test_a_custom_layer_exports_once_its_converter_is_registered(tmp_path):
    model = Sequential([L.Dense(3, input_shape=(2,)), Doubler(name="twice")])
    with pytest.raises(NotImplementedError, match=r"layer 'twice' \(Doubler\)"):
        model.export(str(tmp_path / "m.onnx"))

    @register_onnx_converter(Doubler)
    def doubler(b, layer, x):
        return b.op("Mul", [x, b.scalar(2.0)], layer.name)

    try:
        export_and_compare(model, lambda batch, rng: sample((2,), batch, rng), tmp_path)
    finally:
        del CONVERTERS[Doubler]


@needs_onnx
def test_a_subclass_of_a_known_layer_is_not_converted_by_its_parent_rule(tmp_path):
    class ScaledDense(L.Dense):
        def call(self, inputs):
            return super().call(inputs) * 3

    model = Sequential([ScaledDense(2, input_shape=(3,), name="scaled")])
    with pytest.raises(NotImplementedError, match=r"'scaled' \(ScaledDense\)"):
        model.export(str(tmp_path / "m.onnx"))


@needs_onnx
def test_other_formats_and_arguments_are_refused(tmp_path):
    model = Sequential([L.Dense(1, input_shape=(2,))])
    with pytest.raises(ValueError, match="format 'tf_saved_model' is not supported.*'onnx'"):
        model.export(str(tmp_path / "m"), format="tf_saved_model")
    with pytest.raises(TypeError, match="opset_version"):
        model.export(str(tmp_path / "m.onnx"), jax2tf_kwargs={})
    with pytest.raises(ValueError, match="opset_version must be at least"):
        model.export(str(tmp_path / "m.onnx"), opset_version=11)


@needs_onnx
def test_masking_subclassed_models_and_odd_activations_are_refused(tmp_path):
    path = str(tmp_path / "m.onnx")
    masked = Sequential([L.Embedding(10, 4, mask_zero=True, input_shape=(5,)), L.LSTM(3)])
    with pytest.raises(NotImplementedError, match=r"'.*' \(Embedding\) has mask_zero=True"):
        masked.export(path)
    custom = Sequential([L.Dense(2, activation=lambda t: t * 2, input_shape=(3,), name="odd")])
    with pytest.raises(NotImplementedError, match=r"layer 'odd' \(Dense\) uses the activation"):
        custom.export(path)
    gelu_rnn = Sequential([L.SimpleRNN(2, activation="gelu", input_shape=(4, 3), name="cell")])
    with pytest.raises(NotImplementedError, match=r"'cell' \(SimpleRNN\).*recurrent cell"):
        gelu_rnn.export(path)

    class Net(Model):
        def __init__(self):
            super().__init__()
            self.dense = L.Dense(2)

        def call(self, inputs, training=None):
            return self.dense(inputs)

    net = Net()
    net(np.zeros((1, 3), dtype="float32"))
    with pytest.raises(NotImplementedError, match="subclassed model"):
        net.export(path)
    assert not os.path.exists(path)


@needs_onnx
def test_an_unbuilt_sequential_needs_an_input_signature(tmp_path):
    shendu.seed(0)
    model = Sequential([L.Dense(3, activation="relu"), L.Dense(2)])
    with pytest.raises(ValueError, match="input_signature"):
        model.export(str(tmp_path / "m.onnx"))
    model.export(str(tmp_path / "m.onnx"), input_signature=[(None, 4)], opset_version=18)
    proto = onnx.load(str(tmp_path / "m.onnx"))
    assert proto.opset_import[0].version == 18
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(size=(7, 4)).astype("float32")
    np.testing.assert_allclose(session.run(None, {"input": x})[0], model.predict(x, verbose=0), atol=TOL)


@needs_onnx
def test_export_replaces_an_existing_file(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"old")
    model = Sequential([L.Dense(1, input_shape=(2,))])
    model.export(path, verbose=True)
    assert onnx.load(str(path)).graph.output[0].name == model.output_names[0]


def test_without_onnx_shendu_imports_and_export_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` now raises ImportError
    model = Sequential([L.Dense(1, input_shape=(2,))])
    with pytest.raises(ImportError, match=r"pip install 'shendu\[onnx\]'"):
        model.export(str(tmp_path / "m.onnx"))
    assert not os.listdir(tmp_path)
