"""The fused activation and dropout kernels (shendu.kernels.elementwise, shendu.kernels.dropout) against their
NumPy references: bit-identical in float32 and float64, on odd and non-contiguous shapes, NaN/inf included;
gradient checks with the kernel path on; dropout masks reproducible, independent of the thread count, with
the right keep rate, scale and broadcasting."""

from __future__ import annotations

import numpy as np
import pytest

import shendu
from shendu import kernels
from shendu.kernels import dropout as hashed
from shendu.kernels import elementwise as fused
from shendu.layers import Dropout
from shendu.layers.reshaping import SpatialDropout2D
from shendu.ops import elementwise as E
from shendu.ops import nn

needs_kernels = pytest.mark.skipif(not kernels.available(), reason="Numba kernels are off (SHENDU_JIT=0 or no numba)")

ACTIVATIONS = [
    ("relu", lambda: E.ReluOp()),
    ("leaky_relu", lambda: E.LeakyReluOp(0.2)),
    ("leaky_relu_steep", lambda: E.LeakyReluOp(1.5)),
    ("leaky_relu_negative", lambda: E.LeakyReluOp(-3.0)),
    ("elu", lambda: E.EluOp(1.3)),
    ("selu_inner", lambda: E.EluOp(E.SELU_ALPHA)),
    ("sigmoid", lambda: E.SigmoidOp()),
    ("tanh", lambda: E.TanhOp()),
    ("gelu", lambda: E.GeluOp()),
]
DTYPES = [np.float32, np.float64]


def _array(shape, dtype, seed=0, specials=True):
    a = np.random.default_rng(seed).standard_normal(shape).astype(dtype) * 3
    if specials:
        flat = a.reshape(-1)
        flat[:7] = [np.nan, -0.0, 0.0, np.inf, -np.inf, 1e-30, -1e-30]
    return a


def _both_paths(make_op, x, gy):
    """(y, dx) from the kernels, then from the NumPy references."""
    results = []
    for disabled in (False, True):
        op = make_op()
        with kernels.disabled() if disabled else _nothing(), np.errstate(invalid="ignore", over="ignore"):
            y = op.forward(x)
            results.append((y, op.backward(gy, x, y)))
    return results


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@needs_kernels
def test_fits_takes_large_contiguous_float_arrays_only():
    big = np.ones((131, 127), np.float32)
    assert fused.fits(big) and fused.fits(big, big)
    assert not fused.fits(np.ones((32, 32), np.float32))  # tiny arrays keep the NumPy path
    assert not fused.fits(big.T)  # not C-contiguous
    assert not fused.fits(big.astype(np.float16)) and not fused.fits(big.astype(np.int64))
    assert not fused.fits(big, big.astype(np.float64))  # mixed dtypes
    assert not fused.fits(big, np.ones((127, 131), np.float32))
    assert not fused.fits(shendu.tensor(big))  # a Tensor (create_graph) takes the reference
    with kernels.disabled():
        assert not fused.fits(big)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("name,make_op", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
@pytest.mark.parametrize("layout", ["odd2d", "odd3d", "parallel", "transposed", "strided"])
def test_activation_kernels_equal_the_references(name, make_op, dtype, layout):
    if layout == "odd2d":
        x, gy = _array((131, 127), dtype), _array((131, 127), dtype, seed=1)
    elif layout == "odd3d":
        x, gy = _array((3, 67, 89), dtype), _array((3, 67, 89), dtype, seed=1)
    elif layout == "parallel":  # past PARALLEL_MIN: the multi-threaded build
        x, gy = _array((257, 263), dtype), _array((257, 263), dtype, seed=1)
        assert x.size >= fused.PARALLEL_MIN
    elif layout == "transposed":
        x, gy = _array((127, 131), dtype).T, _array((131, 127), dtype, seed=1)
    else:
        x, gy = _array((131, 254), dtype)[:, ::2], _array((131, 127), dtype, seed=1)
    (y, dx), (y_ref, dx_ref) = _both_paths(make_op, x, gy)
    assert y.dtype == dx.dtype == np.dtype(dtype) and y.shape == dx.shape == x.shape
    np.testing.assert_array_equal(y, y_ref)  # NaN where NaN
    np.testing.assert_array_equal(dx, dx_ref)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_sigmoid_array_in_place_equals_the_reference(dtype):
    x = _array((200, 100), dtype)
    with kernels.disabled():
        expected = E.sigmoid_array(x)
    inplace = x.copy()
    assert E.sigmoid_array(inplace, out=inplace) is inplace
    np.testing.assert_array_equal(inplace, expected)


@pytest.mark.parametrize("name,make_op", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
def test_activation_gradients_with_the_kernel_path(name, make_op, monkeypatch):
    monkeypatch.setattr(fused, "MIN_SIZE", 1)  # small arrays take the kernels, so finite differences stay cheap
    x = shendu.tensor(np.random.default_rng(3).uniform(-2, 2, (5, 7)), requires_grad=True)  # away from the kinks
    x.data[np.abs(x.data) < 0.05] = 0.5
    assert shendu.gradcheck(lambda t: make_op()(t), x)
    assert shendu.gradgradcheck(lambda t: make_op()(t), x)


@pytest.mark.parametrize("name,make_op,torch_name", [
    ("relu", lambda: E.ReluOp(), "relu"), ("leaky_relu", lambda: E.LeakyReluOp(0.2), "leaky_relu"),
    ("elu", lambda: E.EluOp(1.0), "elu"), ("sigmoid", lambda: E.SigmoidOp(), "sigmoid"),
    ("tanh", lambda: E.TanhOp(), "tanh"), ("gelu", lambda: E.GeluOp(), "gelu"),
])
def test_large_activations_match_pytorch(name, make_op, torch_name):
    torch = pytest.importorskip("torch")
    x_np, g_np = _array((160, 130), np.float32, specials=False), _array((160, 130), np.float32, 1, specials=False)
    x = shendu.tensor(x_np, requires_grad=True)
    y = make_op()(x)
    y.backward(g_np)
    tx = torch.tensor(x_np, requires_grad=True)
    fn = {"relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
          "leaky_relu": lambda t: torch.nn.functional.leaky_relu(t, 0.2), "elu": torch.nn.functional.elu,
          "gelu": torch.nn.functional.gelu}[torch_name]
    ty = fn(tx)
    ty.backward(torch.tensor(g_np))
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=2e-6, atol=1e-5)  # gelu: 1 + erf cancels below -3
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=2e-6, atol=1e-5)  # 1 - y^2 cancels near |y| = 1


