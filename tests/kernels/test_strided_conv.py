"""Strided convolutions as shifted products over phase images (kernels/strided_conv.py) equal im2col + GEMM."""
import importlib

import numpy as np
import pytest

import tinyinception as ti
import tinyinception.functional as F
from tinyinception.kernels import blas, shifted_conv, strided_conv

im2col_module = importlib.import_module("tinyinception.kernels.im2col")  # the module, not the function
needs_blas = pytest.mark.skipif(not blas.available(), reason="no direct BLAS found in this process")

# kernel, stride, padding, dilation: Inception's 3x3/2 reductions (valid and padded), asymmetric everything,
# dilation, a kernel smaller than the stride (some phases never read), stride 3
GEOMETRIES = [
    ((3, 3), (2, 2), (0, 0), (1, 1)),
    ((3, 3), (2, 2), (1, 1), (1, 1)),
    ((3, 2), (2, 3), (1, 2), (1, 1)),
    ((3, 3), (2, 2), (2, 2), (2, 2)),
    ((1, 3), (2, 2), (0, 1), (1, 1)),
    ((5, 5), (3, 3), (2, 2), (1, 1)),
    ((7, 7), (2, 2), (3, 3), (1, 1)),
]


def _random(shape, dtype, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@needs_blas
@pytest.mark.parametrize("kernel, stride, padding, dilation", GEOMETRIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_strided_conv_matches_im2col(kernel, stride, padding, dilation, dtype):
    c, n, h, w, f = 16, 2, 11, 10, 5
    x_cnhw, weight = _random((c, n, h, w), dtype), _random((f, c) + kernel, dtype, 1)
    grid = strided_conv.grid_geometry((n, c, h, w), kernel, stride, padding, dilation)
    x = x_cnhw.transpose(1, 0, 2, 3)
    geometry = (kernel, stride, padding, dilation, (grid.out_h, grid.out_w))
    assert geometry[4] == F._windows.output_size("test", x.shape, kernel, stride, padding, dilation)
    cols = im2col_module.im2col_channel_major_numpy(x, *geometry)
    grad_cnhw = _random((f, n, grid.out_h, grid.out_w), dtype, 2)
    expected_out = (weight.reshape(f, -1) @ cols).reshape(grad_cnhw.shape)
    expected_grad_weight = (grad_cnhw.reshape(f, -1) @ cols.T).reshape(weight.shape)
    expected_grad_x = im2col_module.col2im_channel_major_numpy(weight.reshape(f, -1).T @ grad_cnhw.reshape(f, -1),
                                                               x.shape, *geometry).transpose(1, 0, 2, 3)
    taps = shifted_conv.weight_taps(weight)
    out = strided_conv.forward(x_cnhw, taps, grid)
    grad_rows = strided_conv.grad_to_grid(grad_cnhw, grid)
    grad_x = strided_conv.backward_input(grad_cnhw, taps, grid, x.shape)  # lays the gradient out itself
    np.testing.assert_array_equal(grad_x, strided_conv.backward_input(grad_cnhw, taps, grid, x.shape, grad_rows))
    grad_weight = strided_conv.backward_weight(grad_cnhw, x_cnhw, grid, weight.shape, grad_rows)
    rtol, atol = (1e-5, 1e-4) if dtype == np.float32 else (1e-12, 1e-11)
    np.testing.assert_allclose(out, expected_out, rtol=rtol, atol=atol, err_msg="out")
    np.testing.assert_allclose(grad_x, expected_grad_x, rtol=rtol, atol=atol, err_msg="grad_x")
    np.testing.assert_allclose(grad_weight, expected_grad_weight, rtol=rtol, atol=atol, err_msg="grad_weight")


@pytest.mark.parametrize("kernel, stride, padding, dilation", GEOMETRIES[:4])
@pytest.mark.parametrize("images, dtype", [(2, np.float32),  # two images' values per 8-byte store (pairs.pack)
                                           (3, np.float32), (2, np.float64)])  # value by value
def test_phase_layout_numba_matches_numpy(kernel, stride, padding, dilation, images, dtype):
    planes = _random((3, images, 9, 8), dtype)
    grid = strided_conv.grid_geometry((images, 3, 9, 8), kernel, stride, padding, dilation)
    rows = strided_conv.to_phase_grid(planes, grid, "test_phases")
    expected = strided_conv.to_phase_grid_numpy(planes, grid)
    assert not rows[:, expected.shape[1]:].any()  # the slack after each row (see `workspace.row_pitch`)
    np.testing.assert_array_equal(rows[:, :expected.shape[1]], expected)
    assert np.count_nonzero(rows) == np.count_nonzero(planes)  # every pixel once, zeros elsewhere
    np.testing.assert_array_equal(strided_conv.from_phase_grid(rows, grid, (images, 3, 9, 8)), planes)


def test_a_phase_layout_alone_lays_out_like_its_grid():
    """`PhaseLayout` (the layout fields only, as Winograd's tile grids use them) gives the same rows as the full
    `PhaseGrid` with those fields, there and back."""
    planes = _random((3, 2, 9, 8), np.float32)
    grid = strided_conv.grid_geometry((2, 3, 9, 8), (3, 3), (2, 2), (1, 1), (1, 1))
    layout = strided_conv.PhaseLayout(grid.stride, grid.padding, grid.rows, grid.pitch, grid.images, grid.block,
                                      grid.after)
    assert layout.phases == grid.phases == 4
    expected = strided_conv.to_phase_grid(planes, grid, "test_phases").copy()
    np.testing.assert_array_equal(strided_conv.to_phase_grid(planes, layout, "test_layout"), expected)
    np.testing.assert_array_equal(strided_conv.from_phase_grid(expected, layout, (2, 3, 9, 8)), planes)


@needs_blas
def test_conv2d_uses_phases_for_strided_convolutions_with_enough_channels():
    x = ti.Tensor(_random((2, 16, 9, 9), np.float32), requires_grad=True)
    w = ti.Tensor(_random((8, 16, 3, 3), np.float32, 1), requires_grad=True)
    with ti.using_kernels("numba"):
        out = F.conv2d(x, w, stride=2)
        assert out.grad_fn.products is strided_conv
        few_channels = F.conv2d(ti.Tensor(_random((2, 3, 9, 9), np.float32), requires_grad=True),
                                ti.Tensor(_random((8, 3, 3, 3), np.float32)), stride=2)
        assert few_channels.grad_fn.products is None  # 3 channels: im2col's 27-long products are better
    assert ti.nn.Conv2d(16, 8, 3, stride=2).weight.data.transpose(2, 3, 0, 1).flags.c_contiguous  # tap-major


@needs_blas
def test_gradcheck_through_the_phase_path():
    """float64 central differences through F.conv2d when it takes the phase path (16 channels, stride 2)."""
    from helpers import check_gradcheck
    with ti.using_kernels("numba"):
        assert check_gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1),
                               [(1, 16, 5, 4), (2, 16, 3, 3), (2,)], fast_mode=True)


@pytest.mark.torch
@needs_blas
def test_module_with_tap_major_weights_matches_torch():
    torch = pytest.importorskip("torch")
    from helpers import check_parity
    layer = ti.nn.Conv2d(16, 6, 3, stride=2, padding=1)
    weight, bias = np.array(layer.weight.data), np.array(layer.bias.data)
    check_parity(lambda x: layer(x),
                 lambda x: torch.nn.functional.conv2d(x, torch.from_numpy(weight), torch.from_numpy(bias), 2, 1),
                 [(2, 16, 9, 7)])
