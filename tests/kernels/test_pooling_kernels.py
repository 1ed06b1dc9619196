"""Max and average pooling: NumPy vs Numba, NumPy vs PyTorch (values, indices, gradients)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernel_testing import DTYPES, assert_close, out_length, pool_geometry, random_array
from tinyinception import backend
from tinyinception.kernels import (avg_pool2d_backward, avg_pool2d_forward, max_pool2d_backward,
                                   max_pool2d_forward)
from tinyinception.kernels import pooling
from tinyinception.kernels.pooling import (
    avg_pool2d_backward_numba, avg_pool2d_backward_numpy, avg_pool2d_forward_numba,
    avg_pool2d_forward_numpy, max_pool2d_backward_numba, max_pool2d_backward_numpy,
    max_pool2d_forward_numba, max_pool2d_forward_numpy)

FAST = settings(max_examples=40, deadline=None)


def _out_shape(shape, out_size):
    return shape[:2] + tuple(out_size)


@FAST
@given(geometry=pool_geometry(), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**16),
       ties=st.booleans())
def test_max_pool_numba_matches_numpy(geometry, dtype, seed, ties):
    shape, kernel, stride, padding, out_size, _ = geometry
    x = random_array(seed, shape, dtype)
    if ties:  # few distinct values: the first maximum in scan order must win in both
        x = np.round(x).astype(dtype)
    out, argmax = max_pool2d_forward_numba(x, kernel, stride, padding, out_size)
    expected_out, expected_argmax = max_pool2d_forward_numpy(x, kernel, stride, padding, out_size)
    assert out.dtype == x.dtype and argmax.dtype == np.int64
    np.testing.assert_array_equal(out, expected_out)
    np.testing.assert_array_equal(argmax, expected_argmax)
    grad_out = random_array(seed + 1, out.shape, dtype)
    assert_close(max_pool2d_backward_numba(grad_out, argmax, shape),
                 max_pool2d_backward_numpy(grad_out, argmax, shape), dtype)


@FAST
@given(geometry=pool_geometry(), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**16),
       count_include_pad=st.booleans())
def test_avg_pool_numba_matches_numpy(geometry, dtype, seed, count_include_pad):
    shape, kernel, stride, padding, out_size, _ = geometry
    window = (kernel, stride, padding, out_size, count_include_pad)
    x = random_array(seed, shape, dtype)
    assert_close(avg_pool2d_forward_numba(x, *window), avg_pool2d_forward_numpy(x, *window), dtype)
    grad_out = random_array(seed + 1, _out_shape(shape, out_size), dtype)
    assert_close(avg_pool2d_backward_numba(grad_out, shape, *window),
                 avg_pool2d_backward_numpy(grad_out, shape, *window), dtype)


@pytest.mark.torch
@settings(max_examples=40, deadline=None)
@given(geometry=pool_geometry(), seed=st.integers(0, 2**16), ties=st.booleans())
def test_max_pool_numpy_matches_torch(geometry, seed, ties):
    torch = pytest.importorskip("torch")
    shape, kernel, stride, padding, out_size, ceil_mode = geometry
    x = random_array(seed, shape, np.float32)
    if ties:
        x = np.round(x)
    x_torch = torch.tensor(x, requires_grad=True)
    out_torch, indices = torch.nn.functional.max_pool2d(
        x_torch, kernel, stride, padding, ceil_mode=ceil_mode, return_indices=True)
    grad_out = random_array(seed + 1, tuple(out_torch.shape), np.float32)
    out_torch.backward(torch.from_numpy(grad_out))
    out, argmax = max_pool2d_forward_numpy(x, kernel, stride, padding, out_size)
    np.testing.assert_array_equal(out, out_torch.detach().numpy())
    np.testing.assert_array_equal(argmax, indices.numpy())
    assert_close(max_pool2d_backward_numpy(grad_out, argmax, shape), x_torch.grad.numpy(),
                 np.float32)


@pytest.mark.torch
@settings(max_examples=40, deadline=None)
@given(geometry=pool_geometry(), seed=st.integers(0, 2**16), count_include_pad=st.booleans())
def test_avg_pool_numpy_matches_torch(geometry, seed, count_include_pad):
    torch = pytest.importorskip("torch")
    shape, kernel, stride, padding, out_size, ceil_mode = geometry
    x = random_array(seed, shape, np.float32)
    x_torch = torch.tensor(x, requires_grad=True)
    out_torch = torch.nn.functional.avg_pool2d(x_torch, kernel, stride, padding, ceil_mode=ceil_mode,
                                               count_include_pad=count_include_pad)
    grad_out = random_array(seed + 1, tuple(out_torch.shape), np.float32)
    out_torch.backward(torch.from_numpy(grad_out))
    window = (kernel, stride, padding, out_size, count_include_pad)
    assert_close(avg_pool2d_forward_numpy(x, *window), out_torch.detach().numpy(), np.float32)
    assert_close(avg_pool2d_backward_numpy(grad_out, shape, *window), x_torch.grad.numpy(),
                 np.float32)


@pytest.mark.torch
@pytest.mark.parametrize("implementation", [max_pool2d_forward_numpy, max_pool2d_forward_numba],
                         ids=["numpy", "numba"])
def test_max_pool_nan_and_minus_infinity_like_torch(implementation):
    torch = pytest.importorskip("torch")
    x = random_array(5, (1, 2, 5, 6), np.float32)
    x[0, 0, 1, 1] = np.nan
    x[0, 0, 1, 2] = np.nan
    x[0, 1, :3, :3] = -np.inf  # an all -inf window still points at its first pixel
    out_size = (out_length(5, 3, 2, 1, ceil_mode=True), out_length(6, 3, 2, 1, ceil_mode=True))
    out, argmax = implementation(x, (3, 3), (2, 2), (1, 1), out_size)
    out_torch, indices = torch.nn.functional.max_pool2d(torch.from_numpy(x), 3, 2, 1,
                                                        ceil_mode=True, return_indices=True)
    np.testing.assert_array_equal(out, out_torch.numpy())  # NaN == NaN here
    np.testing.assert_array_equal(argmax, indices.numpy())


@pytest.mark.parametrize("kernels", ["numpy", "numba"])
def test_non_square_windows_and_divisors_by_hand(kernels):
    """1x3 and 3x1 average pools, stride 1, 'same' padding (Inception-v3 style), by hand."""
    x = np.arange(12, dtype=np.float64).reshape(1, 1, 3, 4)
    with backend.using_kernels(kernels):
        rows = avg_pool2d_forward(x, (1, 3), (1, 1), (0, 1), (3, 4), False)
        columns = avg_pool2d_forward(x, (3, 1), (1, 1), (1, 0), (3, 4), True)
        grad_rows = avg_pool2d_backward(np.ones((1, 1, 3, 4)), x.shape, (1, 3), (1, 1), (0, 1),
                                        (3, 4), False)
    np.testing.assert_allclose(rows[0, 0, 0], [0.5, 1, 2, 2.5])  # borders divide by 2
    np.testing.assert_allclose(columns[0, 0, :, 0], [4 / 3, 4, 4])  # (0+4)/3, (0+4+8)/3, (4+8)/3
    np.testing.assert_allclose(grad_rows[0, 0, 0], [5 / 6, 7 / 6, 7 / 6, 5 / 6])  # 1/2 + 1/3, 1/2 + 1/3 + 1/3, ...


@pytest.mark.parametrize("kernels", ["numpy", "numba"])
def test_ceil_mode_overhang_is_not_counted_in_the_divisor(kernels):
    """3x1/2 pool, padding 1, ceil mode on 6 rows: the last window (rows 5, 6, 7) holds one
    input row, one padding row and one overhang row; PyTorch divides by 2, not 3."""
    x = np.ones((1, 1, 6, 1), np.float32)
    out_size = (out_length(6, 3, 2, 1, ceil_mode=True), 1)
    assert out_size == (4, 1)
    with backend.using_kernels(kernels):
        out = avg_pool2d_forward(x, (3, 1), (2, 1), (1, 0), out_size, True)
    np.testing.assert_allclose(out[0, 0, :, 0], [2 / 3, 1, 1, 1 / 2], rtol=1e-6)


def test_bad_input_names_the_op():
    x = np.zeros((1, 1, 4, 4), np.float32)
    with pytest.raises(ValueError, match=r"max_pool2d: padding \(2, 2\) must be at most half"):
        max_pool2d_forward(x, 3, 1, 2, (6, 6))
    with pytest.raises(TypeError, match=r"max_pool2d_backward: argmax must be int64"):
        max_pool2d_backward(np.zeros((1, 1, 2, 2), np.float32), np.zeros((1, 1, 2, 2), np.int32),
                            x.shape)
    with pytest.raises(ValueError, match=r"avg_pool2d_backward: grad_out must have shape"):
        avg_pool2d_backward(np.zeros((1, 1, 3, 3), np.float32), x.shape, 2, 2, 0, (2, 2), True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("channel_major", [False, True])
@pytest.mark.parametrize("shape, kernel, padding", [
    ((3, 5, 4, 4), (3, 3), (1, 1)),     # many planes per flat block, several blocks
    ((2, 3, 9, 7), (5, 3), (2, 1)),     # non-square window
    ((1, 2, 50, 47), (3, 3), (1, 1)),   # a plane larger than one flat block
    ((2, 2, 3, 3), (1, 1), (0, 0))])
def test_max_pool_same_size_flat_kernel_matches_numpy(shape, kernel, padding, dtype, channel_major):
    """Stride-1 pools whose output has the input's size take the flat kernel: values and argmax
    must equal the reference, with ties (first maximum wins), NaN (last NaN wins) and -inf."""
    from tinyinception.kernels import layout
    x = np.round(random_array(11, shape, dtype) * 2).astype(dtype)  # few values: many ties
    x.reshape(-1)[::7] = np.nan
    x.reshape(-1)[3::5] = -np.inf
    x[0, 0] = -np.inf  # an all -inf plane points at each window's first in-bounds pixel
    if channel_major:
        x = layout.from_channel_major(layout.channel_major(x))
    out, argmax = max_pool2d_forward_numba(x, kernel, (1, 1), padding, shape[2:])
    expected_out, expected_argmax = max_pool2d_forward_numpy(x, kernel, (1, 1), padding, shape[2:])
    assert layout.is_channel_major(out) == channel_major or out.flags.c_contiguous
    np.testing.assert_array_equal(out, expected_out)
    np.testing.assert_array_equal(argmax, expected_argmax)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("count_include_pad", [False, True])
@pytest.mark.parametrize("channel_major", [False, True])
@pytest.mark.parametrize("shape, kernel, padding", [
    ((3, 5, 4, 4), (3, 3), (1, 1)),     # many planes per flat block, several blocks, a partial last block
    ((2, 3, 9, 7), (1, 3), (0, 1)),     # Inception-v3's 1x3 and 3x1 windows
    ((2, 3, 7, 9), (3, 1), (1, 0)),
    ((2, 3, 9, 7), (5, 3), (2, 1)),     # non-square window
    ((1, 2, 50, 47), (3, 3), (1, 1)),   # a plane larger than one flat block
    ((4, 3, 1, 1), (3, 3), (1, 1))])    # 1x1 maps: the window is all padding but its centre
def test_avg_pool_same_size_flat_kernel_matches_numpy(shape, kernel, padding, dtype, count_include_pad, channel_major):
    """Stride-1 average pools whose output has the input's size take the flat kernel: forward and backward
    equal the reference; an inf next to a plane's border must not leak into the neighbouring plane."""
    from tinyinception.kernels import layout
    x = random_array(5, shape, dtype)
    x[0, 0, -1, -1] = np.inf  # the last pixel of one plane: the next plane's first windows must stay finite
    if channel_major:
        x = layout.from_channel_major(layout.channel_major(x))
    window = (kernel, (1, 1), padding, shape[2:], count_include_pad)
    out = avg_pool2d_forward_numba(x, *window)
    assert layout.is_channel_major(out) == channel_major or out.flags.c_contiguous
    assert_close(out, avg_pool2d_forward_numpy(x, *window), dtype)
    grad_out = random_array(6, shape, dtype)
    assert_close(avg_pool2d_backward_numba(grad_out, shape, *window),
                 avg_pool2d_backward_numpy(grad_out, shape, *window), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, stride, padding, out_size", [
    ((2, 3, 9, 9), (2, 2), (0, 0), (4, 4)),    # Inception's grid reduction
    ((2, 3, 8, 8), (2, 2), (0, 0), (4, 4)),    # ceil_mode: the last window overhangs
    ((2, 3, 9, 8), (2, 1), (1, 1), (5, 8)),    # padding
    ((1, 2, 20, 20), (3, 3), (1, 0), (7, 6)),
    ((3, 50, 9, 9), (2, 2), (0, 0), (4, 4))])  # 150 planes: two full blocks of 64 and a part
