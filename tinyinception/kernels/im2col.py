"""im2col and col2im: unfold image windows into columns, and fold columns back.

With ``cols = im2col(x, ...)`` a convolution is one matrix product per image:
``out[n] = weight.reshape(C_out, C*kh*kw) @ cols[n]``. ``col2im`` is the adjoint of ``im2col``
(the transpose of the same linear map): it adds every column entry back onto the input pixel it
was read from, which is exactly the gradient of ``im2col``.

Shapes (every implementation below, NumPy, Numba and CuPy, has the same signature):

* ``x``: (N, C, H, W)
* ``cols``: (N, C*kh*kw, out_h*out_w), C-contiguous; row ``c*kh*kw + i*kw + j`` holds, for every
  output position ``(oh, ow)``, the pixel ``x[n, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw]``, or 0
  where that position lies in the padding.
"""
import numpy as np

from .. import backend
from . import _cuda, layout
from ._checks import check_float, check_ndim, check_shape, pair
from ._geometry import inside_range
from ._numba import njit, prange, threaded_when_large


def _needed_extent(size, kernel, stride, pad, dilation, out):
    """How far (in padded coordinates) the last window reaches, at least ``size + 2*pad``."""
    last_window_end = (out - 1) * stride + (kernel - 1) * dilation + 1
    return max(size + 2 * pad, last_window_end)


