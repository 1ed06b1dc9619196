"""Convolution as a sum of shifted matrix products: a stride-1 k x k convolution without im2col.

im2col copies every input pixel kh*kw times (9x the input for a 3x3) so that one matrix product can
do the convolution. That copy, and col2im in backward, cost a 3x3 layer ~40% of its time. But each
of the kh*kw taps of the kernel is itself a 1x1 convolution of a *shifted* input:

    out[f, n, y, x] = sum over taps (i, j) of  weight[f, :, i, j] . input[:, n, y - ph + i*dh, x - pw + j*dw]

so with each channel of the input stored as one flat row, tap (i, j) is the matrix product
``weight_tap (F, C) @ input_rows[:, s : s + L]`` for a start ``s`` that depends only on (i, j).
The rows are read in place (BLAS takes a view of a larger buffer) and the taps add into one output
(BLAS's beta=1, see `tinyinception.kernels.blas`): no copy of the input beyond one padded layout.

The padded layout ("grid"): each channel of x (C, N, H, W) becomes one flat row in which the batch is the
innermost index (the N images' values of one pixel side by side), every image row is followed by ``pw`` zeros,
and zero margins of ``ph`` rows lie at both ends:

    pixel (y, x) of image n at  before + (y*pitch + x)*N + n,    pitch = W + pw

The zeros after one image row serve as the right padding of that row AND the left padding of the next
(they are the same memory once the rows are laid end to end), so the grid is only a little bigger than
the input. An output pixel (n, y, x) is computed at "anchor" ``a = (y*pitch + x)*N + n``; its tap (i, j)
reads grid position ``a + offset(i, j)`` with ``offset = ((i*dh - ph)*pitch + (j*dw - pw))*N``: one shift for
the whole batch. Anchors are computed for every grid position of the output's rows (those in the padding
columns are not real outputs: they are cropped out afterwards), so the waste is pw/W of the products; with
the batch innermost the rows of zeros between images that an image-major layout needs cost nothing. When
the kernel pads W more than H (a 1x7), the rows run along x instead (``Grid.transposed``: pixel (y, x) at
``(x*pitch + y)*N + n``, pitch = H + ph) and a 1x7 or 7x1 wastes no anchor at all (it wasted 18% at 17x17 in
the image-major layout). This needs ``padding <= dilation*(kernel - 1)`` (true of every "same" and "valid"
convolution).

Backward is the same trick twice:
    grad_input_grid[b]   = sum over taps  weight_tap.T @ grad_grid[b - offset]   (taps of the flipped kernel)
    grad_weight_tap      = sum over anchors  grad_grid[a] (outer) input_grid[a + offset]

All three loops run over chunks of anchors, taps innermost, so each output chunk stays in the CPU cache
while its taps accumulate into it. The definition these are tested against is im2col + one GEMM
(`tinyinception.kernels.im2col`); `to_grid_numpy` / `from_grid_numpy` define the layout.
"""
import functools
from typing import NamedTuple

import numpy as np

from . import blas, blocked_weight_grad, pairs, threaded_blas, workspace
from ..profiler import section
from ._numba import njit, prange, threaded_when_large

CHUNK = 8192  # anchors per block of products (measured on the Inception shapes: 8192 beat 1024-4096 and no blocks)


class Grid(NamedTuple):
    """Geometry of the padded flat layout of an (N, C, H, W) input for one convolution.

    Pixel (u, v) of image n sits at ``(u*pitch + v)*images + n`` (after a margin of zeros), where (u, v) is (y, x),
    or (x, y) when ``transposed``: the axis with the least padding runs along the rows, so that the fewest anchors
    fall in padding (a 1x7 convolution pads W, so its grid runs along columns and its anchors are exactly its outputs).
    """

    transposed: bool  # False: (u, v) = (y, x); True: (u, v) = (x, y)
    rows: int  # rows of anchors: max(input, output) extent along u
    pitch: int  # values per row (in pixels): the extent along v plus its padding (shared between neighbouring rows)
    images: int  # N: the batch is the innermost index, so a tap's shift is the same for every image
    anchors: int  # rows * pitch * images: grid positions at which outputs are computed
    offsets: tuple  # per tap (i, j) in row-major order: where it reads, relative to the anchor
    out_h: int
    out_w: int
    live: tuple  # the taps that read at least one input pixel (see `live_taps`); the others only read padding

    @property
    def before(self):
        """Zeros needed before the first anchor so that every tap reads inside the buffer."""
        return max(0, -min(self.offsets))

    @property
    def after(self):
        """Zeros needed after the last anchor."""
        return max(0, max(self.offsets))

    def oriented(self, h, w):
        """(extent along u, extent along v) of an h x w map in this grid."""
        return (w, h) if self.transposed else (h, w)


