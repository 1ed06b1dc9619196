"""Pooling: gradient checks and PyTorch parity, including ceil_mode overhang, count_include_pad, 1x3 / 3x1 windows.
The full element-by-element check runs on the NumPy reference kernels; the Numba kernels get the one-direction
fast mode (their agreement with NumPy is checked element by element in tests/kernels).
"""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinyinception as ti
import tinyinception.functional as F
from helpers import HYPOTHESIS_SETTINGS, check_gradcheck, check_parity

MAX_CASES = [
    # (x shape, kernel, stride, padding, ceil_mode)
    ((2, 3, 7, 7), 3, 2, 0, False),
    ((2, 3, 8, 8), 3, 2, 0, True),          # GoogLeNet's ceil-mode reductions (112 -> 56 in miniature)
    ((2, 3, 7, 7), 3, 2, 1, True),          # ceil mode whose last window would start in the right padding
    ((1, 2, 6, 9), 3, 1, 1, False),         # 3x3/1 pool branch
    ((1, 2, 6, 7), (1, 3), (1, 2), (0, 1), True),
    ((1, 2, 7, 6), (3, 1), (2, 1), (1, 0), False),
    ((2, 2, 5, 5), 2, None, 0, True),       # stride defaults to the kernel
]

AVG_CASES = [
    # (x shape, kernel, stride, padding, ceil_mode, count_include_pad)
    ((2, 3, 7, 7), 3, 1, 1, False, True),
    ((2, 3, 7, 7), 3, 1, 1, False, False),   # Inception-v4's pool branches
    ((2, 3, 8, 8), 3, 2, 1, True, True),
    ((2, 3, 8, 8), 3, 2, 1, True, False),
    ((1, 2, 5, 7), (1, 3), 1, (0, 1), False, False),
    ((1, 2, 7, 5), (3, 1), (2, 1), (1, 0), True, True),
    ((2, 2, 17, 17), 5, 3, 0, False, True),  # Inception-v3's auxiliary head pool
]


@pytest.mark.parametrize("kernels", ["numpy", "numba"])
@pytest.mark.parametrize("case", MAX_CASES)
def test_max_pool2d_gradcheck(case, kernels):
    shape, k, s, p, ceil = case
    with ti.using_kernels(kernels):
        assert check_gradcheck(lambda x: F.max_pool2d(x, k, s, p, ceil_mode=ceil), [shape],
                              fast_mode=kernels == "numba")


@pytest.mark.torch
@pytest.mark.parametrize("case", MAX_CASES)
def test_max_pool2d_matches_torch(case):
    torch = pytest.importorskip("torch")
    shape, k, s, p, ceil = case
    check_parity(lambda x: F.max_pool2d(x, k, s, p, ceil_mode=ceil),
                 lambda x: torch.nn.functional.max_pool2d(x, k, s, p, ceil_mode=ceil), [shape])


@pytest.mark.parametrize("kernels", ["numpy", "numba"])
@pytest.mark.parametrize("case", AVG_CASES)
def test_avg_pool2d_gradcheck(case, kernels):
    shape, k, s, p, ceil, include = case
    with ti.using_kernels(kernels):
        assert check_gradcheck(lambda x: F.avg_pool2d(x, k, s, p, ceil, include), [shape],
                              fast_mode=kernels == "numba")


@pytest.mark.torch
@pytest.mark.parametrize("case", AVG_CASES)
def test_avg_pool2d_matches_torch(case):
    torch = pytest.importorskip("torch")
    shape, k, s, p, ceil, include = case
    check_parity(lambda x: F.avg_pool2d(x, k, s, p, ceil, include),
                 lambda x: torch.nn.functional.avg_pool2d(x, k, s, p, ceil, include), [shape])


@pytest.mark.torch
@HYPOTHESIS_SETTINGS
@given(h=st.integers(3, 10), w=st.integers(3, 10), kh=st.integers(1, 3), kw=st.integers(1, 3),
       sh=st.integers(1, 3), sw=st.integers(1, 3), ph=st.integers(0, 1), pw=st.integers(0, 1),
       ceil=st.booleans(), include=st.booleans(), kind=st.sampled_from(["max", "avg"]))