# ----------------------------------------------------------------------------------------------
# NumPy reference: one strided slice copy per kernel offset (i, j)
# ----------------------------------------------------------------------------------------------
def im2col_numpy(x, kernel_size, stride, padding, dilation, out_size):
    """NumPy reference im2col. ``x``: (N, C, H, W) -> cols (N, C*kh*kw, out_h*out_w)."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw), (out_h, out_w) = (
        kernel_size, stride, padding, dilation, out_size)
    padded_h = _needed_extent(h, kh, sh, ph, dh, out_h)
    padded_w = _needed_extent(w, kw, sw, pw, dw, out_w)
    x_padded = np.zeros((n, c, padded_h, padded_w), dtype=x.dtype)
    x_padded[:, :, ph:ph + h, pw:pw + w] = x
    cols = np.empty((n, c, kh, kw, out_h, out_w), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            top, left = i * dh, j * dw
            cols[:, :, i, j] = x_padded[:, :, top:top + sh * (out_h - 1) + 1:sh,
                                        left:left + sw * (out_w - 1) + 1:sw]
    return cols.reshape(n, c * kh * kw, out_h * out_w)


def col2im_numpy(cols, x_shape, kernel_size, stride, padding, dilation, out_size):
    """NumPy reference col2im. ``cols``: (N, C*kh*kw, out_h*out_w) -> grad_x (N, C, H, W)."""
    n, c, h, w = x_shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw), (out_h, out_w) = (
        kernel_size, stride, padding, dilation, out_size)
    padded_h = _needed_extent(h, kh, sh, ph, dh, out_h)
    padded_w = _needed_extent(w, kw, sw, pw, dw, out_w)
    grad_padded = np.zeros((n, c, padded_h, padded_w), dtype=cols.dtype)
    cols6 = cols.reshape(n, c, kh, kw, out_h, out_w)
    for i in range(kh):
        for j in range(kw):
            top, left = i * dh, j * dw
            grad_padded[:, :, top:top + sh * (out_h - 1) + 1:sh,
                        left:left + sw * (out_w - 1) + 1:sw] += cols6[:, :, i, j]
    return np.ascontiguousarray(grad_padded[:, :, ph:ph + h, pw:pw + w])


# ----------------------------------------------------------------------------------------------
# Numba: prange over the N*C planes
# ----------------------------------------------------------------------------------------------
@njit(cache=True)
def _unfold_plane(x_plane, rows, kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w):
    """One (n, c) plane: x_plane (H, W) -> rows (kh*kw, out_h*out_w), every entry written (0 in the padding).

    Fast because: the in-bounds ``ow`` range is computed once per tap, so each output row is three plain loops
    (zeros, copy, zeros) with no test inside, indexed directly (no slice objects: a 45x45 plane has ~200 row
    segments, and building a view per segment cost more than copying it); shared by the plain and the
    channel-major layouts (only ``rows``' strides differ).
    """
    height, width = x_plane.shape
    zero = x_plane.dtype.type(0)
    for i in range(kh):
        for j in range(kw):
            tap = i * kw + j
            w_offset = j * dw - pw
            ow_lo, ow_hi = inside_range(-w_offset, sw, width, out_w)
            for oh in range(out_h):
                base = oh * out_w
                ih = oh * sh - ph + i * dh
                if ih < 0 or ih >= height:
                    for ow in range(out_w):
                        rows[tap, base + ow] = zero
                    continue
                for ow in range(ow_lo):
                    rows[tap, base + ow] = zero
                for ow in range(ow_lo, ow_hi):
                    rows[tap, base + ow] = x_plane[ih, ow * sw + w_offset]
                for ow in range(ow_hi, out_w):
                    rows[tap, base + ow] = zero


@njit(cache=True)
def _fold_plane(rows, grad_plane, kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w):
    """One (n, c) plane of col2im: rows (kh*kw, out_h*out_w) summed onto grad_plane (H, W) (already zeroed).

    Fast because: the in-bounds ``ow`` range is computed once per tap, so the inner loop is a branch-free add
    (vectorised for stride 1), indexed directly, without building a view per row segment.
    """
    height, width = grad_plane.shape
    for i in range(kh):
        for j in range(kw):
            tap = i * kw + j
            w_offset = j * dw - pw
            ow_lo, ow_hi = inside_range(-w_offset, sw, width, out_w)
            for oh in range(out_h):
                ih = oh * sh - ph + i * dh
                if ih < 0 or ih >= height:
                    continue
                base = oh * out_w
                for ow in range(ow_lo, ow_hi):
                    grad_plane[ih, ow * sw + w_offset] += rows[tap, base + ow]


@threaded_when_large
@njit(parallel=True, cache=True)
def _im2col_planes(x_planes, cols_planes, kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w):
    """x_planes: (N*C, H, W) -> cols_planes: (N*C, kh*kw, out_h*out_w), filled in place.

    Fast because: each thread owns whole (n, c) planes (no sharing, no atomics); every output row
    segment is written left to right, contiguously, through 1-D row views; the padding test is
    hoisted out of the inner loop by computing the in-bounds ``ow`` range once per (i, j), so
    the inner loop is a plain copy (a contiguous slice copy when the stride is 1) that LLVM
    vectorises; nothing is allocated.
    """
    for plane in prange(x_planes.shape[0]):
        _unfold_plane(x_planes[plane], cols_planes[plane], kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w)


@threaded_when_large
@njit(parallel=True, cache=True)
def _col2im_planes(cols_planes, grad_planes, kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w):
    """cols_planes: (N*C, kh*kw, out_h*out_w) -> grad_planes: (N*C, H, W), zeroed, summed in place.

    Fast because: one thread owns each (n, c) output plane, so the overlapping-window sums need no
    atomics and no per-thread buffers; column rows are read contiguously through 1-D row views
    and the in-bounds ``ow`` range is computed once per (i, j), so the inner loop is a
    branch-free add.
    """
    for plane in prange(grad_planes.shape[0]):
        _fold_plane(cols_planes[plane], grad_planes[plane], kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w)


def im2col_numba(x, kernel_size, stride, padding, dilation, out_size):
    """Numba im2col (parallel over (n, c) planes). Same contract as :func:`im2col_numpy`."""
    n, c, h, w = x.shape
    (kh, kw), (out_h, out_w) = kernel_size, out_size
    x_planes = np.ascontiguousarray(x).reshape(n * c, h, w)
    cols = np.empty((n, c * kh * kw, out_h * out_w), dtype=x.dtype)
    if cols.size:
        _im2col_planes(x_planes, cols.reshape(n * c, kh * kw, out_h * out_w),
                       kh, kw, *stride, *padding, *dilation, out_h, out_w)
    return cols


def col2im_numba(cols, x_shape, kernel_size, stride, padding, dilation, out_size):
    """Numba col2im (parallel over (n, c) planes). Same contract as :func:`col2im_numpy`."""
    n, c, h, w = x_shape
    (kh, kw), (out_h, out_w) = kernel_size, out_size
    cols_planes = np.ascontiguousarray(cols).reshape(n * c, kh * kw, out_h * out_w)
    grad_x = np.zeros((n, c, h, w), dtype=cols.dtype)
    if grad_x.size and cols.size:
        _col2im_planes(cols_planes, grad_x.reshape(n * c, h, w),
                       kh, kw, *stride, *padding, *dilation, out_h, out_w)
    return grad_x


# ----------------------------------------------------------------------------------------------
# Channel-major variant (see kernels/layout.py): cols (C*kh*kw, N*out_h*out_w), so that the whole
# batch is ONE matrix product ``weight (F, C*kh*kw) @ cols``, already channel-major.
# Row ``c*kh*kw + i*kw + j``, column ``n*out_h*out_w + oh*out_w + ow`` holds the same pixel as
# ``im2col(x)[n, c*kh*kw + i*kw + j, oh*out_w + ow]``: the same matrices, the batch moved.
# ----------------------------------------------------------------------------------------------
def im2col_channel_major_numpy(x, kernel_size, stride, padding, dilation, out_size, out=None):
    """NumPy reference: :func:`im2col_numpy` with the batch axis moved into the columns.
    ``x``: (N, C, H, W), any layout -> cols (C*kh*kw, N*out_h*out_w), C-contiguous (written into ``out``
    when given)."""
    cols = im2col_numpy(x, kernel_size, stride, padding, dilation, out_size)  # (N, K, L)
    cols = np.ascontiguousarray(cols.transpose(1, 0, 2)).reshape(cols.shape[1], -1)
    if out is None:
        return cols
    out[...] = cols
    return out


def col2im_channel_major_numpy(cols, x_shape, kernel_size, stride, padding, dilation, out_size):
    """NumPy reference: ``cols`` (C*kh*kw, N*out_h*out_w) -> grad_x (N, C, H, W), channel-major."""
    n = x_shape[0]
    per_image = cols.reshape(cols.shape[0], n, -1).transpose(1, 0, 2)  # (N, K, L)
    grad_x = col2im_numpy(per_image, x_shape, kernel_size, stride, padding, dilation, out_size)
    return layout.from_channel_major(layout.channel_major(grad_x))


@threaded_when_large
@njit(parallel=True, cache=True)
def _im2col_channel_major(x_cnhw, cols_ctnl, kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w):
    """x_cnhw: (C, N, H, W) -> cols_ctnl: (C, kh*kw, N, out_h*out_w), filled in place.

    Fast because: the same plane-by-plane copy as ``_im2col_planes`` (one thread per (c, n)
    plane, contiguous row segments, padding ranges hoisted out of the inner loop); only the
    place each plane's rows land in differs.
    """
    channels, batch = x_cnhw.shape[:2]
    for plane in prange(channels * batch):
        c, n = plane // batch, plane % batch
        _unfold_plane(x_cnhw[c, n], cols_ctnl[c, :, n], kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w)


@threaded_when_large
@njit(parallel=True, cache=True)
def _col2im_channel_major(cols_ctnl, grad_cnhw, kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w):
    """cols_ctnl: (C, kh*kw, N, out_h*out_w) -> grad_cnhw: (C, N, H, W), zeroed, summed in place.

    Fast because: one thread owns each (c, n) plane of the gradient (no atomics), column rows
    are read contiguously and the in-bounds range is computed once per tap, as in
    ``_col2im_planes``.
    """
    channels, batch = grad_cnhw.shape[:2]
    for plane in prange(channels * batch):
        c, n = plane // batch, plane % batch
        _fold_plane(cols_ctnl[c, :, n], grad_cnhw[c, n], kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w)


@njit(cache=True)
def _overlap(shift, size):
    """[start, end): the positions p of a flat plane of ``size`` values whose p + shift is inside it (empty, with
    start == end, when the shift is a whole plane or more: a kernel wider than a small map, 5x5 on 2x2)."""
    start = min(size, max(0, -shift))
    return start, max(start, min(size, size - shift))


@threaded_when_large
@njit(parallel=True, cache=True)
def _im2col_same_channel_major(x_cnhw, cols_ctnl, kh, kw, ph, pw):
    """The stride-1 "same" convolution (output as large as the input): x_cnhw: (C, N, H, W) ->
    cols_ctnl: (C, kh*kw, N, H*W), filled in place.

    Fast because: with equal input and output sizes, the row of tap (i, j) is the whole flattened
    plane shifted by ``(i - ph)*W + (j - pw)``: ONE long contiguous copy per tap and plane (instead
    of one short copy per output row), after which only the few columns that wrapped around a row
    edge (and the rows that fell into the padding) are zeroed. Every Inception stride-1 kxk
    convolution (3x3 pad 1, 5x5 pad 2, 1x7 pad (0, 3), ...) takes this path.
    """
    channels, batch, height, width = x_cnhw.shape
    size = height * width
    for plane in prange(channels * batch):
        c, n = plane // batch, plane % batch
        x_flat = x_cnhw[c, n].reshape(size)
        for i in range(kh):
            for j in range(kw):
                cols_row = cols_ctnl[c, i * kw + j, n]
                shift = (i - ph) * width + (j - pw)
                start, end = _overlap(shift, size)
                cols_row[:start] = 0
                cols_row[start:end] = x_flat[start + shift:end + shift]
                cols_row[end:] = 0
                left, right = max(0, pw - j), min(width, width + pw - j)  # columns ow that read inside
                for oh in range(height):
                    row = cols_row[oh * width:(oh + 1) * width]
                    row[:left] = 0
                    row[right:] = 0


@threaded_when_large
@njit(parallel=True, cache=True)
def _col2im_same_channel_major(cols_ctnl, grad_cnhw, kh, kw, ph, pw):
    """The adjoint of ``_im2col_same_channel_major``: cols_ctnl (C, kh*kw, N, H*W) -> grad_cnhw
    (C, N, H, W), zeroed, summed in place. ``cols_ctnl`` is used as scratch: the entries that read
    padding are zeroed first, so each tap is then ONE long contiguous add of the shifted row.
    """
    channels, batch, height, width = grad_cnhw.shape
    size = height * width
    for plane in prange(channels * batch):
        c, n = plane // batch, plane % batch
        grad_flat = grad_cnhw[c, n].reshape(size)
        for i in range(kh):
            for j in range(kw):
                cols_row = cols_ctnl[c, i * kw + j, n]
                shift = (i - ph) * width + (j - pw)
                start, end = _overlap(shift, size)
                left, right = max(0, pw - j), min(width, width + pw - j)
                for oh in range(height):
                    row = cols_row[oh * width:(oh + 1) * width]
                    row[:left] = 0
                    row[right:] = 0
                target = grad_flat[start + shift:end + shift]
                source = cols_row[start:end]
                for k in range(target.size):
                    target[k] += source[k]


def _is_same_stride_1(x_shape, kernel_size, stride, padding, dilation, out_size):
    """Stride 1, no dilation, output as large as the input (so the padding is (k - 1) / 2 each side)."""
    return (stride == (1, 1) and dilation == (1, 1) and tuple(out_size) == tuple(x_shape[2:])
            and padding[0] * 2 == kernel_size[0] - 1 and padding[1] * 2 == kernel_size[1] - 1)


def im2col_channel_major_numba(x, kernel_size, stride, padding, dilation, out_size, out=None):
    """Numba channel-major im2col. Same contract as :func:`im2col_channel_major_numpy`."""
    n, c, h, w = x.shape
    (kh, kw), (out_h, out_w) = kernel_size, out_size
    cols = np.empty((c * kh * kw, n * out_h * out_w), dtype=x.dtype) if out is None else out
    if not cols.size:
        return cols
    cols_ctnl = cols.reshape(c, kh * kw, n, out_h * out_w)
    if _is_same_stride_1(x.shape, kernel_size, stride, padding, dilation, out_size):
        _im2col_same_channel_major(layout.channel_major(x), cols_ctnl, kh, kw, *padding)
    else:
        _im2col_channel_major(layout.channel_major(x), cols_ctnl, kh, kw, *stride, *padding, *dilation,
                              out_h, out_w)
    return cols


def col2im_channel_major_numba(cols, x_shape, kernel_size, stride, padding, dilation, out_size,
                               overwrite_cols=False):
    """Numba channel-major col2im. Same contract as :func:`col2im_channel_major_numpy`;
    ``overwrite_cols=True`` lets the stride-1 "same" path use ``cols`` as scratch (no copy)."""
    n, c, h, w = x_shape
    (kh, kw), (out_h, out_w) = kernel_size, out_size
    grad_cnhw = np.zeros((c, n, h, w), dtype=cols.dtype)
    if not (grad_cnhw.size and cols.size):
        return layout.from_channel_major(grad_cnhw)
    if _is_same_stride_1(x_shape, kernel_size, stride, padding, dilation, out_size):
        scratch = cols if overwrite_cols and cols.flags.c_contiguous else cols.copy()
        _col2im_same_channel_major(scratch.reshape(c, kh * kw, n, out_h * out_w), grad_cnhw, kh, kw, *padding)
    else:
        _col2im_channel_major(np.ascontiguousarray(cols).reshape(c, kh * kw, n, out_h * out_w),
                              grad_cnhw, kh, kw, *stride, *padding, *dilation, out_h, out_w)
    return layout.from_channel_major(grad_cnhw)


# ----------------------------------------------------------------------------------------------
# CuPy: raw CUDA kernels, compiled once per process
# ----------------------------------------------------------------------------------------------
_CUDA_TEMPLATE = r"""
// im2col: one thread per element of cols, laid out (N, C, kh, kw, out_h, out_w).
extern "C" __global__ void im2col_${scalar_t}(
    const ${scalar_t}* __restrict__ x, ${scalar_t}* __restrict__ cols, long long total,
    long long height, long long width, long long kh, long long kw,
    long long sh, long long sw, long long ph, long long pw, long long dh, long long dw,
    long long out_h, long long out_w)
{
    for (long long index = blockIdx.x * (long long)blockDim.x + threadIdx.x; index < total;
         index += (long long)blockDim.x * gridDim.x) {
        long long rest = index;
        const long long ow = rest % out_w; rest /= out_w;
        const long long oh = rest % out_h; rest /= out_h;
        const long long j = rest % kw; rest /= kw;
        const long long i = rest % kh; rest /= kh;      // rest = n*C + c, the plane
        const long long ih = oh * sh - ph + i * dh;
        const long long iw = ow * sw - pw + j * dw;
        const bool inside = ih >= 0 && ih < height && iw >= 0 && iw < width;
        cols[index] = inside ? x[(rest * height + ih) * width + iw] : (${scalar_t})0;
    }
}

// col2im: one thread per input pixel, gathering every column entry that read it (no atomics).
extern "C" __global__ void col2im_${scalar_t}(
    const ${scalar_t}* __restrict__ cols, ${scalar_t}* __restrict__ grad_x, long long total,
    long long height, long long width, long long kh, long long kw,
    long long sh, long long sw, long long ph, long long pw, long long dh, long long dw,
    long long out_h, long long out_w)
{
    for (long long index = blockIdx.x * (long long)blockDim.x + threadIdx.x; index < total;
         index += (long long)blockDim.x * gridDim.x) {
        const long long w = index % width;
        const long long h = (index / width) % height;
        const long long plane = index / (width * height);
        ${scalar_t} sum = 0;
        for (long long i = 0; i < kh; ++i) {
            const long long h_from_start = h + ph - i * dh;
            if (h_from_start < 0 || h_from_start % sh != 0) continue;
            const long long oh = h_from_start / sh;
            if (oh >= out_h) continue;
            for (long long j = 0; j < kw; ++j) {
                const long long w_from_start = w + pw - j * dw;
                if (w_from_start < 0 || w_from_start % sw != 0) continue;
                const long long ow = w_from_start / sw;
                if (ow >= out_w) continue;
                sum += cols[(((plane * kh + i) * kw + j) * out_h + oh) * out_w + ow];
            }
        }
        grad_x[index] = sum;
    }
}
"""
CUDA_SOURCE = _cuda.render(_CUDA_TEMPLATE)


def im2col_cupy(x, kernel_size, stride, padding, dilation, out_size):
    """CUDA im2col, one thread per column element. Same contract as :func:`im2col_numpy`."""
    cupy = backend.cupy_module()
    n, c, h, w = x.shape
    (kh, kw), (out_h, out_w) = kernel_size, out_size
    x = cupy.ascontiguousarray(x)
    cols = cupy.empty((n, c * kh * kw, out_h * out_w), dtype=x.dtype)
    name = "im2col_" + _cuda.type_suffix("im2col", x.dtype)
    function = _cuda.cuda_function("im2col", CUDA_SOURCE, name)
    _cuda.launch(function, cols.size, (x, cols) + _cuda.ints(
        cols.size, h, w, kh, kw, *stride, *padding, *dilation, out_h, out_w))
    return cols


def col2im_cupy(cols, x_shape, kernel_size, stride, padding, dilation, out_size):
    """CUDA col2im, one thread per input pixel. Same contract as :func:`col2im_numpy`."""
    cupy = backend.cupy_module()
    n, c, h, w = x_shape
    (kh, kw), (out_h, out_w) = kernel_size, out_size
    cols = cupy.ascontiguousarray(cols)
    grad_x = cupy.empty((n, c, h, w), dtype=cols.dtype)
    name = "col2im_" + _cuda.type_suffix("col2im", cols.dtype)
    function = _cuda.cuda_function("im2col", CUDA_SOURCE, name)
    _cuda.launch(function, grad_x.size, (cols, grad_x) + _cuda.ints(
        grad_x.size, h, w, kh, kw, *stride, *padding, *dilation, out_h, out_w))
    return grad_x


# ----------------------------------------------------------------------------------------------
# Dispatch
# ----------------------------------------------------------------------------------------------
_IM2COL = {"numpy": im2col_numpy, "numba": im2col_numba, "cupy": im2col_cupy}
_COL2IM = {"numpy": col2im_numpy, "numba": col2im_numba, "cupy": col2im_cupy}


def _window_args(op, kernel_size, stride, padding, dilation, out_size):
    return (pair(op, "kernel_size", kernel_size, 1), pair(op, "stride", stride, 1),
            pair(op, "padding", padding, 0), pair(op, "dilation", dilation, 1),
            pair(op, "out_size", out_size, 0))


def im2col(x, kernel_size, stride, padding, dilation, out_size):
    """Unfold windows of ``x`` (N, C, H, W) into ``cols`` (N, C*kh*kw, out_h*out_w).

    ``kernel_size``, ``stride``, ``padding``, ``dilation``: (along H, along W);
    ``out_size``: (out_h, out_w), computed by the caller. Runs on the kernels
    :func:`tinyinception.backend.kernels_for` picks for ``x``.
    """
    check_ndim("im2col", "x", x, 4, "(N, C, H, W)")
    check_float("im2col", "x", x)
    args = _window_args("im2col", kernel_size, stride, padding, dilation, out_size)
    return _IM2COL[backend.kernels_for(x)](x, *args)


def col2im(cols, x_shape, kernel_size, stride, padding, dilation, out_size):
    """Fold ``cols`` (N, C*kh*kw, out_h*out_w) back onto ``grad_x`` (N, C, H, W) = ``x_shape``,
    summing where windows overlap: the adjoint (and gradient) of :func:`im2col`."""
    if len(x_shape) != 4:
        raise ValueError(f"col2im: x_shape must be (N, C, H, W), got {tuple(x_shape)}")
    check_float("col2im", "cols", cols)
    args = _window_args("col2im", kernel_size, stride, padding, dilation, out_size)
    (kh, kw), (out_h, out_w) = args[0], args[4]
    n, c = x_shape[:2]
    check_shape("col2im", "cols", cols, (n, c * kh * kw, out_h * out_w))
    return _COL2IM[backend.kernels_for(cols)](cols, tuple(int(s) for s in x_shape), *args)


_IM2COL_CHANNEL_MAJOR = {"numpy": im2col_channel_major_numpy, "numba": im2col_channel_major_numba}
_COL2IM_CHANNEL_MAJOR = {"numpy": col2im_channel_major_numpy, "numba": col2im_channel_major_numba}


def im2col_channel_major(x, kernel_size, stride, padding, dilation, out_size, out=None):
    """Unfold windows of ``x`` (N, C, H, W), any layout, into ``cols`` (C*kh*kw, N*out_h*out_w):
    :func:`im2col` with the batch moved into the columns (CPU kernels only). ``out``: a C-contiguous array of
    that shape and x's dtype to write into (e.g. a reusable scratch buffer, `tinyinception.kernels.workspace`)."""
    check_ndim("im2col_channel_major", "x", x, 4, "(N, C, H, W)")
    check_float("im2col_channel_major", "x", x)
    args = _window_args("im2col_channel_major", kernel_size, stride, padding, dilation, out_size)
    if out is not None:
        (kh, kw), (out_h, out_w) = args[0], args[4]
        n, c = x.shape[:2]
        check_shape("im2col_channel_major", "out", out, (c * kh * kw, n * out_h * out_w))
        if out.dtype != x.dtype or not out.flags.c_contiguous:
            raise ValueError(f"im2col_channel_major: out must be C-contiguous {x.dtype}, got {out.dtype}")
    return _IM2COL_CHANNEL_MAJOR[backend.kernels_for(x)](x, *args, out=out)


def col2im_channel_major(cols, x_shape, kernel_size, stride, padding, dilation, out_size, overwrite_cols=False):
    """Fold ``cols`` (C*kh*kw, N*out_h*out_w) back onto ``grad_x`` (N, C, H, W) = ``x_shape``,
    laid out channel-major: the adjoint of :func:`im2col_channel_major`. ``overwrite_cols=True``: the
    caller no longer needs ``cols`` (a temporary), so the Numba kernels may use it as scratch."""
    if len(x_shape) != 4:
        raise ValueError(f"col2im_channel_major: x_shape must be (N, C, H, W), got {tuple(x_shape)}")
    check_float("col2im_channel_major", "cols", cols)
    args = _window_args("col2im_channel_major", kernel_size, stride, padding, dilation, out_size)
    (kh, kw), (out_h, out_w) = args[0], args[4]
    n, c = x_shape[:2]
    check_shape("col2im_channel_major", "cols", cols, (c * kh * kw, n * out_h * out_w))
    kernel_name = backend.kernels_for(cols)
    options = {"overwrite_cols": overwrite_cols} if kernel_name == "numba" else {}
    return _COL2IM_CHANNEL_MAJOR[kernel_name](cols, tuple(int(s) for s in x_shape), *args, **options)