def supports(kernel_size, stride, padding, dilation):
    """True for the convolutions this layout computes exactly: stride 1, padding <= dilation*(k-1)."""
    return stride == (1, 1) and kernel_size != (1, 1) and all(
        pad <= dil * (k - 1) for k, pad, dil in zip(kernel_size, padding, dilation))


@functools.lru_cache(maxsize=1024)
def grid_geometry(x_shape, kernel_size, stride, padding, dilation):
    """The `Grid` of a stride-1 convolution of an input of ``x_shape`` (N, C, H, W); pairs as in ``conv2d``.
    (Remembered per argument tuple: a network asks for the same few grids at every step.)"""
    if tuple(stride) != (1, 1):
        raise ValueError(f"shifted_conv: stride must be 1 (strided_conv handles {tuple(stride)})")
    n, _, h, w = x_shape
    (kh, kw), (ph, pw), (dh, dw) = kernel_size, padding, dilation
    out_h, out_w = h + 2 * ph - dh * (kh - 1), w + 2 * pw - dw * (kw - 1)
    # rows along y (pitch W + pw) or along x (pitch H + ph): whichever computes fewer anchors
    along_y = max(h, out_h) * (w + pw)
    along_x = max(w, out_w) * (h + ph)
    transposed = along_x < along_y
    if transposed:
        rows, pitch = max(w, out_w), h + ph
        offsets = tuple(((j * dw - pw) * pitch + (i * dh - ph)) * n for i in range(kh) for j in range(kw))
    else:
        rows, pitch = max(h, out_h), w + pw
        offsets = tuple(((i * dh - ph) * pitch + (j * dw - pw)) * n for i in range(kh) for j in range(kw))
    live = live_taps((h, w), kernel_size, padding, dilation, (out_h, out_w))
    return Grid(transposed, rows, pitch, n, rows * pitch * n, offsets, out_h, out_w, live)


def live_taps(size, kernel_size, padding, dilation, out_size):
    """Indices (row-major) of the taps (i, j) that read an input pixel for at least one output of a stride-1
    convolution. On a map smaller than the kernel's reach some taps only ever read padding, e.g. a 3x3 "same"
    convolution of a 1x1 map (Inception-v3's last blocks on 96x96 inputs): only the centre tap is live, and it is a
    1x1 convolution. Dead taps add nothing to the output or the input gradient and get a zero weight gradient,
    so the products skip them."""
    def live_along(extent, kernel, pad, dil, out):
        # tap i reads input index o + i*dil - pad for outputs o in [0, out): is any inside [0, extent)?
        return [max(0, pad - i * dil) < min(out, extent + pad - i * dil) for i in range(kernel)]

    rows = live_along(size[0], kernel_size[0], padding[0], dilation[0], out_size[0])
    cols = live_along(size[1], kernel_size[1], padding[1], dilation[1], out_size[1])
    return tuple(i * kernel_size[1] + j for i in range(kernel_size[0]) for j in range(kernel_size[1])
                 if rows[i] and cols[j])


# --- the layout: (C, N, h, w) planes <-> flat grid rows ----------------------------------------------------------
def _oriented_planes(planes, grid):
    """planes (C, N, h, w) as (C, extent along u, extent along v, N): a view."""
    return planes.transpose(0, 3, 2, 1) if grid.transposed else planes.transpose(0, 2, 3, 1)


