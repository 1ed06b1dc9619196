"""The shifted-product convolution (kernels/shifted_conv.py) equals im2col + GEMM, forward and both gradients."""
import importlib

import numpy as np
import pytest

import tinyinception as ti
import tinyinception.functional as F
from tinyinception.functional import conv as conv_module
from tinyinception.kernels import blas, shifted_conv, workspace

im2col_module = importlib.import_module("tinyinception.kernels.im2col")  # the module, not the function

needs_blas = pytest.mark.skipif(not blas.available(), reason="no direct BLAS found in this process")

# kernel, padding, dilation: "same" 3x3, the 1x7 / 7x1 pair, "valid" (no padding), less than "same",
# asymmetric kernels and paddings, dilation 2, a 5x5, an even kernel
GEOMETRIES = [
    ((3, 3), (1, 1), (1, 1)),
    ((1, 7), (0, 3), (1, 1)),
    ((7, 1), (3, 0), (1, 1)),
    ((3, 3), (0, 0), (1, 1)),
    ((5, 5), (1, 2), (1, 1)),
    ((3, 2), (2, 0), (1, 1)),
    ((3, 3), (2, 2), (2, 2)),
    ((2, 3), (1, 1), (2, 1)),
]


def _random(shape, dtype, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _reference(x_cnhw, weight, grad_cnhw, kernel, padding, dilation):
    """im2col + one GEMM in the channel-major layout: out, grad_x, grad_weight."""
    x = x_cnhw.transpose(1, 0, 2, 3)
    f = weight.shape[0]
    n = x.shape[0]
    grid = shifted_conv.grid_geometry(x.shape, kernel, (1, 1), padding, dilation)
    geometry = (kernel, (1, 1), padding, dilation, (grid.out_h, grid.out_w))
    cols = im2col_module.im2col_channel_major_numpy(x, *geometry)  # (C*kh*kw, N*L)
    out = (weight.reshape(f, -1) @ cols).reshape(f, n, grid.out_h, grid.out_w)
    grad_rows = grad_cnhw.reshape(f, -1)
    grad_weight = (grad_rows @ cols.T).reshape(weight.shape)
    grad_x = im2col_module.col2im_channel_major_numpy(weight.reshape(f, -1).T @ grad_rows, x.shape, *geometry)
    return out, grad_x.transpose(1, 0, 2, 3), grad_weight


@needs_blas
@pytest.mark.parametrize("kernel, padding, dilation", GEOMETRIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("chunk", [4096, 7])  # 7: many chunks, none aligned with rows or images
def test_shifted_conv_matches_im2col(kernel, padding, dilation, dtype, chunk, monkeypatch):
    monkeypatch.setattr(shifted_conv, "CHUNK", chunk)
    x_cnhw = _random((4, 3, 9, 8), dtype)  # (C, N, H, W)
    weight = _random((5, 4) + kernel, dtype, 1)
    assert shifted_conv.supports(kernel, (1, 1), padding, dilation)
    grid = shifted_conv.grid_geometry((3, 4, 9, 8), kernel, (1, 1), padding, dilation)
    grad_cnhw = _random((5, 3, grid.out_h, grid.out_w), dtype, 2)
    expected_out, expected_grad_x, expected_grad_weight = _reference(x_cnhw, weight, grad_cnhw, kernel, padding,
                                                                     dilation)
    taps = shifted_conv.weight_taps(weight)
    out = shifted_conv.forward(x_cnhw, taps, grid)
    grad_rows = shifted_conv.grad_to_grid(grad_cnhw, grid)
    grad_weight = shifted_conv.backward_weight(grad_cnhw, x_cnhw, grid, weight.shape, grad_rows)
    grad_x = shifted_conv.backward_input(grad_cnhw, taps, grid, (3, 4, 9, 8), grad_rows)
    rtol, atol = (1e-5, 1e-5) if dtype == np.float32 else (1e-12, 1e-12)
    for name, got, expected in [("out", out, expected_out), ("grad_x", grad_x, expected_grad_x),
                                ("grad_weight", grad_weight, expected_grad_weight)]:
        assert got.dtype == np.dtype(dtype), name
        # activations come back channel-major (contiguous (C, N, H, W)), the weight gradient tap-major
        contiguous = got.transpose(2, 3, 0, 1) if name == "grad_weight" else got
        assert contiguous.flags.c_contiguous, name
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol, err_msg=name)


@pytest.mark.parametrize("kernel, stride, padding, dilation, supported", [
    ((3, 3), (1, 1), (1, 1), (1, 1), True),
    ((3, 3), (2, 2), (1, 1), (1, 1), False),  # strided: im2col
    ((1, 1), (1, 1), (0, 0), (1, 1), False),  # 1x1: already a plain GEMM
    ((3, 3), (1, 1), (3, 3), (1, 1), False),  # padding beyond dilation*(k-1): outputs would overrun the grid
    ((1, 3), (1, 1), (1, 1), (1, 1), False),  # padding 1 along a kernel of height 1
    ((3, 3), (1, 1), (4, 4), (2, 2), True),
])
def test_supports(kernel, stride, padding, dilation, supported):
    assert shifted_conv.supports(kernel, stride, padding, dilation) is supported


@pytest.mark.parametrize("kernel, padding, rows, pitch, transposed", [
    ((3, 3), (1, 2), 4, 7, False),  # rows along y: 4 rows of 5 + 2 padding = 28 anchors per image (along x: 5 * 5)
    ((1, 7), (0, 3), 5, 4, True),  # a 1x7 pads x: rows along x, no padding in the pitch, no anchor wasted
    ((7, 1), (3, 0), 4, 5, False),
])
@pytest.mark.parametrize("images, dtype, before", [(2, np.float32, 4),  # two images' values per store (pairs.pack)
                                                   (2, np.float32, 3), (3, np.float32, 4),  # value by value
                                                   (2, np.float64, 4)])
def test_grid_layout_numba_matches_numpy(kernel, padding, rows, pitch, transposed, images, dtype, before):
    planes = _random((3, images, 4, 5), dtype)
    grid = shifted_conv.grid_geometry((images, 3, 4, 5), kernel, (1, 1), padding, (1, 1))
    assert (grid.rows, grid.pitch, grid.transposed, grid.anchors) == (rows, pitch, transposed, rows * pitch * images)
    expected = shifted_conv.to_grid_numpy(planes, grid, before, 4)
    rows = shifted_conv.to_grid(planes, grid, before, 4, "test_grid")
    assert rows.flags.c_contiguous and rows.shape[1] == workspace.row_pitch(expected.shape[1], planes.itemsize)
    assert not rows[:, expected.shape[1]:].any()  # the slack at the end of each row (see `row_pitch`) is zeroed too
    rows = rows[:, :expected.shape[1]]
    np.testing.assert_array_equal(rows, expected)
    np.testing.assert_array_equal(shifted_conv.from_grid(rows, grid, before, 4, 5), planes)
    np.testing.assert_array_equal(shifted_conv.from_grid_numpy(rows, grid, before, 4, 5), planes)
    # zeros everywhere outside the planes: margins, the padding after each row
    assert np.count_nonzero(rows) == np.count_nonzero(planes)
    # pixel (y, x) of image n at before + (u*pitch + v)*N + n
    u, v = (4, 1) if transposed else (1, 4)
    np.testing.assert_array_equal(rows[:, before + (u * grid.pitch + v) * images + 1], planes[:, 1, 1, 4])


@pytest.mark.parametrize("length, itemsize, pitch", [(27904, 4, 27920), (27920, 4, 27920), (1, 4, 16), (17, 4, 48),
                                                     (27904, 8, 27912)])
def test_row_pitch_is_an_odd_number_of_cache_lines(length, itemsize, pitch):
    assert workspace.row_pitch(length, itemsize) == pitch
    assert (pitch * itemsize // workspace.LINE) % 2 == 1


def test_workspace_scratch_buffers():
    workspace.release()
    bigger = workspace.scratch("test", (100,), np.float64)
    assert bigger.shape == (100,) and bigger.dtype == np.float64 and bigger.flags.c_contiguous
    assert workspace.held_bytes() == 800
    workspace.release()
    assert workspace.held_bytes() == 0


@pytest.mark.parametrize("size, kernel, padding, dilation, live", [
    ((1, 1), (3, 3), (1, 1), (1, 1), (4,)),  # a "same" 3x3 on a 1x1 map: only the centre tap reads the input
    ((1, 1), (1, 3), (0, 1), (1, 1), (1,)),
    ((2, 2), (5, 5), (2, 2), (1, 1), (6, 7, 8, 11, 12, 13, 16, 17, 18)),  # the outer ring reads padding only
    ((4, 4), (1, 7), (0, 3), (1, 1), tuple(range(7))),  # every tap of a 1x7 reaches a 4-wide map somewhere
    ((9, 8), (3, 3), (1, 1), (1, 1), tuple(range(9))),
    ((1, 5), (3, 3), (2, 2), (2, 2), (3, 4, 5)),  # dilation 2: the rows at -2 and +2 miss a 1-row map
])
def test_live_taps(size, kernel, padding, dilation, live):
    grid = shifted_conv.grid_geometry((2, 3) + size, kernel, (1, 1), padding, dilation)
    assert grid.live == live


@needs_blas
@pytest.mark.parametrize("size, kernel, padding", [((1, 1), (3, 3), (1, 1)), ((2, 2), (5, 5), (2, 2)),
                                                   ((1, 3), (3, 3), (1, 1)), ((2, 1), (1, 3), (0, 1))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dead_taps_are_skipped_with_the_same_results(size, kernel, padding, dtype):
    """Maps smaller than the kernel's reach (dead taps skipped) still equal im2col + GEMM, all three results; the
    dead taps' weight gradient is exactly zero."""
    x_cnhw = _random((4, 3) + size, dtype)
    weight = _random((5, 4) + kernel, dtype, 1)
    grid = shifted_conv.grid_geometry((3, 4) + size, kernel, (1, 1), padding, (1, 1))
    assert len(grid.live) < kernel[0] * kernel[1]
    grad_cnhw = _random((5, 3, grid.out_h, grid.out_w), dtype, 2)
    expected = _reference(x_cnhw, weight, grad_cnhw, kernel, padding, (1, 1))
    taps = shifted_conv.weight_taps(weight)
    grad_rows = shifted_conv.grad_to_grid(grad_cnhw, grid)
    got = (shifted_conv.forward(x_cnhw, taps, grid),
           shifted_conv.backward_input(grad_cnhw, taps, grid, (3, 4) + size),
           shifted_conv.backward_weight(grad_cnhw, x_cnhw, grid, weight.shape))
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    for name, value, reference in zip(("out", "grad_x", "grad_weight"), got, expected):
        np.testing.assert_allclose(value, reference, rtol=tolerance, atol=tolerance, err_msg=name)
    dead = [t for t in range(kernel[0] * kernel[1]) if t not in grid.live]
    assert not got[2].transpose(2, 3, 0, 1).reshape(-1, 5, 4)[dead].any()


def test_short_products_take_blocks_that_stay_in_cache():
    """A product with 16 or 32 input channels re-reads its output block for every tap: the block of anchors shrinks
    so that (rows x block) stays within 64 KiB; longer products keep the default block."""
    assert shifted_conv._thread_chunk(128, 96) == shifted_conv.CHUNK // 2
    for out_rows in (16, 32, 64, 128):
        block = shifted_conv._thread_chunk(out_rows, 16)
        assert 256 <= block <= shifted_conv.CHUNK // 2
        assert out_rows * block <= 16384 or block == 256
