"""2-D max and average pooling, forward and backward, following PyTorch exactly.

Window ``(oh, ow)`` covers input rows ``oh*sh - ph ... oh*sh - ph + kh - 1`` (columns alike);
``out_size`` comes from the caller and may include PyTorch's extra ``ceil_mode`` window, whose
end can overhang the padded input.

* Max pooling pads with -inf (padding never wins). The first maximum in window scan order (row by
  row) wins ties; a NaN always takes over, so NaN propagates like PyTorch's CPU kernel. ``argmax``
  (int64) holds the flat index ``h*W + w`` into the unpadded input plane, like PyTorch's indices.
* Average pooling pads with zeros. PyTorch's divisor (ATen ``AvgPoolKernel.cpp``): with
  ``start = oh*sh - ph`` and ``end = min(start + kh, H + ph)``, ``pool = (end - start)`` (times the
  same along W) counts the window including padding but not the ceil-mode overhang; the window is
  then clipped to ``[0, H)``. The divisor is ``pool`` when ``count_include_pad`` else the number
  of clipped (in-bounds) pixels. A window with no in-bounds pixel outputs 0.

Shapes: ``x``/``grad_x``: (N, C, H, W); ``out``/``grad_out``/``argmax``: (N, C, out_h, out_w).
"""
import functools

import numpy as np

from .. import backend
from . import _cuda, layout
from ._checks import check_float, check_ndim, check_shape, pair
from ._geometry import inside_range
from ._numba import njit, prange, threaded_when_large

# pooling compares or adds kh*kw taps per output: two threads pay from this many input values on
_POOL_SERIAL_BELOW = 1 << 16


def _padded_extent(size, kernel, stride, pad, out):
    """Padded length that holds every window, including a ceil-mode overhang."""
    return max(size + 2 * pad, (out - 1) * stride + kernel)


def _pad_planes(x, pad_h, pad_w, padded_h, padded_w, value):
    n, c, h, w = x.shape
    x_padded = np.full((n, c, padded_h, padded_w), value, dtype=x.dtype)
    x_padded[:, :, pad_h:pad_h + h, pad_w:pad_w + w] = x
    return x_padded


def _window_slice(offset, stride, out):
    return slice(offset, offset + stride * (out - 1) + 1, stride)


# ----------------------------------------------------------------------------------------------
# NumPy reference: loop over the kh*kw window offsets, whole-array work inside
# ----------------------------------------------------------------------------------------------
def max_pool2d_forward_numpy(x, kernel_size, stride, padding, out_size):
    """NumPy reference. ``x``: (N, C, H, W) -> (out, argmax), both (N, C, out_h, out_w)."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw), (out_h, out_w) = kernel_size, stride, padding, out_size
    x_padded = _pad_planes(x, ph, pw, _padded_extent(h, kh, sh, ph, out_h),
                           _padded_extent(w, kw, sw, pw, out_w), -np.inf)
    row_starts = np.arange(out_h)[:, None] * sh - ph
    col_starts = np.arange(out_w)[None, :] * sw - pw
    out = np.full((n, c, out_h, out_w), -np.inf, dtype=x.dtype)
    # before any value wins, PyTorch points at the window's first in-bounds pixel
    first_inside = np.maximum(row_starts, 0) * w + np.maximum(col_starts, 0)
    argmax = np.empty((n, c, out_h, out_w), dtype=np.int64)
    argmax[...] = first_inside
    for i in range(kh):
        for j in range(kw):
            values = x_padded[:, :, _window_slice(i, sh, out_h), _window_slice(j, sw, out_w)]
            wins = (values > out) | np.isnan(values)
            np.copyto(out, values, where=wins)
            np.copyto(argmax, (row_starts + i) * w + (col_starts + j), where=wins)
    return out, argmax


def max_pool2d_backward_numpy(grad_out, argmax, x_shape):
    """NumPy reference. Adds ``grad_out`` (N, C, out_h, out_w) onto ``argmax``'s pixels."""
    n, c, h, w = x_shape
    grad_planes = np.zeros((n * c, h * w), dtype=grad_out.dtype)
    plane_index = np.arange(n * c)[:, None]
    np.add.at(grad_planes, (plane_index, argmax.reshape(n * c, -1)), grad_out.reshape(n * c, -1))
    return grad_planes.reshape(n, c, h, w)


def _avg_pool_divisors(size, kernel, stride, pad, out, count_include_pad):
    """Per-axis divisor factor for every output index along one axis (PyTorch's rule)."""
    starts = np.arange(out) * stride - pad
    ends = np.minimum(starts + kernel, size + pad)
    if count_include_pad:
        return ends - starts
    return np.maximum(np.minimum(ends, size) - np.maximum(starts, 0), 0)


def _avg_pool_axis_divisors(x_shape, kernel_size, stride, padding, out_size, count_include_pad,
                            dtype):
    """(divisor_h (out_h,), divisor_w (out_w,)): the divisor of window (oh, ow) is their product.
    An axis with nothing inside gets 1 (that window's sum is 0 anyway)."""
    divisors = []
    for axis in range(2):
        divisor = _avg_pool_divisors(x_shape[2 + axis], kernel_size[axis], stride[axis],
                                     padding[axis], out_size[axis], count_include_pad)
        divisors.append(np.where(divisor > 0, divisor, 1).astype(dtype))
    return tuple(divisors)


def _avg_pool_divisor_table(x_shape, kernel_size, stride, padding, out_size, count_include_pad,
                            dtype):
    """(out_h, out_w) divisors, the outer product of the per-axis ones."""
    divisor_h, divisor_w = _avg_pool_axis_divisors(x_shape, kernel_size, stride, padding, out_size,
                                                    count_include_pad, dtype)
    return np.outer(divisor_h, divisor_w)