def test_max_pool_side_by_side_kernel_matches_numpy(shape, stride, padding, out_size, dtype):
    """The side-by-side kernel (small planes, 64 at a time, the last block part full): values and argmax equal the
    reference, ties, NaN and -inf."""
    x = np.round(random_array(3, shape, dtype) * 2).astype(dtype)  # few values: many ties
    x.reshape(-1)[::11] = np.nan
    x.reshape(-1)[5::7] = -np.inf
    out, argmax = max_pool2d_forward_numba(x, (3, 3), stride, padding, out_size)
    expected_out, expected_argmax = max_pool2d_forward_numpy(x, (3, 3), stride, padding, out_size)
    np.testing.assert_array_equal(out, expected_out)
    np.testing.assert_array_equal(argmax, expected_argmax)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, kernel, stride, padding, out_size", [
    ((2, 3, 112, 112), (3, 3), (2, 2), (0, 0), (56, 56)),  # GoogLeNet's first pool: a ceil-mode overhang
    ((2, 3, 35, 35), (3, 3), (2, 2), (0, 0), (17, 17)),    # Inception-v3's grid reduction
    ((2, 3, 30, 31), (3, 3), (2, 2), (1, 1), (15, 16)),    # padding with stride 2
    ((1, 2, 40, 41), (3, 3), (3, 3), (1, 0), (14, 13)),    # stride 3: three column phases
    ((2, 3, 20, 20), (3, 3), (1, 1), (0, 0), (18, 18)),    # stride 1, valid
    ((1, 2, 12, 40), (1, 7), (1, 2), (0, 3), (12, 20)),    # a 1x7 window, stride 2 along the row
    ((1, 2, 9, 24), (2, 5), (1, 1), (0, 2), (8, 24))])     # stride 1 with padding
