"""Activations by name: values and gradients against PyTorch, finite differences, get/serialize."""

import numpy as np
import pytest

import shendu
from shendu import activations


def _x64(seed=0):
    # values kept away from the kinks at 0, -3, 3 and 6 so finite differences are meaningful
    rng = np.random.default_rng(seed)
    x = rng.uniform(-7.5, 7.5, (4, 5))
    for kink in (0.0, -3.0, 3.0, 6.0):
        x[np.abs(x - kink) < 0.1] += 0.25
    return shendu.tensor(x, dtype=np.float64, requires_grad=True)


def _torch_cases():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    return {
        "relu": F.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "softmax": lambda t: F.softmax(t, -1),
        "log_softmax": lambda t: F.log_softmax(t, -1), "elu": F.elu, "selu": F.selu, "gelu": F.gelu,
        "silu": F.silu, "swish": F.silu, "softplus": F.softplus, "softsign": F.softsign,
        "leaky_relu": lambda t: F.leaky_relu(t, 0.2), "relu6": F.relu6, "hard_sigmoid": F.hardsigmoid,
        "exponential": torch.exp, "linear": lambda t: t,
    }


NAMES = ["relu", "sigmoid", "tanh", "softmax", "log_softmax", "elu", "selu", "gelu", "silu", "swish", "softplus",
         "softsign", "leaky_relu", "relu6", "hard_sigmoid", "exponential", "linear"]


@pytest.mark.parametrize("name", NAMES)
def test_activation_matches_torch_forward_and_backward(name):
    torch = pytest.importorskip("torch")
    fn, torch_fn = activations.get(name), _torch_cases()[name]
    x = _x64()
    y = fn(x)
    gy = np.random.default_rng(1).standard_normal(y.shape)
    y.backward(gy)
    tx = torch.tensor(x.data, requires_grad=True)
    ty = torch_fn(tx)
    ty.backward(torch.tensor(gy))
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    # PyTorch's hardsigmoid backward multiplies by 1/6 rounded to float32 (1.0f / 6.0f)
    rtol = 1e-7 if name == "hard_sigmoid" else 1e-9
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=rtol, atol=1e-12)


@pytest.mark.parametrize("name", [n for n in NAMES if n not in ("linear", "swish")])
def test_activation_gradients_and_second_derivatives(name):
    fn = activations.get(name)
    assert shendu.gradcheck(fn, _x64(2))
    assert shendu.gradgradcheck(fn, _x64(3) * 0.3, atol=1e-4)


def test_gelu_approximate_matches_torch_tanh_form():
    torch = pytest.importorskip("torch")
    x = _x64(4)
    np.testing.assert_allclose(activations.gelu(x, approximate=True).data,
                               torch.nn.functional.gelu(torch.tensor(x.data), approximate="tanh").numpy(), rtol=1e-10)


def test_relu_options_follow_keras():
    x = shendu.tensor([-4.0, -1.0, 0.5, 2.0, 9.0], dtype=np.float64, requires_grad=True)
    y = activations.relu(x, negative_slope=0.1, max_value=6.0, threshold=1.0)
    expected = np.array([-0.5, -0.2, -0.05, 2.0, 6.0])
    np.testing.assert_allclose(y.data, expected)
    assert shendu.gradcheck(lambda t: activations.relu(t, 0.1, 6.0, 1.0), x)


def test_get_and_serialize():
    assert activations.get(None) is activations.linear
    assert activations.get("ReLU") is activations.relu
    assert activations.get(activations.tanh) is activations.tanh
    assert activations.serialize(activations.swish) == "silu"
    assert all(activations.deserialize(activations.serialize(activations.get(n))) is activations.get(n)
               for n in NAMES)
    with pytest.raises(ValueError, match="unknown activation 'sigmod'"):
        activations.get("sigmod")
    with pytest.raises(ValueError, match="cannot serialise"):
        activations.serialize(lambda t: t)


def test_activations_keep_float32():
    x = shendu.tensor(np.linspace(-3, 3, 7, dtype=np.float32))
    for name in NAMES:
        assert activations.get(name)(x).dtype == np.float32, name
