"""Arithmetic ops (add, sub, mul, div, neg, pow, astype): gradients, double backward, PyTorch, float32."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import shendu
from shendu.ops import arithmetic

if "optest" not in sys.modules:  # shared helpers, loaded by path (pytest runs with --import-mode=importlib)
    _spec = importlib.util.spec_from_file_location("optest", Path(__file__).with_name("optest.py"))
    sys.modules["optest"] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules["optest"])
import optest  # noqa: E402
from optest import BINARY_SHAPES, OpCase, torch  # noqa: E402

# a wider float than float64 where the platform has one, so the cast round trip is exact for gradcheck
WIDE = np.longdouble if np.finfo(np.longdouble).precision > np.finfo(np.float64).precision else np.float32

TABLE = [
    OpCase("AddOp", shendu.add, lambda a, b: a + b, BINARY_SHAPES),
    OpCase("SubOp", shendu.sub, lambda a, b: a - b, BINARY_SHAPES),
    OpCase("MulOp", shendu.mul, lambda a, b: a * b, BINARY_SHAPES),
    OpCase("DivOp", shendu.div, lambda a, b: a / b, BINARY_SHAPES, domain="nonzero"),
    OpCase("NegOp", shendu.neg, lambda x: -x),
    OpCase("PowOp", shendu.pow, torch and torch.pow, BINARY_SHAPES, domain="positive"),
    # Python scalars on either side keep the tensor's dtype
    OpCase("AddOp", lambda x: x + 1, lambda x: x + 1, name="add_scalar"),
    OpCase("SubOp", lambda x: 0.5 - x, lambda x: 0.5 - x, name="rsub_scalar"),
    OpCase("MulOp", lambda x: 2.5 * x, lambda x: 2.5 * x, name="rmul_scalar"),
    OpCase("DivOp", lambda x: x / 3.0, lambda x: x / 3.0, name="div_scalar"),
    OpCase("DivOp", lambda x: 1 / x, lambda x: 1 / x, domain="nonzero", name="rdiv_scalar"),
    OpCase("PowOp", lambda x: x**2, lambda x: x**2, name="pow_2"),
    OpCase("PowOp", lambda x: x**3, lambda x: x**3, name="pow_3"),
    OpCase("PowOp", lambda x: x**0.5, lambda x: x**0.5, domain="positive", name="pow_half"),
    OpCase("PowOp", lambda x: x**-1.5, lambda x: x**-1.5, domain="positive", name="pow_neg"),
    OpCase("PowOp", lambda x: 2.0**x, lambda x: 2.0**x, name="rpow_scalar"),
    OpCase("AstypeOp", lambda x: shendu.astype(shendu.astype(x, WIDE), np.float64),
           lambda x: x.to(torch.float64), keeps_dtype=False, name="astype_roundtrip"),
]

GRADCHECK_CASES = optest.gradcheck_cases(TABLE)
test_gradcheck, test_gradgradcheck, test_matches_torch, test_float32 = optest.table_tests(TABLE)


def test_every_arithmetic_op_in_table():
    assert optest.registered_ops(arithmetic) <= {c.op for c in TABLE}


@pytest.mark.parametrize("name", ["add", "sub", "mul", "div", "pow"])
def test_broadcast_error_names_op_and_shapes(name):
    a, b = shendu.ones(2, 3), shendu.ones(4)
    with pytest.raises(ValueError, match=rf"{name}.*\(2, 3\).*\(4,\)"):
        getattr(shendu, name)(a, b)


def test_float64_stays_float64_with_scalars():
    x = shendu.tensor([1.0, 2.0], dtype=np.float64, requires_grad=True)
    y = (2.5 * x + 1) / 3 - x**2
    y.sum().backward()
    assert y.dtype == np.float64 and x.grad.dtype == np.float64


def test_pow_at_zero_base_matches_torch():
    """0 ** b: PyTorch's conventions (d/da of a**0 is 0; d/db is 0 where a == 0 and b >= 0)."""
    tch = pytest.importorskip("torch")
    a_np = np.array([0.0, 0.0, 0.0, 1.5])
    b_np = np.array([0.0, 1.0, 2.5, 0.0])
    a, b = optest.as_tensors([a_np, b_np])
    (a**b).backward(shendu.ones(4, dtype=np.float64))
    ta, tb = tch.tensor(a_np, requires_grad=True), tch.tensor(b_np, requires_grad=True)
    (ta**tb).sum().backward()
    np.testing.assert_allclose(a.grad.data, ta.grad.numpy())
    np.testing.assert_allclose(b.grad.data, tb.grad.numpy())
    x = shendu.tensor([0.0, 2.0], dtype=np.float64, requires_grad=True)
    (x**0).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [0.0, 0.0])


def test_pow_tensor_exponent_gradient_only_where_needed():
    a = shendu.tensor([1.5, 2.0], dtype=np.float64)
    b = shendu.tensor([2.0, 3.0], dtype=np.float64, requires_grad=True)
    (a**b).sum().backward()
    np.testing.assert_allclose(b.grad.data, a.data**b.data * np.log(a.data))
    assert a.grad is None


BINARY_FNS = [shendu.add, shendu.sub, shendu.mul, shendu.div, shendu.pow, shendu.maximum, shendu.minimum,
              lambda a, b: shendu.where(np.array([True, False, True]), a, b)]


@pytest.mark.parametrize("fn", BINARY_FNS, ids=["add", "sub", "mul", "div", "pow", "maximum", "minimum", "where"])
@pytest.mark.parametrize("other", [np.array([1, 2, 3]), np.float64(2.0), np.array(2.0), 2, 2.0],
                         ids=["int_array", "np_float64", "0d_float64", "int", "float"])
def test_float32_wins_against_ints_and_0d_floats(fn, other):
    """PyTorch's promotion: float32 (1, 2, 3) with int64 arrays or 0-d float64 stays float32 (NumPy: float64)."""
    x = shendu.tensor(np.array([0.5, 1.5, 2.5], dtype=np.float32), requires_grad=True)
    for y in (fn(x, other), fn(other, x)):
        assert y.dtype == np.float32
        y.backward(np.ones(3, dtype=np.float32))
        assert x.grad.dtype == np.float32


def test_0d_float64_tensor_gets_float64_gradient():
    x = shendu.tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    s = shendu.tensor(2.0, dtype=np.float64, requires_grad=True)
    y = x * s
    y.sum().backward()
    assert y.dtype == np.float32 and s.grad.dtype == np.float64 and float(s.grad) == 3.0


def test_float32_with_float64_array_widens_as_in_torch():
    a = shendu.tensor(np.ones(2, dtype=np.float32))
    b = shendu.tensor(np.ones(2, dtype=np.float64))
    assert (a + b).dtype == np.float64
