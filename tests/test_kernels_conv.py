"""The convolution and pooling kernels (shendu.kernels.conv, shendu.kernels.pool) against their NumPy references:
the same answers in float32 and float64 on odd shapes (strides, dilation, padding, groups, depthwise, overlapping
pool windows, ties, NaN, -inf), non-contiguous inputs; float64 gradient checks with the kernel path on."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

import shendu
from shendu import kernels
from shendu.kernels import conv as kconv
from shendu.kernels import gemm
from shendu.kernels import pool as kpool
from shendu.kernels import winograd as kwinograd
from shendu.ops import bias as bias_ops
from shendu.ops import convolution as conv
from shendu.ops import pool


@pytest.fixture(autouse=True)
def _kernels_on_small_arrays(monkeypatch):
    """The ops send arrays below MIN_SIZE to the references; these tests take the kernels on small ones too."""
    monkeypatch.setattr(kconv, "MIN_SIZE", 0)
    monkeypatch.setattr(kpool, "MIN_SIZE", 0)


needs_kernels = pytest.mark.skipif(not kernels.available(), reason="Numba kernels are off (SHENDU_JIT=0 or no numba)")
DTYPES = [np.float32, np.float64]


def _both(fn):
    """fn() with the kernels, then with the NumPy references."""
    results = []
    for off in (False, True):
        with kernels.disabled() if off else contextlib.nullcontext():
            results.append(fn())
    return results


def _close(a, b, dtype):
    """Equal up to rounding: the kernels add the same products in another order."""
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol * max(1.0, float(np.abs(b).max(initial=0))))


def _rand(shape, dtype, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# (x shape, kernel shape, strides, padding, dilation, groups)
CONV_CASES = [
    ((3, 7, 5, 3), (3, 3, 3, 4), 1, "valid", 1, 1),
    ((2, 7, 6, 3), (3, 2, 3, 5), 2, 1, 1, 1),
    ((2, 8, 7, 2), (2, 3, 2, 3), (2, 3), "same", 1, 1),
    ((2, 9, 8, 4), (3, 3, 2, 6), (2, 1), ((2, 1), (0, 3)), 2, 2),
    ((2, 6, 6, 3), (3, 3, 1, 6), 1, "same", 1, 3),  # depthwise, multiplier 2
    ((1, 7, 7, 2), (1, 1, 2, 5), 2, "valid", 1, 1),
    ((2, 5, 5, 1), (5, 5, 1, 2), 1, "same", 1, 1),  # kernel as large as the image
]


@needs_kernels
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape, w_shape, strides, padding, dilation, groups", CONV_CASES)
def test_input_gradient_kernel_matches_reference(x_shape, w_shape, strides, padding, dilation, groups, dtype):
    geo = conv.ConvGeometry.make(x_shape[1:3], w_shape[:2], strides, padding, dilation, groups)
    w = _rand(w_shape, dtype, 1)
    gy = _rand((x_shape[0], *geo.out_hw, w_shape[3]), dtype, 2)
    fast, ref = _both(lambda: conv.conv_input_grad(gy, w, geo))
    assert fast.dtype == ref.dtype == dtype and fast.shape == ref.shape == x_shape[:3] + (w_shape[2] * groups,)
    _close(fast, ref, dtype)


@needs_kernels
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel, strides, padding, dilation, groups", [
    ((3, 3), 1, "valid", 1, 1), ((3, 2), 2, 1, 1, 1), ((2, 3), (2, 3), "same", 1, 2),
    ((3, 3), (2, 1), ((2, 1), (0, 3)), 2, 2), ((5, 5), 1, "same", 1, 1), ((1, 1), 2, "valid", 1, 1)])
def test_im2col_kernel_matches_reference(kernel, strides, padding, dilation, groups, dtype):
    x = _rand((3, 9, 7, 8 * groups, 2), dtype)[..., 0]  # (3, 9, 7, 8G), strided
    assert x.shape[3] // groups >= kconv.IM2COL_MIN_CHANNELS
    geo = conv.ConvGeometry.make(x.shape[1:3], kernel, strides, padding, dilation, groups)
    fast, ref = _both(lambda: conv.im2col(x, geo, conv.COLS_POOL))
    np.testing.assert_array_equal(fast, ref)
    assert fast.dtype == dtype


@needs_kernels
@pytest.mark.parametrize("dtype", DTYPES)
def test_input_gradient_kernel_takes_non_contiguous_arrays(dtype):
    geo = conv.ConvGeometry.make((6, 5), (3, 3), 1, "same")
    w_strided = np.repeat(_rand((3, 3, 2, 3), dtype, 1), 2, axis=3)[..., ::2]  # strided along the last axis
    gy = _rand((2, 3, 6, 5), dtype, 2).transpose(0, 2, 3, 1)   # (2, 6, 5, 3) channels_first memory
    fast, ref = _both(lambda: conv.conv_input_grad(gy, w_strided, geo))
    _close(fast, ref, dtype)


@needs_kernels
@pytest.mark.parametrize("dtype", DTYPES)
def test_conv_layers_fast_path_matches_reference_forward_and_backward(dtype):
    arrays = [_rand((2, 7, 6, 4), dtype), _rand((3, 3, 2, 6), dtype, 1), _rand((6,), dtype, 2),
              _rand((3, 3, 3, 6), dtype, 3)]

    def run():
        x, w, b, w_t = (shendu.tensor(a, dtype=dtype, requires_grad=True) for a in arrays)
        y = conv.conv2d(x, w, b, strides=(2, 1), padding="same", groups=2)
        z = conv.conv2d_transpose(y, w_t, None, strides=2, padding="same")
        (z * z).sum().backward()
        return y.data, z.data, x.grad.data, w.grad.data, b.grad.data, w_t.grad.data

    for got, want in zip(*_both(run)):
        assert got.dtype == dtype
        _close(got, want, dtype)


@needs_kernels
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("images", [1, 3])  # images per group of the first conv: 5 groups; 3 + a last one of 2
def test_conv_image_groups_match_one_pass_and_reference(images, groups, dtype, monkeypatch):
    arrays = [_rand((5, 7, 6, 8 * groups), dtype), _rand((3, 3, 8, 4 * groups), dtype, 1),
              _rand((4 * groups,), dtype, 2), _rand((3, 3, 8, 4 * groups), dtype, 3)]

    def run():
        x, w, b, w_t = (shendu.tensor(a, dtype=dtype, requires_grad=True) for a in arrays)
        y = conv.conv2d(x, w, b, padding="same", groups=groups)
        z = conv.conv2d_transpose(y, w_t, None, strides=2, padding="same")
        (z * z).sum().backward()
        return y.data, z.data, x.grad.data, w.grad.data, b.grad.data, w_t.grad.data

    one_pass = run()
    per_image = 7 * 6 * 9 * 8 * groups * np.dtype(dtype).itemsize  # bytes of the first conv's cols per image
    monkeypatch.setattr(conv, "GROUP_BYTES", images * per_image)
    image_groups = -(-5 // conv._images_per_group(per_image))  # groups of the batch of 5
    assert image_groups == (5 if images == 1 else 2)
    grouped, reference = _both(run)
    for got, whole, want in zip(grouped, one_pass, reference):
        assert got.dtype == dtype
        _close(got, whole, dtype)
        _close(got, want, dtype)


def _check_conv_and_transpose(arrays, dtype, strides, padding, dilation):
    """A convolution's forward and gradients, then a transposed convolution of its output back to x's channels
    (its forward is the input gradient; its gradients the forward and the filter gradient), with the kernels
    against the NumPy references. Uneven padding (no transposed convolution takes it): the convolution alone."""

    def run():
        x, w, b = (shendu.tensor(a, dtype=dtype, requires_grad=True) for a in arrays)
        y = conv.conv2d(x, w, b, strides, padding, dilation)
        (y * y).sum().backward(retain_graph=True)
        results = [y.data, x.grad.data, w.grad.data, b.grad.data]
        if isinstance(padding, tuple):
            return results
        x.grad = w.grad = None
        z = conv.conv2d_transpose(y, w, None, strides, padding, dilation=dilation)
        (z * z).sum().backward()
        return [*results, z.data, x.grad.data, w.grad.data]

    for got, want in zip(*_both(run)):
        assert got.dtype == dtype
        _close(got, want, dtype)


def _at_one_and_all_threads(fn):
    """fn() with the kernels on 1 thread, then on all of them (skips where there is only one)."""
    before = kernels.get_num_threads()
    if before < 2:
        pytest.skip("one kernel thread here: nothing to compare 1 thread with")
    results = []
    try:
        for threads in (1, before):
            kernels.set_num_threads(threads)
            results.append(fn())
    finally:
        kernels.set_num_threads(before)
    return results


# (x shape, output channels, strides, padding, dilation): convolutions narrow enough for the direct kernels
NARROW_CASES = [
    ((3, 9, 8, 5), 1, 1, "same", 1),
    ((2, 9, 7, 3), 2, 2, "valid", 1),
    ((2, 10, 9, 4), 4, (2, 1), (2, 1), 2),
    ((3, 6, 6, 16), 3, 1, 1, 1),
    ((2, 8, 8, 1), 1, 2, "same", (1, 2)),
]


@needs_kernels
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape, outputs, strides, padding, dilation", NARROW_CASES)
def test_narrow_convolution_kernels_match_reference(x_shape, outputs, strides, padding, dilation, dtype):
    """A convolution with few outputs (its forward and both gradients), and a transposed convolution from few
    channels (its forward is that input gradient; its gradients that forward and filter gradient), on the
    direct kernels against the im2col/GEMM reference."""
    arrays = [_rand(x_shape, dtype), _rand((3, 3, x_shape[3], outputs), dtype, 1), _rand((outputs,), dtype, 2)]
    geo = conv.ConvGeometry.make(x_shape[1:3], (3, 3), strides, padding, dilation)
    assert conv._narrow(arrays[0], arrays[1], outputs, geo)

    _check_conv_and_transpose(arrays, dtype, strides, padding, dilation)


@needs_kernels
def test_narrow_convolution_double_backward_with_kernels_on():
    """create_graph runs the filter gradient as an op (Conv2DFilterGradOp), on the narrow kernel too."""
    x, w = (shendu.tensor(_rand(s, np.float64, i), dtype="float64", requires_grad=True)
            for i, s in enumerate([(2, 6, 5, 3), (3, 3, 3, 2)]))
    geo = conv.ConvGeometry.make((6, 5), (3, 3), 2, "same")
    assert conv._narrow(x.data, w.data, 2, geo)
    assert shendu.gradgradcheck(lambda x, w: conv.conv2d(x, w, strides=2, padding="same"), x, w)


@needs_kernels
def test_narrow_convolution_gradients_do_not_depend_on_the_thread_count():
    x, w = _rand((70, 12, 12, 8), np.float32), _rand((3, 3, 8, 1), np.float32, 1)
    geo = conv.ConvGeometry.make((12, 12), (3, 3), 1, "same")
    gy = _rand((70, 12, 12, 1), np.float32, 2)
    results = _at_one_and_all_threads(lambda: [*conv.narrow_gradients(x, gy, w, geo, w.shape),
                                               conv.conv_input_grad(gy, w, geo),
                                               conv.conv_filter_grad(None, gy, geo, w.shape, x),
                                               conv.im2col_forward(x, w, geo, conv.COLS_POOL)[1]])
    for one, many in zip(*results):
        np.testing.assert_array_equal(one, many)
    both, dx_alone, dw_alone = results[0][:2], results[0][2], results[0][3]
    np.testing.assert_array_equal(both[0], dx_alone)  # one pass for both: the same bits as each alone
    np.testing.assert_array_equal(both[1], dw_alone)


# (x shape, output channels, strides, padding, dilation): convolutions for the implicit im2col kernels
IMPLICIT_CASES = [
    ((3, 9, 8, 8), 6, 1, "valid", 1),
    ((2, 10, 9, 12), 5, 2, "same", 2),
    ((2, 7, 7, 16), 8, (2, 1), ((2, 1), (0, 3)), 1),  # uneven padding: no transposed convolution takes it
    ((2, 7, 7, 16), 9, (1, 2), 1, (2, 1)),
    ((1, 4, 4, 8), 7, 1, "valid", 1),  # 4 windows: fewer than the filter gradient's blocks (some empty)
]


@needs_kernels
@pytest.mark.skipif(not gemm.available(), reason="NumPy's BLAS is not an OpenBLAS the kernels can call")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows", [3, 128])
@pytest.mark.parametrize("x_shape, outputs, strides, padding, dilation", IMPLICIT_CASES)
def test_implicit_convolution_kernels_match_reference(x_shape, outputs, strides, padding, dilation, rows, dtype,
                                                      monkeypatch):
    """The implicit im2col kernels (forward, filter gradient; blocks of 3 windows that cross rows and images, and
    of 128) in a convolution's forward and backward, and in a transposed convolution's backward (its input
    gradient is that forward, its filter gradient that filter gradient), against the NumPy reference."""
    monkeypatch.setattr(kconv, "IMPLICIT_ROWS", rows)
    monkeypatch.setattr(conv, "_winograd", lambda *args: False)  # these cases test the implicit kernels
    arrays = [_rand(x_shape, dtype), _rand((3, 3, x_shape[3], outputs), dtype, 1), _rand((outputs,), dtype, 2)]
    geo = conv.ConvGeometry.make(x_shape[1:3], (3, 3), strides, padding, dilation)
    assert conv._implicit(arrays[0], arrays[1], geo) and not conv._narrow(arrays[0], arrays[1], outputs, geo)

    _check_conv_and_transpose(arrays, dtype, strides, padding, dilation)


@needs_kernels
@pytest.mark.skipif(not gemm.available(), reason="NumPy's BLAS is not an OpenBLAS the kernels can call")
def test_implicit_convolution_keeps_no_cols_and_double_backward_runs_on_it():
    """The forward keeps no im2col matrix for the backward; create_graph runs the filter gradient as an op
    (Conv2DFilterGradOp) on the implicit kernel, and its double backward checks out."""
    x, w = (shendu.tensor(_rand(s, np.float64, i), dtype="float64", requires_grad=True)
            for i, s in enumerate([(2, 6, 5, 8), (3, 3, 8, 5)]))
    geo = conv.ConvGeometry.make((6, 5), (3, 3), 2, "same")
    assert conv._implicit(x.data, w.data, geo)
    op = conv.Conv2DOp(geo)
    op(x, w, None)
    assert op.cols is None
    assert shendu.gradgradcheck(lambda x, w: conv.conv2d(x, w, strides=2, padding="same"), x, w)


@needs_kernels
@pytest.mark.skipif(not gemm.available(), reason="NumPy's BLAS is not an OpenBLAS the kernels can call")
def test_implicit_convolution_does_not_depend_on_the_thread_count():
    x, w = _rand((9, 12, 12, 16), np.float32), _rand((3, 3, 16, 24), np.float32, 1)
    geo = conv.ConvGeometry.make((12, 12), (3, 3), 1, "same")
    gy = _rand((9, 12, 12, 24), np.float32, 2)
    results = _at_one_and_all_threads(lambda: [conv.implicit_forward(x, w, geo),
                                               conv.implicit_filter_grad(x, gy, geo, w.shape)])
    for one, many in zip(*results):
        np.testing.assert_array_equal(one, many)


@pytest.fixture
def _winograd_on_few_channels(monkeypatch):
    """Winograd's kernels on the small channel counts and images of these tests (the ops take them from 32
    channels and 8 x 8 outputs)."""
    monkeypatch.setattr(conv, "WINOGRAD_MIN_CHANNELS", 8)
    monkeypatch.setattr(conv, "WINOGRAD_MIN_OUTPUT_SIDE", 1)


# (x shape, output channels, padding): 3x3 stride-1 convolutions for Winograd's F(4x4, 3x3) kernels
WINOGRAD_CASES = [
    ((3, 9, 8, 8), 8, "valid"),  # 7 x 6 outputs: the tiles' last row and last two columns fall outside
    ((2, 10, 9, 12), 13, "same"),  # 10 x 9 outputs
    ((2, 13, 11, 8), 8, "valid"),  # 11 x 9 outputs: three rows of tiles
    ((2, 7, 7, 8), 16, ((2, 1), (0, 2))),  # uneven padding: no transposed convolution takes it
    ((2, 5, 6, 8), 16, 2),  # padding 2
    ((2, 4, 5, 8), 8, 3),  # padding 3: whole rows and columns of tiles in the frame
    ((1, 3, 3, 8), 8, 1),  # one tile
    ((2, 6, 7, 16), 8, "same"),  # more inputs than outputs
]


@needs_kernels
@pytest.mark.skipif(not gemm.available(), reason="NumPy's BLAS is not an OpenBLAS the kernels can call")
@pytest.mark.usefixtures("_winograd_on_few_channels")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("tiles", [3, 128])
@pytest.mark.parametrize("x_shape, outputs, padding", WINOGRAD_CASES)
def test_winograd_convolution_matches_reference(x_shape, outputs, padding, tiles, dtype, monkeypatch):
    """Winograd's kernels (blocks of 3 tiles that cross rows and images, and of 128) in a convolution's forward
    and gradients, and in a transposed convolution's forward (the input gradient) and backward (the forward
    and the filter gradient), against the NumPy reference."""
    monkeypatch.setattr(kwinograd, "TILES", tiles)
    arrays = [_rand(x_shape, dtype), _rand((3, 3, x_shape[3], outputs), dtype, 1), _rand((outputs,), dtype, 2)]
    geo = conv.ConvGeometry.make(x_shape[1:3], (3, 3), 1, padding)
    assert conv._winograd(arrays[0], arrays[1].shape, geo, arrays[1])

    _check_conv_and_transpose(arrays, dtype, 1, padding, 1)


@needs_kernels
@pytest.mark.skipif(not gemm.available(), reason="NumPy's BLAS is not an OpenBLAS the kernels can call")
@pytest.mark.usefixtures("_winograd_on_few_channels")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("stripes", [2, 3, 64])
@pytest.mark.parametrize("padding", ["valid", "same", 2, 3, ((1, 2), (2, 0))])
@pytest.mark.parametrize("shape", [(2, 9, 8, 8), (3, 6, 7, 12), (1, 12, 5, 8)])
def test_winograd_gradients_match_reference(shape, padding, stripes, dtype, monkeypatch):
    """The input gradient (the forward's adjoint, in stripes of rows of tiles: 2 and 3 stripes hold several
    rows, across images too) and the filter gradient (fixed blocks of tiles) against the reference."""
    monkeypatch.setattr(kwinograd, "STRIPES", stripes)
    geo = conv.ConvGeometry.make(shape[1:3], (3, 3), 1, padding)
    x, w = _rand(shape, dtype), _rand((3, 3, shape[3], 16), dtype, 1)
    gy = _rand((shape[0], *geo.out_hw, 16), dtype, 2)
    assert conv._winograd(gy, w.shape, geo, w) and conv._winograd(x, w.shape, geo, gy)
    fast, ref = _both(lambda: [conv.conv_input_grad(gy, w, geo), conv.conv_filter_grad(None, gy, geo, w.shape, x)])
    for got, want, expected_shape in zip(fast, ref, [shape, w.shape]):
        assert got.shape == want.shape == expected_shape and got.dtype == dtype
        _close(got, want, dtype)


@needs_kernels
@pytest.mark.skipif(not gemm.available(), reason="NumPy's BLAS is not an OpenBLAS the kernels can call")
@pytest.mark.parametrize("pads", [((1, 1), (1, 1)), ((2, 1), (0, 2)), ((3, 3), (3, 3))])
def test_winograd_reads_the_padding_in_place(pads):
    """The kernels read a padded input's frame as zeros (tiles reaching into it are copied with their zeros):
    the same bits as Winograd on the input padded by hand, forward and filter gradient."""
    x, w = _rand((3, 9, 10, 32), np.float32), _rand((3, 3, 32, 40), np.float32, 1)
    padded = np.pad(x, ((0, 0), *pads, (0, 0)))
    geo = conv.ConvGeometry.make(x.shape[1:3], (3, 3), 1, pads)
    valid = conv.ConvGeometry.make(padded.shape[1:3], (3, 3), 1, "valid")
    assert geo.out_hw == valid.out_hw and conv._winograd(x, w.shape, geo, w)
    gy = _rand((3, *geo.out_hw, 40), np.float32, 2)
    np.testing.assert_array_equal(conv.winograd_forward(x, w, geo), conv.winograd_forward(padded, w, valid))
    np.testing.assert_array_equal(conv.winograd_filter_grad(x, gy, geo), conv.winograd_filter_grad(padded, gy, valid))


@needs_kernels
@pytest.mark.skipif(not gemm.available(), reason="NumPy's BLAS is not an OpenBLAS the kernels can call")
@pytest.mark.usefixtures("_winograd_on_few_channels")
def test_winograd_gradients_check_out_and_do_not_depend_on_the_thread_count():
    """float64 gradient checks (and double backward) through Winograd's forward and gradients; the same bits on
    1 thread and on all of them, and for an empty batch an empty or zero answer."""
    x, w = (shendu.tensor(_rand(s, np.float64, i), dtype="float64", requires_grad=True)
            for i, s in enumerate([(2, 5, 6, 8), (3, 3, 8, 8)]))
    geo = conv.ConvGeometry.make((5, 6), (3, 3), 1, "same")
    assert conv._winograd(x.data, w.shape, geo, w.data)
    assert shendu.gradcheck(lambda x, w: conv.conv2d(x, w, padding="same"), x, w)
    assert shendu.gradgradcheck(lambda x, w: conv.conv2d(x, w, padding="same"), x, w)
    a, k = _rand((9, 12, 12, 16), np.float32), _rand((3, 3, 16, 24), np.float32, 1)
    geo, valid = (conv.ConvGeometry.make((12, 12), (3, 3), 1, padding) for padding in ("same", "valid"))
    gy = _rand((9, 12, 12, 24), np.float32, 2)
    results = _at_one_and_all_threads(lambda: [conv.winograd_forward(a, k, geo), conv.winograd_forward(a, k, valid),
                                               conv.winograd_input_grad(gy, k, geo),
                                               conv.winograd_filter_grad(a, gy, geo)])
    for one, many in zip(*results):
        np.testing.assert_array_equal(one, many)
    empty, gy_empty = a[:0], gy[:0]
    assert conv.winograd_forward(empty, k, geo).shape == (0, 12, 12, 24)
    assert conv.winograd_input_grad(gy_empty, k, geo).shape == (0, 12, 12, 16)
    np.testing.assert_array_equal(conv.winograd_filter_grad(empty, gy_empty, geo), np.zeros(k.shape, np.float32))


@needs_kernels
@pytest.mark.skipif(not gemm.available(), reason="NumPy's BLAS is not an OpenBLAS the kernels can call")
@pytest.mark.parametrize("channels", [(32, 64), (128, 32)])
def test_winograd_float32_rounding_stays_small(channels, monkeypatch):
    """F(4x4, 3x3) rounds more than a direct sum (its transforms scale by up to 5 and 1/24): in float32, the
    forward and both gradients of a convolution the ops send to it stay within 2e-5 of their largest value,
    against the float64 answer (measured 2e-6 to 9e-6, the most for the forward with 128 input channels; the
    direct im2col GEMM 6e-7 to 8e-7), and WINOGRAD = False (SHENDU_WINOGRAD=0) turns it off."""
    c, o = channels
    x, w = _rand((4, 26, 26, c), np.float64), _rand((3, 3, c, o), np.float64, 1) / np.sqrt(9 * c)
    geo = conv.ConvGeometry.make((26, 26), (3, 3), 1, "same")
    gy = _rand((4, 26, 26, o), np.float64, 2)
    x32, w32, gy32 = x.astype(np.float32), w.astype(np.float32), gy.astype(np.float32)
    assert conv._winograd(x32, w.shape, geo, w32) and conv._winograd(gy32, w.shape, geo, w32)
    pairs = [(conv.im2col_forward(x32, w32, geo, conv.COLS_POOL)[1], conv.winograd_forward(x, w, geo)),
             (conv.conv_input_grad(gy32, w32, geo), conv.winograd_input_grad(gy, w, geo)),
             (conv.conv_filter_grad(None, gy32, geo, w.shape, x32), conv.winograd_filter_grad(x, gy, geo))]
    for got, exact in pairs:
        assert got.dtype == np.float32
        assert np.abs(got - exact).max() <= 2e-5 * np.abs(exact).max()
    monkeypatch.setattr(conv, "WINOGRAD", False)  # switched off: the direct GEMM, which rounds less
    assert not conv._winograd(x32, w.shape, geo, w32)
    direct = conv.im2col_forward(x32, w32, geo, conv.COLS_POOL)[1]
    assert np.abs(direct - pairs[0][1]).max() <= 2e-6 * np.abs(pairs[0][1]).max()


def test_winograd_kernel_transform():
    """U = G g G^T: for a filter that picks one tap, the 6x6 transform is the outer product of G's columns; and
    dg = G^T dU G is its adjoint: <U(g), dU> = <g, dg> for random g and dU."""
    w = np.zeros((3, 3, 1, 1))
    w[1, 2, 0, 0] = 1.0
    u = kwinograd.transform_kernel(w).reshape(kwinograd.SIDE, kwinograd.SIDE)
    np.testing.assert_array_equal(u, np.outer(kwinograd.G[:, 1], kwinograd.G[:, 2]))
    g, du = _rand((3, 3, 5, 7), np.float64), _rand((kwinograd.ELEMENTS, 5, 7), np.float64, 1)
    dg = kwinograd.untransform_filter_grad(du, np.float64)
    assert dg.shape == g.shape
    np.testing.assert_allclose(np.sum(kwinograd.transform_kernel(g) * du), np.sum(g * dg), rtol=1e-12)


@needs_kernels
@pytest.mark.skipif(not gemm.available(), reason="NumPy's BLAS is not an OpenBLAS the kernels can call")
def test_winograd_kernel_computes_the_documented_formula():
    """One tile, one channel: the kernel's 4x4 outputs are A^T [(G g G^T) * (B^T d B)] A with the module's
    matrices (the 1-D transforms in the kernels are those matrices), and equal the direct correlation."""
    d, g = _rand((6, 6), np.float64), _rand((3, 3), np.float64, 1)
    at, bt, gm = kwinograd.AT, kwinograd.BT, kwinograd.G
    formula = at @ ((gm @ g @ gm.T) * (bt @ d @ bt.T)) @ at.T
    direct = np.array([[np.sum(d[i:i + 3, j:j + 3] * g) for j in range(4)] for i in range(4)])
    got = conv.winograd_forward(d[None, :, :, None], g[:, :, None, None], conv.ConvGeometry.make((6, 6), (3, 3)))
    got = got[0, :, :, 0]
    np.testing.assert_allclose(formula, direct, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got, formula, rtol=1e-12, atol=1e-12)


@needs_kernels
def test_conv_fast_paths_take_an_empty_batch():
    x = shendu.tensor(np.zeros((0, 6, 6, 8), np.float32), requires_grad=True)
    w = shendu.tensor(_rand((3, 3, 8, 4), np.float32), requires_grad=True)
    y = conv.conv2d(x, w)
    y.sum().backward()
    assert y.shape == (0, 4, 4, 4) and x.grad.shape == (0, 6, 6, 8)
    assert np.array_equal(w.grad.data, np.zeros((3, 3, 8, 4), np.float32))


@needs_kernels
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(3, 37, 41, 13), (1, 1, 16384, 1), (2, 130, 70, 3)])
def test_bias_kernels_match_numpy(shape, dtype):
    gy, b = _rand(shape, dtype), _rand(shape[-1:], dtype, 1)
    y_fast, y_ref = _both(lambda: conv.add_bias(gy.copy(), b))
    np.testing.assert_array_equal(y_fast, y_ref)
    db_fast, db_ref = _both(lambda: conv.bias_grad(gy))
    assert db_fast.dtype == dtype and db_fast.shape == shape[-1:]
    _close(db_fast, db_ref, dtype)
    _close(conv.bias_grad(gy[:, ::-1]), gy[:, ::-1].sum(axis=(0, 1, 2)), dtype)  # strided: NumPy's sum
    mixed = gy.astype(np.float32)
    conv.add_bias(mixed, b.astype(np.float64))  # another dtype: NumPy's in-place rule
    np.testing.assert_array_equal(mixed, (gy.astype(np.float32) + b.astype(np.float64)).astype(np.float32))


@needs_kernels
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(3, 37, 41, 13), (1, 1, 16384, 1), (128, 512)])
def test_fused_bias_relu_kernels_match_numpy(shape, dtype):
    z, b = _rand(shape, dtype), _rand(shape[-1:], dtype, 1)
    z.reshape(-1)[::97] = np.nan  # NaN stays NaN, as np.maximum
    z.reshape(-1)[1::89] = -b[0] if shape[-1] == 1 else 0  # exact zeros and sums of zero
    for bias in (b, None):
        y_fast, y_ref = _both(lambda bias=bias: bias_ops.add_bias(z.copy(), bias, relu=True))
        np.testing.assert_array_equal(y_fast, y_ref)
        want = np.maximum(z + bias if bias is not None else z, 0)
        np.testing.assert_array_equal(y_ref, want)
    y = z.copy()
    assert bias_ops.add_bias(y, b, relu=True) is y  # in place


@needs_kernels
def test_conv_with_large_bias_matches_reference():
    x, w, b = _rand((2, 20, 20, 3), np.float64), _rand((3, 3, 3, 50), np.float64, 1), _rand((50,), np.float64, 2)

    def run():
        xt, wt, bt = (shendu.tensor(a, dtype="float64", requires_grad=True) for a in (x, w, b))
        y = conv.conv2d(xt, wt, bt, padding="same")
        (y * y).sum().backward()
        return y.data, xt.grad.data, wt.grad.data, bt.grad.data

    for got, want in zip(*_both(run)):
        _close(got, want, np.float64)


@pytest.mark.parametrize("fn, make", [
    (lambda x, w, b: conv.conv2d(x, w, b, strides=2, padding="same", dilation=1),
     lambda: [(2, 5, 4, 2), (3, 3, 2, 3), (3,)]),
    (lambda x, w: conv.conv2d(x, w, padding=1, dilation=2, groups=2), lambda: [(1, 5, 5, 4), (2, 2, 2, 4)]),
    (lambda x, w, b: conv.conv2d_transpose(x, w, b, strides=2, padding="same"),
     lambda: [(2, 3, 2, 3), (3, 3, 2, 3), (2,)]),
    (lambda x, w, b: conv.conv2d(x, w, b, strides=2, padding="same", dilation=1),  # narrow: the direct kernels
     lambda: [(2, 9, 8, 4), (3, 3, 4, 1), (1,)]),
    (lambda x, w: conv.conv2d_transpose(x, w, None, strides=2, padding="same"), lambda: [(2, 4, 4, 2), (3, 3, 4, 2)]),
])
def test_conv_gradcheck_with_kernels_on(fn, make):
    inputs = [shendu.tensor(_rand(s, np.float64, i), dtype="float64", requires_grad=True) for i, s in enumerate(make())]
    assert shendu.gradcheck(fn, *inputs)


# ---------------------------------------------------------------------------- max pooling
# (x shape, pool size, strides, padding)
POOL_CASES = [
    ((2, 24, 24, 5), 2, None, "valid"),
    ((2, 7, 9, 3), 3, 2, "valid"),       # overlapping windows
    ((2, 7, 9, 3), 3, 2, "same"),
    ((1, 5, 6, 2), (2, 3), (1, 2), 1),   # PyTorch int padding
    ((3, 5, 5, 1), 3, 1, "same"),
    ((1, 6, 6, 4), 4, 3, "valid"),       # strides > window: pixels no window reads
]


def _pool_both(x, gy, size, strides, padding, grad=True):
    geo = pool._pool_geometry(x, size, strides, padding)

    def run():
        op = pool.MaxPool2DOp(geo)
        with contextlib.nullcontext() if grad else shendu.no_grad():
            y = op.forward(x)
        if not grad:
            return (y,)
        return y, op.argmax.copy(), op.backward(gy, x, y)

    return run, geo


@needs_kernels
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, size, strides, padding", POOL_CASES)
def test_max_pool_kernels_match_reference(shape, size, strides, padding, dtype):
    x = np.round(_rand(shape, dtype) * 2) / 2  # many ties: the first maximum must win on both paths
    flat = x.reshape(-1)
    flat[::17] = np.nan
    flat[5::23] = -np.inf
    run, geo = _pool_both(x, None, size, strides, padding)
    gy = _rand((shape[0], *geo.out_hw, shape[3]), dtype, 3)
    run, _ = _pool_both(x, gy, size, strides, padding)
    fast, ref = _both(run)
    for got, want in zip(fast, ref):
        assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(fast[0], ref[0])  # y and argmax exactly (NaN where NaN)
    np.testing.assert_array_equal(fast[1], ref[1])
    _close(fast[2], ref[2], dtype)  # overlapping windows add their shares in another order
    (y_fast,), (y_ref,) = _both(_pool_both(x, gy, size, strides, padding, grad=False)[0])
    np.testing.assert_array_equal(y_fast, y_ref)


@needs_kernels
@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_kernels_take_non_contiguous_arrays(dtype):
    x = _rand((2, 3, 8, 6), dtype).transpose(0, 2, 3, 1)  # NHWC view of NCHW memory
    gy = _rand((2, 3, 4, 3), dtype, 1).transpose(0, 2, 3, 1)
    fast, ref = _both(_pool_both(x, gy, 2, None, "valid")[0])
    for got, want in zip(fast, ref):
        np.testing.assert_array_equal(got, want)  # disjoint windows: one share per pixel, exact


def test_max_pool_gradcheck_with_kernels_on():
    values = np.random.default_rng(0).permutation(np.linspace(-2, 2, 2 * 7 * 6 * 3)).reshape(2, 7, 6, 3)
    x = shendu.tensor(values, dtype="float64", requires_grad=True)
    assert shendu.gradcheck(lambda t: pool.max_pool2d(t, 3, 2, "same"), x)