def test_pooling_matches_torch_on_random_geometry(h, w, kh, kw, sh, sw, ph, pw, ceil, include, kind):
    torch = pytest.importorskip("torch")
    ph, pw = min(ph, kh // 2), min(pw, kw // 2)
    kernel, stride, padding = (kh, kw), (sh, sw), (ph, pw)
    if kind == "max":
        ours = lambda x: F.max_pool2d(x, kernel, stride, padding, ceil_mode=ceil)  # noqa: E731
        theirs = lambda x: torch.nn.functional.max_pool2d(x, kernel, stride, padding, ceil_mode=ceil)  # noqa: E731
    else:
        ours = lambda x: F.avg_pool2d(x, kernel, stride, padding, ceil, include)  # noqa: E731
        theirs = lambda x: torch.nn.functional.avg_pool2d(x, kernel, stride, padding, ceil, include)  # noqa: E731
    check_parity(ours, theirs, [(2, 2, h, w)])


@pytest.mark.parametrize("out_size", [4, (3, 5), 1, (2, None)])
def test_adaptive_avg_pool2d_gradcheck(out_size):
    assert check_gradcheck(lambda x: F.adaptive_avg_pool2d(x, out_size), [(2, 3, 9, 7)])


@pytest.mark.torch
@pytest.mark.parametrize("shape,out_size", [((2, 3, 14, 14), 4), ((1, 2, 9, 7), (3, 5)), ((2, 2, 5, 5), 1),
                                            ((1, 2, 8, 8), (2, None)), ((1, 1, 3, 3), 5)])
def test_adaptive_avg_pool2d_matches_torch(shape, out_size):
    torch = pytest.importorskip("torch")
    check_parity(lambda x: F.adaptive_avg_pool2d(x, out_size),
                 lambda x: torch.nn.functional.adaptive_avg_pool2d(x, out_size), [shape])


def test_adaptive_windows_for_googlenet_aux_head():
    from tinyinception.functional.pooling import adaptive_windows
    assert adaptive_windows(14, 4) == [(0, 4), (3, 7), (7, 11), (10, 14)]


def test_adaptive_avg_pool2d_keeps_a_channel_major_layout_and_values():
    from tinyinception.kernels import layout
    x = np.random.default_rng(0).standard_normal((2, 3, 14, 14)).astype(np.float32)
    grad = np.random.default_rng(1).standard_normal((2, 3, 4, 4)).astype(np.float32)
    results = []
    for array in (x, layout.from_channel_major(layout.channel_major(x))):
        tensor = ti.Tensor(array, requires_grad=True)
        out = F.adaptive_avg_pool2d(tensor, 4)
        assert layout.is_channel_major(out.data) == layout.is_channel_major(array)
        out.backward(grad)
        results.append((out.data, tensor.grad))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(results[0][0][0, 0, 1, 2], x[0, 0, 3:7, 7:11].mean(), rtol=1e-6)  # window (1, 2)


@pytest.mark.torch
def test_global_avg_pool2d_matches_torch():
    pytest.importorskip("torch")
    check_parity(lambda x: F.global_avg_pool2d(x), lambda x: x.mean(dim=(2, 3)), [(2, 5, 3, 4)])


def test_max_pool_pads_with_minus_infinity():
    x = ti.tensor(-np.ones((1, 1, 3, 3), np.float32) * 5)
    out = F.max_pool2d(x, 3, 1, 1)
    assert (out.numpy() == -5).all()  # zero padding would have given 0 at the borders


def test_pooling_errors_are_clear():
    x = ti.tensor(np.zeros((1, 1, 4, 4), np.float32))
    with pytest.raises(ValueError, match="padding"):
        F.max_pool2d(x, 3, 1, 2)
    with pytest.raises(ValueError, match="larger than the padded input"):
        F.avg_pool2d(x, 7)
    with pytest.raises(ValueError, match="4-D input"):
        F.max_pool2d(ti.tensor(np.zeros((4, 4), np.float32)), 2)