@pytest.mark.parametrize("kernel_name", ["rows", "side_by_side"])
def test_max_pool_argmax_kernels_match_numpy(kernel_name, shape, kernel, stride, padding, out_size, dtype):
    """Both training kernels, on any geometry (the row kernel: column phases and vector selects; the side-by-side
    one: 64 planes at a time): values and argmax equal the reference with ties, NaN (the last one wins), runs of
    NaN, -inf windows and a zero of either sign."""
    x = np.round(random_array(5, shape, dtype) * 2).astype(dtype)  # few values: many ties
    x.reshape(-1)[::13] = np.nan
    x.reshape(-1)[1::13] = np.nan
    x.reshape(-1)[6::17] = -0.0
    x[0, 0, :5, :9] = -np.inf  # windows of -inf only point at their first in-bounds pixel
    out = np.empty(shape[:2] + out_size, dtype)
    argmax = np.empty(shape[:2] + out_size, np.int64)
    planes = (x.reshape(-1, *shape[2:]), out.reshape(-1, *out_size), argmax.reshape(-1, *out_size))
    if kernel_name == "side_by_side":
        pooling._max_pool_planes_side_by_side(*planes, *kernel, *stride, *padding, True)
    else:
        pooling._max_pool_planes(*planes, *kernel, *stride, *padding)
    expected_out, expected_argmax = max_pool2d_forward_numpy(x, kernel, stride, padding, out_size)
    np.testing.assert_array_equal(out, expected_out)
    np.testing.assert_array_equal(argmax, expected_argmax)
    assert np.isnan(out).any() and np.isneginf(out).any()


