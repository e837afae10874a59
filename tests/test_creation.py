"""Creation functions: dtypes (float32 by default), shapes, *_like, seeding, copies, devices."""

import numpy as np
import pytest

import shendu


def test_tensor_dtypes():
    assert shendu.tensor([1.0, 2.0]).dtype == np.float32
    assert shendu.tensor(1.5).dtype == np.float32 and shendu.tensor(1.5).shape == ()
    assert shendu.tensor([1, 2]).dtype == np.int64
    assert shendu.tensor([True, False]).dtype == np.bool_
    assert shendu.tensor([1, 2], dtype="float64").dtype == np.float64
    assert shendu.tensor([1.0], dtype=shendu.float64).dtype == np.float64
    assert shendu.tensor(np.zeros(2)).dtype == np.float64  # NumPy arrays keep their dtype, as in torch
    assert shendu.tensor(np.zeros(2, np.float16)).dtype == np.float16


def test_tensor_copies_its_data():
    a = np.zeros(3, np.float32)
    t = shendu.tensor(a, requires_grad=True)
    with shendu.no_grad():
        t += 1
    np.testing.assert_array_equal(a, [0.0, 0.0, 0.0])
    u = shendu.tensor(t)
    assert not np.shares_memory(u.data, t.data) and not u.requires_grad


def test_tensor_constructor_shares_numpy_memory():
    a = np.zeros(3, np.float32)
    assert np.shares_memory(shendu.Tensor(a).data, a)  # the low-level constructor wraps without copying


@pytest.mark.parametrize("fn,value", [(shendu.zeros, 0.0), (shendu.ones, 1.0)])
def test_zeros_ones_shapes_and_dtypes(fn, value):
    for t in (fn(2, 3), fn((2, 3)), fn([2, 3])):
        assert t.shape == (2, 3) and t.dtype == np.float32
        np.testing.assert_array_equal(t.data, np.full((2, 3), value))
    assert fn(4, dtype="float64").dtype == np.float64
    assert fn(2, requires_grad=True).requires_grad
    assert fn().shape == ()


def test_full_arange_eye():
    assert shendu.full((2, 2), 1.5).dtype == np.float32
    assert shendu.full(3, 7).dtype == np.int64
    np.testing.assert_array_equal(shendu.full((2,), 3.0, dtype="float64").data, [3.0, 3.0])
    np.testing.assert_array_equal(shendu.arange(4).data, [0, 1, 2, 3])
    assert shendu.arange(4).dtype == np.int64
    r = shendu.arange(0.0, 1.0, 0.25)
    assert r.dtype == np.float32
    np.testing.assert_allclose(r.data, [0.0, 0.25, 0.5, 0.75])
    np.testing.assert_array_equal(shendu.arange(1, 7, 2).data, [1, 3, 5])
    np.testing.assert_array_equal(shendu.eye(2, 3).data, np.eye(2, 3))
    assert shendu.eye(3).dtype == np.float32


def test_random_creation_is_seeded_and_float32():
    shendu.seed(123)
    a, b = shendu.rand(3, 4), shendu.randn(5)
    shendu.seed(123)
    np.testing.assert_array_equal(a.data, shendu.rand(3, 4).data)
    np.testing.assert_array_equal(b.data, shendu.randn(5).data)
    assert a.dtype == b.dtype == np.float32
    assert ((a.data >= 0) & (a.data < 1)).all()
    assert shendu.randn(2, dtype="float64", requires_grad=True).requires_grad


def test_randn_statistics():
    x = shendu.randn(20_000, dtype="float64").data
    assert abs(x.mean()) < 0.05 and abs(x.std() - 1) < 0.05


def test_like_functions_keep_shape_dtype_and_device():
    x = shendu.ones(2, 3, dtype="float64")
    for t in (shendu.zeros_like(x), shendu.ones_like(x), shendu.rand_like(x), shendu.randn_like(x),
              shendu.full_like(x, 4.0)):
        assert t.shape == (2, 3) and t.dtype == np.float64 and t.device == "cpu" and not t.requires_grad
    np.testing.assert_array_equal(shendu.full_like(x, 4.0).data, np.full((2, 3), 4.0))
    assert shendu.zeros_like(x, dtype=np.dtype("float32")).dtype == np.float32
    assert shendu.ones_like(np.zeros((4,), np.int32)).dtype == np.int32
    assert shendu.rand_like(shendu.tensor([1, 2])).dtype == np.float32  # random numbers need a float dtype
    assert shendu.zeros_like(x, requires_grad=True).requires_grad


def test_cuda_without_cupy_gives_a_clear_error():
    if shendu.backend.cupy_available():
        pytest.skip("a GPU is present")
    for make in (lambda: shendu.tensor([1.0], device="cuda"), lambda: shendu.zeros(2, device="cuda"),
                 lambda: shendu.ones(2).to("cuda")):
        with pytest.raises(RuntimeError, match="needs CuPy and a CUDA GPU.*device='cpu'"):
            make()
    with pytest.raises(ValueError, match="'cpu' or 'cuda'"):
        shendu.tensor([1.0], device="tpu")


def test_to_and_cpu_return_the_same_tensor_on_its_device():
    w = shendu.ones(2, requires_grad=True)
    h = w * 2
    assert h.to("cpu") is h and h.cpu() is h  # no silent detaching
    with pytest.raises(ValueError, match="'cpu' or 'cuda'"):
        h.to("tpu")


def test_creation_matches_torch():
    torch = pytest.importorskip("torch")
    assert str(shendu.tensor([1.0]).dtype) == str(torch.tensor([1.0]).dtype).replace("torch.", "")
    assert str(shendu.arange(3).dtype) == str(torch.arange(3).dtype).replace("torch.", "")
    np.testing.assert_array_equal(shendu.eye(3, 2).data, torch.eye(3, 2).numpy())
    np.testing.assert_array_equal(shendu.arange(1.0, 2.0, 0.25).data, torch.arange(1.0, 2.0, 0.25).numpy())