def avg_pool2d_forward_numpy(x, kernel_size, stride, padding, out_size, count_include_pad):
    """NumPy reference. ``x``: (N, C, H, W) -> out (N, C, out_h, out_w)."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw), (out_h, out_w) = kernel_size, stride, padding, out_size
    x_padded = _pad_planes(x, ph, pw, _padded_extent(h, kh, sh, ph, out_h),
                           _padded_extent(w, kw, sw, pw, out_w), 0)
    sums = np.zeros((n, c, out_h, out_w), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            sums += x_padded[:, :, _window_slice(i, sh, out_h), _window_slice(j, sw, out_w)]
    divisor = _avg_pool_divisor_table(x.shape, kernel_size, stride, padding, out_size,
                                      count_include_pad, x.dtype)
    return sums / divisor


def avg_pool2d_backward_numpy(grad_out, x_shape, kernel_size, stride, padding, out_size,
                              count_include_pad):
    """NumPy reference. ``grad_out``: (N, C, out_h, out_w) -> grad_x (N, C, H, W)."""
    n, c, h, w = x_shape
    (kh, kw), (sh, sw), (ph, pw), (out_h, out_w) = kernel_size, stride, padding, out_size
    divisor = _avg_pool_divisor_table(x_shape, kernel_size, stride, padding, out_size,
                                      count_include_pad, grad_out.dtype)
    grad_share = grad_out / divisor
    grad_padded = np.zeros((n, c, _padded_extent(h, kh, sh, ph, out_h),
                            _padded_extent(w, kw, sw, pw, out_w)), dtype=grad_out.dtype)
    for i in range(kh):
        for j in range(kw):
            grad_padded[:, :, _window_slice(i, sh, out_h), _window_slice(j, sw, out_w)] += grad_share
    return np.ascontiguousarray(grad_padded[:, :, ph:ph + h, pw:pw + w])


# ----------------------------------------------------------------------------------------------
# Numba: prange over the N*C planes, each plane owned by one thread
# ----------------------------------------------------------------------------------------------
@njit(cache=True)
def _clipped_window(o, stride, pad, kernel, size):
    """(first, end): the in-bounds rows (or columns) [first, end) of window ``o`` along one axis."""
    start = o * stride - pad
    return max(start, 0), min(start + kernel, size)


@threaded_when_large(serial_below=_POOL_SERIAL_BELOW)
@njit(parallel=True, cache=True)
def _max_pool_planes(x_planes, out_planes, argmax_planes, kh, kw, sh, sw, ph, pw):
    """x_planes: (P, H, W) -> out_planes, argmax_planes: (P, out_h, out_w), filled in place; any kernel, stride and
    padding. PyTorch's rule: per window, start at -inf and take each tap (row by row) that is greater, or NaN.

    Fast because each output row is built tap by tap over all of its windows at once, in loops that LLVM turns
    into vector selects:

    1. each input row a window reads is first split into its ``sw`` column phases (for stride 2: the even and the
       odd columns), so tap j of consecutive windows sits in consecutive elements of one phase;
    2. per tap (i, j), in scan order: ``take = v > best or v is NaN``, then ``best = v if take else best`` and
       ``tap_of_best = i*W + j if take else tap_of_best``. Both old values are loaded before the select, and the
       tap is an int32 beside the float32 compare: a strided load, a load in only one arm of the select, or an
       int64 select each left this loop as a chain of branches, 4-5x slower;
    3. argmax = the window's first pixel + tap_of_best. A window where no tap was taken (all -inf) gets its first
       in-bounds pixel, as in PyTorch.
    """
    planes, height, width = x_planes.shape
    out_h, out_w = out_planes.shape[1], out_planes.shape[2]
    phase_w = (width + sw - 1) // sw
    for plane in prange(planes):
        phases = np.empty((sw, phase_w), dtype=x_planes.dtype)
        best = np.empty(out_w, dtype=x_planes.dtype)
        tap_of_best = np.empty(out_w, dtype=np.int32)
        for oh in range(out_h):
            best[:] = -np.inf
            tap_of_best[:] = -1
            top = oh * sh - ph
            for i in range(kh):
                ih = top + i
                if ih < 0 or ih >= height:
                    continue
                for phase in range(sw):  # 1. the row's column phases
                    for c in range((width - phase + sw - 1) // sw):
                        phases[phase, c] = x_planes[plane, ih, c * sw + phase]
                for j in range(kw):  # 2. tap (i, j) of every window whose tap is inside the row
                    ow_lo, ow_hi = inside_range(pw - j, sw, width, out_w)
                    first = ow_lo * sw + j - pw
                    taps = phases[first % sw, first // sw:first // sw + ow_hi - ow_lo]
                    row_best = best[ow_lo:ow_hi]
                    row_tap = tap_of_best[ow_lo:ow_hi]
                    tap = np.int32(i * width + j)
                    for t in range(taps.size):
                        value, old_best, old_tap = taps[t], row_best[t], row_tap[t]
                        take = value > old_best or value != value
                        row_best[t] = value if take else old_best
                        row_tap[t] = tap if take else old_tap
            window_start = top * width - pw
            for ow in range(out_w):  # 3. the flat index of each maximum
                out_planes[plane, oh, ow] = best[ow]
                argmax_planes[plane, oh, ow] = window_start + ow * sw + tap_of_best[ow]
                if tap_of_best[ow] < 0:
                    h_first, _ = _clipped_window(oh, sh, ph, kh, height)
                    w_first, _ = _clipped_window(ow, sw, pw, kw, width)
                    argmax_planes[plane, oh, ow] = h_first * width + w_first


# planes pooled side by side: one vector lane each
_SIDE_BY_SIDE_LANES = 64


@threaded_when_large(serial_below=_POOL_SERIAL_BELOW)
@njit(parallel=True, cache=True)
def _max_pool_planes_side_by_side(x_planes, out_planes, argmax_planes, kh, kw, sh, sw, ph, pw, keep_argmax):
    """x_planes: (P, H, W) -> out_planes, argmax_planes: (P, out_h, out_w), filled in place; any kernel, stride and
    padding, for small planes (see ``_SIDE_BY_SIDE_MAX_PIXELS``). Same rule as ``_max_pool_planes``. Without
    ``keep_argmax`` (inference) only the maxima are found and argmax_planes is not touched.

    Fast because the vector runs across planes, not along a row: a thread copies 64 planes into one
    (H, W, 64) block, pixel by pixel side by side, so every tap of a window is 64 contiguous values. Each window then
    takes its taps in scan order with the same branch-free selects as the row kernel (``take = v > best or v is
    NaN``; the tap's flat index as an int32) over 64 planes at once, however small the window's row. The block
    stays in the cache; the results are copied back to (P, out_h, out_w) at the end. (On 4x4 to 16x16 outputs the
    plain scan per window took 2-5x as long.)
    """
    planes, height, width = x_planes.shape
    out_h, out_w = out_planes.shape[1], out_planes.shape[2]
    lanes = _SIDE_BY_SIDE_LANES
    for block in prange((planes + lanes - 1) // lanes):
        first_plane = block * lanes
        count = min(lanes, planes - first_plane)
        x_block = np.zeros((height, width, lanes), dtype=x_planes.dtype)
        best = np.empty((out_h, out_w, lanes), dtype=x_planes.dtype)
        index_of_best = np.empty((out_h, out_w, lanes), dtype=np.int32)
        for lane in range(count):  # the planes side by side
            for ih in range(height):
                for iw in range(width):
                    x_block[ih, iw, lane] = x_planes[first_plane + lane, ih, iw]
        for oh in range(out_h):
            h_first, h_end = _clipped_window(oh, sh, ph, kh, height)
            for ow in range(out_w):
                w_first, w_end = _clipped_window(ow, sw, pw, kw, width)
                window_best, window_index = best[oh, ow], index_of_best[oh, ow]
                window_best[:] = -np.inf
                window_index[:] = h_first * width + w_first  # kept by a window of -inf only, as in PyTorch
                for ih in range(h_first, h_end):
                    for iw in range(w_first, w_end):
                        taps = x_block[ih, iw]
                        index = np.int32(ih * width + iw)
                        if keep_argmax:
                            for lane in range(lanes):
                                value, old_best, old_index = taps[lane], window_best[lane], window_index[lane]
                                take = value > old_best or value != value
                                window_best[lane] = value if take else old_best
                                window_index[lane] = index if take else old_index
                        else:
                            for lane in range(lanes):
                                value, old_best = taps[lane], window_best[lane]
                                window_best[lane] = value if (value > old_best or value != value) else old_best
        for lane in range(count):  # back to one plane after another
            for oh in range(out_h):
                for ow in range(out_w):
                    out_planes[first_plane + lane, oh, ow] = best[oh, ow, lane]
                    if keep_argmax:
                        argmax_planes[first_plane + lane, oh, ow] = index_of_best[oh, ow, lane]


@threaded_when_large(serial_below=_POOL_SERIAL_BELOW)
@njit(parallel=True, cache=True)
def _max_pool_maxima_separable(x_planes, out_planes, kh, kw, sh, sw, ph, pw):
    """x_planes: (P, H, W) -> out_planes: (P, out_h, out_w), the maxima alone (inference: no argmax), any kernel,
    stride and padding.

    Fast because: a window's maximum is the maximum of its columns' maxima, so each output row takes two short
    passes instead of kh*kw strided ones: (1) down the window's clipped input rows, ``column_max = v if v >
    column_max or v is NaN``, contiguous and vectorised, over the whole input width; (2) along the output row, the
    same select over the kw taps of ``column_max`` (stride sw). One thread per plane. A NaN anywhere in a window
    stays to the end, as in PyTorch; the values equal the full kernels' (only the sign of a zero maximum may
    differ where +0 and -0 tie, since the scan order is column by column here).
    """
    planes, height, width = x_planes.shape
    out_h, out_w = out_planes.shape[1], out_planes.shape[2]
    for plane in prange(planes):
        x_plane = x_planes[plane]
        column_max = np.empty(width, dtype=x_planes.dtype)
        for oh in range(out_h):
            out_row = out_planes[plane, oh]
            h_first, h_end = _clipped_window(oh, sh, ph, kh, height)
            column_max[:] = -np.inf
            for ih in range(h_first, h_end):  # pass 1: down the window's rows
                x_row = x_plane[ih]
                for t in range(width):
                    value = x_row[t]
                    column_max[t] = value if (value > column_max[t] or value != value) else column_max[t]
            out_row[:] = -np.inf
            for j in range(kw):  # pass 2: along the output row, tap j of every window
                ow_lo, ow_hi = inside_range(pw - j, sw, width, out_w)
                first = ow_lo * sw + j - pw
                best = out_row[ow_lo:ow_hi]
                for t in range(best.size):
                    value = column_max[first + t * sw]
                    best[t] = value if (value > best[t] or value != value) else best[t]


# a block of same-size planes is processed as one flat run of about this many pixels
_FLAT_BLOCK_PIXELS = 2048


@functools.lru_cache(maxsize=64)
def _same_size_taps(height, width, kh, kw, ph, pw, block_planes):
    """Tap tables for a stride-1 pool whose output plane has the input's size (H, W).

    Returns ``(shifts, inside, first_shift)``: tap ``k = i*kw + j`` of output pixel ``q`` reads
    input pixel ``q + shifts[k]`` (flat in the plane); ``inside`` (K, block_planes*H*W) bool says
    whether that tap lies inside the plane, tiled over a block of planes; ``first_shift``
    (block_planes*H*W,) int32 is the shift of each window's first in-bounds tap (the argmax
    before any value wins, as in PyTorch).
    """
    rows = np.arange(height)[:, None]
    cols = np.arange(width)[None, :]
    shifts = np.empty(kh * kw, dtype=np.int64)
    inside = np.empty((kh * kw, height, width), dtype=np.bool_)
    for i in range(kh):
        for j in range(kw):
            shifts[i * kw + j] = (i - ph) * width + (j - pw)
            inside[i * kw + j] = ((0 <= rows + i - ph) & (rows + i - ph < height)
                                  & (0 <= cols + j - pw) & (cols + j - pw < width))
    first_tap = np.argmax(inside.reshape(kh * kw, -1), axis=0)  # every window has one
    first_shift = shifts[first_tap].astype(np.int32)
    return (shifts, np.tile(inside.reshape(kh * kw, -1), (1, block_planes)),
            np.tile(first_shift, block_planes))


@njit(cache=True)
def _block_tap_range(block_start, count, shift, total):
    """[lo, hi): the pixels q of a block of ``count`` flat pixels starting at ``block_start`` whose tap, pixel
    ``block_start + q + shift``, lies inside the ``total`` flattened pixels (the same-size kernels' read range)."""
    return max(0, -(block_start + shift)), min(count, total - block_start - shift)


@njit(cache=True)
def _block_own_range(count, shift):
    """[lo, hi): the pixels q of a block of ``count`` flat pixels whose tap ``q + shift`` lies inside the SAME
    block. The backward kernel writes only there: the taps that cross into the next block are outside their
    plane anyway (blocks hold whole planes), and even adding 0 to them would race with that block's thread."""
    lo = max(0, -shift)
    return lo, max(lo, min(count, count - shift))


@threaded_when_large(serial_below=_POOL_SERIAL_BELOW)
@njit(parallel=True, cache=True)
def _max_pool_same_size(x_flat, out_flat, argmax_flat, plane_pixels, shifts, inside,
                        first_shift, keep_argmax):
    """Stride-1 max pooling whose output plane has the input's size, e.g. Inception's 3x3,
    padding-1 branch pool. x_flat, out_flat, argmax_flat: the (P, H, W) planes flattened.

    Fast because: for stride 1 and an output the size of the input, tap ``k`` of EVERY output
    pixel is the input pixel a fixed distance ``shifts[k]`` away in the flat plane, so a whole
    block of planes (``inside.shape[1]`` pixels, one thread each) is one long contiguous run per
    tap: a branch-free select ``take = inside and (v > best or v is NaN)`` that LLVM vectorises.
    Taps in scan order with a strict ``>`` keep the first maximum (a NaN always takes over, so
    the last NaN wins, like PyTorch); the winner is kept as a shift (int32, vector friendly) and
    turned into the flat index ``q + shift`` at the end. Without ``keep_argmax`` (inference) only the maxima are
    computed and ``argmax_flat`` is not touched.
    """
    total = out_flat.size
    block = inside.shape[1]
    for start in prange((total + block - 1) // block):
        q0 = start * block
        count = min(block, total - q0)
        best = out_flat[q0:q0 + count]
        winner = first_shift[:count].copy()
        best[:] = -np.inf
        for k in range(shifts.size):
            shift = shifts[k]
            ok = inside[k]
            lo, hi = _block_tap_range(q0, count, shift, total)  # never outside x (those taps are outside anyway)
            taps = x_flat[q0 + lo + shift:q0 + hi + shift]
            if keep_argmax:
                for t in range(hi - lo):
                    q = lo + t
                    value = taps[t]
                    take = ok[q] and (value > best[q] or value != value)
                    best[q] = value if take else best[q]
                    winner[q] = shift if take else winner[q]
            else:
                for t in range(hi - lo):
                    q = lo + t
                    value = taps[t]
                    take = ok[q] and (value > best[q] or value != value)
                    best[q] = value if take else best[q]
        if keep_argmax:
            for q in range(count):
                argmax_flat[q0 + q] = (q0 + q) % plane_pixels + winner[q]


@threaded_when_large(serial_below=_POOL_SERIAL_BELOW)
@njit(parallel=True, cache=True)
def _avg_pool_same_size(x_flat, out_flat, shifts, inside, divisor):
    """Stride-1 average pooling whose output plane has the input's size (Inception's 3x3, padding-1
    branch pool), on the flattened (P, H, W) planes; ``divisor`` (block,) is PyTorch's divisor of
    each pixel's window, tiled over a block of planes like ``inside``.

    Fast because: as in ``_max_pool_same_size``, tap ``k`` of every output pixel is the input pixel
    ``shifts[k]`` away in the flat plane, so a block of planes is one contiguous, vectorised pass per
    tap (a select keeps taps outside the plane out of the sum, so a NaN or inf there cannot leak in).
    """
    total = out_flat.size
    block = inside.shape[1]
    for start in prange((total + block - 1) // block):
        q0 = start * block
        count = min(block, total - q0)
        sums = out_flat[q0:q0 + count]
        sums[:] = 0
        for k in range(shifts.size):
            shift = shifts[k]
            ok = inside[k]
            lo, hi = _block_tap_range(q0, count, shift, total)
            taps = x_flat[q0 + lo + shift:q0 + hi + shift]
            for t in range(hi - lo):
                q = lo + t
                sums[q] += taps[t] if ok[q] else 0
        for q in range(count):
            sums[q] = sums[q] / divisor[q]


@threaded_when_large(serial_below=_POOL_SERIAL_BELOW)
@njit(parallel=True, cache=True)
def _avg_pool_same_size_backward(grad_out_flat, grad_flat, shifts, inside, divisor):
    """The adjoint of ``_avg_pool_same_size``: each window's share ``grad_out / divisor`` is added to
    its in-plane taps, one contiguous pass per tap. ``grad_flat`` is zeroed by the caller. Blocks hold
    whole planes and taps stay in their plane, and each block writes only inside itself
    (`_block_own_range`), so no two threads write the same pixel."""
    total = grad_out_flat.size
    block = inside.shape[1]
    for start in prange((total + block - 1) // block):
        q0 = start * block
        count = min(block, total - q0)
        share = grad_out_flat[q0:q0 + count] / divisor[:count]
        for k in range(shifts.size):
            shift = shifts[k]
            ok = inside[k]
            lo, hi = _block_own_range(count, shift)
            grad_taps = grad_flat[q0 + lo + shift:q0 + hi + shift]
            for t in range(hi - lo):
                q = lo + t
                grad_taps[t] += share[q] if ok[q] else 0


@functools.lru_cache(maxsize=64)
def _same_size_avg_tables(height, width, kernel_size, padding, count_include_pad, dtype):
    """(shifts, inside, divisor) for ``_avg_pool_same_size`` over blocks of planes of (height, width)."""
    block_planes = max(1, _FLAT_BLOCK_PIXELS // (height * width))
    shifts, inside, _ = _same_size_taps(height, width, *kernel_size, *padding, block_planes)
    divisor = _avg_pool_divisor_table((1, 1, height, width), kernel_size, (1, 1), padding, (height, width),
                                      count_include_pad, np.dtype(dtype))
    return shifts, inside, np.tile(divisor.reshape(-1), block_planes)


def _same_size_pays(x_shape, kernel_size, stride, out_size):
    """The flat same-size kernel applies to stride-1 pools whose output plane is the input's."""
    return stride == (1, 1) and tuple(out_size) == tuple(x_shape[2:])


# the average-pool row kernels pay off from stride-1 output rows this wide (measured: 28x28 maps 2.6x
# faster, 8x8 and stride-2 maps 1.2-2x slower than the plain scan)
_ROW_KERNEL_MIN_WIDTH = 16
# max pooling with its argmax: planes of up to this many pixels are pooled side by side (on 8x8 to 35x35 inputs
# 0.2-0.5 of the row kernel's time; on 56x56 even, on 112x112 and 147x147 1.6-1.7x, the block out of the cache)
_SIDE_BY_SIDE_MAX_PIXELS = 2048
# the maxima alone (inference): planes of up to this many pixels side by side (on 8x8 to 17x17 inputs 0.5-0.7 of
# the separable kernel's time; even on 28x28 and 32x32, 1.2x on 28x28 at batch 16), larger ones separable
_SIDE_BY_SIDE_MAX_PIXELS_MAXIMA = 512


@threaded_when_large(serial_below=_POOL_SERIAL_BELOW)
@njit(parallel=True, cache=True)
def _max_pool_backward_planes(grad_out_planes, argmax_planes, grad_planes):
    """grad_out_planes, argmax_planes: (P, out_h*out_w) -> grad_planes: (P, H*W), zeroed.

    Fast because: argmax only points inside its own plane, so one thread per plane scatters
    without atomics, reading grad_out and argmax contiguously.
    """
    planes, outputs = grad_out_planes.shape
    for plane in prange(planes):
        for k in range(outputs):
            grad_planes[plane, argmax_planes[plane, k]] += grad_out_planes[plane, k]


@threaded_when_large(serial_below=_POOL_SERIAL_BELOW)
@njit(parallel=True, cache=True)
def _avg_pool_planes(x_planes, out_planes, kh, kw, sh, sw, ph, pw, divisor_h, divisor_w):
    """x_planes: (P, H, W) -> out_planes: (P, out_h, out_w), filled in place.

    ``divisor_h[oh] * divisor_w[ow]`` is PyTorch's divisor (it factorises per axis). Fast
    because: one thread per plane; for each output row the window taps are summed in long
    contiguous passes along the row (in-bounds ``ow`` range computed once per tap; vectorised
    when the stride is 1), no padded copy; the division happens once per output at the end.
    """
    planes, height, width = x_planes.shape
    out_h, out_w = out_planes.shape[1], out_planes.shape[2]
    for plane in prange(planes):
        x_plane = x_planes[plane]
        for oh in range(out_h):
            out_row = out_planes[plane, oh]
            out_row[:] = 0
            h_first, h_end = _clipped_window(oh, sh, ph, kh, height)
            for ih in range(h_first, h_end):
                x_row = x_plane[ih]
                for j in range(kw):
                    w_offset = j - pw
                    ow_lo, ow_hi = inside_range(-w_offset, sw, width, out_w)
                    if sw == 1:  # contiguous: the loop vectorises
                        for ow in range(ow_lo, ow_hi):
                            out_row[ow] += x_row[ow + w_offset]
                    else:
                        for ow in range(ow_lo, ow_hi):
                            out_row[ow] += x_row[ow * sw + w_offset]
            row_divisor = divisor_h[oh]
            for ow in range(out_w):
                out_row[ow] = out_row[ow] / (row_divisor * divisor_w[ow])


@threaded_when_large(serial_below=_POOL_SERIAL_BELOW)
@njit(parallel=True, cache=True)
def _avg_pool_backward_planes(grad_out_planes, grad_planes, kh, kw, sh, sw, ph, pw, divisor_h,
                              divisor_w):
    """grad_out_planes: (P, out_h, out_w) -> grad_planes: (P, H, W), zeroed, summed in place.

    Fast because: one thread per plane, so overlapping windows add without atomics; each output
    row's share ``grad_out / divisor`` is spread tap by tap in contiguous passes along the row,
    with no padded buffer and no bounds tests in the inner loop.
    """
    planes, height, width = grad_planes.shape
    out_h, out_w = grad_out_planes.shape[1], grad_out_planes.shape[2]
    for plane in prange(planes):
        grad_plane = grad_planes[plane]
        share = np.empty(out_w, dtype=grad_planes.dtype)  # one small buffer per plane
        for oh in range(out_h):
            grad_out_row = grad_out_planes[plane, oh]
            for ow in range(out_w):  # this row's share of each window's gradient
                share[ow] = grad_out_row[ow] / (divisor_h[oh] * divisor_w[ow])
            h_first, h_end = _clipped_window(oh, sh, ph, kh, height)
            for ih in range(h_first, h_end):
                grad_row = grad_plane[ih]
                for j in range(kw):
                    w_offset = j - pw
                    ow_lo, ow_hi = inside_range(-w_offset, sw, width, out_w)
                    if sw == 1:  # contiguous: the loop vectorises
                        for ow in range(ow_lo, ow_hi):
                            grad_row[ow + w_offset] += share[ow]
                    else:
                        for ow in range(ow_lo, ow_hi):
                            grad_row[ow * sw + w_offset] += share[ow]


@threaded_when_large(serial_below=_POOL_SERIAL_BELOW)
@njit(parallel=True, cache=True)
def _avg_pool_planes_scalar(x_planes, out_planes, kh, kw, sh, sw, ph, pw, divisor_h, divisor_w):
    """The plain window sum, for small output rows (under ``_ROW_KERNEL_MIN_WIDTH``): same contract
    as ``_avg_pool_planes``; one thread per plane, each window clipped once and summed in registers."""
    planes, height, width = x_planes.shape
    out_h, out_w = out_planes.shape[1], out_planes.shape[2]
    for plane in prange(planes):
        x_plane = x_planes[plane]
        for oh in range(out_h):
            h_first, h_end = _clipped_window(oh, sh, ph, kh, height)
            for ow in range(out_w):
                w_first, w_end = _clipped_window(ow, sw, pw, kw, width)
                total = 0.0  # float64 accumulator; stored in the output dtype
                for ih in range(h_first, h_end):
                    for iw in range(w_first, w_end):
                        total += x_plane[ih, iw]
                out_planes[plane, oh, ow] = total / (divisor_h[oh] * divisor_w[ow])


@threaded_when_large(serial_below=_POOL_SERIAL_BELOW)
@njit(parallel=True, cache=True)
def _avg_pool_backward_planes_scalar(grad_out_planes, grad_planes, kh, kw, sh, sw, ph, pw, divisor_h,
                                     divisor_w):
    """The plain scatter of each window's share, for small output rows: same contract as
    ``_avg_pool_backward_planes`` (grad_planes zeroed by the caller); one thread per plane."""
    planes, height, width = grad_planes.shape
    out_h, out_w = grad_out_planes.shape[1], grad_out_planes.shape[2]
    for plane in prange(planes):
        grad_plane = grad_planes[plane]
        for oh in range(out_h):
            h_first, h_end = _clipped_window(oh, sh, ph, kh, height)
            for ow in range(out_w):
                w_first, w_end = _clipped_window(ow, sw, pw, kw, width)
                share = grad_out_planes[plane, oh, ow] / (divisor_h[oh] * divisor_w[ow])
                for ih in range(h_first, h_end):
                    for iw in range(w_first, w_end):
                        grad_plane[ih, iw] += share


def _row_kernel_pays(stride, out_size):
    """The row kernels (long vectorised passes along each output row) beat the plain scans only on
    wide stride-1 rows; on small maps they spend their time setting up slices."""
    return stride[1] == 1 and out_size[1] >= _ROW_KERNEL_MIN_WIDTH


def _input_planes(x):
    """x (N, C, H, W) as contiguous (P, H, W) planes in its own layout (channel-major kept)."""
    if not (layout.is_channel_major(x) or x.flags.c_contiguous):
        x = np.ascontiguousarray(x)
    return x, layout.planes(x)


def _max_pool_same_size_flat(x_planes, out, argmax, kernel_size, padding):
    """Runs ``_max_pool_same_size`` on x_planes (P, H, W) into out/argmax (same layout; argmax None: maxima only)."""
    planes, height, width = x_planes.shape
    block_planes = max(1, _FLAT_BLOCK_PIXELS // (height * width))
    shifts, inside, first_shift = _same_size_taps(height, width, *kernel_size, *padding,
                                                  block_planes)
    argmax_flat = _NO_ARGMAX.reshape(-1) if argmax is None else layout.planes(argmax).reshape(-1)
    _max_pool_same_size(x_planes.reshape(-1), layout.planes(out).reshape(-1), argmax_flat, height * width, shifts,
                        inside, first_shift, argmax is not None)


_NO_ARGMAX = np.zeros((1, 1, 1), dtype=np.int64)  # what the kernels get for argmax when it is not kept


def max_pool2d_forward_numba(x, kernel_size, stride, padding, out_size, keep_argmax=True):
    """Numba max pooling (parallel over planes); out and argmax keep x's memory layout.
    Same contract as the NumPy reference. With ``keep_argmax`` (training): the same-size kernel for stride-1 pools
    that keep the plane's size, small planes side by side, larger ones row by row. Without it (inference) argmax is
    None and only the maxima are computed: by the same-size kernel, small planes side by side, larger ones by the
    separable kernel (column maxima, then along the row)."""
    n, c, h, w = x.shape
    out_h, out_w = out_size
    x, x_planes = _input_planes(x)
    out = layout.empty_like_layout(x, (n, c, out_h, out_w))
    argmax = layout.empty_like_layout(x, (n, c, out_h, out_w), dtype=np.int64) if keep_argmax else None
    if not out.size:
        return out, argmax
    if _same_size_pays(x.shape, kernel_size, stride, out_size):
        _max_pool_same_size_flat(x_planes, out, argmax, kernel_size, padding)
        return out, argmax
    if h * w <= (_SIDE_BY_SIDE_MAX_PIXELS if keep_argmax else _SIDE_BY_SIDE_MAX_PIXELS_MAXIMA):
        argmax_planes = layout.planes(argmax) if keep_argmax else _NO_ARGMAX
        _max_pool_planes_side_by_side(x_planes, layout.planes(out), argmax_planes, *kernel_size, *stride, *padding,
                                      keep_argmax)
    elif not keep_argmax:
        _max_pool_maxima_separable(x_planes, layout.planes(out), *kernel_size, *stride, *padding)
    else:
        _max_pool_planes(x_planes, layout.planes(out), layout.planes(argmax), *kernel_size, *stride, *padding)
    return out, argmax


def max_pool2d_backward_numba(grad_out, argmax, x_shape):
    """Numba max-pool backward (one thread per plane, no atomics); grad_x in argmax's layout."""
    n, c, h, w = x_shape
    out_h, out_w = argmax.shape[2:]
    grad_x = layout.empty_like_layout(argmax, x_shape, dtype=grad_out.dtype)
    grad_x[...] = 0
    if grad_out.size:
        grad_out = layout.as_layout_of(grad_out, argmax)
        _max_pool_backward_planes(layout.planes(grad_out).reshape(-1, out_h * out_w),
                                  layout.planes(argmax).reshape(-1, out_h * out_w),
                                  layout.planes(grad_x).reshape(-1, h * w))
    return grad_x


def avg_pool2d_forward_numba(x, kernel_size, stride, padding, out_size, count_include_pad):
    """Numba average pooling (parallel over planes); out keeps x's memory layout.
    Same contract as the NumPy reference."""
    n, c, h, w = x.shape
    out_h, out_w = out_size
    x, x_planes = _input_planes(x)
    out = layout.empty_like_layout(x, (n, c, out_h, out_w))
    if out.size and _same_size_pays(x.shape, kernel_size, stride, out_size):
        tables = _same_size_avg_tables(h, w, tuple(kernel_size), tuple(padding), bool(count_include_pad), x.dtype)
        _avg_pool_same_size(x_planes.reshape(-1), layout.planes(out).reshape(-1), *tables)
    elif out.size:
        kernel = _avg_pool_planes if _row_kernel_pays(stride, out_size) else _avg_pool_planes_scalar
        kernel(x_planes, layout.planes(out), *kernel_size, *stride, *padding,
                         *_avg_pool_axis_divisors(x.shape, kernel_size, stride, padding, out_size,
                                                  count_include_pad, x.dtype))
    return out


def avg_pool2d_backward_numba(grad_out, x_shape, kernel_size, stride, padding, out_size,
                              count_include_pad):
    """Numba average-pool backward (one thread per plane, no atomics); grad_x in grad_out's
    layout."""
    grad_out, grad_planes_out = _input_planes(grad_out)
    grad_x = layout.empty_like_layout(grad_out, x_shape)
    grad_x[...] = 0
    if grad_out.size and _same_size_pays(x_shape, kernel_size, stride, out_size):
        tables = _same_size_avg_tables(*x_shape[2:], tuple(kernel_size), tuple(padding), bool(count_include_pad),
                                       grad_out.dtype)
        _avg_pool_same_size_backward(grad_planes_out.reshape(-1), layout.planes(grad_x).reshape(-1), *tables)
    elif grad_out.size and grad_x.size:
        wide_rows = _row_kernel_pays(stride, out_size)
        kernel = _avg_pool_backward_planes if wide_rows else _avg_pool_backward_planes_scalar
        kernel(
            grad_planes_out, layout.planes(grad_x), *kernel_size, *stride, *padding,
            *_avg_pool_axis_divisors(x_shape, kernel_size, stride, padding, out_size,
                                     count_include_pad, grad_out.dtype))
    return grad_x


# ----------------------------------------------------------------------------------------------
# CuPy: raw CUDA kernels, compiled once per process
# ----------------------------------------------------------------------------------------------
_CUDA_TEMPLATE = r"""
// Max pooling: one thread per output element; -inf start, first maximum wins, NaN takes over.
extern "C" __global__ void max_pool2d_forward_${scalar_t}(
    const ${scalar_t}* __restrict__ x, ${scalar_t}* __restrict__ out,
    long long* __restrict__ argmax, long long total, long long height, long long width,
    long long kh, long long kw, long long sh, long long sw, long long ph, long long pw,
    long long out_h, long long out_w)
{
    for (long long index = blockIdx.x * (long long)blockDim.x + threadIdx.x; index < total;
         index += (long long)blockDim.x * gridDim.x) {
        const long long ow = index % out_w;
        const long long oh = (index / out_w) % out_h;
        const long long plane = index / (out_w * out_h);
        const long long h_start = oh * sh - ph, w_start = ow * sw - pw;
        const long long h_first = max(h_start, 0LL), h_end = min(h_start + kh, height);
        const long long w_first = max(w_start, 0LL), w_end = min(w_start + kw, width);
        const ${scalar_t}* x_plane = x + plane * height * width;
        ${scalar_t} best = ${NEG_INF};
        long long best_index = h_first * width + w_first;
        for (long long ih = h_first; ih < h_end; ++ih) {
            for (long long iw = w_first; iw < w_end; ++iw) {
                const ${scalar_t} value = x_plane[ih * width + iw];
                if (value > best || isnan(value)) {
                    best = value;
                    best_index = ih * width + iw;
                }
            }
        }
        out[index] = best;
        argmax[index] = best_index;
    }
}

// Max-pool backward: one thread per output element, atomic add onto its argmax pixel
// (the window geometry is not passed, so the threads scatter instead of gathering).
extern "C" __global__ void max_pool2d_backward_${scalar_t}(
    const ${scalar_t}* __restrict__ grad_out, const long long* __restrict__ argmax,
    ${scalar_t}* __restrict__ grad_x, long long total, long long outputs_per_plane,
    long long pixels_per_plane)
{
    for (long long index = blockIdx.x * (long long)blockDim.x + threadIdx.x; index < total;
         index += (long long)blockDim.x * gridDim.x) {
        const long long plane = index / outputs_per_plane;
        atomicAdd(grad_x + plane * pixels_per_plane + argmax[index], grad_out[index]);
    }
}

// Average pooling: one thread per output element, PyTorch's divisor rule.
extern "C" __global__ void avg_pool2d_forward_${scalar_t}(
    const ${scalar_t}* __restrict__ x, ${scalar_t}* __restrict__ out, long long total,
    long long height, long long width, long long kh, long long kw, long long sh, long long sw,
    long long ph, long long pw, long long out_h, long long out_w, long long count_include_pad)
{
    for (long long index = blockIdx.x * (long long)blockDim.x + threadIdx.x; index < total;
         index += (long long)blockDim.x * gridDim.x) {
        const long long ow = index % out_w;
        const long long oh = (index / out_w) % out_h;
        const long long plane = index / (out_w * out_h);
        const long long h_start = oh * sh - ph, w_start = ow * sw - pw;
        const long long h_stop = min(h_start + kh, height + ph);
        const long long w_stop = min(w_start + kw, width + pw);
        const long long pool = (h_stop - h_start) * (w_stop - w_start);
        const long long h_first = max(h_start, 0LL), h_end = min(h_stop, height);
        const long long w_first = max(w_start, 0LL), w_end = min(w_stop, width);
        if (h_first >= h_end || w_first >= w_end) {
            out[index] = 0;
            continue;
        }
        const ${scalar_t}* x_plane = x + plane * height * width;
        ${scalar_t} sum = 0;
        for (long long ih = h_first; ih < h_end; ++ih)
            for (long long iw = w_first; iw < w_end; ++iw)
                sum += x_plane[ih * width + iw];
        const long long divisor =
            count_include_pad ? pool : (h_end - h_first) * (w_end - w_first);
        out[index] = sum / (${scalar_t})divisor;
    }
}

// Average-pool backward: one thread per input pixel, gathering from every window holding it.
extern "C" __global__ void avg_pool2d_backward_${scalar_t}(
    const ${scalar_t}* __restrict__ grad_out, ${scalar_t}* __restrict__ grad_x, long long total,
    long long height, long long width, long long kh, long long kw, long long sh, long long sw,
    long long ph, long long pw, long long out_h, long long out_w, long long count_include_pad)
{
    for (long long index = blockIdx.x * (long long)blockDim.x + threadIdx.x; index < total;
         index += (long long)blockDim.x * gridDim.x) {
        const long long w = index % width;
        const long long h = (index / width) % height;
        const long long plane = index / (width * height);
        // windows oh with oh*sh - ph <= h < oh*sh - ph + kh (columns alike)
        const long long oh_first = (h + ph < kh) ? 0 : (h + ph - kh) / sh + 1;
        const long long oh_end = min((h + ph) / sh + 1, out_h);
        const long long ow_first = (w + pw < kw) ? 0 : (w + pw - kw) / sw + 1;
        const long long ow_end = min((w + pw) / sw + 1, out_w);
        const ${scalar_t}* grad_plane = grad_out + plane * out_h * out_w;
        ${scalar_t} sum = 0;
        for (long long oh = oh_first; oh < oh_end; ++oh) {
            const long long h_start = oh * sh - ph;
            const long long h_stop = min(h_start + kh, height + ph);
            const long long rows = count_include_pad ? h_stop - h_start
                                                     : min(h_stop, height) - max(h_start, 0LL);
            for (long long ow = ow_first; ow < ow_end; ++ow) {
                const long long w_start = ow * sw - pw;
                const long long w_stop = min(w_start + kw, width + pw);
                const long long cols = count_include_pad ? w_stop - w_start
                                                         : min(w_stop, width) - max(w_start, 0LL);
                sum += grad_plane[oh * out_w + ow] / (${scalar_t})(rows * cols);
            }
        }
        grad_x[index] = sum;
    }
}
"""
CUDA_SOURCE = _cuda.render(_CUDA_TEMPLATE)


def _cuda_pool_function(op, dtype):
    return _cuda.cuda_function("pooling", CUDA_SOURCE, op + "_" + _cuda.type_suffix(op, dtype))


def max_pool2d_forward_cupy(x, kernel_size, stride, padding, out_size):
    """CUDA max pooling, one thread per output element."""
    cupy = backend.cupy_module()
    n, c, h, w = x.shape
    out_h, out_w = out_size
    x = cupy.ascontiguousarray(x)
    out = cupy.empty((n, c, out_h, out_w), dtype=x.dtype)
    argmax = cupy.empty((n, c, out_h, out_w), dtype=cupy.int64)
    function = _cuda_pool_function("max_pool2d_forward", x.dtype)
    _cuda.launch(function, out.size, (x, out, argmax) + _cuda.ints(
        out.size, h, w, *kernel_size, *stride, *padding, out_h, out_w))
    return out, argmax


def max_pool2d_backward_cupy(grad_out, argmax, x_shape):
    """CUDA max-pool backward, one thread per output element (atomic add onto argmax)."""
    cupy = backend.cupy_module()
    n, c, h, w = x_shape
    grad_out = cupy.ascontiguousarray(grad_out)
    argmax = cupy.ascontiguousarray(argmax)
    grad_x = cupy.zeros((n, c, h, w), dtype=grad_out.dtype)
    function = _cuda_pool_function("max_pool2d_backward", grad_out.dtype)
    outputs_per_plane = grad_out.shape[2] * grad_out.shape[3]
    _cuda.launch(function, grad_out.size, (grad_out, argmax, grad_x) + _cuda.ints(
        grad_out.size, outputs_per_plane, h * w))
    return grad_x


def avg_pool2d_forward_cupy(x, kernel_size, stride, padding, out_size, count_include_pad):
    """CUDA average pooling, one thread per output element."""
    cupy = backend.cupy_module()
    n, c, h, w = x.shape
    out_h, out_w = out_size
    x = cupy.ascontiguousarray(x)
    out = cupy.empty((n, c, out_h, out_w), dtype=x.dtype)
    function = _cuda_pool_function("avg_pool2d_forward", x.dtype)
    _cuda.launch(function, out.size, (x, out) + _cuda.ints(
        out.size, h, w, *kernel_size, *stride, *padding, out_h, out_w, bool(count_include_pad)))
    return out


def avg_pool2d_backward_cupy(grad_out, x_shape, kernel_size, stride, padding, out_size,
                             count_include_pad):
    """CUDA average-pool backward, one thread per input pixel (gather, no atomics)."""
    cupy = backend.cupy_module()
    n, c, h, w = x_shape
    out_h, out_w = out_size
    grad_out = cupy.ascontiguousarray(grad_out)
    grad_x = cupy.empty((n, c, h, w), dtype=grad_out.dtype)
    function = _cuda_pool_function("avg_pool2d_backward", grad_out.dtype)
    _cuda.launch(function, grad_x.size, (grad_out, grad_x) + _cuda.ints(
        grad_x.size, h, w, *kernel_size, *stride, *padding, out_h, out_w, bool(count_include_pad)))
    return grad_x


# ----------------------------------------------------------------------------------------------
# Dispatch
# ----------------------------------------------------------------------------------------------
_MAX_FORWARD = {"numpy": max_pool2d_forward_numpy, "numba": max_pool2d_forward_numba,
                "cupy": max_pool2d_forward_cupy}
_MAX_BACKWARD = {"numpy": max_pool2d_backward_numpy, "numba": max_pool2d_backward_numba,
                 "cupy": max_pool2d_backward_cupy}
_AVG_FORWARD = {"numpy": avg_pool2d_forward_numpy, "numba": avg_pool2d_forward_numba,
                "cupy": avg_pool2d_forward_cupy}
_AVG_BACKWARD = {"numpy": avg_pool2d_backward_numpy, "numba": avg_pool2d_backward_numba,
                 "cupy": avg_pool2d_backward_cupy}


def _pool_args(op, kernel_size, stride, padding, out_size):
    kernel_size = pair(op, "kernel_size", kernel_size, 1)
    padding = pair(op, "padding", padding, 0)
    if padding[0] > kernel_size[0] // 2 or padding[1] > kernel_size[1] // 2:
        raise ValueError(f"{op}: padding {padding} must be at most half of kernel_size "
                         f"{kernel_size}")
    return kernel_size, pair(op, "stride", stride, 1), padding, pair(op, "out_size", out_size, 0)


def _check_input(op, x):
    check_ndim(op, "x", x, 4, "(N, C, H, W)")
    check_float(op, "x", x)


def _check_grad_out(op, grad_out, x_shape, out_size):
    if len(x_shape) != 4:
        raise ValueError(f"{op}: x_shape must be (N, C, H, W), got {tuple(x_shape)}")
    check_float(op, "grad_out", grad_out)
    check_shape(op, "grad_out", grad_out, tuple(x_shape[:2]) + tuple(out_size))


def max_pool2d_forward(x, kernel_size, stride, padding, out_size, keep_argmax=True):
    """Max pooling of ``x`` (N, C, H, W): returns ``(out, argmax)``, both (N, C, out_h, out_w);
    ``argmax`` (int64) is the flat index ``h*W + w`` of each maximum in its input plane. ``keep_argmax=False``
    (inference: no backward will need it) returns ``(out, None)``, and the Numba kernels skip finding it."""
    _check_input("max_pool2d", x)
    args = _pool_args("max_pool2d", kernel_size, stride, padding, out_size)
    kernels = backend.kernels_for(x)
    if kernels == "numba":
        return max_pool2d_forward_numba(x, *args, keep_argmax=keep_argmax)
    out, argmax = _MAX_FORWARD[kernels](x, *args)
    return out, argmax if keep_argmax else None


def max_pool2d_backward(grad_out, argmax, x_shape):
    """Gradient of max pooling: ``grad_out`` (N, C, out_h, out_w) added onto ``argmax``'s pixels
    of ``grad_x`` (N, C, H, W) = ``x_shape``."""
    _check_grad_out("max_pool2d_backward", grad_out, x_shape, grad_out.shape[2:])
    check_shape("max_pool2d_backward", "argmax", argmax, grad_out.shape)
    if argmax.dtype != np.int64:
        raise TypeError(f"max_pool2d_backward: argmax must be int64, got {argmax.dtype}")
    return _MAX_BACKWARD[backend.kernels_for(grad_out)](grad_out, argmax,
                                                        tuple(int(s) for s in x_shape))


def avg_pool2d_forward(x, kernel_size, stride, padding, out_size, count_include_pad):
    """Average pooling of ``x`` (N, C, H, W) -> (N, C, out_h, out_w), PyTorch's divisor rule."""
    _check_input("avg_pool2d", x)
    args = _pool_args("avg_pool2d", kernel_size, stride, padding, out_size)
    return _AVG_FORWARD[backend.kernels_for(x)](x, *args, bool(count_include_pad))


def avg_pool2d_backward(grad_out, x_shape, kernel_size, stride, padding, out_size,
                        count_include_pad):
    """Gradient of average pooling: ``grad_out`` (N, C, out_h, out_w) -> grad_x (N, C, H, W)."""
    args = _pool_args("avg_pool2d_backward", kernel_size, stride, padding, out_size)
    _check_grad_out("avg_pool2d_backward", grad_out, x_shape, args[3])
    return _AVG_BACKWARD[backend.kernels_for(grad_out)](
        grad_out, tuple(int(s) for s in x_shape), *args, bool(count_include_pad))
