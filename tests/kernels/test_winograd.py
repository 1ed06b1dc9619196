"""Winograd's F(2x2, 3x3) convolution (kernels/winograd.py) equals im2col + GEMM, forward and input gradient."""
import importlib
import os
import subprocess
import sys

import numpy as np
import pytest

import tinyinception as ti
import tinyinception.functional as F
from tinyinception.kernels import blas, layout, shifted_conv, threaded_blas, winograd

im2col_module = importlib.import_module("tinyinception.kernels.im2col")  # the module, not the function
needs_pool = pytest.mark.skipif(not threaded_blas.available(), reason="products on Numba's threads unavailable")

SAME = ((3, 3), (1, 1), (1, 1), (1, 1))  # kernel, stride, padding, dilation of every convolution here


def _random(shape, dtype, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _reference(x_cnhw, weight, grad_cnhw):
    """im2col + one GEMM in float64: out (F, N, H, W), grad_x (C, N, H, W), grad_weight (F, C, 3, 3)."""
    x = x_cnhw.transpose(1, 0, 2, 3).astype(np.float64)
    f, n, h, w = grad_cnhw.shape
    geometry = SAME + ((h, w),)
    cols = im2col_module.im2col_channel_major_numpy(x, *geometry)
    matrix = weight.reshape(f, -1).astype(np.float64)
    out = (matrix @ cols).reshape(f, n, h, w)
    grad_rows = grad_cnhw.reshape(f, -1).astype(np.float64)
    grad_x = im2col_module.col2im_channel_major_numpy(matrix.T @ grad_rows, x.shape, *geometry)
    return out, grad_x.transpose(1, 0, 2, 3), (grad_rows @ cols.T).reshape(weight.shape)


def test_one_tile_by_hand():
    """The algorithm on one 4x4 patch: A^T [(G g G^T) * (B^T d B)] A is the 2x2 "valid" convolution of the patch."""
    rng = np.random.default_rng(0)
    d, g = rng.standard_normal((4, 4)), rng.standard_normal((3, 3))
    direct = np.array([[np.sum(d[y:y + 3, x:x + 3] * g) for x in range(2)] for y in range(2)])
    u, v = winograd.G @ g @ winograd.G.T, winograd.B_T @ d @ winograd.B_T.T
    np.testing.assert_allclose(winograd.A_T @ (u * v) @ winograd.A_T.T, direct, rtol=1e-13, atol=1e-13)
    # 16 multiplications instead of 36; the pairs table describes B^T
    b_t = np.zeros((4, 4))
    for a, ((first, second), sign) in enumerate(zip(winograd.PAIRS, winograd.SIGNS)):
        b_t[a, first], b_t[a, second] = 1, sign
    np.testing.assert_array_equal(b_t, winograd.B_T)


@pytest.mark.skipif(not winograd.PAIRS_FIT, reason="the packing is written for little-endian machines")
def test_paired_stores_put_both_outputs_of_a_tile_row_in_place():
    """`_store_pairs` (float32, even width) writes each tile row's two outputs as one 8-byte value: bit for bit the
    column pass A^T (row pass) written value by value, here for tile row 1, tile columns 2 and 3 of 3 images."""
    images, h, w, ty, tx0, tiles = 3, 6, 10, 1, 2, 2
    s = _random((8, tiles * images), np.float32)
    plane = np.full((images, h, w), np.nan, np.float32)
    winograd._store_pairs(s, plane, ty, tx0, tiles * images)
    expected = np.full_like(plane, np.nan)
    for a in range(2):
        s0, s1, s2, s3 = s[4 * a:4 * a + 4].reshape(4, tiles, images)
        expected[:, 2 * ty + a, 2 * tx0:2 * (tx0 + tiles):2] = (s0 + s1 + s2).T
        expected[:, 2 * ty + a, 2 * tx0 + 1:2 * (tx0 + tiles):2] = (s1 - s2 - s3).T
    np.testing.assert_array_equal(plane, expected)  # NaN where nothing may be written


@needs_pool
def test_transform_weight_is_g_g_gt_per_filter_and_channel():
    weight = _random((5, 4, 3, 3), np.float64)
    u = winograd.transform_weight(shifted_conv.weight_taps(weight))
    expected = np.einsum("ai,fcij,bj->abfc", winograd.G, weight, winograd.G).reshape(16, 5, 4)
    np.testing.assert_allclose(u, expected, rtol=1e-14, atol=1e-14)
    taps = shifted_conv.weight_taps(weight)
    np.testing.assert_array_equal(winograd.flipped_taps(taps)[0], taps[8].T)  # tap (0, 0) of the flip is (2, 2)


def test_pays_where_the_products_saved_outweigh_the_transforms():
    assert winograd.pays(16, 32) and winograd.pays(32, 16) and winograd.pays(96, 128) and winograd.pays(32, 32)
    assert not winograd.pays(32, 8) and not winograd.pays(4, 64) and not winograd.pays(8, 8)
    assert winograd.weight_gradient_pays(96, 128, (28, 28)) and winograd.weight_gradient_pays(64, 64, (7, 7))
    assert winograd.weight_gradient_pays(16, 32, (28, 28)) and winograd.weight_gradient_pays(64, 64, (6, 6))
    assert not winograd.weight_gradient_pays(32, 32, (7, 7)) and not winograd.weight_gradient_pays(8, 32, (28, 28))
    assert not winograd.weight_gradient_pays(384, 384, (4, 4))


@needs_pool
@pytest.mark.parametrize("c, f, size, shared", [(64, 64, (8, 9), "tiles"),  # every gradient by Winograd
                                                (64, 64, (7, 7), "tiles"),  # odd map: tiles past the edge
                                                (8, 32, (8, 8), "shifted"),  # input gradient 32 -> 8 does not pay
                                                (64, 64, (4, 4), "shifted")])  # weight gradient on 4x4: shifted
def test_backward_through_the_products_interface(c, f, size, shared):
    """winograd.backward_weight / backward_input (Winograd where each pays, shifted products elsewhere, the output
    gradient laid out once for both: Winograd's tile grid when both run as Winograd, the shifted layout when one
    falls back) equal im2col + GEMM."""
    n = 2
    x_cnhw, weight = _random((c, n) + size, np.float64), _random((f, c, 3, 3), np.float64, 1)
    grad_cnhw = _random((f, n) + size, np.float64, 2)
    _, expected_grad_x, expected_grad_weight = _reference(x_cnhw, weight, grad_cnhw)
    grid = winograd.grid_geometry((n, c) + size, *SAME)
    taps = shifted_conv.weight_taps(weight)
    grad_rows = winograd.grad_layout(grad_cnhw, grid, weight.shape, (True, True))
    assert isinstance(grad_rows, winograd.TileGrad) is (shared == "tiles")
    if shared == "tiles":  # one gradient alone lays the output gradient out itself
        assert winograd.grad_layout(grad_cnhw, grid, weight.shape, (True, False)) is None
        assert winograd.grad_layout(grad_cnhw, grid, weight.shape, (False, True)) is None
    grad_weight = winograd.backward_weight(grad_cnhw, x_cnhw, grid, weight.shape, grad_rows)
    grad_x = winograd.backward_input(grad_cnhw, taps, grid, (n, c) + size, grad_rows)
    np.testing.assert_allclose(grad_weight, expected_grad_weight, rtol=1e-12, atol=1e-11)
    np.testing.assert_allclose(grad_x, expected_grad_x, rtol=1e-12, atol=1e-11)
    np.testing.assert_allclose(winograd.backward_weight(grad_cnhw, x_cnhw, grid, weight.shape), expected_grad_weight,
                               rtol=1e-12, atol=1e-11)  # each gradient alone, laying the gradient out itself
    np.testing.assert_allclose(winograd.backward_input(grad_cnhw, taps, grid, (n, c) + size), expected_grad_x,
                               rtol=1e-12, atol=1e-11)
    assert grad_weight.transpose(2, 3, 0, 1).flags.c_contiguous  # tap-major, like nn.Conv2d's weights


@needs_pool
@pytest.mark.parametrize("n, c, f, h, w", [(2, 8, 8, 4, 4), (3, 16, 12, 5, 7), (1, 9, 20, 9, 8), (2, 16, 32, 17, 17),
                                           (4, 8, 8, 6, 11)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("columns_in_cache", [winograd.COLUMNS_IN_CACHE, 100])  # 100: many blocks, short ones
@pytest.mark.parametrize("in_place", [True, False])  # output tiles written in place, or via the output phase grid
def test_matches_im2col(n, c, f, h, w, dtype, columns_in_cache, in_place, monkeypatch):
    monkeypatch.setattr(winograd, "COLUMNS_IN_CACHE", columns_in_cache)
    monkeypatch.setattr(winograd, "IN_PLACE_BYTES", 1 << 40 if in_place else 0)
    x_cnhw, weight, grad_cnhw = _random((c, n, h, w), dtype), _random((f, c, 3, 3), dtype, 1), \
        _random((f, n, h, w), dtype, 2)
    expected_out, expected_grad_x, expected_grad_weight = _reference(x_cnhw, weight, grad_cnhw)
    taps = shifted_conv.weight_taps(weight)
    grid = winograd.grid_geometry((n, c, h, w), *SAME)
    out = winograd.convolve(x_cnhw, winograd.transform_weight(taps))
    grad_x = winograd.convolve(grad_cnhw, winograd.transform_weight(winograd.flipped_taps(taps)))
    # through the products interface (Winograd where it pays, shifted products elsewhere), each against im2col
    forward = winograd.forward(x_cnhw, taps, grid)
    backward_input = winograd.backward_input(grad_cnhw, taps, grid, (n, c, h, w))
    grad_weight = winograd.weight_gradient(grad_cnhw, x_cnhw).reshape(3, 3, f, c).transpose(2, 3, 0, 1)
    # float32: the transforms' rounding stays within a few units of the sums' own (measured 2-5e-7 of the largest)
    tolerance = 2e-6 if dtype == np.float32 else 1e-13
    for name, got, expected in [("out", out, expected_out), ("grad_x", grad_x, expected_grad_x),
                                ("forward", forward, expected_out), ("backward_input", backward_input,
                                                                     expected_grad_x),
                                ("grad_weight", np.ascontiguousarray(grad_weight), expected_grad_weight)]:
        assert got.dtype == np.dtype(dtype) and got.flags.c_contiguous, name
        np.testing.assert_allclose(got, expected, rtol=0, atol=tolerance * np.abs(expected).max(), err_msg=name)


@pytest.mark.parametrize("kernel, stride, padding, dilation, channels, out_channels, size, supported", [
    ((3, 3), (1, 1), (1, 1), (1, 1), 16, 32, (28, 28), True),
    ((3, 3), (1, 1), (1, 1), (1, 1), 4, 32, (28, 28), False),  # too few channels for the 16 products
    ((3, 3), (1, 1), (1, 1), (1, 1), 32, 16, (28, 28), True),  # pays for the input gradient (16 -> 32)
    ((3, 3), (1, 1), (1, 1), (1, 1), 16, 32, (3, 8), False),  # maps smaller than 4x4
    ((3, 3), (1, 1), (0, 0), (1, 1), 16, 32, (28, 28), False),  # "valid": shifted products
    ((3, 3), (2, 2), (1, 1), (1, 1), 16, 32, (28, 28), False),
    ((3, 3), (1, 1), (2, 2), (2, 2), 16, 32, (28, 28), False),
    ((1, 3), (1, 1), (0, 1), (1, 1), 16, 32, (28, 28), False),
])
def test_supports(kernel, stride, padding, dilation, channels, out_channels, size, supported):
    assert winograd.supports(kernel, stride, padding, dilation, channels, out_channels, size) is supported


@needs_pool
def test_conv2d_uses_winograd_for_same_3x3_convolutions_and_agrees_with_the_numpy_path():
    x = _random((2, 24, 6, 7), np.float32)
    weight = _random((32, 24, 3, 3), np.float32, 1)
    results = {}
    for kernels in ("numba", "numpy"):
        with ti.using_kernels(kernels):
            xt = ti.Tensor(layout.from_channel_major(layout.channel_major(x)) if kernels == "numba" else x,
                           requires_grad=True)
            wt = ti.Tensor(weight, requires_grad=True)
            out = F.conv2d(xt, wt, padding=1)
            if kernels == "numba":
                assert out.grad_fn.products is winograd
            out.backward(ti.Tensor(np.ones(out.shape, np.float32)))
            results[kernels] = (out.numpy(), xt.grad, wt.grad)  # .grad: NumPy arrays
    for name, ours, reference in zip(("out", "grad_x", "grad_weight"), results["numba"], results["numpy"]):
        # float32 sums of 216 products each, in different orders: compared relative to the largest value
        np.testing.assert_allclose(ours, reference, rtol=0, atol=2e-6 * np.abs(reference).max(), err_msg=name)
    with ti.using_kernels("numba"):
        few = F.conv2d(ti.Tensor(_random((2, 3, 6, 7), np.float32), requires_grad=True),
                       ti.Tensor(_random((4, 3, 3, 3), np.float32)),
                       padding=1)
        assert few.grad_fn.products is (shifted_conv if blas.available() else None)


@needs_pool
def test_a_forward_only_convolution_takes_winograd_only_with_enough_output_pixels():
    """Inference (nothing requires grad) on few output pixels runs the shifted products, whose result equals
    Winograd's within float32 rounding; with a gradient to come, or pixels enough, Winograd stays."""
    from tinyinception.functional.conv import _products_for

    weight_shape = (64, 32, 3, 3)
    small = layout.from_channel_major(layout.channel_major(_random((1, 32, 14, 14), np.float32)))
    large = layout.from_channel_major(layout.channel_major(_random((8, 32, 14, 14), np.float32)))
    assert small.shape[0] * 14 * 14 < winograd.MIN_FORWARD_ONLY_PIXELS <= large.shape[0] * 14 * 14
    geometry = ((1, 1), (1, 1), (1, 1), 1)
    with ti.using_kernels("numba"):
        assert _products_for(small, weight_shape, *geometry, forward_only=True) is shifted_conv
        assert _products_for(small, weight_shape, *geometry) is winograd
        assert _products_for(large, weight_shape, *geometry, forward_only=True) is winograd
        weight = ti.Tensor(_random(weight_shape, np.float32, 1), requires_grad=True)
        with ti.no_grad():
            inference = F.conv2d(ti.Tensor(small), weight, padding=1)
        training = F.conv2d(ti.Tensor(small), weight, padding=1)
    assert training.grad_fn.products is winograd
    np.testing.assert_allclose(inference.numpy(), training.numpy(), rtol=0,
                               atol=2e-6 * np.abs(training.numpy()).max())


@needs_pool
def test_on_maps_of_8x8_and_smaller_winograd_pays_from_fewer_output_pixels():
    """A forward-only 3x3 on 7x7 or 8x8 maps takes Winograd from 512 output pixels (the shifted products compute a
    padding ring 1.5-1.65 times such a map); on a 17x17 map the same number of pixels keeps the shifted products."""
    from tinyinception.functional.conv import _products_for

    geometry = ((1, 1), (1, 1), (1, 1), 1)
    cases = [((8, 32, 8, 8), winograd), ((16, 32, 7, 7), winograd), ((4, 32, 8, 8), shifted_conv),
             ((2, 32, 17, 17), shifted_conv)]
    with ti.using_kernels("numba"):
        for shape, path in cases:
            x = layout.from_channel_major(layout.channel_major(_random(shape, np.float32)))
            assert _products_for(x, (64, 32, 3, 3), *geometry, forward_only=True) is path, shape


@needs_pool
@pytest.mark.parametrize("poison", [None, np.nan, np.inf], ids=["finite", "nan", "inf"])
def test_a_valid_3x3_in_inference_is_the_interior_of_winogards_same_convolution(poison):
    """Padding 0 under no_grad: Winograd's "same" convolution, its border ring dropped, against the NumPy reference
    path; a NaN or inf falls back to the shifted products with the valid geometry. Training keeps the shifted
    products (Winograd's backward knows padding 1 only)."""
    from tinyinception.functional.conv import _products_for

    x = _random((16, 24, 11, 9), np.float32)  # 1,584 input pixels: enough for Winograd in inference
    if poison is not None:
        x[1, 3, 5, 4] = poison
    weight = _random((32, 24, 3, 3), np.float32, 1)
    with ti.using_kernels("numba"):
        channel_major = layout.from_channel_major(layout.channel_major(x))
        assert _products_for(channel_major, weight.shape, (1, 1), (0, 0), (1, 1), 1, forward_only=True) is winograd
        assert _products_for(channel_major, weight.shape, (1, 1), (0, 0), (1, 1), 1) is shifted_conv
        with ti.no_grad():
            ours = F.conv2d(ti.Tensor(channel_major), ti.Tensor(weight)).numpy()
    with ti.using_kernels("numpy"):
        reference = F.conv2d(ti.Tensor(x), ti.Tensor(weight)).numpy()
    assert ours.shape == reference.shape == (16, 32, 9, 7)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(reference))
    finite = np.isfinite(reference)
    np.testing.assert_allclose(ours[finite], reference[finite], rtol=0,
                               atol=2e-6 * np.abs(reference[finite]).max())


@needs_pool
def test_conv2d_with_an_output_over_the_in_place_limit_goes_through_the_output_grid():
    """F.conv2d end to end where the output (F, N, H, W) is larger than `IN_PLACE_BYTES`, so the output transform
    writes an output phase grid and one copy puts it in place: forward and both gradients against the NumPy
    reference path."""
    x, weight = _random((2, 8, 96, 96), np.float32), _random((64, 8, 3, 3), np.float32, 1)
    grad = _random((2, 64, 96, 96), np.float32, 2)
    results = {}
    for kernels in ("numba", "numpy"):
        with ti.using_kernels(kernels):
            xt, wt = ti.Tensor(x, requires_grad=True), ti.Tensor(weight, requires_grad=True)
            out = F.conv2d(xt, wt, padding=1)
            if kernels == "numba":
                assert out.grad_fn.products is winograd and winograd.pays(8, 64)
                assert out.data.nbytes > winograd.IN_PLACE_BYTES
            out.backward(ti.Tensor(grad))
            results[kernels] = (out.numpy(), xt.grad, wt.grad)
    for name, ours, reference in zip(("out", "grad_x", "grad_weight"), results["numba"], results["numpy"]):
        np.testing.assert_allclose(ours, reference, rtol=0, atol=2e-6 * np.abs(reference).max(), err_msg=name)


_WITHOUT_POOL = """
import numpy as np
import tinyinception as ti
import tinyinception.functional as F
from tinyinception.kernels import layout, shifted_conv, threaded_blas, winograd
x = np.random.default_rng(0).standard_normal((24, 2, 8, 8)).astype(np.float32)
xt = ti.Tensor(layout.from_channel_major(x), requires_grad=True)
out = F.conv2d(xt, ti.Tensor(np.ones((32, 24, 3, 3), np.float32)), padding=1)
products = out.grad_fn.products
out.sum().backward()
print(threaded_blas.available(), products is shifted_conv, xt.grad.shape == x.transpose(1, 0, 2, 3).shape)
try:
    winograd.convolve(x, np.zeros((16, 32, 24), np.float32))
except RuntimeError as error:
    print("TINYINCEPTION_ONE_POOL=0" in str(error))
"""


def test_without_the_one_pool_same_3x3_convolutions_use_shifted_products():
    """Winograd's products are compiled calls into the BLAS that `threaded_blas` binds; where that arrangement is off
    (TINYINCEPTION_ONE_POOL=0) the convolution runs as shifted products instead."""
    pytest.importorskip("numba")
    env = dict(os.environ, TINYINCEPTION_ONE_POOL="0")
    result = subprocess.run([sys.executable, "-c", _WITHOUT_POOL], env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True", "True", "True"]  # and winograd.convolve says why it cannot run


@needs_pool
def test_float64_gradcheck_through_conv2d_with_every_gradient_by_winograd():
    """64 -> 64 channels on a 6x7 map: forward, input gradient and weight gradient all run as Winograd."""
    from helpers import check_gradcheck

    assert winograd.pays(64, 64) and winograd.weight_gradient_pays(64, 64, (6, 7))
    with ti.using_kernels("numba"):
        assert check_gradcheck(lambda x, w, b: F.conv2d(x, w, b, padding=1), [(2, 64, 6, 7), (64, 64, 3, 3), (64,)],
                               fast_mode=True)
