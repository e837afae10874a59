"""Reliability regressions of the ops (issue 13): each case once gave a silent wrong answer or a crash.

* the products (F.linear, matmul) follow one dtype rule (shendu.ops.linalg): integer data takes the float
  weight's dtype, mixed floats promote as elementwise ops do, and a float64 bias promotes like add;
* LayerNormalization over a size-1 axis failed in backward ("cannot reshape array of size 6400 into shape
  (1,)"); the shape cases of tests/test_normalization.py cover it op by op, this trains a model with it.
"""

import numpy as np
import pytest

import shendu
import shendu.functional as F
from shendu.layers import Dense, LayerNormalization
from shendu.models import Sequential


@pytest.mark.parametrize("product", ["linear", "matmul"])
def test_products_match_dtypes_like_every_op(product):
    """One rule (shendu.ops.linalg): integer data takes the float weight's dtype; mixed floats promote."""
    w = shendu.tensor(np.ones((3, 2)), dtype="float32", requires_grad=True)
    b = shendu.tensor(np.ones(2), dtype="float32", requires_grad=True)
    run = (lambda x: F.linear(x, w, b)) if product == "linear" else (lambda x: shendu.matmul(x, w) + b)
    y = run(shendu.tensor(np.arange(6).reshape(2, 3)))  # int64 data: was computed (and returned) in float64
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y.data, np.arange(6).reshape(2, 3) @ np.ones((3, 2)) + 1)
    x64 = shendu.tensor(np.ones((2, 3)), dtype="float64", requires_grad=True)
    y = run(x64)
    assert y.dtype == np.float64 and y.dtype == (x64 + w[:, 0]).dtype  # as elementwise ops (and NumPy) promote
    y.sum().backward()
    assert x64.grad.dtype == np.float64 and w.grad.dtype == np.float32 and b.grad.dtype == np.float32
    np.testing.assert_array_equal(w.grad.data, np.full((3, 2), 2.0))


def test_linear_with_a_float64_bias_promotes_like_add():
    x = shendu.tensor(np.ones((2, 3)), dtype="float32")
    w = shendu.tensor(np.ones((3, 2)), dtype="float32")
    y = F.linear(x, w, shendu.tensor(np.full(2, 0.5), dtype="float64"))
    assert y.dtype == np.float64 and y.data.tolist() == [[3.5, 3.5], [3.5, 3.5]]


def test_layernorm_over_a_size_one_axis_trains():
    shendu.seed(0)
    x = np.random.default_rng(0).standard_normal((64, 100, 1)).astype("float32")
    y = np.random.default_rng(1).standard_normal((64, 100, 1)).astype("float32")
    model = Sequential([LayerNormalization(), Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    history = model.fit(x, y, epochs=2, batch_size=32, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    norm = model.layers[0]
    ((model(x) - y) ** 2).mean().backward()
    assert norm.gamma.grad.shape == (1,) and norm.beta.grad.shape == (1,)
    np.testing.assert_array_equal(norm.gamma.grad.data, [0.0])  # a size-1 axis normalises to 0: y = beta