# name: (x shape, kernel, stride, padding, out size): one case per Numba max-pool kernel
MAX_POOL_PATHS = {
    "same_size": ((2, 3, 28, 28), (3, 3), (1, 1), (1, 1), (28, 28)),
    "rows": ((2, 3, 50, 50), (3, 3), (1, 1), (0, 0), (48, 48)),
    "rows_stride_two": ((2, 3, 49, 49), (3, 3), (2, 2), (0, 0), (24, 24)),
    "side_by_side": ((2, 3, 15, 15), (3, 3), (2, 2), (0, 0), (7, 7)),
    "side_by_side_two_by_two": ((2, 3, 9, 9), (2, 2), (2, 2), (0, 0), (4, 4)),
    # maxima only, these take the separable kernel (planes over 512 pixels): a ceil-mode overhang, padding with
    # stride 2, a 1x7 window
    "ceil_overhang": ((2, 3, 30, 30), (3, 3), (2, 2), (0, 0), (15, 15)),
    "padded_stride_two": ((2, 3, 24, 25), (3, 3), (2, 2), (1, 1), (12, 13)),
    "wide_window": ((2, 3, 24, 24), (1, 7), (1, 2), (0, 3), (24, 12)),
}


@pytest.mark.parametrize("nan", [False, True], ids=["finite", "nan"])
@pytest.mark.parametrize("case", sorted(MAX_POOL_PATHS))
@pytest.mark.parametrize("kernels", ["numpy", "numba"])
def test_max_pool_without_argmax_gives_the_same_maxima(case, kernels, nan):
    """Inference asks for no argmax: the maxima are bit for bit those of the full kernel, and no argmax comes."""
    shape, kernel, stride, padding, out_size = MAX_POOL_PATHS[case]
    x = random_array(7, shape, np.float32)
    if nan:
        x[0, 1, 4, 5] = np.nan
    with backend.using_kernels(kernels):
        full, argmax = max_pool2d_forward(x, kernel, stride, padding, out_size)
        maxima, none = max_pool2d_forward(x, kernel, stride, padding, out_size, keep_argmax=False)
    assert none is None and argmax is not None
    np.testing.assert_array_equal(maxima, full)
    reference, _ = max_pool2d_forward_numpy(x, kernel, stride, padding, out_size)
    np.testing.assert_array_equal(maxima, reference)