def to_grid_numpy(planes, grid, before, after):
    """planes (C, N, h, w), with h, w at most the grid's extents -> rows (C, before + anchors + after): pixel (y, x)
    of image n at ``before + (u*pitch + v)*N + n``, zeros everywhere else."""
    c = planes.shape[0]
    rows = np.zeros((c, before + grid.anchors + after), dtype=planes.dtype)
    cells = rows[:, before:before + grid.anchors].reshape(c, grid.rows, grid.pitch, grid.images)
    oriented = _oriented_planes(planes, grid)
    cells[:, :oriented.shape[1], :oriented.shape[2]] = oriented
    return rows


def from_grid_numpy(rows, grid, before, h, w):
    """The inverse of `to_grid_numpy`: rows (C, before + anchors + ...) -> planes (C, N, h, w), a contiguous copy."""
    c = rows.shape[0]
    cells = rows[:, before:before + grid.anchors].reshape(c, grid.rows, grid.pitch, grid.images)
    extent_u, extent_v = grid.oriented(h, w)
    cells = cells[:, :extent_u, :extent_v]  # (C, u, v, N)
    return np.ascontiguousarray(cells.transpose(0, 3, 2, 1) if grid.transposed else cells.transpose(0, 3, 1, 2))


@threaded_when_large
@njit(parallel=True, cache=True)
def _to_grid(planes, rows, pitch, before, transposed):
    """Each channel's row zeroed, then filled one grid row (u) at a time: for each image, the pixels of that row
    read in order and written N values apart, into a stretch of ``pitch * N`` values that stays in the cache.
    Images n and n + 1 of a pixel are neighbours in the row: for float32, an even batch and an even ``before``
    they go out together (`pairs.copy_row`, image row y at ``before + y*N`` with columns pitch*N apart when the
    rows run along x, at ``before + y*pitch*N`` with columns N apart otherwise)."""
    channels, images, h, w = planes.shape
    zero = planes.dtype.type(0)
    in_pairs = before % 2 == 0 and pairs.fit(rows, images)
    column_at = np.arange(w) * (pitch * images if transposed else images)
    for c in prange(channels):
        rows[c, :] = zero
        if in_pairs:
            for y in range(h):
                pairs.copy_row(planes[c], y, rows[c], before + y * (images if transposed else pitch * images),
                               column_at)
        elif transposed:  # grid row u is image column x: each plane read in order, written across the channel's row
            for n in range(images):
                for y in range(h):
                    for x in range(w):
                        rows[c, before + (x * pitch + y) * images + n] = planes[c, n, y, x]
        else:
            for y in range(h):
                for n in range(images):
                    for x in range(w):
                        rows[c, before + (y * pitch + x) * images + n] = planes[c, n, y, x]


@threaded_when_large
@njit(parallel=True, cache=True)
def _from_grid(rows, planes, pitch, before, transposed):
    """The inverse walk of `_to_grid`: one grid row at a time, each image's pixels of it written in order."""
    channels, images, h, w = planes.shape
    for c in prange(channels):
        if transposed:
            for n in range(images):
                for y in range(h):
                    for x in range(w):
                        planes[c, n, y, x] = rows[c, before + (x * pitch + y) * images + n]
        else:
            for y in range(h):
                for n in range(images):
                    for x in range(w):
                        planes[c, n, y, x] = rows[c, before + (y * pitch + x) * images + n]


def to_grid(planes, grid, before, after, scratch_name):
    """Numba version of `to_grid_numpy`, into the reusable buffer ``scratch_name`` (see
    `tinyinception.kernels.workspace`): rows (C, `workspace.row_pitch` (before + anchors + after)), the slack at
    the end of each row zeroed too."""
    c = planes.shape[0]
    rows = workspace.scratch_rows(scratch_name, c, before + grid.anchors + after, planes.dtype)
    _to_grid(np.ascontiguousarray(planes), rows, grid.pitch, before, grid.transposed)
    return rows


