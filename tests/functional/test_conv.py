"""conv2d: float64 gradient checks and PyTorch parity over a grid of kernels, strides, paddings, dilations, groups.

The full element-by-element check runs on the NumPy reference kernels; the Numba kernels get the one-direction
fast mode (their agreement with NumPy is checked element by element in tests/kernels).
"""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinyinception as ti
import tinyinception.functional as F
from helpers import HYPOTHESIS_SETTINGS, check_gradcheck, check_parity

CASES = [
    # (x shape, weight shape, bias, stride, padding, dilation, groups)
    ((2, 3, 7, 7), (4, 3, 3, 3), True, 1, 1, 1, 1),
    ((2, 4, 6, 9), (6, 4, 1, 7), False, 1, (0, 3), 1, 1),      # Inception-v3's 1x7
    ((2, 4, 9, 6), (6, 4, 7, 1), True, 1, (3, 0), 1, 1),        # and 7x1
    ((1, 3, 9, 9), (5, 3, 3, 3), True, 2, 0, 1, 1),             # stride-2 reduction
    ((2, 4, 8, 8), (4, 4, 3, 3), True, 1, 2, 2, 1),             # dilation 2
    ((2, 4, 7, 7), (6, 2, 3, 3), True, 1, 1, 1, 2),             # 2 groups
    ((2, 4, 7, 7), (4, 1, 3, 3), False, 2, 1, 1, 4),            # depthwise
    ((2, 5, 6, 6), (7, 5, 1, 1), True, 1, 0, 1, 1),             # 1x1: the matrix-product path
    ((2, 6, 5, 5), (4, 3, 1, 1), False, 1, 0, 1, 2),            # 1x1 with groups
    ((2, 3, 8, 7), (4, 3, 1, 1), True, 2, 0, 1, 1),             # 1x1 stride 2 goes through im2col
    ((1, 2, 5, 5), (3, 2, 5, 5), True, 1, 0, 1, 1),             # kernel as large as the input
    ((2, 20, 5, 6), (24, 20, 3, 3), True, 1, 1, 1, 1),          # "same" 3x3, 20 -> 24: Winograd F(2x2, 3x3)
]


def _call(case):
    x_shape, w_shape, bias, stride, padding, dilation, groups = case
    shapes = [x_shape, w_shape] + ([(w_shape[0],)] if bias else [])
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    return shapes, kwargs


@pytest.mark.parametrize("kernels", ["numpy", "numba"])
@pytest.mark.parametrize("case", CASES)
def test_conv2d_gradcheck(case, kernels):
    shapes, kwargs = _call(case)
    with ti.using_kernels(kernels):
        assert check_gradcheck(lambda x, w, *b: F.conv2d(x, w, b[0] if b else None, **kwargs), shapes,
                              fast_mode=kernels == "numba")


@pytest.mark.torch
@pytest.mark.parametrize("case", CASES)
def test_conv2d_matches_torch(case):
    torch = pytest.importorskip("torch")
    shapes, kwargs = _call(case)
    check_parity(lambda x, w, *b: F.conv2d(x, w, b[0] if b else None, **kwargs),
                 lambda x, w, *b: torch.nn.functional.conv2d(x, w, b[0] if b else None, **kwargs), shapes,
                 rtol=1e-4, atol=1e-4)


@pytest.mark.torch
@HYPOTHESIS_SETTINGS
@given(n=st.integers(1, 2), c_per_group=st.integers(1, 3), f_per_group=st.integers(1, 3), groups=st.integers(1, 2),
       h=st.integers(5, 9), w=st.integers(5, 9), kh=st.integers(1, 3), kw=st.integers(1, 3),
       sh=st.integers(1, 3), sw=st.integers(1, 3), ph=st.integers(0, 2), pw=st.integers(0, 2),
       dh=st.integers(1, 2), dw=st.integers(1, 2), bias=st.booleans())
