"""scaled_dot_product_attention (shendu.ops.attention): gradient checks and forward+backward against
torch.nn.functional.scaled_dot_product_attention, with boolean, float and causal masks."""

import numpy as np
import pytest

import shendu
from shendu.ops.attention import scaled_dot_product_attention as sdpa


def _t64(*shape, seed=0):
    rng = np.random.default_rng(seed + 10 * len(shape) + sum(shape))
    return shendu.tensor(rng.standard_normal(shape), dtype="float64", requires_grad=True)


def _qkv():
    return [_t64(2, 3, 4, 5), _t64(2, 3, 6, 5, seed=1), _t64(2, 3, 6, 7, seed=2)]


def _bool_mask(rows=4, cols=6):
    mask = np.random.default_rng(5).random((rows, cols)) > 0.4
    mask[:, 0] = True  # every query sees at least one key
    return mask


FLOAT_MASK = np.random.default_rng(6).standard_normal((4, 6))


def _seeded_dropout(q, k, v):
    shendu.seed(3)  # the same dropout mask on every call, so finite differences see one function
    return sdpa(q, k, v, dropout_p=0.3)


GRADCHECK_CASES = [
    ("ScaledDotProductAttentionOp", sdpa, _qkv),
    ("ScaledDotProductAttentionOp", lambda q, k, v: sdpa(q, k, v, _bool_mask(), return_attention_weights=True), _qkv),
    ("ScaledDotProductAttentionOp", lambda q, k, v: sdpa(q, k, v, FLOAT_MASK, scale=0.3), _qkv),
    ("ScaledDotProductAttentionOp", lambda q, k, v: sdpa(q, k, v, is_causal=True),
     lambda: [_t64(2, 4, 3), _t64(2, 4, 3, seed=1), _t64(2, 4, 2, seed=2)]),
    ("ScaledDotProductAttentionOp", _seeded_dropout, _qkv),
]


@pytest.mark.parametrize("name,fn,make_inputs", GRADCHECK_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(GRADCHECK_CASES)])
def test_attention_gradcheck(name, fn, make_inputs):
    assert shendu.gradcheck(fn, *make_inputs())


@pytest.mark.parametrize("kwargs", [{}, {"attn_mask": "bool"}, {"attn_mask": "float"}, {"is_causal": True},
                                    {"scale": 0.25}, {"attn_mask": "bool", "is_causal": True}],
                         ids=["plain", "bool-mask", "float-mask", "causal", "scale", "bool-causal"])
def test_matches_torch(kwargs):
    torch = pytest.importorskip("torch")
    kwargs = dict(kwargs)
    q, k, v = _qkv()
    if kwargs.get("is_causal"):
        k, v = _t64(2, 3, 4, 5, seed=1), _t64(2, 3, 4, 7, seed=2)
    torch_kwargs = dict(kwargs)
    if kwargs.get("attn_mask") == "bool":
        mask = _bool_mask(4, k.shape[-2])
        if kwargs.get("is_causal"):  # torch takes one or the other: give it the combined mask
            mask = mask & np.tril(np.ones((4, 4), dtype=bool))
            torch_kwargs.pop("is_causal")
        kwargs["attn_mask"], torch_kwargs["attn_mask"] = mask, torch.from_numpy(mask)
    elif kwargs.get("attn_mask") == "float":
        kwargs["attn_mask"], torch_kwargs["attn_mask"] = FLOAT_MASK, torch.from_numpy(FLOAT_MASK)
    y = sdpa(q, k, v, **kwargs)
    g = np.random.default_rng(9).standard_normal(y.shape)
    y.backward(g)
    tq, tk, tv = (torch.tensor(t.data, requires_grad=True) for t in (q, k, v))
    ty = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, **torch_kwargs)
    ty.backward(torch.from_numpy(g))
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    for ours, theirs in zip((q, k, v), (tq, tk, tv)):
        np.testing.assert_allclose(ours.grad.data, theirs.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_weights_are_a_softmax_and_masked_keys_get_none():
    q, k, v = _qkv()
    mask = _bool_mask()
    y, w = sdpa(q, k, v, mask, return_attention_weights=True)
    np.testing.assert_allclose(w.data.sum(-1), 1.0, rtol=1e-12)
    assert not w.data[..., ~mask].any()


def test_fully_masked_row_gives_uniform_weights_not_nan():
    q, k, v = _qkv()
    mask = _bool_mask()
    mask[1] = False
    y, w = sdpa(q, k, v, mask, return_attention_weights=True)
    assert np.isfinite(y.data).all()
    np.testing.assert_allclose(w.data[..., 1, :], 1 / 6)


def test_float32_and_shape_errors():
    q, k, v = (shendu.tensor(t.data.astype(np.float32), requires_grad=True) for t in _qkv())
    y = sdpa(q, k, v, is_causal=False)
    y.sum().backward()
    assert y.dtype == np.float32 and q.grad.dtype == np.float32
    with pytest.raises(ValueError, match="must agree"):
        sdpa(q, v, v)
    with pytest.raises(ValueError, match="dropout_p"):
        sdpa(q, k, v, dropout_p=1.0)
