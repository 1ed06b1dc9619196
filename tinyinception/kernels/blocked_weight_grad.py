"""The weight gradient of a shifted-product convolution with few input channels, register-blocked in Numba.

`tinyinception.kernels.shifted_conv` computes a convolution's weight gradient as one matrix product per tap:

    grad_weight[t, f, c] = sum over anchors a of  grad_rows[f, a] * x_rows[c, a + offset[t]]

For a layer with few input channels (the stems' 32, GoogLeNet's 16) each of those products has an (F, C) result
of only a few hundred values and an inner dimension of tens of thousands, a shape BLAS runs at a third of its best
speed (it repacks both operands for every tap and every block). This kernel computes the same sums directly:

* Register blocking: a block of 4 filters x 4 channels is 16 running sums, and each step along the anchors loads
  4 gradient values and 4 input values and does 16 multiply-adds: every value loaded is used 4 times. LLVM turns
  the 16 scalar sums into 16 vector registers (16 anchors at a time with AVX-512) and never touches memory for them.
* Cache blocking: the anchors are taken KC at a time, with KC chosen so that the input rows of one block
  (C x KC values) stay in the core's L2 cache while every filter block and every tap reads them again; the
  4 gradient rows (4 x KC) stay in L1.
* Threads split the anchors (each thread sums its own share into its own copy of the result; the copies are added
  at the end), so no two threads ever write the same value and nothing is atomic.
* ``fastmath={"reassoc", "contract"}``: LLVM may reorder the sums (that is what lets it keep 16 partial sums per
  register) and fuse multiply-adds, but, unlike full fastmath, it must still honour NaN and infinity.

The definition it is tested against is BLAS's per-tap products (`shifted_conv.shifted_outer_products`) and, through
the convolution, im2col. `pays` says where it is used: measured on 2 cores, 1.6-2x faster than the per-tap products
for 16 and 32 input channels with at least 16K anchors (the stems of Inception-v3/v4/ResNet, inception (3a)'s
16-channel branch at batch 32); slower for more channels or small maps, where BLAS stays.
"""
import numpy as np

from ._numba import NUMBA_AVAILABLE, njit, numba_threads, prange

MAX_CHANNELS = 32  # more channels than this: BLAS's per-tap products are faster
MIN_ANCHORS = 1 << 14  # fewer anchors than this: too little work per thread to pay for the blocking
L2_FLOATS = 1 << 17  # 512 KiB of float32 input rows per block of anchors: half of a core's L2 cache


def pays(channels, anchors):
    """True where this kernel beats BLAS's per-tap products (see the module docstring)."""
    return NUMBA_AVAILABLE and channels <= MAX_CHANNELS and anchors >= MIN_ANCHORS


def block_length(channels):
    """KC: anchors per block, so that ``channels`` input rows of KC values fill ``L2_FLOATS``."""
    return max(1024, min(8192, L2_FLOATS // max(channels, 1)))


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
    and, for tap t, x_rows[:, x_starts[t] + a]. (Rows are sliced one at a time from the whole C-contiguous arrays,
    so that every row Numba sees is contiguous and LLVM vectorises the sums without a stride check.)"""
    taps, filters, channels = out.shape
    full_f, full_c = filters - filters % 4, channels - channels % 4
    g_first, g_last = grad_base + start, grad_base + stop
    for f in range(0, full_f, 4):
        g0, g1 = grad_rows[f, g_first:g_last], grad_rows[f + 1, g_first:g_last]
        g2, g3 = grad_rows[f + 2, g_first:g_last], grad_rows[f + 3, g_first:g_last]
        for t in range(taps):
            first, last = x_starts[t] + start, x_starts[t] + stop
            for c in range(0, full_c, 4):
                _block_4x4(g0, g1, g2, g3, x_rows[c, first:last], x_rows[c + 1, first:last],
                           x_rows[c + 2, first:last], x_rows[c + 3, first:last], out[t], f, c)
            for ff in range(f, f + 4):  # channels left over when C is not a multiple of 4
                for c in range(full_c, channels):
                    out[t, ff, c] += _dot(grad_rows[ff, g_first:g_last], x_rows[c, first:last])
    for f in range(full_f, filters):  # filters left over when F is not a multiple of 4
        for t in range(taps):
            first, last = x_starts[t] + start, x_starts[t] + stop
            for c in range(channels):
                out[t, f, c] += _dot(grad_rows[f, g_first:g_last], x_rows[c, first:last])


@njit(parallel=True, cache=True)
def _shares(grad_rows, grad_base, x_rows, x_starts, anchors, block, partial):
    """partial (S, T, F, C): share s sums the anchors [s*anchors/S, (s+1)*anchors/S), KC (= block) at a time."""
    shares = partial.shape[0]
    per_share = -(-anchors // shares)
    for share in prange(shares):
        partial[share] = 0
        end = min(anchors, (share + 1) * per_share)
        for start in range(share * per_share, end, block):
            _one_block_of_anchors(grad_rows, grad_base, x_rows, x_starts, start, min(start + block, end),
                                  partial[share])


def shifted_outer_products(grad_rows, grad_base, rows, base, offsets, anchors, out_taps, shares=None):
    """Same contract as `shifted_conv.shifted_outer_products`: out_taps[t] = sum over a < anchors of
    grad_rows[:, grad_base + a] (outer) rows[:, base + offsets[t] + a]; grad_rows (F, ...) and rows (C, ...)
    C-contiguous, out_taps (T, F, C) written in place. ``shares``: how many threads split the anchors (default:
    as many as Numba runs)."""
    shares = numba_threads() if shares is None else shares
    x_starts = base + np.asarray(offsets, dtype=np.int64)
    partial = np.empty((shares,) + out_taps.shape, dtype=out_taps.dtype)
    _shares(np.ascontiguousarray(grad_rows), grad_base, np.ascontiguousarray(rows), x_starts, anchors,
            block_length(rows.shape[0]), partial)
    np.sum(partial, axis=0, out=out_taps)
    return out_taps
