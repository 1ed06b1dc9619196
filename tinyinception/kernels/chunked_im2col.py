"""The forward convolution of an input with few channels (the RGB stem) as im2col + GEMM, one cache-sized chunk
of columns at a time.

A network's first convolution reads 3 channels, too few for the shifted per-tap products
(`tinyinception.kernels.shifted_conv`, `strided_conv`: each tap would be a product with an inner dimension of 3),
so it runs as im2col and one product ``weight (F, K) @ cols (K, N*L)`` with K = C*kh*kw. Its columns are large:
GoogLeNet's 7x7 stem at batch 16 makes 147 x 200,704 of them, 118 MB, written to memory by im2col and read back by
the product. Here each thread instead unfolds a few output rows of one image at a time into a small buffer
(about 512 columns, a few hundred KB: it stays in the cache), multiplies it straight away into its part of the
output, and moves on; the columns never exist whole.

The unfolding itself is made of plain contiguous copies: the input is first split, with its padding, into its
sh*sw "phase" images (phase (a, b) holds the padded pixels at rows a, a + sh, ... and columns b, b + sw, ...), so
that tap (i, j) of output row ``oh`` reads the contiguous run ``phase[(i*dh) % sh, (j*dw) % sw]`` at row
``oh + (i*dh) // sh``, columns ``(j*dw) // sw`` onwards, whatever the stride. Measured on 2 cores (2026-12-08),
GoogLeNet's stem at 16x3x224x224: 16 ms, against 23 ms for whole-array im2col and one product.

Shapes: x_cnhw (C, N, H, W) channel-major (`tinyinception.kernels.layout`), weight_matrix (F, C*kh*kw),
out (F, N*out_h*out_w) channel-major. Backward keeps using whole-array im2col (`tinyinception.functional.conv`).
"""
import numpy as np

from . import blas
from ._numba import njit, numba_threads, prange
from .threaded_blas import _block, _gemm

COLUMNS_PER_CHUNK = 512  # about this many output pixels per product: K x 512 float32 columns stay in the cache


def phase_shape(x_shape, kernel_size, stride, padding, dilation, out_size):
    """(C, N, sh, sw, phase_h, phase_w): the zero-padded phase images of an (N, C, H, W) input, tall and wide
    enough for every tap of every output pixel."""
    n, c, h, w = x_shape
    rows = max(-(-(h + 2 * padding[0]) // stride[0]), out_size[0] + (kernel_size[0] - 1) * dilation[0] // stride[0])
    cols = max(-(-(w + 2 * padding[1]) // stride[1]), out_size[1] + (kernel_size[1] - 1) * dilation[1] // stride[1])
    return c, n, stride[0], stride[1], rows, cols


@njit(parallel=True, cache=True)
def _split_phases(x_cnhw, phases, ph, pw):
    """x_cnhw (C, N, H, W) -> phases (C, N, sh, sw, phase_h, phase_w): phases[c, n, a, b, u, v] is the padded
    input's pixel (u*sh + a, v*sw + b), 0 in the padding and beyond the input. One thread per (c, n) plane."""
    channels, batch, height, width = x_cnhw.shape
    sh, sw, phase_h, phase_w = phases.shape[2], phases.shape[3], phases.shape[4], phases.shape[5]
    zero = x_cnhw.dtype.type(0)
    for plane in prange(channels * batch):
        c, n = plane // batch, plane % batch
        for a in range(sh):
            for b in range(sw):
                image = phases[c, n, a, b]
                for u in range(phase_h):
                    ih = u * sh + a - ph
                    if ih < 0 or ih >= height:
                        image[u, :] = zero
                        continue
                    x_row = x_cnhw[c, n, ih]
                    for v in range(phase_w):
                        iw = v * sw + b - pw
                        image[u, v] = x_row[iw] if 0 <= iw < width else zero


@njit(cache=True)
def _unfold_chunk(phases, n, first_row, rows, cols, kh, kw, dh, dw, out_w):
    """cols[k, r*out_w + ow] = image n's column for output pixel (first_row + r, ow), tap k = (c*kh + i)*kw + j:
    each entry is one contiguous copy of out_w values out of a phase image."""
    channels, sh, sw = phases.shape[0], phases.shape[2], phases.shape[3]
    for c in range(channels):
        for i in range(kh):
            for j in range(kw):
                image = phases[c, n, (i * dh) % sh, (j * dw) % sw]
                row_shift, col_shift = (i * dh) // sh, (j * dw) // sw
                col_row = cols[(c * kh + i) * kw + j]
                for r in range(rows):
                    source = image[first_row + r + row_shift]
                    base = r * out_w
                    for ow in range(out_w):
                        col_row[base + ow] = source[col_shift + ow]


@njit(parallel=True, cache=True)
def _unfold_and_multiply(phases, weight, out, kh, kw, dh, dw, out_h, out_w, rows_per_chunk, parts):
    """out (F, N*out_h*out_w) = weight (F, K) @ columns, chunk by chunk: a chunk is ``rows_per_chunk`` output rows
    of one image; the chunks are split into ``parts`` blocks, one per thread, each with its own column buffer."""
    batch = phases.shape[1]
    filters, depth = weight.shape
    chunks_per_image = -(-out_h // rows_per_chunk)
    chunk_width = rows_per_chunk * out_w
    itemsize, ld_out = out.itemsize, out.shape[1]
    for part in prange(parts):
        cols = np.empty((depth, chunk_width), dtype=weight.dtype)
        first_chunk, count = _block(part, parts, batch * chunks_per_image)
        for chunk in range(first_chunk, first_chunk + count):
            n, first_row = chunk // chunks_per_image, (chunk % chunks_per_image) * rows_per_chunk
            rows = min(rows_per_chunk, out_h - first_row)
            _unfold_chunk(phases, n, first_row, rows, cols, kh, kw, dh, dw, out_w)
            pixel = n * out_h * out_w + first_row * out_w
            _gemm(itemsize, blas.NO_TRANS, blas.NO_TRANS, filters, rows * out_w, depth, weight.ctypes.data, depth,
                  cols.ctypes.data, chunk_width, 0.0, out.ctypes.data + pixel * itemsize, ld_out)


def forward(x_cnhw, weight_matrix, kernel_size, stride, padding, dilation, out_size):
    """The convolution of x_cnhw (C, N, H, W) by weight_matrix (F, C*kh*kw) (C-contiguous, x's dtype) as
    (F, N*out_h*out_w), channel-major. Call only where `threaded_blas.available` (it calls BLAS from Numba)."""
    channels, batch = x_cnhw.shape[:2]
    (kh, kw), (out_h, out_w) = kernel_size, out_size
    out = np.empty((weight_matrix.shape[0], batch * out_h * out_w), dtype=x_cnhw.dtype)
    if not out.size:
        return out
    phases = np.empty(phase_shape((batch, channels) + x_cnhw.shape[2:], kernel_size, stride, padding, dilation,
                                  out_size), dtype=x_cnhw.dtype)
    _split_phases(x_cnhw, phases, *padding)
    rows_per_chunk = max(1, min(out_h, round(COLUMNS_PER_CHUNK / out_w)))
    chunks = batch * -(-out_h // rows_per_chunk)
    _unfold_and_multiply(phases, np.ascontiguousarray(weight_matrix), out, kh, kw, *dilation, out_h, out_w,
                         rows_per_chunk, max(1, min(numba_threads(), chunks)))
    return out
