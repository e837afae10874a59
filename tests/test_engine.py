"""The backward engine: order, accumulation, retain_graph/create_graph, shendu.grad, errors."""

import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import shendu
from shendu.autograd.op import Op


def leaf(*shape, dtype="float64"):
    return shendu.randn(*shape, dtype=dtype, requires_grad=True)


class _Counting(Op):
    """y = x;  dx = gy  (counts how often backward runs; underscore keeps it out of OP_REGISTRY)"""

    calls = 0

    def forward(self, x):
        return x.copy()

    def backward(self, gy, x, y):
        type(self).calls += 1
        return gy


class _Pair(Op):
    """Two outputs: y1 = 2 x,  y2 = x^2;   dx = 2 g1 + 2 x g2  (underscore: test-only)"""

    saves_output = True

    def forward(self, x):
        return 2 * x, x * x

    def backward(self, gys, x, y):
        g1, g2 = gys
        return 2 * g1 + 2 * x * g2


def test_multi_output_op_with_an_unused_output_gets_zeros_for_it():
    x = leaf(3)
    doubled, squared = _Pair()(x)
    assert doubled.creator is squared.creator and (doubled.output_index, squared.output_index) == (0, 1)
    squared.sum().backward()
    np.testing.assert_allclose(x.grad.data, 2 * x.data)
    x.grad = None
    first, _ = _Pair()(x)
    first.sum().backward()
    np.testing.assert_allclose(x.grad.data, np.full(3, 2.0))


def test_multi_output_op_second_derivative_when_an_output_died():
    x = leaf(3)
    assert shendu.gradgradcheck(lambda t: _Pair()(t)[1], x)  # output 0 is garbage before backward runs
    assert shendu.gradgradcheck(lambda t: _Pair()(t), x)


def test_chain_of_10000_ops_backward_without_recursion():
    x = shendu.tensor(1.0, dtype="float64", requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    limit = sys.getrecursionlimit()
    y.backward()
    assert sys.getrecursionlimit() == limit
    np.testing.assert_allclose(x.grad.item(), 1.0001 ** 10_000, rtol=1e-9)


def test_diamond_runs_each_op_once_after_all_gradients_arrived():
    _Counting.calls = 0
    x = leaf(3)
    h = _Counting()(x)  # shared node: must be processed once, with both contributions summed
    long_branch = (h * 2).exp().log()  # a deeper path than the short one
    y = (long_branch + h * 3).sum()
    y.backward()
    assert _Counting.calls == 1
    np.testing.assert_allclose(x.grad.data, np.full(3, 5.0))


def test_reused_tensor_accumulates_all_uses():
    x = leaf(4)
    y = (x * x * x).sum()  # d/dx x^3 = 3 x^2
    y.backward()
    np.testing.assert_allclose(x.grad.data, 3 * x.data ** 2)


def test_gradients_accumulate_across_backward_calls_and_reset_with_none():
    x = leaf(2, 3)
    (x * 2).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.data, np.full((2, 3), 5.0))
    x.grad = None
    (x * 4).sum().backward()
    np.testing.assert_allclose(x.grad.data, np.full((2, 3), 4.0))


def test_explicit_gradient_for_non_scalar_output():
    x = leaf(2, 3)
    g = np.arange(6.0).reshape(2, 3)
    (x * 2).backward(g)
    np.testing.assert_allclose(x.grad.data, 2 * g)
    x.grad = None
    (x * 2).backward(shendu.tensor(g))
    np.testing.assert_allclose(x.grad.data, 2 * g)


def test_non_scalar_backward_without_gradient_says_what_to_pass():
    y = leaf(2, 3) * 2
    with pytest.raises(RuntimeError, match=r"shape \(2, 3\).*gradient=.*sum\(\)\.backward\(\)"):
        y.backward()


def test_gradient_of_wrong_shape_is_refused():
    y = leaf(2, 3) * 2
    with pytest.raises(RuntimeError, match=r"\(3, 2\).*\(2, 3\)"):
        y.backward(np.ones((3, 2)))


def test_backward_on_tensor_without_graph_explains():
    with pytest.raises(RuntimeError, match="does not require grad"):
        shendu.ones(2).sum().backward()


def test_second_backward_fails_clearly_unless_retain_graph():
    x = leaf(3)
    y = (x.exp() * 2).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.data, 4 * np.exp(x.data))
    with pytest.raises(RuntimeError, match="second time.*retain_graph=True"):
        y.backward()


def test_saved_arrays_are_freed_after_backward():
    x = leaf(3)
    h = x.exp()
    y = (h * x).sum()
    op = h.creator
    y.backward()
    assert op.inputs is None and not hasattr(op, "arrays") and not hasattr(op, "y")


def test_leaf_gradients_are_independent_writable_arrays():
    a, b = leaf(3), leaf(1)
    (a + b).sum().backward()  # add hands one array to both inputs; sum's gradient is a read-only broadcast
    for t in (a, b):
        assert t.grad.data.flags.writeable and t.grad.data.base is None
    assert not np.shares_memory(a.grad.data, b.grad.data)
    a.grad.data += 1  # must not change anything else
    np.testing.assert_allclose(b.grad.data, [3.0])
    (a + b).sum().backward()  # accumulation keeps them apart too
    np.testing.assert_allclose(a.grad.data, [3.0, 3.0, 3.0])
    np.testing.assert_allclose(b.grad.data, [6.0])