def test_conv2d_matches_torch_on_random_geometry(n, c_per_group, f_per_group, groups, h, w, kh, kw, sh, sw, ph, pw,
                                                 dh, dw, bias):
    torch = pytest.importorskip("torch")
    c, f = c_per_group * groups, f_per_group * groups
    shapes = [(n, c, h, w), (f, c_per_group, kh, kw)] + ([(f,)] if bias else [])
    kwargs = dict(stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw), groups=groups)
    check_parity(lambda x, wt, *b: F.conv2d(x, wt, b[0] if b else None, **kwargs),
                 lambda x, wt, *b: torch.nn.functional.conv2d(x, wt, b[0] if b else None, **kwargs), shapes,
                 rtol=1e-4, atol=1e-4)


@pytest.mark.torch
@HYPOTHESIS_SETTINGS
@given(n=st.integers(1, 3), c=st.integers(20, 28), f=st.integers(20, 28), h=st.integers(4, 11),
       w=st.integers(4, 11), bias=st.booleans())
def test_winograd_convolutions_match_torch(n, c, f, h, w, bias):
    """The "same" 3x3 convolutions that run as Winograd F(2x2, 3x3) on the Numba path (even and odd sizes)."""
    torch = pytest.importorskip("torch")
    shapes = [(n, c, h, w), (f, c, 3, 3)] + ([(f,)] if bias else [])
    check_parity(lambda x, wt, *b: F.conv2d(x, wt, b[0] if b else None, padding=1),
                 lambda x, wt, *b: torch.nn.functional.conv2d(x, wt, b[0] if b else None, padding=1), shapes,
                 rtol=1e-4, atol=1e-4)


def test_numba_and_numpy_convolutions_agree(rng):
    x = rng.standard_normal((2, 4, 9, 8)).astype(np.float32)
    w = rng.standard_normal((6, 4, 3, 5)).astype(np.float32)
    results = []
    for kernels in ("numpy", "numba"):
        with ti.using_kernels(kernels):
            xt, wt = ti.tensor(x, requires_grad=True), ti.tensor(w, requires_grad=True)
            out = F.conv2d(xt, wt, stride=(2, 1), padding=(1, 2), dilation=(1, 2))
            out.backward(np.ones(out.shape, np.float32))
            results.append((out.numpy(), xt.grad, wt.grad))
    for mine, reference in zip(*results):
        np.testing.assert_allclose(mine, reference, rtol=1e-5, atol=1e-5)


def test_float32_stays_float32():
    x = ti.tensor(np.ones((1, 2, 4, 4), np.float32), requires_grad=True)
    w = ti.tensor(np.ones((3, 2, 3, 3), np.float32), requires_grad=True)
    out = F.conv2d(x, w, padding=1)
    out.sum().backward()
    assert out.dtype == np.float32 and x.grad.dtype == np.float32 and w.grad.dtype == np.float32


def test_conv2d_layer_names_the_channel_mismatch():
    layer = ti.nn.Conv2d(in_channels=3, out_channels=8, kernel_size=3)
    with pytest.raises(ValueError, match=r"Conv2d\(in_channels=3\) got input with 4 channels"):
        layer(ti.tensor(np.zeros((1, 4, 8, 8), np.float32)))


def test_conv2d_errors_are_clear():
    x = ti.tensor(np.zeros((1, 3, 4, 4), np.float32))
    with pytest.raises(ValueError, match="expected a 4-D input"):
        F.conv2d(ti.tensor(np.zeros((3, 4, 4), np.float32)), ti.tensor(np.zeros((2, 3, 3, 3), np.float32)))
    with pytest.raises(ValueError, match="larger than the padded input"):
        F.conv2d(x, ti.tensor(np.zeros((2, 3, 7, 7), np.float32)), padding=1)
    with pytest.raises(ValueError, match="expects 6 input channels"):
        F.conv2d(x, ti.tensor(np.zeros((2, 3, 3, 3), np.float32)), groups=2)
    with pytest.raises(TypeError, match="dtype"):
        F.conv2d(x, ti.tensor(np.zeros((2, 3, 3, 3), np.float64)))


def test_conv2d_layer_default_init_bounds_match_pytorch():
    layer = ti.nn.Conv2d(16, 32, 3)
    bound = 1 / np.sqrt(16 * 9)
    assert np.abs(layer.weight.data).max() <= bound and np.abs(layer.weight.data).max() > 0.9 * bound
    assert np.abs(layer.bias.data).max() <= bound
