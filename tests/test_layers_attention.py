"""MultiHeadAttention: Keras signature and weight layout, masks (explicit, causal, from Embedding), dropout,
configs, the functional API, gradients, and parity with torch.nn.MultiheadAttention (projections mapped)."""

import numpy as np
import pytest

import shendu
from shendu.layers import Dense, Input, LayerNormalization, deserialize, serialize
from shendu.layers.attention import MultiHeadAttention
from shendu.layers.embedding import Embedding
from shendu.models import Model

RNG = np.random.default_rng(0)
Q = RNG.standard_normal((2, 4, 6))
V = RNG.standard_normal((2, 5, 6))


def _mha(**kwargs):
    shendu.seed(1)
    kwargs.setdefault("num_heads", 2)
    kwargs.setdefault("key_dim", 3)
    return MultiHeadAttention(dtype="float64", bias_initializer="random_normal", **kwargs)


def test_shapes_weights_and_scores():
    mha = _mha(value_dim=4, output_shape=7)
    out, scores = mha(Q, V, return_attention_scores=True)
    assert out.shape == (2, 4, 7) and scores.shape == (2, 2, 4, 5)
    assert [w.shape for w in mha.weights] == [(6, 2, 3), (2, 3), (6, 2, 3), (2, 3), (6, 2, 4), (2, 4),
                                              (2, 4, 7), (7,)]
    np.testing.assert_allclose(scores.data.sum(-1), 1.0, rtol=1e-12)
    assert _mha()(Q, V).shape == (2, 4, 6)


def test_attention_mask_and_causal_mask():
    mha = _mha()
    mask = RNG.random((2, 4, 5)) > 0.4
    mask[..., 0] = True
    _, scores = mha(Q, V, attention_mask=mask, return_attention_scores=True)
    assert not scores.data.transpose(0, 2, 3, 1)[~mask].any()
    _, causal = mha(Q, Q, use_causal_mask=True, return_attention_scores=True)
    assert not causal.data[..., np.triu_indices(4, 1)[0], np.triu_indices(4, 1)[1]].any()


def test_masks_from_embedding_equal_an_explicit_mask():
    shendu.seed(0)
    ids = np.array([[3, 5, 2, 0, 0], [1, 4, 0, 0, 0]])
    embed = Embedding(8, 6, mask_zero=True, dtype="float64")
    mha = _mha()
    x = embed(ids)
    implicit = mha(x, x)
    keep = ids != 0
    explicit = mha(shendu.tensor(x.data), shendu.tensor(x.data), attention_mask=keep[:, :, None] & keep[:, None, :])
    np.testing.assert_allclose(implicit.data, explicit.data, rtol=1e-12)


def test_dropout_only_in_training():
    mha = _mha(dropout=0.5)
    first = mha(Q, V)
    np.testing.assert_allclose(mha(Q, V).data, first.data)
    assert not np.allclose(mha(Q, V, training=True).data, first.data)


def test_gradcheck_through_inputs_and_weights():
    mha = _mha()
    mha(Q[:, :2], V[:, :3])
    weights = [shendu.tensor(w.data, requires_grad=True) for w in mha.trainable_weights]
    q = shendu.tensor(Q[:, :2], requires_grad=True)
    v = shendu.tensor(V[:, :3], requires_grad=True)
    assert shendu.gradcheck(lambda q, v, *ws: mha.stateless_call(list(ws), [], q, v, use_causal_mask=True)[0],
                            q, v, *weights)


def test_config_round_trip_and_errors():
    mha = MultiHeadAttention(num_heads=4, key_dim=8, value_dim=2, dropout=0.1, output_shape=(5,), name="att")
    clone = deserialize(serialize(mha))
    assert clone.get_config() == mha.get_config()
    with pytest.raises(NotImplementedError, match="attention_axes"):
        MultiHeadAttention(2, 3, attention_axes=(1, 2))
    with pytest.raises(ValueError, match="num_heads"):
        MultiHeadAttention(0, 3)
    with pytest.raises(ValueError, match="query must be"):
        _mha()(Q[0], V[0])


def test_transformer_block_in_a_functional_model():
    inputs = Input(shape=(4, 6))
    attended = MultiHeadAttention(num_heads=2, key_dim=3)(inputs, inputs)
    x = LayerNormalization()(inputs + attended)
    outputs = Dense(1)(x)
    model = Model(inputs, outputs)
    model.compile("adam", "mse")
    x32 = Q.astype(np.float32)
    history = model.fit(x32, x32[..., :1], epochs=3, verbose=0)
    assert model.predict(x32, verbose=0).shape == (2, 4, 1)
    assert history.history["loss"][-1] < history.history["loss"][0]


@pytest.mark.parametrize("self_attention, causal", [(True, False), (True, True), (False, False)],
                         ids=["self", "causal", "cross"])
def test_matches_torch_multihead_attention(self_attention, causal):
    torch = pytest.importorskip("torch")
    mha = _mha()
    value = Q if self_attention else V
    q = shendu.tensor(Q, requires_grad=True)
    v = shendu.tensor(value, requires_grad=True)
    out, scores = mha(q, v, use_causal_mask=causal, return_attention_scores=True)
    g = np.random.default_rng(5).standard_normal(out.shape)
    out.backward(g)

    wq, bq, wk, bk, wv, bv, wo, bo = (w.data for w in mha.weights)
    ref = torch.nn.MultiheadAttention(6, 2, batch_first=True).double()
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.from_numpy(np.concatenate([w.reshape(6, 6).T for w in (wq, wk, wv)])))
        ref.in_proj_bias.copy_(torch.from_numpy(np.concatenate([b.reshape(-1) for b in (bq, bk, bv)])))
        ref.out_proj.weight.copy_(torch.from_numpy(wo.reshape(6, 6).T.copy()))
        ref.out_proj.bias.copy_(torch.from_numpy(bo))
    tq = torch.tensor(Q, requires_grad=True)
    tv = torch.tensor(value, requires_grad=True) if not self_attention else tq
    blocked = torch.from_numpy(np.triu(np.ones((4, 4), dtype=bool), 1)) if causal else None  # torch: True = blocked
    t_out, t_scores = ref(tq, tv, tv, attn_mask=blocked, need_weights=True, average_attn_weights=False)
    t_out.backward(torch.from_numpy(g))
    np.testing.assert_allclose(out.data, t_out.detach().numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(scores.data, t_scores.detach().numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(q.grad.data + (0 if not self_attention else v.grad.data), tq.grad.numpy(),
                               rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(mha.weights[6].grad.data.reshape(6, 6).T, ref.out_proj.weight.grad.numpy(),
                               rtol=1e-9, atol=1e-12)