def test_accumulating_into_a_leaf_never_corrupts_gradients_still_in_flight():
    w, v = leaf(3), leaf(3)
    z = v * 1.0
    # the last add hands one array to w (as w.grad) and to the pending `w * 3`; then `w * z` (a higher
    # generation) adds into w.grad before `w * 3` reads that array: accumulation must not write into it
    y = ((w + w * z) + w * 3.0) * 1.0
    g = np.array([1.0, 2.0, 3.0])
    y.backward(g)
    np.testing.assert_allclose(w.grad.data, g * (4 + v.data))


def test_create_graph_gradients_are_independent_tensors():
    a, b = leaf(2), leaf(2)
    (a + b).backward(shendu.ones(2, dtype="float64"), create_graph=True)
    assert a.grad is not b.grad and not np.shares_memory(a.grad.data, b.grad.data)
    (a * b).sum().backward()  # first-order accumulation on top
    np.testing.assert_allclose(a.grad.data, 1 + b.data)
    np.testing.assert_allclose(b.grad.data, 1 + a.data)


def test_leaf_gradient_does_not_alias_the_callers_gradient():
    x = leaf(3)
    g = np.ones(3)
    (x + 0).backward(g)
    assert not np.shares_memory(x.grad.data, g)


def test_retain_grad_keeps_gradient_of_intermediate():
    x = leaf(3)
    h = (x * 2).retain_grad()
    other = x * 5
    (h * 3 + other).sum().backward()
    np.testing.assert_allclose(h.grad.data, np.full(3, 3.0))
    np.testing.assert_allclose(x.grad.data, np.full(3, 11.0))
    assert other.grad is None
    assert not np.shares_memory(h.grad.data, x.grad.data)


def test_gradient_dtype_and_shape_follow_each_input():
    a = shendu.randn(4, 1, requires_grad=True)  # float32
    b = shendu.randn(3, dtype="float64", requires_grad=True)
    (a * b).sum().backward()
    assert a.grad.shape == (4, 1) and a.grad.dtype == np.float32
    assert b.grad.shape == (3,) and b.grad.dtype == np.float64


def test_multiple_roots_backward_together():
    x = leaf(3)
    y1, y2 = (x * 2).sum(), (x * x).sum()
    shendu.autograd.engine.backward([y1, y2], [None, None])
    np.testing.assert_allclose(x.grad.data, 2 + 2 * x.data)


def test_create_graph_gives_higher_order_gradients():
    x = shendu.tensor([0.5, -1.0, 2.0], dtype="float64", requires_grad=True)
    y = (x ** 3).sum()
    y.backward(create_graph=True)
    first = x.grad
    np.testing.assert_allclose(first.data, 3 * x.data ** 2)
    assert first.requires_grad
    x.grad = None
    first.sum().backward()
    np.testing.assert_allclose(x.grad.data, 6 * x.data)


def test_third_derivative_through_grad():
    x = shendu.tensor(0.7, dtype="float64", requires_grad=True)
    (d1,) = shendu.grad(x.sin(), x, create_graph=True)
    (d2,) = shendu.grad(d1, x, create_graph=True)
    (d3,) = shendu.grad(d2, x)
    np.testing.assert_allclose([d1.item(), d2.item(), d3.item()], [np.cos(0.7), -np.sin(0.7), -np.cos(0.7)])


def test_grad_returns_gradients_without_touching_dot_grad():
    x, w = leaf(3), leaf(3)
    h = (x * w).retain_grad()
    gx, gw = shendu.grad(h.sum(), [x, w])
    np.testing.assert_allclose(gx.data, w.data)
    np.testing.assert_allclose(gw.data, x.data)
    assert x.grad is None and w.grad is None and h.grad is None


def test_grad_skips_the_part_of_the_graph_not_leading_to_inputs():
    _Counting.calls = 0
    x, w = leaf(3), leaf(3)
    y = (x * 2 + _Counting()(w)).sum()
    (gx,) = shendu.grad(y, x, retain_graph=True)
    assert _Counting.calls == 0
    np.testing.assert_allclose(gx.data, np.full(3, 2.0))
    y.backward()  # the skipped branch is still intact
    assert _Counting.calls == 1 and w.grad is not None


def test_grad_through_a_freed_graph_fails_clearly():
    x = leaf(3)
    y = (x.exp() * 2).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time"):
        shendu.grad(y, x)


def test_grad_of_intermediate_and_grad_outputs():
    x = leaf(3)
    h = x * 2
    y = h.exp()
    (gh,) = shendu.grad(y, h, grad_outputs=np.ones(3))
    np.testing.assert_allclose(gh.data, np.exp(h.data))


