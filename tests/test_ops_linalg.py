"""matmul and einsum: 1-D, 2-D, batched and broadcast operands; gradients, double backward, PyTorch, float32, errors."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import shendu
from shendu.ops import linalg

if "optest" not in sys.modules:  # shared helpers, loaded by path (pytest runs with --import-mode=importlib)
    _spec = importlib.util.spec_from_file_location("optest", Path(__file__).with_name("optest.py"))
    sys.modules["optest"] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules["optest"])
import optest  # noqa: E402
from optest import OpCase, torch  # noqa: E402

MATMUL_SHAPES = [
    ((3,), (3,)), ((3,), (3, 2)), ((2, 3), (3,)), ((2, 3), (3, 4)),
    ((2, 2, 3), (3, 4)), ((2, 3), (2, 3, 4)), ((2, 1, 2, 3), (3, 3, 2)),
    ((3,), (2, 3, 2)), ((2, 2, 3), (3,)),
    ((0, 3), (3, 2)), ((2, 0), (0, 3)), ((2, 3), (3, 0)),
]

TABLE = [
    OpCase("MatMulOp", shendu.matmul, torch and torch.matmul, MATMUL_SHAPES),
    OpCase("MatMulOp", lambda a, b: a @ b, lambda a, b: a @ b, [((2, 3), (3, 2))], name="matmul-operator"),
    OpCase("EinsumOp", lambda a, b: shendu.einsum("...ij,jk->...ik", a, b),
           torch and (lambda a, b: torch.einsum("...ij,jk->...ik", a, b)), [((2, 3), (3, 4)), ((2, 2, 3), (3, 4))],
           name="einsum-matmul"),
    OpCase("EinsumOp", lambda a, b: shendu.einsum("bqhd,bkhd->bhqk", a, b),
           torch and (lambda a, b: torch.einsum("bqhd,bkhd->bhqk", a, b)), [((2, 3, 2, 4), (2, 5, 2, 4))],
           name="einsum-attention"),
    OpCase("EinsumOp", lambda a, b: shendu.einsum("ij,kl->", a, b),
           torch and (lambda a, b: torch.einsum("ij,kl->", a, b)), [((2, 3), (4, 5))], name="einsum-separate-sums"),
]

GRADCHECK_CASES = optest.gradcheck_cases(TABLE)
test_gradcheck, test_gradgradcheck, test_matches_torch, test_float32 = optest.table_tests(TABLE)


def test_every_linalg_op_in_table():
    assert optest.registered_ops(linalg) <= {c.op for c in TABLE}


def test_matmul_only_needed_gradient_is_computed():
    a = shendu.randn(2, 3, requires_grad=True)
    w = shendu.randn(3, 4)
    (a @ w).sum().backward()
    assert a.grad.shape == (2, 3) and w.grad is None


@pytest.mark.parametrize("sa, sb", [((2, 3), (4, 5)), ((2, 2, 3), (3, 3, 4)), ((3,), (4,)), ((2, 3), (2,))])
def test_matmul_error_names_op_and_both_shapes(sa, sb):
    with pytest.raises(ValueError, match=rf"matmul.*{sa}.*{sb}".replace("(", r"\(").replace(")", r"\)")):
        shendu.matmul(shendu.ones(*sa), shendu.ones(*sb))


def test_matmul_refuses_scalars():
    with pytest.raises(ValueError, match="matmul.*dimension"):
        shendu.matmul(shendu.tensor(2.0), shendu.ones(3))


def test_rmatmul_with_array_on_the_left():
    a = np.arange(6.0).reshape(2, 3)
    x = shendu.tensor(np.ones(3), dtype=np.float64, requires_grad=True)
    y = a @ x
    np.testing.assert_array_equal(y.data, a @ np.ones(3))
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.data, a.sum(axis=0))
