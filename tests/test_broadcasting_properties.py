"""Property tests (hypothesis): for any mutually broadcastable shapes, binary ops give NumPy's result shape and
gradients of each input's own shape equal to PyTorch's; reductions over any axes agree with PyTorch too."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import shendu

if "optest" not in sys.modules:  # shared helpers, loaded by path (pytest runs with --import-mode=importlib)
    _spec = importlib.util.spec_from_file_location("optest", Path(__file__).with_name("optest.py"))
    sys.modules["optest"] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules["optest"])
import optest  # noqa: E402
from optest import torch  # noqa: E402

PROPERTY = settings(max_examples=20, deadline=None)
SHAPE_PAIRS = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, min_side=0, max_side=3)

# (name, shendu op, torch op, domain of the inputs)
BINARY = [
    ("add", shendu.add, lambda a, b: a + b, "real"),
    ("sub", shendu.sub, lambda a, b: a - b, "real"),
    ("mul", shendu.mul, lambda a, b: a * b, "real"),
    ("div", shendu.div, lambda a, b: a / b, "nonzero"),
    ("pow", shendu.pow, lambda a, b: a**b, "positive"),
    ("maximum", shendu.maximum, lambda a, b: torch.maximum(a, b), "distinct"),
    ("minimum", shendu.minimum, lambda a, b: torch.minimum(a, b), "distinct"),
    ("where", lambda a, b: shendu.where(a > 0, a, b), lambda a, b: torch.where(a > 0, a, b), "nonzero"),
]


@pytest.mark.parametrize("name, fn, torch_fn, domain", BINARY, ids=[row[0] for row in BINARY])
@PROPERTY
@given(shapes=SHAPE_PAIRS, seed=st.integers(0, 2**16))
def test_binary_broadcasting_matches_numpy_and_torch(name, fn, torch_fn, domain, shapes, seed):
    (sa, sb), result_shape = shapes
    arrays = optest.make_arrays((sa, sb), domain, seed=seed)
    a, b = optest.as_tensors(arrays)
    y = fn(a, b)
    assert y.shape == np.broadcast_shapes(sa, sb) == result_shape
    y.backward(np.ones(y.shape))
    assert a.grad.shape == sa and b.grad.shape == sb
    assert a.grad.dtype == b.grad.dtype == np.float64
    optest.compare_with_torch(fn, torch_fn, arrays, double=False)


@PROPERTY
@given(shapes=SHAPE_PAIRS)
def test_float32_survives_broadcasting_with_python_scalars(shapes):
    (sa, sb), _ = shapes
    a, b = optest.as_tensors(optest.make_arrays((sa, sb), "positive", dtype=np.float32))
    y = (a * 2.0 + b / 3 - 1) ** 2 + shendu.maximum(a, 0.5)
    y.backward(np.ones(y.shape, dtype=np.float32))
    assert y.dtype == a.grad.dtype == b.grad.dtype == np.float32


REDUCTIONS = [
    ("sum", shendu.sum, lambda x, d, k: torch.sum(x, d, keepdim=k)),
    ("mean", shendu.mean, lambda x, d, k: torch.mean(x, d, keepdim=k)),
    ("max", shendu.max, lambda x, d, k: torch.amax(x, d, keepdim=k)),
    ("logsumexp", shendu.logsumexp, lambda x, d, k: torch.logsumexp(x, d, keepdim=k)),
]


@st.composite
def shape_and_axes(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=3))
    axes = draw(st.lists(st.integers(-len(shape), len(shape) - 1), min_size=1, max_size=len(shape),
                         unique_by=lambda a: a % len(shape)))
    return shape, tuple(axes), draw(st.booleans())


@pytest.mark.parametrize("name, fn, torch_fn", REDUCTIONS, ids=[row[0] for row in REDUCTIONS])
@PROPERTY
@given(case=shape_and_axes(), seed=st.integers(0, 2**16))
def test_reductions_over_any_axes_match_torch(name, fn, torch_fn, case, seed):
    shape, axes, keepdims = case
    arrays = optest.make_arrays((shape,), "distinct", seed=seed)
    expected = np.sum(arrays[0], axis=axes, keepdims=keepdims).shape
    assert fn(*optest.as_tensors(arrays), axis=axes, keepdims=keepdims).shape == expected
    optest.compare_with_torch(lambda x: fn(x, axis=axes, keepdims=keepdims),
                              lambda x: torch_fn(x, axes, keepdims), arrays, double=False)


@PROPERTY
@given(shapes=hnp.mutually_broadcastable_shapes(signature=np.matmul.signature, max_dims=2, max_side=3),
       seed=st.integers(0, 2**16))
def test_matmul_shapes_match_numpy_and_torch(shapes, seed):
    """Every operand layout NumPy's matmul accepts (1-D, 2-D, batched, broadcast batch axes)."""
    (sa, sb), result_shape = shapes
    arrays = optest.make_arrays((sa, sb), seed=seed)
    a, b = optest.as_tensors(arrays)
    y = shendu.matmul(a, b)
    assert y.shape == np.matmul(*arrays).shape == result_shape
    y.backward(np.ones(y.shape))
    assert a.grad.shape == sa and b.grad.shape == sb
    optest.compare_with_torch(shendu.matmul, lambda p, q: torch.matmul(p, q), arrays, double=False)
