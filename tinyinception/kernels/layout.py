"""Memory layouts of an (N, C, H, W) array: the usual NCHW, and "channel-major" CNHW.

Every tensor keeps its logical shape (N, C, H, W); only the order of the bytes in memory differs,
as with PyTorch's ``channels_last``. A channel-major array is the view
``cnhw.transpose(1, 0, 2, 3)`` of a C-contiguous (C, N, H, W) array, so NumPy code that indexes it
as NCHW keeps working unchanged, while the fast kernels see, per channel, one contiguous row of
N*H*W values:

* a convolution is ONE matrix product ``weight (F, C*kh*kw) @ cols (C*kh*kw, N*H*W)`` whose
  result (F, N*out_h*out_w) is already channel-major: no per-image products, no transposes;
* a channel slice ``x[:, a:b]`` (an Inception branch, a slice of a concatenation) is contiguous;
* batch-norm statistics of channel c are the sum of one contiguous row.

Convolutions on the Numba kernels return channel-major outputs; batch norm, ReLU and pooling keep
the layout of their input; NumPy's own elementwise operations keep it too (``order='K'``).

Convolution weights have a layout of their own, "tap-major": a (F, C, kh, kw) weight stored as a
C-contiguous (kh, kw, F, C) array, so that each tap (i, j) of the kernel is one contiguous (F, C)
matrix, which is what the shifted-product convolution (`tinyinception.kernels.shifted_conv`) multiplies
by. `nn.Conv2d` creates its weight this way when that convolution applies, and the weight gradient
comes back in the same layout, so no step of training ever transposes a weight.
"""
import numpy as np

from .. import backend


def is_channel_major(array):
    """True when ``array`` (N, C, H, W) lies in memory as a C-contiguous (C, N, H, W) array."""
    return array.ndim == 4 and array.transpose(1, 0, 2, 3).flags.c_contiguous


def channel_major(array):
    """``array`` (N, C, H, W) -> the same values as a C-contiguous (C, N, H, W) array (no copy when
    ``array`` is already channel-major)."""
    xp = backend.get_array_module(array)
    return xp.ascontiguousarray(array.transpose(1, 0, 2, 3))


def channel_rows(array):
    """``array`` (N, C, H, W) -> (C, N*H*W): one contiguous row per channel (a copy when needed)."""
    cnhw = channel_major(array)
    return cnhw.reshape(cnhw.shape[0], -1)


def from_channel_major(cnhw):
    """A C-contiguous (C, N, H, W) array -> the (N, C, H, W) view of it (no copy)."""
    return cnhw.transpose(1, 0, 2, 3)


def empty_channel_major(shape, dtype, xp=np):
    """An uninitialised (N, C, H, W) array laid out channel-major."""
    n, c, h, w = shape
    return from_channel_major(xp.empty((c, n, h, w), dtype=dtype))


def zeros_channel_major(shape, dtype, xp=np):
    n, c, h, w = shape
    return from_channel_major(xp.zeros((c, n, h, w), dtype=dtype))


def empty_tap_major(shape, dtype, xp=np):
    """An uninitialised (F, C, kh, kw) weight laid out tap-major: the view of a C-contiguous (kh, kw, F, C)."""
    f, c, kh, kw = shape
    return xp.empty((kh, kw, f, c), dtype=dtype).transpose(2, 3, 0, 1)


def is_dense(array):
    """True when ``array``'s elements fill one block of memory without gaps, in C order, Fortran order or any
    permutation of the axes with positive strides (a channel-major or tap-major array is dense)."""
    if array.flags.c_contiguous or array.flags.f_contiguous:
        return True
    expected = array.itemsize
    for stride, size in sorted(zip(array.strides, array.shape)):
        if size == 1:
            continue
        if stride != expected:
            return False
        expected *= size
    return True


def memory_order(array):
    """A dense ``array`` as a 1-D view in memory order (no copy), or None when it is not dense: what an
    elementwise kernel walks so that it keeps any layout."""
    return array.ravel(order="K") if is_dense(array) else None


def memory_orders(*arrays):
    """Flat views (`memory_order`) of arrays that an elementwise kernel walks together, or None unless every one is
    dense and all share one layout (the same strides), so that element i of each view is the same (n, c, h, w)."""
    flats = [memory_order(array) for array in arrays]
    if any(flat is None for flat in flats) or not all(same_layout(array, arrays[0]) for array in arrays):
        return None
    return flats


def same_layout(a, b):
    """True when a and b have one shape and walk memory in one order: equal strides on every axis longer than 1.
    (An axis of length 1 is never stepped along, so its stride says nothing: at batch 1 a channel-major array and an
    NCHW one lie in memory alike.)"""
    return a.shape == b.shape and all(stride_a == stride_b for stride_a, stride_b, size
                                      in zip(a.strides, b.strides, a.shape) if size > 1)


def as_layout_of(array, reference):
    """``array`` in the memory layout of ``reference`` (channel-major or C-contiguous NCHW),
    copied only when the layouts differ."""
    xp = backend.get_array_module(array)
    if is_channel_major(reference):
        return from_channel_major(channel_major(array))
    return xp.ascontiguousarray(array)


def planes(array):
    """``array`` (N, C, H, W) in its own layout as contiguous (H, W) planes: (P, H, W) with
    P = N*C, ordered (c, n) for channel-major arrays and (n, c) otherwise. ``array`` must be
    channel-major or C-contiguous (use :func:`as_layout_of` first)."""
    n, c, h, w = array.shape
    if is_channel_major(array) and not array.flags.c_contiguous:
        return array.transpose(1, 0, 2, 3).reshape(c * n, h, w)
    return array.reshape(n * c, h, w)


def empty_like_layout(array, shape=None, dtype=None, xp=None):
    """An uninitialised (N, C, H, W) array (``shape``, default ``array.shape``) laid out like
    ``array`` (channel-major when ``array`` is, C-contiguous otherwise)."""
    xp = xp or backend.get_array_module(array)
    shape = array.shape if shape is None else shape
    dtype = array.dtype if dtype is None else dtype
    if is_channel_major(array) and not array.flags.c_contiguous:
        return empty_channel_major(shape, dtype, xp)
    return xp.empty(shape, dtype=dtype)
