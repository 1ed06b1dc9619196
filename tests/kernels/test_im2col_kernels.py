"""im2col/col2im: NumPy vs Numba, NumPy vs torch.nn.functional.unfold/fold, and the adjoint."""
import importlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernel_testing import DTYPES, assert_close, conv_geometry, out_length, random_array
import tinyinception as ti
import tinyinception.functional as F
from tinyinception import backend
from tinyinception.kernels import col2im, im2col
from tinyinception.kernels.im2col import col2im_numba, col2im_numpy, im2col_numba, im2col_numpy

im2col_module = importlib.import_module("tinyinception.kernels.im2col")  # the module, not the function

FAST = settings(max_examples=40, deadline=None)


def _cols_shape(shape, kernel, out_size):
    return (shape[0], shape[1] * kernel[0] * kernel[1], out_size[0] * out_size[1])


@FAST
@given(geometry=conv_geometry(), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**16))
def test_im2col_numba_matches_numpy(geometry, dtype, seed):
    shape, *window = geometry
    x = random_array(seed, shape, dtype)
    cols = im2col_numba(x, *window)
    expected = im2col_numpy(x, *window)
    assert cols.shape == _cols_shape(shape, window[0], window[4])
    assert cols.dtype == x.dtype and cols.flags.c_contiguous
    np.testing.assert_array_equal(cols, expected)  # pure copies: bit for bit


@FAST
@given(geometry=conv_geometry(), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**16))
def test_col2im_numba_matches_numpy(geometry, dtype, seed):
    shape, *window = geometry
    cols = random_array(seed, _cols_shape(shape, window[0], window[4]), dtype)
    grad_x = col2im_numba(cols, shape, *window)
    assert grad_x.shape == shape
    assert_close(grad_x, col2im_numpy(cols, shape, *window), dtype)


@FAST
@given(geometry=conv_geometry(), seed=st.integers(0, 2**16))
@pytest.mark.parametrize("implementation", [(im2col_numpy, col2im_numpy),
                                            (im2col_numba, col2im_numba)], ids=["numpy", "numba"])
def test_col2im_is_the_adjoint_of_im2col(implementation, geometry, seed):
    unfold, fold = implementation
    shape, *window = geometry
    x = random_array(seed, shape, np.float64)
    cols = random_array(seed + 1, _cols_shape(shape, window[0], window[4]), np.float64)
    lhs = np.vdot(unfold(x, *window), cols)
    rhs = np.vdot(x, fold(cols, shape, *window))
    assert lhs == pytest.approx(rhs, rel=1e-12, abs=1e-12)


@pytest.mark.torch
@settings(max_examples=30, deadline=None)
@given(geometry=conv_geometry(), seed=st.integers(0, 2**16))
def test_numpy_matches_torch_unfold_and_fold(geometry, seed):
    torch = pytest.importorskip("torch")
    shape, kernel, stride, padding, dilation, _ = geometry
    out_size = tuple(out_length(s, k, st_, p, d) for s, k, st_, p, d
                     in zip(shape[2:], kernel, stride, padding, dilation))
    x = random_array(seed, shape, np.float32)
    options = dict(kernel_size=kernel, dilation=dilation, padding=padding, stride=stride)
    expected = torch.nn.functional.unfold(torch.from_numpy(x), **options).numpy()
    np.testing.assert_array_equal(im2col_numpy(x, kernel, stride, padding, dilation, out_size),
                                  expected)
    cols = random_array(seed + 1, expected.shape, np.float32)
    folded = torch.nn.functional.fold(torch.from_numpy(cols), output_size=shape[2:], **options)
    assert_close(col2im_numpy(cols, shape, kernel, stride, padding, dilation, out_size),
                 folded.numpy(), np.float32, scale=10)


