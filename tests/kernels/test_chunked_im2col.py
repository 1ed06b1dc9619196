"""The stem's chunked im2col + GEMM (kernels/chunked_im2col.py) equals whole-array im2col and one product."""
import importlib

import numpy as np
import pytest

import tinyinception as ti
import tinyinception.functional as F
from kernel_testing import random_array
from tinyinception.kernels import chunked_im2col, threaded_blas

im2col_module = importlib.import_module("tinyinception.kernels.im2col")  # the module, not the function
needs_threaded_blas = pytest.mark.skipif(not threaded_blas.available(), reason="BLAS is not callable from Numba here")

# kernel, stride, padding, dilation: the networks' stems (7x7/2 padded 3; 3x3/2 valid), stride 1, asymmetric
# everything, dilation, a kernel smaller than the stride (some phases never read), a padding wider than the kernel
GEOMETRIES = [
    ((7, 7), (2, 2), (3, 3), (1, 1)),
    ((3, 3), (2, 2), (0, 0), (1, 1)),
    ((3, 3), (1, 1), (1, 1), (1, 1)),
    ((3, 2), (2, 3), (1, 2), (1, 1)),
    ((3, 3), (2, 2), (2, 2), (2, 2)),
    ((1, 3), (3, 2), (0, 1), (1, 1)),
    ((2, 2), (1, 1), (3, 0), (1, 1)),
]


@needs_threaded_blas
@pytest.mark.parametrize("kernel, stride, padding, dilation", GEOMETRIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n, w", [(2, 11), (1, 300)])  # a wide row: one output row is more than a chunk
def test_chunked_forward_equals_whole_im2col(kernel, stride, padding, dilation, dtype, n, w):
    c, h, f = 3, 13, 5
    x_cnhw, weight = random_array(0, (c, n, h, w), dtype), random_array(1, (f, c) + kernel, dtype)
    x = x_cnhw.transpose(1, 0, 2, 3)
    out_size = F._windows.output_size("test", x.shape, kernel, stride, padding, dilation)
    cols = im2col_module.im2col_channel_major_numpy(x, kernel, stride, padding, dilation, out_size)
    expected = weight.reshape(f, -1) @ cols
    out = chunked_im2col.forward(x_cnhw, weight.reshape(f, -1), kernel, stride, padding, dilation, out_size)
    rtol, atol = (1e-5, 1e-5) if dtype == np.float32 else (1e-13, 1e-13)
    np.testing.assert_allclose(out, expected, rtol=rtol, atol=atol)


@needs_threaded_blas
def test_non_finite_inputs_stay_where_they_are():
    """A NaN or inf in the input reaches exactly the outputs whose windows hold it: padding is a stored zero,
    never a product with the input, so nothing else turns NaN."""
    x_cnhw = random_array(0, (3, 1, 9, 9), np.float32)
    x_cnhw[0, 0, 4, 4], x_cnhw[1, 0, 0, 8] = np.nan, np.inf
    weight = np.abs(random_array(1, (4, 3 * 9), np.float32))
    out = chunked_im2col.forward(x_cnhw, weight, (3, 3), (2, 2), (1, 1), (1, 1), (5, 5)).reshape(4, 5, 5)
    expected = np.zeros((5, 5), bool)
    expected[2, 2] = True  # pixel (4, 4) lies in one window only (rows and columns 3-5)
    expected[0, 4] = True  # pixel (0, 8): the first row's last window (rows -1 to 1, columns 7-9)
    assert (~np.isfinite(out) == expected).all()


@needs_threaded_blas
def test_the_stem_convolution_runs_chunked_and_matches_the_numpy_kernels():
    """GoogLeNet's 7x7/2 stem through F.conv2d: forward (chunked) and backward equal the NumPy reference path."""
    x, weight = random_array(0, (2, 3, 32, 30), np.float32), random_array(1, (8, 3, 7, 7), np.float32)
    results = {}
    for kernels in ("numba", "numpy"):
        with ti.backend.using_kernels(kernels):
            x_t, w_t = ti.tensor(x, requires_grad=True), ti.tensor(weight, requires_grad=True)
            out = F.conv2d(x_t, w_t, stride=2, padding=3)
            (out * out).sum().backward()
            results[kernels] = (out.numpy(), x_t.grad, w_t.grad)
    for got, expected in zip(results["numba"], results["numpy"]):
        np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-4)
