"""The weight gradient of a shifted-product convolution, register-blocked in Numba.

`tinyinception.kernels.shifted_conv` computes a convolution's weight gradient as one matrix product per tap:

    grad_weight[t, f, c] = sum over anchors a of  grad_rows[f, a] * x_rows[c, a + offset[t]]

Each of those products has a small (F, C) result and an inner dimension of tens of thousands of anchors, a shape
BLAS runs at half its best speed or less (it repacks both operands for every tap and every block of anchors, and
with 16 or 32 channels there is almost no work per packed value). This kernel computes the same sums directly:

* Register blocking: a block of 4 filters x 4 channels is 16 running sums, and each step along the anchors loads
  4 gradient values and 4 input values and does 16 multiply-adds: every value loaded is used 4 times. LLVM turns
  the 16 scalar sums into 16 vector registers (16 anchors at a time with AVX-512) and never touches memory for them.
* Cache blocking: ANCHOR_BLOCK anchors at a time and CHANNEL_TILE channels at a time, so that the tile's input rows
  (8 x 8192 values) and the 4 gradient rows stay in the core's L2 cache while every filter block and every tap reads
  them again. Long blocks matter: each block of sums ends with 16 horizontal additions across the vector lanes.
* Threads split the anchors (each thread sums its own share into its own copy of the result; the copies are added
  at the end), so no two threads ever write the same value and nothing is atomic.
* ``fastmath={"reassoc", "contract"}``: LLVM may reorder the sums (that is what lets it keep 16 partial sums per
  register) and fuse multiply-adds, but, unlike full fastmath, it must still honour NaN and infinity.

The definition it is tested against is BLAS's per-tap products (`shifted_conv.shifted_outer_products`) and, through
the convolution, im2col. `pays` says where it is used, from measurements on 2 cores (AVX-512), against the per-tap
products on Numba's threads (`threaded_blas`): it runs at 300-400 GFLOP/s wherever there are at least 8K anchors,
which is 2.2-2.4x the products for the 16- and 32-channel convolutions of the stems and of inception (3a), 1.5-1.6x
for 48 and 32->64, 1.05-1.15x for 96-128 channels; on small maps (too few anchors per sum) and for larger (F, C)
results (128 x 192 and up: BLAS's own blocking is at its best there) the products stay.
"""
import numpy as np

from ._numba import NUMBA_AVAILABLE, njit, numba_threads, prange, run_parallel, serial_twin

MIN_ANCHORS = 1 << 13  # fewer anchors than this (small maps): too few steps per sum, BLAS is faster
MAX_RESULT = 128 * 128  # a larger (F, C) result per tap: BLAS's own blocking runs at its best, as fast or faster
ANCHOR_BLOCK = 8192  # anchors per block: 8 input rows of a channel tile (256 KiB) and 4 gradient rows stay in L2
CHANNEL_TILE = 8  # input channels per tile (a multiple of 4)


def pays(filters, channels, anchors):
    """True where this kernel beats BLAS's per-tap products (measured; see the module docstring)."""
    return NUMBA_AVAILABLE and min(filters, channels) >= 4 and filters * channels <= MAX_RESULT \
        and anchors >= MIN_ANCHORS


@njit(fastmath={"reassoc", "contract"}, cache=True)
def _block_4x4(g0, g1, g2, g3, x0, x1, x2, x3, out, f, c):
    """out[f:f+4, c:c+4] += the 16 dot products of gradient rows g0..g3 with input rows x0..x3 (equal lengths)."""
    zero = out.dtype.type(0)
    s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = zero
    s20 = s21 = s22 = s23 = s30 = s31 = s32 = s33 = zero
    for k in range(g0.size):
        v0, v1, v2, v3 = x0[k], x1[k], x2[k], x3[k]
        u = g0[k]
        s00 += u * v0; s01 += u * v1; s02 += u * v2; s03 += u * v3  # noqa: E702  (one row of the block)
        u = g1[k]
        s10 += u * v0; s11 += u * v1; s12 += u * v2; s13 += u * v3  # noqa: E702
        u = g2[k]
        s20 += u * v0; s21 += u * v1; s22 += u * v2; s23 += u * v3  # noqa: E702
        u = g3[k]
        s30 += u * v0; s31 += u * v1; s32 += u * v2; s33 += u * v3  # noqa: E702
    out[f, c] += s00; out[f, c + 1] += s01; out[f, c + 2] += s02; out[f, c + 3] += s03  # noqa: E702
    out[f + 1, c] += s10; out[f + 1, c + 1] += s11; out[f + 1, c + 2] += s12; out[f + 1, c + 3] += s13  # noqa: E702
    out[f + 2, c] += s20; out[f + 2, c + 1] += s21; out[f + 2, c + 2] += s22; out[f + 2, c + 3] += s23  # noqa: E702
    out[f + 3, c] += s30; out[f + 3, c + 1] += s31; out[f + 3, c + 2] += s32; out[f + 3, c + 3] += s33  # noqa: E702


