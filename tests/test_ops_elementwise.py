"""Elementwise functions and activations: gradients, double backward, PyTorch, float32, edge cases."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import shendu
from shendu.ops import elementwise

if "optest" not in sys.modules:  # shared helpers, loaded by path (pytest runs with --import-mode=importlib)
    _spec = importlib.util.spec_from_file_location("optest", Path(__file__).with_name("optest.py"))
    sys.modules["optest"] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules["optest"])
import optest  # noqa: E402
from optest import BINARY_SHAPES, OpCase, torch  # noqa: E402

F = torch and torch.nn.functional
LO, HI = np.array([-1.0, 0.0, 0.5]), np.array(1.0)
COND = np.array([[True, False, True], [False, False, True]])
WHERE_SHAPES = [((2, 3), (2, 3)), ((3,), (2, 1)), ((), (2, 3)), ((1, 3), (1,))]

TABLE = [
    OpCase("ExpOp", shendu.exp, torch and torch.exp),
    OpCase("LogOp", shendu.log, torch and torch.log, domain="positive"),
    OpCase("Log1pOp", shendu.log1p, torch and torch.log1p, domain="positive"),
    OpCase("SqrtOp", shendu.sqrt, torch and torch.sqrt, domain="positive"),
    OpCase("AbsOp", shendu.abs, torch and torch.abs, domain="nonzero"),
    OpCase("SignOp", shendu.sign, torch and torch.sign, domain="nonzero"),
    OpCase("SinOp", shendu.sin, torch and torch.sin),
    OpCase("CosOp", shendu.cos, torch and torch.cos),
    OpCase("TanhOp", shendu.tanh, torch and torch.tanh),
    OpCase("SigmoidOp", shendu.sigmoid, torch and torch.sigmoid),
    OpCase("ReluOp", shendu.relu, torch and torch.relu, domain="nonzero"),
    OpCase("LeakyReluOp", shendu.leaky_relu, lambda x: F.leaky_relu(x, negative_slope=0.2), domain="nonzero"),
    OpCase("LeakyReluOp", lambda x: shendu.leaky_relu(x, negative_slope=0.01), F and F.leaky_relu, domain="nonzero",
           name="leaky_relu_0.01"),
    OpCase("EluOp", shendu.elu, F and F.elu, domain="nonzero"),
    OpCase("EluOp", lambda x: shendu.elu(x, alpha=0.5), lambda x: F.elu(x, alpha=0.5), domain="nonzero",
           name="elu_0.5"),
    OpCase("EluOp", shendu.selu, F and F.selu, domain="nonzero", name="selu"),
    OpCase("GeluOp", shendu.gelu, F and F.gelu),
    OpCase("GeluTanhOp", lambda x: shendu.gelu(x, approximate="tanh"), lambda x: F.gelu(x, approximate="tanh")),
    OpCase("ErfOp", shendu.erf, torch and torch.erf),
    OpCase("SoftplusOp", shendu.softplus, F and F.softplus),
    OpCase("SiluOp", shendu.silu, F and F.silu),
    OpCase("ClipOp", lambda x: shendu.clip(x, -0.5, 0.5), lambda x: torch.clamp(x, -0.5, 0.5)),
    OpCase("ClipOp", lambda x: shendu.clip(x, x_min=0.0), lambda x: torch.clamp(x, min=0.0), domain="nonzero",
           name="clip_min"),
    OpCase("ClipOp", lambda x: shendu.clip(x, x_max=1.0), lambda x: torch.clamp(x, max=1.0), name="clip_max"),
    OpCase("ClipOp", lambda x: shendu.clip(x, shendu.tensor(LO, dtype=x.dtype), HI),
           lambda x: torch.clamp(x, torch.tensor(LO), torch.tensor(HI)), [((2, 3),), ((3,),)],
           name="clip_tensor_bounds"),
    OpCase("MaximumOp", shendu.maximum, torch and torch.maximum, BINARY_SHAPES, domain="distinct"),
    OpCase("MinimumOp", shendu.minimum, torch and torch.minimum, BINARY_SHAPES, domain="distinct"),
    OpCase("WhereOp", lambda a, b: shendu.where(COND, a, b), lambda a, b: torch.where(torch.tensor(COND), a, b),
           WHERE_SHAPES),
    OpCase("WhereOp", lambda a, b: shendu.where(COND[:0], a, b), lambda a, b: torch.where(torch.tensor(COND[:0]), a, b),
           [((0, 3), (3,)), ((1, 3), (0, 1))], name="where-empty"),
    OpCase("WhereOp", lambda x: shendu.where(shendu.tensor(COND), x, 0.0),
           lambda x: torch.where(torch.tensor(COND), x, 0.0), [((2, 3),), ((3,),)], name="where_scalar"),
]

GRADCHECK_CASES = optest.gradcheck_cases(TABLE)
test_gradcheck, test_gradgradcheck, test_matches_torch, test_float32 = optest.table_tests(TABLE)


def test_every_elementwise_op_in_table():
    assert optest.registered_ops(elementwise) <= {c.op for c in TABLE}


EDGE_INPUT = np.array([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0])


@pytest.mark.parametrize("fn, torch_fn", [
    (lambda x: shendu.clip(x, -0.5, 1.0), lambda x: torch.clamp(x, -0.5, 1.0)),  # exactly at the bounds
    (shendu.relu, lambda x: torch.relu(x)),
    (shendu.abs, lambda x: torch.abs(x)),
    (shendu.sign, lambda x: torch.sign(x)),
    (lambda x: shendu.leaky_relu(x, 0.1), lambda x: F.leaky_relu(x, 0.1)),
    (shendu.elu, lambda x: F.elu(x)),
], ids=["clip_at_bounds", "relu", "abs", "sign", "leaky_relu", "elu"])
def test_kinks_match_torch(fn, torch_fn):
    """At non-differentiable points shendu picks the same (sub)gradient as PyTorch (first order: second
    derivatives at a kink are a convention)."""
    optest.compare_with_torch(fn, torch_fn, [EDGE_INPUT], double=False)


@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_maximum_minimum_ties_split_evenly(name):
    a = np.array([1.0, 2.0, 3.0, -1.0])
    b = np.array([1.0, 0.0, 3.0, 5.0])
    optest.compare_with_torch(getattr(shendu, name), lambda x, y: getattr(torch, name)(x, y), [a, b])
    x, y = optest.as_tensors([a, b])
    getattr(shendu, name)(x, y).sum().backward()
    np.testing.assert_array_equal(x.grad.data[[0, 2]], [0.5, 0.5])
    np.testing.assert_array_equal(x.grad.data + y.grad.data, np.ones(4))


@pytest.mark.parametrize("name", ["maximum", "minimum", "where"])
def test_broadcast_error_names_op_and_shapes(name):
    args = (shendu.ones(2, 3), shendu.ones(4))
    if name == "where":
        args = (COND,) + args
    with pytest.raises(ValueError, match=rf"{name}.*\(2, 3\).*\(4,\)"):
        getattr(shendu, name)(*args)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_saturating_functions_are_stable(dtype):
    x = shendu.tensor([-1000.0, -50.0, 0.0, 50.0, 1000.0], dtype=dtype, requires_grad=True)
    for fn in (shendu.sigmoid, shendu.softplus, shendu.silu, shendu.tanh, shendu.elu, shendu.gelu):
        x.grad = None
        with np.errstate(over="raise", invalid="raise"):
            y = fn(x)
            y.sum().backward()
        assert np.isfinite(y.data).all(), fn.__name__
        assert np.isfinite(x.grad.data).all(), fn.__name__
    np.testing.assert_allclose(shendu.softplus(x).data, [0.0, np.log1p(np.exp(-50.0)), np.log(2.0), 50.0, 1000.0],
                               rtol=1e-6)


def test_gelu_approximate_spellings():
    x = shendu.randn(5)
    exact, tanh_form = shendu.gelu(x).data, shendu.gelu(x, approximate="tanh").data
    np.testing.assert_array_equal(shendu.gelu(x, approximate="none").data, exact)
    np.testing.assert_array_equal(shendu.gelu(x, approximate=True).data, tanh_form)
    assert not np.array_equal(exact, tanh_form)


def test_swish_is_silu_and_clip_needs_a_bound():
    x = shendu.randn(4)
    np.testing.assert_array_equal(shendu.swish(x).data, shendu.silu(x).data)
    with pytest.raises(ValueError, match="clip"):
        shendu.clip(x)


def test_where_condition_gets_no_gradient_and_accepts_tensor_condition():
    a, b = optest.as_tensors([np.ones((2, 3)), np.zeros((2, 3))])
    y = shendu.where(shendu.tensor(COND), a, b)
    np.testing.assert_array_equal(y.data, COND.astype(float))
    y.sum().backward()
    np.testing.assert_array_equal(a.grad.data, COND)
    np.testing.assert_array_equal(b.grad.data, ~COND)
