"""``einsum`` (``EinsumOp``): values against NumPy (and Keras 3 when installed), gradients by gradcheck, over the
subscript forms (explicit, implicit, ``...``, three operands); tests/test_ops_linalg.py's table holds its
registry case, double backward and PyTorch comparison."""

import os

import numpy as np
import pytest

import shendu
from shendu import ops

RNG = np.random.default_rng(0)


def _inputs(*shapes):
    return lambda: [shendu.tensor(RNG.standard_normal(s), requires_grad=True) for s in shapes]


SPECS = [  # (subscripts, operand shapes)
    ("ij,jk->ik", [(2, 3), (3, 4)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("...ij,jk->...ik", [(2, 2, 3, 4), (4, 5)]),
    ("bqhd,bkhd->bhqk", [(2, 3, 2, 4), (2, 5, 2, 4)]),  # attention scores, as Keras's MultiHeadAttention writes
    ("ij,j", [(3, 4), (4,)]),  # implicit output: 'i'
    ("ij->j", [(3, 4)]),
    ("ij,kl->", [(2, 3), (4, 5)]),  # letters only one operand has: summed there, broadcast in its gradient
    ("i,i,i->i", [(4,), (4,), (4,)]),
]

@pytest.mark.parametrize("subscripts,shapes", SPECS, ids=[s for s, _ in SPECS])
def test_values_and_gradients(subscripts, shapes):
    xs = _inputs(*shapes)()
    y = ops.einsum(subscripts, *xs)
    np.testing.assert_allclose(y.numpy(), np.einsum(subscripts, *(x.numpy() for x in xs)), rtol=1e-6)
    shendu.gradcheck(lambda *a: ops.einsum(subscripts, *a), *xs)


def test_matches_keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    a, b = RNG.standard_normal((2, 3, 4)).astype(np.float32), RNG.standard_normal((4, 5)).astype(np.float32)
    theirs = keras.ops.convert_to_numpy(keras.ops.einsum("...j,jk->...k", a, b))
    np.testing.assert_allclose(ops.einsum("...j,jk->...k", shendu.tensor(a), shendu.tensor(b)).numpy(), theirs,
                               rtol=1e-5)


def test_a_diagonal_has_no_gradient_and_says_so():
    x = shendu.tensor(RNG.standard_normal((3, 3)), requires_grad=True)
    np.testing.assert_allclose(ops.einsum("ii->i", x.detach()), np.diag(x.numpy()))
    with pytest.raises(NotImplementedError, match="repeated letter"):
        ops.einsum("ii->i", x).sum().backward()
    with pytest.raises(ValueError, match="names 2 operands"):
        ops.einsum("ij,jk->ik", x)
