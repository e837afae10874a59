"""Embedding: the lookup op (gradient and double backward, torch.nn.Embedding) and the Keras layer
(mask_zero masks reaching recurrent layers, config round trip, errors)."""

import numpy as np
import pytest

import shendu
from shendu.layers import Dense, deserialize, serialize
from shendu.layers.embedding import Embedding
from shendu.layers.masking import get_mask
from shendu.layers.recurrent import LSTM
from shendu.models import Sequential
from shendu.ops.lookup import EmbeddingGradOp, embedding_lookup

IDS = np.array([[1, 4, 1, 0], [3, 3, 3, 2]])


def _table(rows=5, dim=3):
    return [shendu.tensor(np.random.default_rng(rows).standard_normal((rows, dim)), requires_grad=True)]


def _rows():
    return [shendu.tensor(np.random.default_rng(1).standard_normal((2, 4, 3)), requires_grad=True)]


GRADCHECK_CASES = [
    ("EmbeddingLookupOp", lambda w: embedding_lookup(IDS, w), _table),
    ("EmbeddingLookupOp", lambda w: embedding_lookup(np.array([2, 2, 0]), w) ** 2, _table),
    ("EmbeddingGradOp", lambda rows: EmbeddingGradOp(IDS, 5)(rows), _rows),
]


@pytest.mark.parametrize("name,fn,make_inputs", GRADCHECK_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(GRADCHECK_CASES)])
def test_embedding_gradcheck(name, fn, make_inputs):
    assert shendu.gradcheck(fn, *make_inputs())


def test_embedding_gradgradcheck():
    assert shendu.gradgradcheck(lambda w: embedding_lookup(IDS, w) ** 3, *_table())


def test_lookup_matches_torch():
    torch = pytest.importorskip("torch")
    (w,) = _table()
    y = embedding_lookup(IDS, w)
    g = np.random.default_rng(2).standard_normal(y.shape)
    y.backward(g)
    tw = torch.tensor(w.data, requires_grad=True)
    ty = torch.nn.functional.embedding(torch.from_numpy(IDS), tw)
    ty.backward(torch.from_numpy(g))
    np.testing.assert_allclose(y.data, ty.detach().numpy())
    np.testing.assert_allclose(w.grad.data, tw.grad.numpy(), rtol=1e-12)


def test_layer_shapes_config_and_defaults():
    layer = Embedding(10, 4, mask_zero=True, input_length=4, name="emb")
    y = layer(IDS)
    assert y.shape == (2, 4, 4) and y.dtype == np.float32
    assert np.abs(layer.embeddings.data).max() <= 0.05  # Keras 'uniform': U(-0.05, 0.05)
    assert layer.compute_output_shape((None, 4)) == (None, 4, 4)
    clone = deserialize(serialize(layer))
    assert (clone.input_dim, clone.output_dim, clone.mask_zero) == (10, 4, True)


def test_mask_zero_attaches_the_mask():
    layer = Embedding(10, 4, mask_zero=True)
    y = layer(IDS)
    np.testing.assert_array_equal(get_mask(y), IDS != 0)
    assert get_mask(Embedding(10, 4)(IDS)) is None


def test_masked_padding_does_not_change_the_lstm_output():
    """Trailing padding under mask_zero gives the same final state as the unpadded sequence."""
    shendu.seed(1)
    model = Sequential([Embedding(10, 4, mask_zero=True), LSTM(3)])
    padded = model(np.array([[5, 2, 7, 0, 0]]))
    short = model(np.array([[5, 2, 7]]))
    np.testing.assert_allclose(padded.data, short.data, rtol=1e-6)


def test_float_ids_that_are_integers_are_accepted_and_out_of_range_ids_explained():
    layer = Embedding(5, 2)
    assert layer(IDS.astype(np.float32)).shape == (2, 4, 2)
    with pytest.raises(IndexError, match="input_dim=5"):
        layer(np.array([[7]]))
    with pytest.raises(TypeError, match="integers"):
        embedding_lookup(np.array([0.5]), layer.embeddings)


def test_embedding_trains_in_a_model():
    shendu.seed(0)
    model = Sequential([Embedding(6, 4), LSTM(4), Dense(1, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy")
    x = np.random.default_rng(0).integers(0, 6, (16, 5))
    y = (x[:, :1] > 2).astype(np.float32)
    history = model.fit(x, y, epochs=3, batch_size=8, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_loss_ignores_masked_time_steps_as_keras_does():
    model = Sequential([Embedding(10, 4, mask_zero=True), LSTM(8, return_sequences=True),
                        Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    x = np.array([[1, 2, 0, 0], [3, 4, 5, 0]])
    y = np.array([[1, 2, 0, 0], [0, 1, 2, 0]])
    changed_at_padding = y.copy()
    changed_at_padding[0, 2:] = 2
    changed_at_padding[1, 3] = 1
    changed_at_real_step = y.copy()
    changed_at_real_step[0, 0] = 2
    loss = model.evaluate(x, y, verbose=0)
    assert model.evaluate(x, changed_at_padding, verbose=0) == pytest.approx(loss, rel=1e-6)
    assert model.evaluate(x, changed_at_real_step, verbose=0) != pytest.approx(loss, rel=1e-6)
