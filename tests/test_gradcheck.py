"""shendu.gradcheck / gradgradcheck: they pass on correct ops and fail loudly on wrong ones."""

import numpy as np
import pytest

import shendu
from shendu.autograd.op import Op, raw


class _WrongSquare(Op):
    """y = x^2 with a deliberately wrong backward (dx = gy * x instead of 2 gy x)."""

    def forward(self, x):
        return x * x

    def backward(self, gy, x, y):
        return gy * x


class _RawCube(Op):
    """y = x^3;  dx = 3 gy x^2, written on raw(x): correct first derivative, but not differentiable again."""

    def forward(self, x):
        return x * x * x

    def backward(self, gy, x, y):
        return gy * 3 * raw(x) ** 2


class _SplitHalves(Op):
    """Two outputs: y1 = 2 x,  y2 = x^2;  dx = 2 g1 + 2 x g2"""

    def forward(self, x):
        return 2 * x, x * x

    def backward(self, gys, x, y):
        g1, g2 = gys
        return 2 * g1 + 2 * x * g2


def test_passes_on_correct_functions_with_broadcasting():
    a = shendu.randn(3, 1, requires_grad=True)
    b = shendu.randn(4, requires_grad=True)
    assert shendu.gradcheck(lambda p, q: (p * q).exp() / (1 + q * q), a, b)


def test_wrong_backward_raises_a_readable_table():
    x = shendu.randn(2, 3, dtype="float64", requires_grad=True)
    with pytest.raises(AssertionError) as info:
        shendu.gradcheck(lambda t: _WrongSquare()(t), x)
    message = str(info.value)
    assert "6 gradient entries differ from finite differences" in message
    header, *rows = message.splitlines()[1:]
    assert header.split() == ["input", "index", "analytic", "numeric", "abs", "error"]
    assert 1 <= len(rows) <= 10
    errors = [float(r.split()[-1]) for r in rows]
    assert errors == sorted(errors, reverse=True)  # worst first
    first = rows[0].split()
    assert first[0] == "0" and rows[0].count(",") == 1  # input 0, a 2-d index
    analytic, numeric, error = (float(v) for v in first[-3:])
    np.testing.assert_allclose(numeric, 2 * analytic, rtol=1e-4)  # v * x against the true 2 v x
    np.testing.assert_allclose(error, abs(numeric - analytic), rtol=1e-3)


def test_checks_every_input_not_only_the_first():
    good = shendu.randn(3, requires_grad=True)
    bad = shendu.randn(3, requires_grad=True)
    with pytest.raises(AssertionError) as info:
        shendu.gradcheck(lambda p, q: p * 2 + _WrongSquare()(q), good, bad)
    rows = str(info.value).splitlines()[2:]
    assert rows and all(r.split()[0] == "1" for r in rows)


def test_multiple_outputs_each_get_an_upstream_gradient():
    x = shendu.randn(4, requires_grad=True)
    assert shendu.gradcheck(lambda t: _SplitHalves()(t), x)
    assert shendu.gradcheck(lambda t: (t * 2, t.sum(), None), x)
    with pytest.raises(AssertionError, match="differ from finite differences"):
        shendu.gradcheck(lambda t: (t * 2, _WrongSquare()(t)), x)  # the error hides in the second output


def test_non_float_and_non_tensor_inputs_pass_through():
    x = shendu.randn(5, 3, requires_grad=True)
    idx = shendu.tensor([4, 0, 0, 2])
    assert shendu.gradcheck(lambda t, i, scale: t[i] * scale, x, idx, 3.0)
    assert shendu.gradcheck(lambda t, i: t.take(i, axis=0), x, np.array([1, 1, 3]))


def test_float32_inputs_are_checked_in_float64_and_left_untouched():
    x = shendu.randn(6, requires_grad=True)
    original = x.data.copy()
    seen = []

    def fn(t):
        seen.append(t.dtype)
        return (t * 3).exp()

    assert shendu.gradcheck(fn, x)
    assert set(seen) == {np.dtype(np.float64)}
    assert x.dtype == np.float32 and x.grad is None
    np.testing.assert_array_equal(x.data, original)


def test_only_inputs_requiring_grad_are_checked():
    x = shendu.randn(3, requires_grad=True)
    frozen = shendu.randn(3)
    assert shendu.gradcheck(lambda t, c: t * 2 + _WrongSquare()(c), x, frozen)


def test_numpy_float_arrays_count_as_inputs_even_when_not_contiguous():
    a = np.random.default_rng(0).standard_normal((4, 3)).T  # Fortran-ordered view
    with pytest.raises(AssertionError):
        shendu.gradcheck(lambda t: _WrongSquare()(t), a)
    assert shendu.gradcheck(lambda t: t * t, a)


def test_no_input_requiring_grad_is_an_error():
    with pytest.raises(ValueError, match="no input requires grad"):
        shendu.gradcheck(lambda t: t * 2, shendu.ones(2))


def test_gradgradcheck_passes_and_catches_non_differentiable_backward():
    x = shendu.randn(4, requires_grad=True)
    y = shendu.randn(4, requires_grad=True)
    assert shendu.gradgradcheck(lambda p, q: (p * q).tanh() * p, x, y)
    assert shendu.gradcheck(lambda t: _RawCube()(t), x)  # first order is right ...
    with pytest.raises(AssertionError, match="differ from finite differences"):
        shendu.gradgradcheck(lambda t: _RawCube()(t), x)  # ... the second is not


def test_gradcheck_agrees_with_torch_gradcheck_verdict():
    torch = pytest.importorskip("torch")
    xs = np.random.default_rng(5).standard_normal((3, 2))
    assert shendu.gradcheck(lambda t: (t.sin() * t).sum(axis=0), shendu.tensor(xs, requires_grad=True))
    assert torch.autograd.gradcheck(lambda t: (t.sin() * t).sum(dim=0), torch.tensor(xs, requires_grad=True))
