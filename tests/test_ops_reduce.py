"""Reductions, softmax-like ops and cumsum: gradients, double backward, PyTorch, float32, edge cases."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import shendu
from shendu.ops import reduce

if "optest" not in sys.modules:  # shared helpers, loaded by path (pytest runs with --import-mode=importlib)
    _spec = importlib.util.spec_from_file_location("optest", Path(__file__).with_name("optest.py"))
    sys.modules["optest"] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules["optest"])
import optest  # noqa: E402
from optest import OpCase, torch  # noqa: E402

SHAPES = [((2, 3, 2),), ((1, 3, 1),), ((2, 1, 3),)]  # size-1 axes: reduced alone and beside larger ones
EMPTY = [((0, 3),)]  # reducing the non-empty axis of an empty tensor
AXES = [(None, False), (0, False), (-1, True), ((0, 2), False), (1, True)]


def dims(x, axis):
    """shendu's axis as torch's dim (None: every axis)."""
    return tuple(range(x.ndim)) if axis is None else axis


def torch_prod(x, dim, keepdim):
    for d in sorted((dim,) if isinstance(dim, int) else dim, key=lambda d: -(d % x.ndim)):
        x = torch.prod(x, d % x.ndim, keepdim=keepdim)
    return x


def reductions(op, fn, torch_fn, domain="real", shapes=SHAPES, **kw):
    """One row per (axis, keepdims) in AXES."""
    return [OpCase(op, lambda x, a=a, k=k: fn(x, axis=a, keepdims=k, **kw),
                   lambda x, a=a, k=k: torch_fn(x, dims(x, a), k), shapes, domain,
                   name=f"{fn.__name__}{kw or ''}-axis={a}{'-keepdims' if k else ''}") for a, k in AXES]


TABLE = [
    *reductions("SumOp", shendu.sum, lambda x, d, k: torch.sum(x, d, keepdim=k)),
    *reductions("MeanOp", shendu.mean, lambda x, d, k: torch.mean(x, d, keepdim=k)),
    *reductions("VarOp", shendu.var, lambda x, d, k: torch.var(x, d, correction=0, keepdim=k)),
    *reductions("VarOp", shendu.var, lambda x, d, k: torch.var(x, d, correction=1, keepdim=k), ddof=1,
                shapes=SHAPES[:1]),
    *reductions("StdOp", shendu.std, lambda x, d, k: torch.std(x, d, correction=0, keepdim=k)),
    *reductions("StdOp", shendu.std, lambda x, d, k: torch.std(x, d, correction=1, keepdim=k), ddof=1,
                shapes=SHAPES[:1]),
    *reductions("MaxOp", shendu.max, lambda x, d, k: torch.amax(x, d, keepdim=k), domain="distinct"),
    *reductions("MinOp", shendu.min, lambda x, d, k: torch.amin(x, d, keepdim=k), domain="distinct"),
    *reductions("ProdOp", shendu.prod, torch_prod, domain="nonzero"),
    *reductions("LogsumexpOp", shendu.logsumexp, lambda x, d, k: torch.logsumexp(x, d, keepdim=k)),
    OpCase("SumOp", lambda x: shendu.sum(x, axis=1), lambda x: torch.sum(x, 1), EMPTY, name="sum-empty"),
    OpCase("SumOp", lambda x: shendu.sum(x, axis=0), lambda x: torch.sum(x, 0), EMPTY, name="sum-over-empty-axis"),
    OpCase("MeanOp", lambda x: shendu.mean(x, axis=1), lambda x: torch.mean(x, 1), EMPTY, name="mean-empty"),
    OpCase("MaxOp", lambda x: shendu.max(x, axis=1), lambda x: torch.amax(x, 1), EMPTY, name="max-empty"),
    OpCase("MinOp", lambda x: shendu.min(x, axis=-1, keepdims=True), lambda x: torch.amin(x, -1, keepdim=True), EMPTY,
           name="min-empty"),
    OpCase("VarOp", lambda x: shendu.var(x, axis=1), lambda x: torch.var(x, 1, correction=0), EMPTY, name="var-empty"),
    OpCase("StdOp", lambda x: shendu.std(x, axis=1), lambda x: torch.std(x, 1, correction=0), EMPTY, name="std-empty"),
    OpCase("ProdOp", lambda x: shendu.prod(x, axis=1), lambda x: torch.prod(x, 1), EMPTY, name="prod-empty"),
    OpCase("LogsumexpOp", lambda x: shendu.logsumexp(x, axis=1), lambda x: torch.logsumexp(x, 1), EMPTY,
           name="logsumexp-empty"),
    OpCase("SumOp", shendu.sum, torch and torch.sum, [((),)], name="sum-0d"),
    OpCase("SoftmaxOp", shendu.softmax, lambda x: torch.softmax(x, -1), SHAPES + EMPTY),
    OpCase("SoftmaxOp", lambda x: shendu.softmax(x, axis=0), lambda x: torch.softmax(x, 0), SHAPES, name="softmax-0"),
    OpCase("LogSoftmaxOp", shendu.log_softmax, lambda x: torch.log_softmax(x, -1), SHAPES + EMPTY),
    OpCase("LogSoftmaxOp", lambda x: shendu.log_softmax(x, axis=1), lambda x: torch.log_softmax(x, 1), SHAPES,
           name="log_softmax-1"),
    OpCase("CumsumOp", lambda x: shendu.cumsum(x, axis=1), lambda x: torch.cumsum(x, 1), SHAPES + EMPTY),
    OpCase("CumsumOp", lambda x: shendu.cumsum(x, axis=-1), lambda x: torch.cumsum(x, -1), SHAPES,
           name="cumsum-neg"),
    OpCase("CumsumOp", shendu.cumsum, lambda x: torch.cumsum(x.reshape(-1), 0), SHAPES + [((),)], name="cumsum-flat"),
]

GRADCHECK_CASES = optest.gradcheck_cases(TABLE)
test_gradcheck, test_gradgradcheck, test_matches_torch, test_float32 = optest.table_tests(TABLE)


def test_every_reduction_op_in_table():
    assert optest.registered_ops(reduce) <= {c.op for c in TABLE}


TIES = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0], [-1.0, 5.0, -1.0, 4.0]])


@pytest.mark.parametrize("axis", [None, 0, 1, (0, 1)])
@pytest.mark.parametrize("name, torch_name", [("max", "amax"), ("min", "amin")])
def test_max_min_ties_split_evenly(name, torch_name, axis):
    fn = lambda x: getattr(shendu, name)(x, axis=axis)
    optest.compare_with_torch(fn, lambda x: getattr(torch, torch_name)(x, dims(x, axis)), [TIES])
    (x,) = optest.as_tensors([TIES])
    fn(x).sum().backward()
    if axis == 1:  # a row of four equal values shares the gradient: a quarter each
        np.testing.assert_array_equal(x.grad.data[1], [0.25] * 4)
    assert x.grad.data.sum() == pytest.approx(np.size(fn(x).data))


@pytest.mark.parametrize("values", [[2.0, 0.0, 3.0, -1.5], [0.0, 2.0, 0.0, 3.0], [0.0, 0.0, 0.0, 1.0]],
                         ids=["one_zero", "two_zeros", "three_zeros"])
@pytest.mark.parametrize("axis", [None, 1])
def test_prod_with_zeros(values, axis):
    x = np.array([values, [1.5, -2.0, 0.5, 1.0]])
    fn = lambda t: shendu.prod(t, axis=axis)
    shendu.gradcheck(fn, *optest.as_tensors([x]))
    shendu.gradgradcheck(fn, *optest.as_tensors([x]))
    optest.compare_with_torch(fn, lambda t: torch.prod(t) if axis is None else torch.prod(t, axis), [x])
    optest.check_float32(fn, [x])


def test_logsumexp_and_softmax_are_stable():
    x = shendu.tensor([[1000.0, 999.0, -1000.0], [-np.inf, -np.inf, -np.inf]], dtype=np.float64)
    with np.errstate(over="raise"):
        lse = shendu.logsumexp(x, axis=1).data
        sm = shendu.softmax(x[:1], axis=1).data
        lsm = shendu.log_softmax(x[:1], axis=1).data
    np.testing.assert_allclose(lse, [1000.0 + np.log1p(np.exp(-1.0)), -np.inf])
    np.testing.assert_allclose(sm.sum(), 1.0)
    np.testing.assert_allclose(lsm, [[-np.log1p(np.exp(-1.0)), -1.0 - np.log1p(np.exp(-1.0)), -2000.0 - 0.31326]],
                               rtol=1e-5)


def test_bad_axes_name_the_op_axis_and_shape():
    with pytest.raises(ValueError, match=r"sum: axis 2 .*\(2, 3\)"):
        shendu.sum(shendu.ones(2, 3), axis=2)
    with pytest.raises(ValueError, match=r"max: axis \(0, -2\) repeats"):
        shendu.max(shendu.ones(2, 3), axis=(0, -2))


def test_var_ddof_and_std_match_numpy():
    x = np.random.default_rng(0).standard_normal((4, 5))
    t = shendu.tensor(x, dtype=np.float64)
    np.testing.assert_allclose(shendu.var(t, axis=0, ddof=1).data, x.var(axis=0, ddof=1))
    np.testing.assert_allclose(shendu.std(t, axis=(0, 1), keepdims=True).data, x.std(keepdims=True))