def from_grid(rows, grid, before, h, w):
    """Numba version of `from_grid_numpy`."""
    planes = np.empty((rows.shape[0], grid.images, h, w), dtype=rows.dtype)
    _from_grid(rows, planes, grid.pitch, before, grid.transposed)
    return planes


# --- the three products --------------------------------------------------------------------------------------------
def weight_taps(weight):
    """weight (F, C, kh, kw) -> (kh*kw, F, C): one contiguous (F, C) matrix per tap (no copy when the weight is
    tap-major, see `tinyinception.kernels.layout`)."""
    f, c, kh, kw = weight.shape
    return np.ascontiguousarray(weight.transpose(2, 3, 0, 1)).reshape(kh * kw, f, c)


def live_matrices(taps, live):
    """taps (T, F, C) of the live taps only: ``taps`` itself when every tap is live, else a (small) copy."""
    return taps if len(live) == len(taps) else taps[list(live)]


def _chunks(total):
    """(start, stop) of equal blocks of at most CHUNK anchors (equal, so that no block is a thin remainder)."""
    count = -(-total // CHUNK)
    size = -(-total // count)
    for start in range(0, total, size):
        yield start, min(start + size, total)


SHORT_INNER = 32  # products with an inner dimension this short are memory-bound: each tap re-reads the output block


def _thread_chunk(out_rows, inner):
    """Anchors per block of one thread's products: CHUNK // 2, or, when the inner dimension is short (16 or 32 channels:
    each tap reads and writes the whole output block for little arithmetic), a block whose output (out_rows x block)
    stays within 64 KiB of cache while the taps add into it (measured: a 3x3 16->32 forward 0.79 -> 0.62 ms, 32->64
    3.1 -> 2.9 ms; no change for 96 channels and more)."""
    if inner > SHORT_INNER:
        return max(1, CHUNK // 2)
    return max(1, min(CHUNK // 2, max(256, 16384 // max(out_rows, 1))))


def sum_of_shifted_products(matrices, rows, base, offsets, out_rows):
    """out_rows[:, a] = sum over t of matrices[t] @ rows[:, base + offsets[t] + a], for every column a of out_rows.

    matrices: one (T, M, K) array of kh*kw matrices (e.g. ``taps`` or ``taps.transpose(0, 2, 1)``), rows (K, ...),
    out_rows (M, A). Blocks of
    CHUNK columns, taps innermost: BLAS adds each tap into the block (beta=1) while it is still in the cache. On
    Numba's threads (`tinyinception.kernels.threaded_blas`) each thread takes its own range of anchors.
    """
    with section("gemm"):
        if threaded_blas.available(out_rows.dtype):
            return threaded_blas.shifted_sum(matrices, rows, [base + offset for offset in offsets], out_rows,
                                             chunk=_thread_chunk(*matrices[0].shape))
        for start, stop in _chunks(out_rows.shape[1]):
            for tap, offset in enumerate(offsets):
                blas.gemm(matrices[tap], rows[:, base + offset + start:base + offset + stop], out_rows[:, start:stop],
                          beta=0.0 if tap == 0 else 1.0)
    return out_rows


def shifted_outer_products(grad_rows, grad_base, rows, base, offsets, anchors, out_taps):
    """out_taps[t] = sum over a < anchors of grad_rows[:, grad_base + a] (outer) rows[:, base + offsets[t] + a]:
    the weight gradient of every tap, (F, C) each, accumulated over blocks of anchors. Large maps and a small (F, C)
    result: the register-blocked Numba kernel instead (`tinyinception.kernels.blocked_weight_grad`)."""
    with section("gemm"):
        if blocked_weight_grad.pays(grad_rows.shape[0], rows.shape[0], anchors):
            return blocked_weight_grad.shifted_outer_products(grad_rows, grad_base, rows, base, offsets, anchors,
                                                              out_taps)
        if threaded_blas.available(out_taps.dtype):
            return threaded_blas.shifted_outer(grad_rows, grad_base, rows, [base + offset for offset in offsets],
                                               anchors, out_taps, chunk=CHUNK)
        for start, stop in _chunks(anchors):
            for tap, offset in enumerate(offsets):
                blas.gemm(grad_rows[:, grad_base + start:grad_base + stop],
                          rows[:, base + offset + start:base + offset + stop].T,
                          out_taps[tap], beta=0.0 if start == 0 else 1.0)
    return out_taps


def forward(x_cnhw, taps, grid):
    """x_cnhw (C, N, H, W), taps (kh*kw, F, C) from `weight_taps` -> out (F, N, out_h, out_w), contiguous."""
    x_rows = to_grid(x_cnhw, grid, grid.before, grid.after, "conv_input_grid")
    out_rows = workspace.scratch_rows("conv_output_grid", taps.shape[1], grid.anchors, x_cnhw.dtype)
    if not grid.live:  # every tap reads padding only
        out_rows[...] = 0
    else:
        sum_of_shifted_products(live_matrices(taps, grid.live), x_rows, grid.before,
                                [grid.offsets[t] for t in grid.live], out_rows[:, :grid.anchors])
    return from_grid(out_rows, grid, 0, grid.out_h, grid.out_w)


def grad_to_grid(grad_cnhw, grid):
    """grad_output (F, N, out_h, out_w) -> rows (F, after + anchors + before), zero off the real outputs:
    the margins are swapped because backward reads at ``anchor - offset``."""
    return to_grid(grad_cnhw, grid, grid.after, grid.before, "conv_grad_grid")


def backward_input(grad_cnhw, taps, grid, x_shape, grad_rows=None):
    """grad_output (F, N, out_h, out_w) channel-major, taps (kh*kw, F, C) -> grad_input (C, N, H, W), contiguous.
    grad_rows: the gradient already laid out by `grad_to_grid` (the weight gradient's), or None."""
    if grad_rows is None:
        grad_rows = grad_to_grid(grad_cnhw, grid)
    grad_x_rows = workspace.scratch_rows("conv_output_grid", taps.shape[2], grid.anchors, grad_rows.dtype)
    if not grid.live:
        grad_x_rows[...] = 0
    else:
        # (C, F) each: the adjoint reads at anchor - offset
        transposed = live_matrices(taps, grid.live).transpose(0, 2, 1)
        sum_of_shifted_products(transposed, grad_rows, grid.after, [-grid.offsets[t] for t in grid.live],
                                grad_x_rows[:, :grid.anchors])
    _, _, h, w = x_shape
    return from_grid(grad_x_rows, grid, 0, h, w)


def grad_layout(grad_cnhw, grid, weight_shape, needs_input_grad):
    """The output gradient laid out for backward (`grad_to_grid`), made once for both gradients."""
    return grad_to_grid(grad_cnhw, grid)


def backward_weight(grad_cnhw, x_cnhw, grid, weight_shape, grad_rows=None):
    """grad_output (F, N, out_h, out_w) and x_cnhw (C, N, H, W), channel-major -> grad_weight (F, C, kh, kw),
    tap-major. grad_rows: the gradient already laid out by `grad_to_grid`, or None."""
    if grad_rows is None:
        grad_rows = grad_to_grid(grad_cnhw, grid)
    f, c, kh, kw = weight_shape
    x_rows = to_grid(x_cnhw, grid, grid.before, grid.after, "conv_input_grid")
    live = list(grid.live)
    if len(live) == kh * kw:
        grad_taps = np.empty((kh * kw, f, c), dtype=grad_rows.dtype)
        shifted_outer_products(grad_rows, grid.after, x_rows, grid.before, grid.offsets, grid.anchors, grad_taps)
    else:  # dead taps (they read padding only) have a zero gradient
        grad_taps = np.zeros((kh * kw, f, c), dtype=grad_rows.dtype)
        if live:
            grad_taps[live] = shifted_outer_products(
                grad_rows, grid.after, x_rows, grid.before, [grid.offsets[t] for t in live], grid.anchors,
                np.empty((len(live), f, c), dtype=grad_rows.dtype))
    return grad_taps.reshape(kh, kw, f, c).transpose(2, 3, 0, 1)  # tap-major, like nn.Conv2d's weights