# ---------------------------------------------------------------------------------------------- dropout


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("rate", [0.0, 0.1, 0.5, 0.77, 1.0])
@pytest.mark.parametrize("shape", [(3, 101, 67), (5, 113, 127)], ids=["serial", "parallel"])
def test_dropout_kernel_equals_the_hash_reference(dtype, rate, shape):
    x = _array(shape, dtype, specials=False)
    x.reshape(-1)[:3] = [np.nan, np.inf, -0.0]
    key = np.uint64(0xDEADBEEF12345678)
    mask = nn.dropout_mask(key, x.shape, rate, dtype)
    assert mask.dtype == np.dtype(dtype)
    scale = 0.0 if rate >= 1 else 1.0 / (1.0 - rate)
    with np.errstate(invalid="ignore"):  # inf * 0 where dropped: NaN on both paths, as x * mask always gave
        np.testing.assert_array_equal(hashed.apply(x, key, hashed.keep_threshold(rate), x.dtype.type(scale)), x * mask)


def test_splitmix64_matches_the_published_sequence():
    # SplitMix64 seeded with 0 (Vigna's splitmix64.c, Java's SplittableRandom): the first outputs
    np.testing.assert_array_equal(hashed.splitmix64(np.uint64(0), 3),
                                  np.array([0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F], np.uint64))


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.5, 0.9])
@pytest.mark.parametrize("use_kernels", [True, False])
def test_dropout_keep_rate_and_scale(rate, use_kernels):
    x = shendu.ones(400, 500)
    shendu.seed(0)
    with _nothing() if use_kernels else kernels.disabled():
        y = nn.dropout(x, rate).data
    kept = y != 0
    n = kept.size
    assert abs(kept.mean() - (1 - rate)) < 5 * np.sqrt(rate * (1 - rate) / n)  # 5 standard errors
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y[kept], np.float32(1 / (1 - rate)))
    # no visible pattern: neighbours and rows are uncorrelated
    k = kept.astype(float) - kept.mean()
    assert abs((k[:, 1:] * k[:, :-1]).mean()) / k.var() < 0.01
    assert abs((k[1:] * k[:-1]).mean()) / k.var() < 0.01


def test_dropout_paths_and_thread_counts_give_the_same_masks():
    x = shendu.tensor(_array((256, 300), np.float32, specials=False), requires_grad=True)
    runs = []
    for use_kernels, threads in [(True, kernels.get_num_threads()), (True, 1), (False, 1)]:
        before = kernels.get_num_threads()
        kernels.set_num_threads(threads)
        try:
            shendu.seed(42)
            with _nothing() if use_kernels else kernels.disabled():
                y = nn.dropout(x, 0.4)
                y.backward(np.ones(y.shape, np.float32))
        finally:
            kernels.set_num_threads(before)
        runs.append((y.data.copy(), x.grad.data.copy()))
        x.grad = None
    for y, grad in runs[1:]:
        np.testing.assert_array_equal(y, runs[0][0])
        np.testing.assert_array_equal(grad, runs[0][1])
    y, grad = runs[0]
    np.testing.assert_array_equal(grad, (y != 0) * np.float32(1 / 0.6))  # the same mask in backward