def test_grad_unused_input_needs_allow_unused():
    x, unused = leaf(2), leaf(2)
    with pytest.raises(RuntimeError, match="allow_unused=True"):
        shendu.grad((x * 2).sum(), [x, unused])
    gx, gu = shendu.grad((x * 2).sum(), [x, unused], allow_unused=True)
    assert gu is None
    np.testing.assert_allclose(gx.data, [2.0, 2.0])


def test_inplace_change_of_a_saved_input_is_detected():
    w = leaf(3)
    x = shendu.randn(3, dtype="float64")
    y = (w * x).sum()  # mul's backward for w needs x
    x += 1
    with pytest.raises(RuntimeError, match=r"MulOp: an input of shape \(3,\) was modified in place.*version 0 -> 1"):
        y.backward()


def test_inplace_update_of_a_weight_under_no_grad_is_detected_at_backward():
    w = leaf(3)
    loss = (w * w).sum()
    with shendu.no_grad():
        w -= 0.1
    with pytest.raises(RuntimeError, match="modified in place"):
        loss.backward()


def test_setitem_bumps_version():
    x = shendu.zeros(3, dtype="float64")
    w = leaf(3)
    y = (w * x).sum()
    x[0] = 1.0
    assert x._version == 1
    with pytest.raises(RuntimeError, match="modified in place"):
        y.backward()


def test_torch_agrees_on_a_small_network():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    xs, ws, bs = rng.standard_normal((5, 4)), rng.standard_normal((4, 3)), rng.standard_normal(3)
    x, w, b = (shendu.tensor(v, requires_grad=True) for v in (xs, ws, bs))
    loss = ((x @ w + b).tanh() * (x @ w)).mean() + (w * w).sum()
    loss.backward()
    tx, tw, tb = (torch.tensor(v, requires_grad=True) for v in (xs, ws, bs))
    tloss = ((tx @ tw + tb).tanh() * (tx @ tw)).mean() + (tw * tw).sum()
    tloss.backward()
    np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-12)
    for ours, theirs in ((x, tx), (w, tw), (b, tb)):
        np.testing.assert_allclose(ours.grad.data, theirs.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_torch_agrees_on_second_derivatives():
    torch = pytest.importorskip("torch")
    xs = np.random.default_rng(2).standard_normal(4)
    x = shendu.tensor(xs, requires_grad=True)
    (g,) = shendu.grad((x.tanh() * x.exp()).sum(), x, create_graph=True)
    (gg,) = shendu.grad((g * g).sum(), x)
    tx = torch.tensor(xs, requires_grad=True)
    (tg,) = torch.autograd.grad((tx.tanh() * tx.exp()).sum(), tx, create_graph=True)
    (tgg,) = torch.autograd.grad((tg * tg).sum(), tx)
    np.testing.assert_allclose(g.data, tg.detach().numpy(), rtol=1e-10)
    np.testing.assert_allclose(gg.data, tgg.numpy(), rtol=1e-10)


# ---------------------------------------------------------------- property test: central un-broadcasting
@settings(max_examples=40, deadline=None)
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, min_side=0, max_side=3),
       op=st.sampled_from(["add", "sub", "mul", "div"]))
def test_gradients_are_unbroadcast_to_each_input_shape(shapes, op):
    (shape_a, shape_b), out_shape = shapes.input_shapes, shapes.result_shape
    rng = np.random.default_rng(0)
    a_np, b_np = rng.uniform(1, 2, shape_a), rng.uniform(1, 2, shape_b)
    a, b = shendu.tensor(a_np, requires_grad=True), shendu.tensor(b_np, requires_grad=True)
    g = rng.standard_normal(out_shape)
    getattr(shendu, op)(a, b).backward(g)
    local_a = {"add": 1.0, "sub": 1.0, "mul": b_np, "div": 1 / b_np}[op]
    local_b = {"add": 1.0, "sub": -1.0, "mul": a_np, "div": -a_np / b_np ** 2}[op]

    def summed_to(full, shape):  # the reference un-broadcast: sum the leading and the stretched axes
        full = np.broadcast_to(full, out_shape)
        lead = len(out_shape) - len(shape)
        axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1 and out_shape[lead + i] != 1)
        return full.sum(axis=axes).reshape(shape) if axes else full.reshape(shape)

    assert a.grad.shape == shape_a and b.grad.shape == shape_b
    np.testing.assert_allclose(a.grad.data, summed_to(g * local_a, shape_a), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(b.grad.data, summed_to(g * local_b, shape_b), rtol=1e-12, atol=1e-12)


def test_multi_output_op_whose_unused_output_was_collected():
    class SplitHalves(shendu.Op):
        """y1, y2 = x[:n], x[n:];   dx = [gy1, gy2]"""

        def forward(self, x):
            n = x.shape[0] // 2
            return x[:n].copy(), x[n:].copy()

        def backward(self, gys, x, y):
            return np.concatenate(gys)

    x = shendu.tensor(np.arange(4.0), requires_grad=True)
    first, _ = SplitHalves()(x)  # the second output is dropped at once
    (first * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0, 0.0, 0.0])
    assert "SplitHalves" not in shendu.OP_REGISTRY  # ops defined outside shendu are not registered
