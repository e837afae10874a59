"""Graphs are freed by reference counting alone (no cycles), saved arrays after backward, and deep
graphs are deallocated without recursion."""

import gc
import sys
import weakref

import numpy as np
import pytest

import shendu


@pytest.fixture
def no_gc():
    """Only reference counting frees memory inside the test: a cycle would keep its objects alive."""
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    yield
    if was_enabled:
        gc.enable()


def _training_step(w, b, x):
    hidden = (x @ w + b).relu()
    loss = (hidden * hidden).mean()
    return hidden, loss


def test_intermediates_freed_after_training_step(no_gc):
    w = shendu.randn(8, 4, requires_grad=True)
    b = shendu.zeros(4, requires_grad=True)
    x = shendu.randn(16, 8)
    hidden, loss = _training_step(w, b, x)
    refs = [weakref.ref(hidden), weakref.ref(hidden.data), weakref.ref(hidden.creator)]
    del hidden
    assert refs[1]() is not None  # still needed by the graph for backward
    loss.backward()
    with shendu.no_grad():
        w -= 0.1 * w.grad
    assert all(r() is None for r in refs[1:])  # saved arrays were released by backward, loss still alive
    del loss
    assert all(r() is None for r in refs)
    assert w.grad is not None and w.grad.creator is None


def test_graph_without_backward_is_freed_when_output_dies(no_gc):
    x = shendu.randn(5, 5, requires_grad=True)
    h = x.exp()
    y = (h @ h).sum()
    refs = [weakref.ref(h), weakref.ref(h.data), weakref.ref(y.creator)]
    del h
    assert refs[1]() is not None
    del y
    assert all(r() is None for r in refs)


def test_retained_graph_is_freed_with_its_output(no_gc):
    x = shendu.randn(3, requires_grad=True)
    y = (x.tanh() * 2).sum()
    y.backward(retain_graph=True)
    op = weakref.ref(y.creator)
    del y
    assert op() is None


def test_create_graph_gradients_do_not_keep_cycles(no_gc):
    x = shendu.randn(3, dtype="float64", requires_grad=True)
    y = (x ** 3).sum()
    (g,) = shendu.grad(y, x, create_graph=True)
    ref = weakref.ref(g.creator)
    del y, g
    assert ref() is None


def _deep_chain(depth):
    x = shendu.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(depth):
        y = y + 1.0
    return y


@pytest.mark.parametrize("depth", [10_000, 50_000])
def test_deleting_a_deep_graph_does_not_recurse(depth, no_gc):
    y = _deep_chain(depth)
    root = weakref.ref(y.creator)
    limit = sys.getrecursionlimit()
    del y  # a chain Tensor -> Op -> inputs -> Tensor ... freed by reference counting
    assert root() is None
    assert sys.getrecursionlimit() == limit


def test_backward_on_deep_graph_frees_it(no_gc):
    y = _deep_chain(10_000)
    first = y.creator
    while first.inputs[0].creator is not None:
        first = first.inputs[0].creator
    ref = weakref.ref(first)
    y.backward()
    del first, y
    assert ref() is None


def test_no_grad_records_nothing(no_gc):
    w = shendu.randn(4, 4, requires_grad=True)
    with shendu.no_grad():
        y = (w @ w).relu()
    assert y.creator is None and not y.requires_grad
    np.testing.assert_array_equal(y.data, np.maximum(w.data @ w.data, 0))