def test_dropout_follows_the_seed_and_draws_one_key_per_call():
    x = shendu.ones(200, 100)
    shendu.seed(7)
    first, second = nn.dropout(x, 0.5).data, nn.dropout(x, 0.5).data
    assert not np.array_equal(first, second)
    shendu.seed(7)
    np.testing.assert_array_equal(nn.dropout(x, 0.5).data, first)
    state = shendu.random.get_state()
    third = nn.dropout(x, 0.5).data
    shendu.random.set_state(state)  # exact resume: the next mask again
    np.testing.assert_array_equal(nn.dropout(x, 0.5).data, third)


def test_dropout_gradient_with_the_kernel_path(monkeypatch):
    monkeypatch.setattr(fused, "MIN_SIZE", 1)
    x = shendu.tensor(np.random.default_rng(0).standard_normal((6, 5)), requires_grad=True)

    def seeded(t):
        shendu.seed(11)  # the same mask on every call
        return nn.dropout(t, 0.4)

    assert shendu.gradcheck(seeded, x)
    assert shendu.gradgradcheck(seeded, x)


@pytest.mark.parametrize("use_kernels", [True, False])
def test_dropout_noise_shape_broadcasts_whole_rows(use_kernels):
    x = shendu.ones(64, 30, 40)
    with _nothing() if use_kernels else kernels.disabled():
        y = nn.dropout(x, 0.5, noise_shape=(None, 1, 40)).data
    assert (y == y[:, :1, :]).all()
    assert 0.4 < (y[:, 0, :] == 0).mean() < 0.6


def test_spatial_dropout_drops_whole_maps_at_the_rate():
    x = np.ones((64, 9, 9, 32), np.float32)
    y = SpatialDropout2D(0.25)(x, training=True).data
    per_map = y.reshape(64, 81, 32)
    assert (per_map == per_map[:, :1, :]).all()
    assert abs((per_map[:, 0, :] == 0).mean() - 0.25) < 0.05


def test_dropout_layer_rng_and_non_contiguous_inputs():
    x = np.ones((300, 200), np.float32)
    a = Dropout(0.5, seed=3)(x, training=True).data
    b = Dropout(0.5, seed=3)(np.asfortranarray(x), training=True).data  # reference path, same mask
    np.testing.assert_array_equal(a, b)
    c = shendu.random.dropout(shendu.ones((300, 200)), 0.5, seed=3).numpy()
    np.testing.assert_array_equal(a, c)  # an int seed: a generator seeded with it, as the layer's


_POOL_PROBE = """
import sys
if sys.argv[1] == "torch_first":
    import torch
import numpy as np
import importlib
jit = importlib.import_module("shendu.kernels.jit")
x = np.linspace(-1, 1, 1 << 18, dtype=np.float32)
@jit.jit(parallel=True)
def double(a, out):
    for i in jit.prange(a.size):
        out[i] = 2 * a[i]
out = np.empty_like(x)
double(x, out)
assert np.array_equal(out, 2 * x)
a = np.ones((300, 300), np.float32)
assert (a @ a == 300).all()  # NumPy's BLAS, on whichever threads it now runs
if sys.argv[1] == "torch_first":
    t = torch.ones(256, 256)
    assert float((t @ t).sum()) == 256 ** 3  # PyTorch still works on the runtime it shares
from shendu.kernels import blas_threads
from shendu.kernels.openblas import blas_offers_callback
print(blas_offers_callback(), blas_threads.installed(), jit._layer[0])
"""


@pytest.mark.skipif(not kernels.available(), reason="needs Numba")
@pytest.mark.parametrize("order", ["shendu_alone", "torch_first"])
def test_thread_pool_choice_when_another_library_started_openmp(order):
    """shendu alone starts GNU OpenMP (NumPy's BLAS then runs on that pool too, or else the pool waits
    passively). When PyTorch imported first already started it, the kernels share that runtime if NumPy's BLAS
    can run on it too (one pool); otherwise they use Numba's own pool, since OpenBLAS's spinning threads and a
    second OpenMP pool would starve each other."""
    import ctypes.util
    import os
    import subprocess
    import sys

    if order == "torch_first":
        pytest.importorskip("torch")
    elif not ctypes.util.find_library("gomp"):
        pytest.skip("no GNU OpenMP on this machine")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "NUMBA_THREADING_LAYER")}
    done = subprocess.run([sys.executable, "-c", _POOL_PROBE, order], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    offered, installed, layer = done.stdout.split()[-3:]
    one_pool = offered == "True"
    assert layer == ("workqueue" if order == "torch_first" and not one_pool else "omp"), done.stdout
    assert installed == str(one_pool), done.stdout
