"""The register-blocked weight gradient (kernels/blocked_weight_grad.py) equals the per-tap products it replaces."""
import numpy as np
import pytest

import tinyinception as ti
import tinyinception.functional as F
from tinyinception.kernels import blas, blocked_weight_grad

needs_blas = pytest.mark.skipif(not blas.available(), reason="no direct BLAS found in this process")


def _random(shape, dtype, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _reference(grad_rows, grad_base, rows, base, offsets, anchors):
    """One NumPy matrix product per tap: the definition."""
    grad = grad_rows[:, grad_base:grad_base + anchors]
    return np.stack([grad @ rows[:, base + offset:base + offset + anchors].T for offset in offsets])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("filters, channels", [(8, 4), (7, 6), (3, 5), (4, 1), (9, 13), (8, 20)])  # blocks, edges,
# and (8, 20): more than one tile of channels, the last one short
@pytest.mark.parametrize("shares", [1, 2, 3])
@pytest.mark.parametrize("block", [5, 1024])  # 5: many blocks of anchors, none aligned with a share
def test_matches_per_tap_products(dtype, filters, channels, shares, block, monkeypatch):
    monkeypatch.setattr(blocked_weight_grad, "ANCHOR_BLOCK", block)
    anchors, offsets = 61, (-7, -1, 0, 2, 9)  # negative offsets read before `base`, like a padded grid
    grad_rows = _random((filters, 3 + anchors + 4), dtype)
    rows = _random((channels, 8 + anchors + 9), dtype, 1)
    out = np.full((len(offsets), filters, channels), np.nan, dtype=dtype)  # every value must be written
    got = blocked_weight_grad.shifted_outer_products(grad_rows, 3, rows, 8, offsets, anchors, out, shares=shares)
    assert got is out and out.dtype == np.dtype(dtype)
    expected = _reference(grad_rows, 3, rows, 8, offsets, anchors)
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, expected, rtol=tolerance, atol=tolerance)


def test_nan_and_infinity_propagate():
    """Only reassociation and fused multiply-adds are allowed to the compiler, not "no NaNs": a NaN input reaches
    exactly the sums that read it, as in BLAS."""
    grad_rows, rows = _random((4, 40), np.float32), _random((4, 50), np.float32, 1)
    rows[2, 20] = np.nan
    rows[1, 30] = np.inf
    grad_rows[:, 30 - 3] = 1.0  # keep inf * 0 out of the picture: every filter has weight 1 where tap 1 reads it
    offsets = (0, 3)
    out = np.empty((2, 4, 4), np.float32)
    blocked_weight_grad.shifted_outer_products(grad_rows, 0, rows, 0, offsets, 40, out, shares=2)
    expected = _reference(grad_rows, 0, rows, 0, offsets, 40)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(expected))
    assert np.isnan(out[:, :, 2]).all() and np.isposinf(out[1, :, 1]).all()
    finite = np.isfinite(expected)
    np.testing.assert_allclose(out[finite], expected[finite], rtol=1e-5, atol=1e-5)


def test_pays_on_large_maps_with_a_small_result():
    limit, largest = blocked_weight_grad.MIN_ANCHORS, blocked_weight_grad.MAX_RESULT
    assert blocked_weight_grad.pays(32, 16, limit)
    assert blocked_weight_grad.pays(128, 128, limit)
    assert not blocked_weight_grad.pays(32, 16, limit - 1)  # small maps: too few steps per sum
    assert not blocked_weight_grad.pays(128, 192, limit)  # BLAS's best shapes
    assert largest < 128 * 192
    assert not blocked_weight_grad.pays(32, 3, limit)  # fewer than 4 channels: no full block at all


@needs_blas
@pytest.mark.parametrize("stride, padding", [(1, 1), (2, 0)])  # shifted_conv and strided_conv both use it
def test_conv2d_weight_gradient_through_the_blocked_kernel(stride, padding, monkeypatch):
    """A small convolution forced onto the blocked kernel gives the weight gradient of the NumPy reference path."""
    calls = []
    kernel = blocked_weight_grad.shifted_outer_products
    monkeypatch.setattr(blocked_weight_grad, "MIN_ANCHORS", 0)
    monkeypatch.setattr(blocked_weight_grad, "shifted_outer_products",
                        lambda *args, **kwargs: calls.append(1) or kernel(*args, **kwargs))
    x, w = _random((2, 16, 9, 9), np.float64), _random((6, 16, 3, 3), np.float64, 1)
    grads = {}
    for kernels in ("numpy", "numba"):
        weight = ti.Tensor(w, requires_grad=True)
        with ti.using_kernels(kernels):
            out = F.conv2d(ti.Tensor(x, requires_grad=True), weight, stride=stride, padding=padding)
            (out * out).sum().backward()
        grads[kernels] = weight.grad
    assert calls, "the numba path did not reach the blocked kernel"
    np.testing.assert_allclose(grads["numba"], grads["numpy"], rtol=1e-10, atol=1e-10)
