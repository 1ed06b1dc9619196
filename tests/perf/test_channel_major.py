"""The channel-major fast path (kernels/layout.py) computes exactly what the NumPy reference path computes.

Each test runs the same operation on the Numba kernels (channel-major convolutions, layout-keeping batch norm and
pooling) and on the NumPy reference kernels (per-image convolutions, NCHW), on the same data, and compares the
forward result and every gradient. Small shapes; float32 and float64.
"""
import importlib

import numpy as np
import pytest

import tinyinception as ti
import tinyinception.functional as F
from tinyinception import kernels
from tinyinception.kernels import layout

im2col_module = importlib.import_module("tinyinception.kernels.im2col")  # the module, not the function
TOLERANCE = {np.float32: (2e-4, 2e-5), np.float64: (1e-10, 1e-12)}


def _random(shape, dtype, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _as_channel_major(array):
    return layout.from_channel_major(layout.channel_major(array))


def _run(kernel_name, op, arrays, grad_layout=None):
    """op(*tensors) on ``kernel_name`` kernels -> (output array, [gradient of every input]) with a fixed
    output gradient (drawn from a seeded generator, laid out by ``grad_layout`` when given)."""
    with ti.using_kernels(kernel_name):
        tensors = [ti.Tensor(a.copy(), requires_grad=True) for a in arrays]
        out = op(*tensors)
        grad = _random(out.shape, out.dtype, seed=99)
        if grad_layout is not None:
            grad = grad_layout(grad)
        out.backward(grad)
        return out.data, [t.grad for t in tensors]


def _assert_same(op, arrays, dtype, grad_layout=None):
    rtol, atol = TOLERANCE[dtype]
    out_fast, grads_fast = _run("numba", op, arrays, grad_layout)
    out_ref, grads_ref = _run("numpy", op, arrays)
    assert out_fast.dtype == np.dtype(dtype)
    np.testing.assert_allclose(out_fast, out_ref, rtol=rtol, atol=atol, err_msg="forward")
    for i, (fast, ref) in enumerate(zip(grads_fast, grads_ref)):
        assert fast.dtype == np.dtype(dtype)
        np.testing.assert_allclose(fast, ref, rtol=rtol, atol=atol, err_msg=f"gradient of input {i}")


# --- layout helpers ----------------------------------------------------------------------------------------
def test_layout_round_trip_and_planes():
    x = _random((2, 3, 4, 5), np.float32)
    cm = _as_channel_major(x)
    assert layout.is_channel_major(cm) and not cm.flags.c_contiguous
    np.testing.assert_array_equal(cm, x)
    planes = layout.planes(cm)  # (c, n) order
    np.testing.assert_array_equal(planes[1], x[1, 0])
    np.testing.assert_array_equal(layout.channel_rows(x), x.transpose(1, 0, 2, 3).reshape(3, -1))
    assert layout.is_channel_major(layout.empty_like_layout(cm, (2, 7, 1, 1)))


# --- im2col / col2im ---------------------------------------------------------------------------------------
GEOMETRIES = [  # kernel, stride, padding, dilation
    ((3, 3), (1, 1), (1, 1), (1, 1)),
    ((3, 3), (2, 2), (0, 0), (1, 1)),
    ((1, 7), (1, 1), (0, 3), (1, 1)),
    ((7, 1), (1, 1), (3, 0), (1, 1)),
    ((3, 3), (1, 1), (2, 2), (2, 2)),
    ((1, 1), (2, 2), (0, 0), (1, 1)),
]


@pytest.mark.parametrize("kernel, stride, padding, dilation", GEOMETRIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_im2col_col2im_channel_major_match_reference(kernel, stride, padding, dilation, dtype):
    x = _random((3, 4, 9, 8), dtype)
    out_size = ti.functional._windows.output_size("test", x.shape, kernel, stride, padding, dilation)
    geometry = (kernel, stride, padding, dilation, out_size)
    expected = im2col_module.im2col_channel_major_numpy(x, *geometry)
    # the reference is the per-image im2col with the batch moved into the columns
    per_image = im2col_module.im2col_numpy(x, *geometry)
    np.testing.assert_array_equal(expected.reshape(expected.shape[0], 3, -1).transpose(1, 0, 2), per_image)
    for x_in in (x, _as_channel_major(x)):
        np.testing.assert_array_equal(im2col_module.im2col_channel_major_numba(x_in, *geometry), expected)
    cols = _random(expected.shape, dtype, seed=1)
    grad_ref = im2col_module.col2im_channel_major_numpy(cols, x.shape, *geometry)
    grad_fast = im2col_module.col2im_channel_major_numba(cols, x.shape, *geometry)
    assert layout.is_channel_major(grad_fast)
    rtol, atol = TOLERANCE[dtype]
    np.testing.assert_allclose(grad_fast, grad_ref, rtol=rtol, atol=atol)


def test_col2im_channel_major_checks_shape():
    with pytest.raises(ValueError, match="col2im_channel_major"):
        kernels.col2im_channel_major(np.zeros((5, 5), np.float32), (1, 2, 3, 3), 3, 1, 1, 1, (3, 3))


# --- convolution -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kernel, stride, padding, dilation", GEOMETRIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv2d_channel_major_matches_per_image_reference(kernel, stride, padding, dilation, dtype):
    x, w, b = _random((3, 4, 9, 8), dtype), _random((5, 4) + kernel, dtype, 1), _random((5,), dtype, 2)
    _assert_same(lambda x, w, b: F.conv2d(x, w, b, stride, padding, dilation), [x, w, b], dtype)
    # a channel-major input and output gradient (what the previous and next layers hand over) give the same
    _assert_same(lambda x, w, b: F.conv2d(x, w, b, stride, padding, dilation), [_as_channel_major(x), w, b],
                 dtype, grad_layout=_as_channel_major)


def test_conv2d_output_is_channel_major_on_numba():
    with ti.using_kernels("numba"):
        out = F.conv2d(ti.Tensor(_random((2, 3, 5, 5), np.float32)), ti.Tensor(_random((4, 3, 3, 3), np.float32)))
    assert layout.is_channel_major(out.data) and not out.data.flags.c_contiguous


def test_conv2d_groups_keep_the_per_image_path():
    x, w = _random((2, 4, 6, 6), np.float32), _random((6, 2, 3, 3), np.float32, 1)
    _assert_same(lambda x, w: F.conv2d(x, w, padding=1, groups=2), [x, w], np.float32)


# --- batch norm and pooling keep the layout ----------------------------------------------------------------
@pytest.mark.parametrize("relu", [False, True])
def test_batch_norm_on_channel_major_input(relu):
    x, w, b = _random((4, 3, 5, 6), np.float32), _random((3,), np.float32, 1), _random((3,), np.float32, 2)
    norm = F.batch_norm_relu if relu else F.batch_norm
    op = lambda x, w, b: norm(x, None, None, w, b, training=True, eps=1e-3)  # noqa: E731
    _assert_same(op, [_as_channel_major(x), w, b], np.float32, grad_layout=_as_channel_major)
    _assert_same(op, [_as_channel_major(x), w, b], np.float32)  # NCHW gradient into a channel-major layer
    with ti.using_kernels("numba"):
        y = op(ti.Tensor(_as_channel_major(x)), ti.Tensor(w), ti.Tensor(b))
    assert layout.is_channel_major(y.data)


@pytest.mark.parametrize("pool", [
    lambda x: F.max_pool2d(x, 3, 1, 1, ceil_mode=True),
    lambda x: F.max_pool2d(x, 3, 2, ceil_mode=True),
    lambda x: F.max_pool2d(x, (1, 3), (2, 1), (0, 1)),
    lambda x: F.avg_pool2d(x, 3, 1, 1, count_include_pad=False),
    lambda x: F.avg_pool2d(x, 3, 2),
])
def test_pooling_on_channel_major_input(pool):
    x = _random((3, 4, 9, 8), np.float32)
    _assert_same(pool, [_as_channel_major(x)], np.float32, grad_layout=_as_channel_major)
    _assert_same(pool, [_as_channel_major(x)], np.float32)
    with ti.using_kernels("numba"):
        assert layout.is_channel_major(pool(ti.Tensor(_as_channel_major(x))).data)


def test_max_pool_ties_nan_and_infinity_match_reference():
    x = np.zeros((2, 3, 7, 7), np.float32)  # all ties: the first pixel of each window wins
    x[0, 0, 3, 3] = np.nan
    x[0, 1, 2, 2] = x[0, 1, 2, 4] = np.nan  # two NaNs in one window: the last one wins
    x[1, 2] = -np.inf
    for array in (x, _as_channel_major(x)):
        fast_out, fast_arg = kernels.pooling.max_pool2d_forward_numba(array, (3, 3), (1, 1), (1, 1), (7, 7))
        ref_out, ref_arg = kernels.pooling.max_pool2d_forward_numpy(x, (3, 3), (1, 1), (1, 1), (7, 7))
        np.testing.assert_array_equal(fast_out, ref_out)
        np.testing.assert_array_equal(fast_arg, ref_arg)


def test_dense_arrays_and_their_memory_order_views():
    cnhw = np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2)  # memory (C, N, H, W)
    channel_major = layout.from_channel_major(cnhw)
    assert layout.is_dense(channel_major) and not channel_major.flags.c_contiguous
    flat = layout.memory_order(channel_major)
    assert np.shares_memory(flat, cnhw)
    np.testing.assert_array_equal(flat, cnhw.reshape(-1))  # memory order, not the (N, C, H, W) index order
    gapped = np.zeros((4, 6), np.float32)[:, ::2]
    assert not layout.is_dense(gapped) and layout.memory_order(gapped) is None


def test_arrays_walked_together_share_a_layout_whatever_the_stride_of_a_length_one_axis(monkeypatch):
    """At batch 1 a channel-major array and an NCHW one lie in memory alike (only the unused batch stride differs):
    the one-pass kernels take them together. At batch 2 they do not, and `memory_orders` says so."""
    for batch, shared in ((1, True), (2, False)):
        cnhw = np.arange(batch * 3 * 2 * 2, dtype=np.float32).reshape(3, batch, 2, 2)
        channel_major = layout.from_channel_major(cnhw)
        nchw = np.empty((batch, 3, 2, 2), np.float32)
        nchw[...] = channel_major
        assert channel_major.strides != nchw.strides
        assert layout.same_layout(channel_major, nchw) is shared
        assert (layout.memory_orders(channel_major, nchw) is not None) is shared
    x = layout.from_channel_major(np.random.default_rng(0).standard_normal((3, 1, 4, 4)).astype(np.float32))
    branch = np.empty((1, 3, 4, 4), np.float32)
    branch[...] = np.random.default_rng(1).standard_normal((1, 3, 4, 4))
    expected = kernels.residual.residual_relu_forward_numpy(x, branch, np.float32(0.2))
    monkeypatch.setattr(kernels.residual, "residual_relu_forward_numpy", None)  # the one-pass kernel must run
    np.testing.assert_array_equal(kernels.residual.residual_relu_forward_numba(x, branch, np.float32(0.2)), expected)
