"""A convolution's output pass for inference: ``y = x * scale + shift`` per channel, then ReLU, in place.

    y[n, c, h, w] = max(x[n, c, h, w] * scale[c] + shift[c], 0)      (without the max when relu is False)

This is BatchNorm in evaluation mode (with the convolution's bias folded into ``shift``) and the ReLU after it,
done in ONE pass over the convolution's fresh output instead of three (BatchNorm's multiply, its add, the ReLU)
and two new arrays. NaN stays NaN and -inf becomes 0 as in ``torch.relu``.

The Numba kernel walks the array in its own memory layout: a channel-major (N, C, H, W) array (the layout the
Numba convolutions produce, `tinyinception.kernels.layout`) is C contiguous rows, one per channel, each handled
by one thread; a C-contiguous NCHW array is N*C rows of H*W. Other layouts take the NumPy reference.
"""
import numpy as np

from .. import backend
from . import layout
from ._numba import njit, prange, threaded_when_large


def channel_affine_numpy(x, scale, shift, relu):
    """The reference: in place on x (N, C, ...), scale and shift (C,)."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    x *= scale.reshape(shape)
    x += shift.reshape(shape)
    if relu:
        backend.get_array_module(x).maximum(x, 0, out=x)
    return x


@threaded_when_large(serial_below=1 << 16)
@njit(parallel=True, cache=True)
def _affine_rows(rows, channels, scale, shift, relu):
    """rows (R, L), row r of channel r % channels: rows[r] = rows[r] * scale + shift (then ReLU)."""
    zero = rows.dtype.type(0)
    for r in prange(rows.shape[0]):
        a, b = scale[r % channels], shift[r % channels]
        row = rows[r]
        for j in range(row.size):
            value = row[j] * a + b
            row[j] = zero if relu and value <= zero else value  # NaN <= 0 is False: NaN passes through


def channel_affine_numba(x, scale, shift, relu):
    if x.ndim != 4 or x.size == 0:
        return channel_affine_numpy(x, scale, shift, relu)
    n, c, h, w = x.shape
    scale, shift = np.ascontiguousarray(scale, x.dtype), np.ascontiguousarray(shift, x.dtype)
    if layout.is_channel_major(x):
        _affine_rows(layout.channel_rows(x), c, scale, shift, relu)
    elif x.flags.c_contiguous:
        _affine_rows(x.reshape(n * c, h * w), c, scale, shift, relu)
    else:
        channel_affine_numpy(x, scale, shift, relu)
    return x


def channel_affine_cupy(x, scale, shift, relu):
    return channel_affine_numpy(x, scale, shift, relu)  # CuPy runs the same array expressions on the GPU


_AFFINE = {"numpy": channel_affine_numpy, "numba": channel_affine_numba, "cupy": channel_affine_cupy}


def channel_affine_(x, scale, shift, relu=False):
    """In place: x (N, C, ...) -> x * scale + shift per channel (scale, shift: (C,), x's dtype), then ReLU when
    ``relu``. Returns x."""
    return _AFFINE[backend.kernels_for(x)](x, scale, shift, relu)
