"""Helpers shared by the kernel tests: PyTorch's output-size rule, random data, tolerances."""
import numpy as np
from hypothesis import strategies as st

DTYPES = (np.float32, np.float64)
# asymmetric windows are the Inception-v3/v4 factorised convolutions and pools
KERNELS = ((1, 1), (2, 2), (3, 3), (1, 3), (3, 1), (1, 7), (7, 1), (2, 3), (5, 5))


def out_length(size, kernel, stride, pad, dilation=1, ceil_mode=False):
    """PyTorch's output length; ceil mode keeps a last window only if it starts inside the
    input or the left padding."""
    span = size + 2 * pad - dilation * (kernel - 1) - 1
    if ceil_mode:
        out = -(-span // stride) + 1
        if (out - 1) * stride >= size + pad:
            out -= 1
        return out
    return span // stride + 1


def tolerance(dtype):
    """(rtol, atol) for comparing two implementations that round differently."""
    return (2e-5, 2e-6) if np.dtype(dtype) == np.float32 else (1e-12, 1e-13)


def assert_close(actual, expected, dtype, scale=1.0):
    rtol, atol = tolerance(dtype)
    assert actual.dtype == np.dtype(dtype), f"dtype changed: {actual.dtype} != {np.dtype(dtype)}"
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol * scale)


def random_array(seed, shape, dtype):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@st.composite
def conv_geometry(draw):
    """(x_shape, kernel_size, stride, padding, dilation, out_size) for im2col, sometimes with
    one extra (ceil-mode style) window overhanging the bottom/right padding."""
    kernel = draw(st.sampled_from(KERNELS))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    sizes, outs = [], []
    for axis in range(2):
        reach = dilation[axis] * (kernel[axis] - 1) + 1
        size = draw(st.integers(max(1, reach - 2 * padding[axis]), reach + 6))
        out = out_length(size, kernel[axis], stride[axis], padding[axis], dilation[axis])
        sizes.append(size)
        outs.append(out + draw(st.integers(0, 1)))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), *sizes)
    return shape, kernel, stride, padding, dilation, tuple(outs)


@st.composite
def pool_geometry(draw):
    """(x_shape, kernel_size, stride, padding, out_size, ceil_mode) valid for PyTorch pooling
    (padding at most half the window)."""
    kernel = draw(st.sampled_from(KERNELS))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    ceil_mode = draw(st.booleans())
    sizes = tuple(draw(st.integers(max(1, k - 2 * p), k + 6)) for k, p in zip(kernel, padding))
    outs = tuple(out_length(s, k, st_, p, 1, ceil_mode)
                 for s, k, st_, p in zip(sizes, kernel, stride, padding))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), *sizes)
    return shape, kernel, stride, padding, outs, ceil_mode