def test_inception_sized_3x3_padding_1():
    """The 3x3, pad 1 convolution of an Inception branch: 'same' output, the centre row is x."""
    x = random_array(0, (2, 4, 6, 5), np.float32)
    cols = im2col(x, (3, 3), (1, 1), (1, 1), (1, 1), (6, 5))
    np.testing.assert_array_equal(cols.reshape(2, 4, 9, 30)[:, :, 4], x.reshape(2, 4, 30))
    assert cols[0, 0, 0] == 0  # top-left tap of the first window reads padding


@pytest.mark.parametrize("kernels", ["numpy", "numba"])
def test_dispatch_follows_backend(kernels):
    x = random_array(3, (1, 2, 5, 5), np.float64)
    window = ((1, 7), (1, 1), (0, 3), (1, 1), (5, 5))
    with backend.using_kernels(kernels):
        cols = im2col(x, *window)
        grad_x = col2im(cols, x.shape, *window)
    np.testing.assert_array_equal(cols, im2col_numpy(x, *window))
    assert_close(grad_x, col2im_numpy(cols, x.shape, *window), np.float64)


def test_bad_input_names_the_op():
    with pytest.raises(ValueError, match=r"im2col: x must be 4-D"):
        im2col(np.zeros((2, 3, 4), np.float32), (3, 3), (1, 1), (1, 1), (1, 1), (2, 2))
    with pytest.raises(TypeError, match=r"im2col: x must be float32 or float64"):
        im2col(np.zeros((1, 1, 4, 4), np.int32), (3, 3), (1, 1), (1, 1), (1, 1), (4, 4))
    with pytest.raises(ValueError, match=r"im2col: stride must be >= 1"):
        im2col(np.zeros((1, 1, 4, 4), np.float32), (3, 3), (0, 1), (1, 1), (1, 1), (4, 4))
    with pytest.raises(ValueError, match=r"col2im: cols must have shape \(1, 9, 16\)"):
        col2im(np.zeros((1, 9, 15), np.float32), (1, 1, 4, 4), (3, 3), (1, 1), (1, 1), (1, 1), (4, 4))


@pytest.mark.parametrize("x_shape, w_shape, keywords, fold", [
    # groups: the per-image path, col2im_numba
    ((2, 4, 11, 10), (6, 2, 3, 3), dict(padding=(2, 1), dilation=(2, 3), groups=2), "_COL2IM"),
    # fewer than 16 channels and stride 2: channel-major im2col, col2im_channel_major_numba
    ((2, 6, 13, 12), (5, 6, 3, 2), dict(stride=(2, 1), padding=(1, 2), dilation=(3, 2)), "_COL2IM_CHANNEL_MAJOR"),
])
def test_dilated_convolutions_fold_their_input_gradient_on_the_numba_kernels(x_shape, w_shape, keywords, fold,
                                                                           monkeypatch):
    """F.conv2d's input gradient through the Numba col2im with a different dilation along each axis, in float64
    against the NumPy reference path: fixed cases for both folds (the random geometries above may miss them)."""
    x, weight = random_array(0, x_shape, np.float64), random_array(1, w_shape, np.float64)
    folds = []
    numba_fold = getattr(im2col_module, fold)["numba"]

    def recording_fold(cols, x_shape, kernel_size, stride, padding, dilation, out_size, **options):
        folds.append(dilation)
        return numba_fold(cols, x_shape, kernel_size, stride, padding, dilation, out_size, **options)

    monkeypatch.setitem(getattr(im2col_module, fold), "numba", recording_fold)
    grads = {}
    for kernels in ("numba", "numpy"):
        with ti.using_kernels(kernels):
            xt = ti.tensor(x, requires_grad=True)
            out = F.conv2d(xt, ti.tensor(weight), **keywords)
            out.backward(random_array(2, out.shape, np.float64))
            grads[kernels] = xt.grad
    assert folds == [keywords["dilation"]], "the Numba fold under test did not run"
    np.testing.assert_allclose(grads["numba"], grads["numpy"], rtol=1e-12, atol=1e-12)