@njit(fastmath={"reassoc", "contract"}, cache=True)
def _dot(g, x):
    """One dot product: the filters and channels left over when F or C is not a multiple of 4."""
    total = g.dtype.type(0)
    for k in range(g.size):
        total += g[k] * x[k]
    return total


@njit(cache=True)
def _one_block_of_anchors(grad_rows, grad_base, x_rows, x_starts, start, stop, out):
    """out (T, F, C) += every tap's sums over the anchors [start, stop): anchor a reads grad_rows[:, grad_base + a]
    and, for tap t, x_rows[:, x_starts[t] + a]. Channels CHANNEL_TILE at a time, so that their input rows stay in
    the L2 cache while every filter block and tap reads them. (Rows are sliced one at a time from the whole
    C-contiguous arrays, so that every row Numba sees is contiguous and LLVM vectorises the sums without a stride
    check.)"""
    taps, filters, channels = out.shape
    full_f, full_c = filters - filters % 4, channels - channels % 4
    g_first, g_last = grad_base + start, grad_base + stop
    for tile in range(0, full_c, CHANNEL_TILE):
        tile_end = min(tile + CHANNEL_TILE, full_c)
        for f in range(0, full_f, 4):
            g0, g1 = grad_rows[f, g_first:g_last], grad_rows[f + 1, g_first:g_last]
            g2, g3 = grad_rows[f + 2, g_first:g_last], grad_rows[f + 3, g_first:g_last]
            for t in range(taps):
                first, last = x_starts[t] + start, x_starts[t] + stop
                for c in range(tile, tile_end, 4):
                    _block_4x4(g0, g1, g2, g3, x_rows[c, first:last], x_rows[c + 1, first:last],
                               x_rows[c + 2, first:last], x_rows[c + 3, first:last], out[t], f, c)
    for f in range(filters):  # the edges: filters and channels left over when F or C is not a multiple of 4
        for t in range(taps):
            first, last = x_starts[t] + start, x_starts[t] + stop
            for c in range(full_c if f < full_f else 0, channels):
                out[t, f, c] += _dot(grad_rows[f, g_first:g_last], x_rows[c, first:last])


@njit(parallel=True, cache=True)
def _shares(grad_rows, grad_base, x_rows, x_starts, anchors, block, partial):
    """partial (S, T, F, C): share s (one thread) sums the anchors [s*anchors/S, (s+1)*anchors/S), ``block`` at a
    time."""
    shares = partial.shape[0]
    per_share = -(-anchors // shares)
    for share in prange(shares):
        partial[share] = 0
        end = min(anchors, (share + 1) * per_share)
        for start in range(share * per_share, end, block):
            _one_block_of_anchors(grad_rows, grad_base, x_rows, x_starts, start, min(start + block, end),
                                  partial[share])


_shares_serial = serial_twin(_shares)  # the same sums on the calling thread (`run_parallel`)


def shifted_outer_products(grad_rows, grad_base, rows, base, offsets, anchors, out_taps, shares=None):
    """Same contract as `shifted_conv.shifted_outer_products`: out_taps[t] = sum over a < anchors of
    grad_rows[:, grad_base + a] (outer) rows[:, base + offsets[t] + a]; grad_rows (F, ...) and rows (C, ...)
    C-contiguous, out_taps (T, F, C) written in place. ``shares``: how many threads split the anchors (default:
    as many as Numba runs)."""
    shares = numba_threads() if shares is None else shares
    x_starts = base + np.asarray(offsets, dtype=np.int64)
    partial = np.empty((shares,) + out_taps.shape, dtype=out_taps.dtype)
    run_parallel(_shares, _shares_serial, np.ascontiguousarray(grad_rows), grad_base, np.ascontiguousarray(rows),
                 x_starts, anchors, ANCHOR_BLOCK, partial)
    np.sum(partial, axis=0, out=out_taps)
    return out_taps
