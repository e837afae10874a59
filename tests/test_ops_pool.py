"""Pooling ops (shendu.ops.pool): gradient checks, PyTorch forward/backward (NHWC <-> NCHW), the loop-level
reference with Keras 'same' padding, gradients to the first maximum on ties."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import shendu
from shendu import reference
from shendu.ops import pool

if "optest" not in sys.modules:  # shared helpers, loaded by path (pytest runs with --import-mode=importlib)
    _spec = importlib.util.spec_from_file_location("optest", Path(__file__).with_name("optest.py"))
    sys.modules["optest"] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules["optest"])
import optest  # noqa: E402


def _distinct(*shape):
    return optest.as_tensors(optest.make_arrays((shape,), "distinct"))


GRADCHECK_CASES = [
    ("MaxPool2DOp", lambda x: pool.max_pool2d(x, 2), lambda: _distinct(2, 4, 5, 2)),
    ("MaxPool2DOp", lambda x: pool.max_pool2d(x, 3, 2, "same"), lambda: _distinct(1, 5, 4, 2)),
    ("AvgPool2DOp", lambda x: pool.avg_pool2d(x, (2, 3), 1, "same"), lambda: _distinct(2, 4, 4, 2)),
    ("AvgPool2DOp", lambda x: pool.avg_pool1d(x, 3, 2, 1), lambda: _distinct(2, 7, 2)),
]

F_CASES = [  # (shendu function, torch.nn.functional name, shape, positional arguments)
    (pool.max_pool2d, "max_pool2d", (2, 6, 5, 3), (2,)),
    (pool.max_pool2d, "max_pool2d", (2, 7, 6, 3), (3, 2, 1)),
    (pool.max_pool2d, "max_pool2d", (1, 7, 8, 2), ((2, 3), (1, 2), (1, 1))),
    (pool.avg_pool2d, "avg_pool2d", (2, 6, 5, 3), (2,)),
    (pool.avg_pool2d, "avg_pool2d", (2, 7, 6, 3), (3, 2, 1)),
    (pool.max_pool1d, "max_pool1d", (2, 9, 3), (3, 2, 1)),
    (pool.avg_pool1d, "avg_pool1d", (2, 9, 3), (2,)),
]


@pytest.mark.parametrize("fn, torch_name, shape, args", F_CASES)
def test_pooling_matches_torch(fn, torch_name, shape, args):
    def torch_fn(x):
        torch = pytest.importorskip("torch")
        axes = (0, x.ndim - 1, *range(1, x.ndim - 1))
        back = (0, *range(2, x.ndim), 1)
        return getattr(torch.nn.functional, torch_name)(x.permute(*axes), *args).permute(*back)

    optest.compare_with_torch(lambda x: fn(x, *args), torch_fn, optest.make_arrays((shape,), "distinct"),
                              double=False)


@pytest.mark.parametrize("size, strides, padding", [(2, None, "valid"), (3, 2, "same"), ((2, 3), (1, 2), "same"),
                                                    (3, 1, "same"), (2, 3, "valid")])
def test_fast_pooling_agrees_with_reference(size, strides, padding):
    x, gy = optest.make_arrays(((2, 7, 6, 3), (1,)), "distinct")
    for fast, ref, ref_backward in ((pool.max_pool2d, reference.max_pool2d, reference.max_pool2d_backward),
                                    (pool.avg_pool2d, reference.avg_pool2d, reference.avg_pool2d_backward)):
        xt = shendu.tensor(x, dtype="float64", requires_grad=True)
        y = fast(xt, size, strides, padding)
        np.testing.assert_allclose(y.data, ref(x, size, strides, padding), rtol=1e-12)
        gy = np.random.default_rng(1).standard_normal(y.shape)
        y.backward(gy)
        np.testing.assert_allclose(xt.grad.data, ref_backward(x, gy, size, strides, padding), rtol=1e-12)


def test_keras_same_average_does_not_count_padding():
    y = pool.avg_pool2d(np.ones((1, 3, 3, 1)), 2, 2, "same")
    np.testing.assert_allclose(y, np.ones((1, 2, 2, 1)))
    y_torch_style = pool.avg_pool2d(np.ones((1, 3, 3, 1)), 2, 2, 1)
    np.testing.assert_allclose(y_torch_style[0, :, :, 0], [[0.25, 0.5], [0.5, 1.0]])


def test_max_pool_ties_send_the_gradient_to_the_first_maximum():
    torch = pytest.importorskip("torch")
    x = np.maximum(np.random.default_rng(0).standard_normal((2, 6, 6, 3)), 0)  # relu outputs: many zero ties
    x[x < 0.8] = 0
    xt = shendu.tensor(x, dtype="float64", requires_grad=True)
    pool.max_pool2d(xt, 2).sum().backward()
    tx = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
    torch.nn.functional.max_pool2d(tx, 2).sum().backward()
    np.testing.assert_array_equal(xt.grad.data, tx.grad.numpy().transpose(0, 2, 3, 1))
    assert xt.grad.data.sum() == 2 * 3 * 3 * 3  # one gradient per window, never split or repeated


def test_pooling_keeps_float32_and_channels_first():
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32)
    y = pool.max_pool2d(shendu.tensor(x, requires_grad=True), 2, data_format="channels_first")
    assert y.dtype == np.float32 and y.shape == (2, 3, 2, 2)
    np.testing.assert_array_equal(y.data, x.reshape(2, 3, 2, 2, 2, 2).max(axis=(3, 5)))


@pytest.mark.parametrize("fn", [lambda x: pool.max_pool2d(x, 3, 2, "same"), lambda x: pool.avg_pool2d(x, 2, 1, 1)])
def test_pooling_double_backward(fn):
    (x,) = _distinct(1, 5, 4, 2)
    shendu.gradgradcheck(lambda x: fn(x * x), x)


@pytest.mark.parametrize("name", ["max", "avg"])
def test_reference_pool_backward_matches_finite_differences(name):
    forward, backward = getattr(reference, f"{name}_pool2d"), getattr(reference, f"{name}_pool2d_backward")
    x, direction = optest.make_arrays(((2, 5, 4, 2), (2, 5, 4, 2)), "distinct")
    gy = np.random.default_rng(7).standard_normal(forward(x, 3, 2, "same").shape)
    eps = 1e-6
    numeric = (np.sum(forward(x + eps * direction, 3, 2, "same") * gy)
               - np.sum(forward(x - eps * direction, 3, 2, "same") * gy)) / (2 * eps)
    np.testing.assert_allclose(numeric, np.sum(backward(x, gy, 3, 2, "same") * direction), rtol=1e-7)
