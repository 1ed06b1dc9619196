"""Winograd's minimal filtering F(2x2, 3x3): a 3x3 "same" convolution with 2.25x fewer multiplications.

A 3x3 convolution computes each 2x2 block of outputs ("tile") from a 4x4 patch of the input, with 2*2*9 = 36
multiply-adds per channel pair. Winograd's algorithm (Lavin & Gray, "Fast Algorithms for Convolutional Neural
Networks", 2016) gets the same four outputs from 16 products: transform the patch d and the 3x3 kernel g,

    V = B^T d B  (4x4, additions only)        U = G g G^T  (4x4, once per weight)
    out_tile = A^T (U * V) A                   (2x2, additions only; * is elementwise)

with the small constant matrices below. Summed over the input channels, the elementwise products become 16 matrix
products, one per position k of the 4x4 transform:

    M_k (F, tiles) = U_k (F, C) @ V_k (C, tiles)

so a convolution's multiply-adds drop from 36 to 16 per tile and channel pair (2.25x), and the matrix products keep
the long inner dimension C that BLAS likes. The price is the two transforms (additions, memory-bound), which `pays`
weighs against the products saved, and a little float32 rounding (the transforms are sums and differences, in the
input's precision, and G has a 1/2; measured: 2-6e-7 of the largest output from 16 to 768 channels).

Layout: the input is laid out as a phase grid of `tinyinception.kernels.strided_conv` with column stride 2 (each
channel one flat row holding the padded map's even columns, then its odd columns, the N images' values of a pixel
side by side). Patch value (i, j) of the tiles (ty, tx) of one tile row then lies, over (tx, n), in ONE contiguous
run, so each row of V = B^T d B for a block of tiles is one long loop over 8 runs (two patch rows at four patch
columns), which LLVM turns into vector instructions. Each thread takes blocks of tiles (part of one tile row): it
transforms their patches into V (16, C, tiles), runs the 16 products into M (16, F, tiles) with single-threaded
BLAS (`threaded_blas`'s compiled call), and transforms M back while the block's V and M are still in its cache:
outputs up to `IN_PLACE_BYTES` straight into place, larger ones into an output phase grid that one copy
(`strided_conv.from_phase_grid`) puts in place.

Backward: the input gradient of a "same" 3x3 convolution is the "same" 3x3 convolution of the output gradient with
the kernel flipped and its channel axes swapped, so it runs through the same code (where it pays: from F to C
channels). The weight gradient is the adjoint of the forward products: dU_k (F, C) = dM_k (F, tiles) @ V_k (C,
tiles)^T with dM = A dY A^T per output tile (`_gradient_transform`), then dW = G^T dU G for every (f, c)
(`weight_gradient`, where `weight_gradient_pays`; shifted outer products elsewhere). Where both gradients run here,
the output gradient is laid out once for both (`TileGrad`, the padded grid the input gradient convolves). The
definition these are tested against is im2col + GEMM (`tinyinception.kernels.im2col`).

Non-finite values: the transforms add and subtract the values of a patch, so one inf (or two values near float32's
max) makes inf - inf = NaN where the convolution has an infinity. The output transform's row pass flags any NaN
or inf it meets (`_row_pass`, no measurable cost), and `forward` / `backward_input` then compute that convolution
by shifted products instead; finite values never leave Winograd.
"""
import functools
from typing import NamedTuple

import numpy as np

from . import blas, shifted_conv, strided_conv, threaded_blas, workspace
from .pairs import PAIRS_FIT, pack
from ..profiler import section
from ._numba import njit, numba_threads, prange, serial_twin
from .threaded_blas import _block, _gemm

B_T = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64)  # input transform
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=np.float64)  # kernel transform
A_T = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64)  # output transform
KRON_G = {np.dtype(t): np.kron(G, G).astype(t) for t in (np.float32, np.float64)}  # (16, 9): U = kron(G, G) @ taps
MIN_SIZE = 4  # on maps smaller than 4x4 most of a tile is padding (and dead taps make shifted products cheap)
COLUMNS_IN_CACHE = 1 << 14  # a block's V and M together hold about this many values per transform position
# outputs up to this size are written in place by the output transform (scattered, one pass); larger ones go through
# an output phase grid (contiguous runs) and one copy, measured faster there (64->96 at 35x35: 10.0 vs 11.0 ms;
# in place: 16->32 at 28x28 0.71 vs 0.76 ms, 64->64 at 17x17 2.09 vs 2.23)
IN_PLACE_BYTES = 4 << 20


# a forward pass alone (inference) pays for Winograd's transforms only from about this many output pixels (N*H*W):
# below it the tiles are too few to keep both threads busy past the transforms. Measured on 2 cores (2026-12-08,
# forward under no_grad, Winograd / shifted products time): 1x14x14 160->320 1.56, 1x28x28 96->128 1.21,
# 1x17x17 384->384 2.00, 8x7x7 192->384 1.14, 1x35x35 64->96 1.11, 1x56x56 64->192 1.03; 8x14x14 160->320 0.75,
# 8x35x35 64->96 0.68, 16x14x14 160->320 0.66. (Training keeps `supports` alone: its backward reuses the choice.)
MIN_FORWARD_ONLY_PIXELS = 1536
# ... except on maps of at most SMALL_MAP_PIXELS, where the shifted products also compute a padding ring of 1.5-1.65
# times the map (7x7 -> 9x9 grid) and Winograd pays from MIN_SMALL_MAP_PIXELS output pixels on. Measured (2026-12-08,
# as above): 8x8x8 448->384 0.89-0.91, 8x8x8 64->96 0.78, 16x7x7 192->320 0.82, 16x7x7 160->224 0.84, 16x7x7
# 96->128 0.73-0.74, 16x7x7 192->384 0.96-0.99; but 8x7x7 192->384 (392 pixels) 1.14, and at the same 578-784
# pixels on larger maps 1.0-1.14 (2x17x17 128->192 1.06, 4x14x14 160->320 1.02, 1x28x28 96->128 1.09-1.14).
SMALL_MAP_PIXELS = 64
MIN_SMALL_MAP_PIXELS = 512


def pays_forward_only(pixels, map_pixels):
    """True when a forward-only 3x3 convolution with ``pixels`` output pixels (N*H*W) on maps of ``map_pixels``
    (H*W) runs faster by Winograd."""
    if map_pixels <= SMALL_MAP_PIXELS:
        return pixels >= MIN_SMALL_MAP_PIXELS
    return pixels >= MIN_FORWARD_ONLY_PIXELS


def supports(kernel_size, stride, padding, dilation, channels, out_channels, size, forward_only=False):
    """3x3, stride 1, padding 1, no dilation, a map of at least 4x4, and Winograd pays forward or backward. With
    ``forward_only`` (inference), also padding 0 (a "valid" 3x3), computed as the interior of the "same" one."""
    paddings = ((1, 1), (0, 0)) if forward_only else ((1, 1),)
    return (kernel_size == (3, 3) and stride == (1, 1) and padding in paddings and dilation == (1, 1)
            and min(size) >= MIN_SIZE and (pays(channels, out_channels) or pays(out_channels, channels)))


def pays(channels, out_channels):
    """True where a Winograd convolution from ``channels`` to ``out_channels`` beats the shifted products. Per output
    pixel it saves 2*C*F*(9 - 4) flops of products (~0.024 ns per C*F at ~420 GFLOP/s) and costs its transforms:
    measured on 2 cores, ~0.25 ns per input channel (each row of 4 values of V from 8 reads) and ~0.125 ns per output
    channel. So: C*F > 10*C + 5*F (measured at batch 32: 16->32 on 28x28 0.85x the shifted products' time, 32->16
    0.94x, 16->16 0.88x; 32->8 1.12x and 4->64 1.07x, where it does not pay)."""
    return channels * out_channels > 10 * channels + 5 * out_channels


def transform_weight(taps):
    """taps (9, F, C) (`shifted_conv.weight_taps`) -> U (16, F, C), U[4a + b] = (G g G^T)[a, b]: one small
    matrix product, kron(G, G) (16, 9) @ taps (9, F*C)."""
    nine, f, c = taps.shape
    u = np.empty((16, f, c), dtype=taps.dtype)
    threaded_blas.matmul(KRON_G[taps.dtype], taps.reshape(nine, f * c), out=u.reshape(16, f * c))
    return u


def flipped_taps(taps):
    """The taps of the input gradient's convolution: kernel flipped (tap t -> 8 - t), channel axes swapped:
    (9, F, C) -> (9, C, F), contiguous."""
    return np.ascontiguousarray(taps[::-1].transpose(0, 2, 1))


@functools.lru_cache(maxsize=1024)
def tile_grids(x_shape):
    """x_shape (C, N, H, W) -> the layouts of one convolution: (input grid, output grid, tiles_h, tiles_w), both
    `strided_conv.PhaseLayout`s with column stride 2 (each channel's row holds the map's even columns, then its odd
    columns, the N images' values of a pixel side by side). The input grid is padded by 1 and has rows and columns
    enough for every tile's 4x4 patch (a tile row further at the bottom when H is odd); the output grid holds
    2*tiles_h rows. Every read stays inside the phase blocks, so no zeros are needed after them."""
    _, n, h, w = x_shape
    tiles_h, tiles_w = -(-h // 2), -(-w // 2)
    return _phase_layout(n, 2 * tiles_h + 2, tiles_w + 1, (1, 1)), _phase_layout(n, 2 * tiles_h, tiles_w, (0, 0)), \
        tiles_h, tiles_w


def _phase_layout(images, rows, pitch, padding):
    """A column-stride-2 layout of ``rows`` x ``pitch`` pixels per phase."""
    return strided_conv.PhaseLayout((1, 2), padding, rows, pitch, images, rows * pitch * images)


def convolve(x_cnhw, u, x_rows=None):
    """x_cnhw (C, N, H, W), u (16, F, C) from `transform_weight` -> out (F, N, H, W), contiguous: the 3x3 "same"
    convolution (padding 1). x_rows: x already in the input grid of `tile_grids` (made once for both gradients,
    `grad_layout`), or None."""
    return convolve_checked(x_cnhw, u, x_rows)[0]


def convolve_checked(x_cnhw, u, x_rows=None):
    """`convolve`, and False where a value of the transformed products was NaN or infinite (an inf input, or a
    finite one near float32's max: the transforms' inf - inf makes NaN where the convolution has an infinity, so
    the caller computes it another way), else True."""
    if not threaded_blas.available(x_cnhw.dtype):
        raise RuntimeError("winograd.convolve: its products are compiled calls into the BLAS that threaded_blas binds, "
                           "which is off here (TINYINCEPTION_ONE_POOL=0, another NUMBA_THREADING_LAYER, or no "
                           f"scipy-openblas) or does not take {x_cnhw.dtype}; F.conv2d uses shifted products then")
    c, n, h, w = x_cnhw.shape
    f = u.shape[1]
    if n == 0:  # an empty batch
        return np.empty((f, n, h, w), dtype=x_cnhw.dtype), True
    in_grid, out_grid, tiles_h, tiles_w = tile_grids(x_cnhw.shape)
    if x_rows is None:
        x_rows = strided_conv.to_phase_grid(x_cnhw, in_grid, "winograd_input")
    out = np.empty((f, n, h, w), dtype=x_cnhw.dtype)
    in_place = out.nbytes <= IN_PLACE_BYTES
    out_rows = workspace.scratch_rows("winograd_output", f, 1 if in_place else 2 * out_grid.block, x_cnhw.dtype)
    per_block = max(1, min(tiles_w, COLUMNS_IN_CACHE // (c + f) // n))  # tile columns per block (one tile row)
    blocks = tiles_h * -(-tiles_w // per_block)
    threads = max(1, min(numba_threads(), blocks))
    columns = per_block * n
    v = workspace.scratch("winograd_v", (threads, 16, c, columns), x_cnhw.dtype)
    m = workspace.scratch("winograd_m", (threads, 16, f, columns), x_cnhw.dtype)
    s = workspace.scratch("winograd_s", (threads, 8, columns), x_cnhw.dtype)
    _, ld_u = blas.operand(u[0], "u")
    threaded_blas.keep_openblas_on_one_thread()
    kernel = _winograd if threads > 1 else _winograd_serial
    not_finite = np.zeros(threads, dtype=np.bool_)
    with section("winograd"):  # the 16 products and their transforms, fused
        kernel(x_rows.itemsize, x_rows, in_grid.block, in_grid.pitch, u.ctypes.data, ld_u, out_rows, out_grid.block,
               out_grid.pitch, tiles_h, tiles_w, per_block, n, v, m, s, out, in_place, not_finite)
    out = out if in_place else strided_conv.from_phase_grid(out_rows, out_grid, (n, f, h, w), out=out)
    return out, not not_finite.any()


# --- the products interface of `tinyinception.kernels.shifted_conv` (see `functional.conv.Conv2d`) ----------------
grid_geometry = shifted_conv.grid_geometry  # the layout of whatever falls back to shifted products


class TileGrad(NamedTuple):
    """The output gradient (F, N, H, W) in the input grid of `tile_grids` (padded by 1), laid out once for both
    Winograd gradients: the input gradient convolves it, the weight gradient reads its tiles."""
    rows: np.ndarray


def grad_layout(grad_cnhw, grid, weight_shape, needs_input_grad):
    """The output gradient laid out once for both gradients: in the shifted layout where a gradient falls back to
    shifted products, as a `TileGrad` where both run as Winograd, else None (each lays it out itself)."""
    f, c = weight_shape[:2]
    needs_x, needs_w = needs_input_grad
    input_by_winograd = pays(f, c)
    weight_by_winograd = weight_gradient_pays(c, f, (grid.out_h, grid.out_w))
    if (needs_x and not input_by_winograd) or (needs_w and not weight_by_winograd):
        return shifted_conv.grad_to_grid(grad_cnhw, grid)
    if needs_x and needs_w:
        return TileGrad(strided_conv.to_phase_grid(grad_cnhw, tile_grids(grad_cnhw.shape)[0], "winograd_grad"))
    return None


def _tile_rows(grad_rows):
    """The rows of a `TileGrad`, None for anything else (a shifted layout that the Winograd path does not use)."""
    return grad_rows.rows if isinstance(grad_rows, TileGrad) else None


def backward_weight(grad_cnhw, x_cnhw, grid, weight_shape, grad_rows=None):
    """grad_output (F, N, H, W) and x_cnhw (C, N, H, W), channel-major -> grad_weight (F, C, 3, 3), tap-major: by
    `weight_gradient` where it pays, by shifted outer products elsewhere (``grad_rows``: from `grad_layout`)."""
    f, c, kh, kw = weight_shape
    if not weight_gradient_pays(c, f, x_cnhw.shape[2:]):
        return shifted_conv.backward_weight(grad_cnhw, x_cnhw, grid, weight_shape, grad_rows)
    grad_weight = weight_gradient(grad_cnhw, x_cnhw, _tile_rows(grad_rows))
    return grad_weight.reshape(kh, kw, f, c).transpose(2, 3, 0, 1)


def forward(x_cnhw, taps, grid):
    """x_cnhw (C, N, H, W), taps (9, F, C) from `shifted_conv.weight_taps` -> out (F, N, out_h, out_w), contiguous:
    the "same" convolution (out_h, out_w = H, W), or the "valid" one (H - 2, W - 2; inference only, see `supports`):
    the interior of the "same" one, whose border ring is computed and dropped (on Inception-v3's 73x73 map, 5% more
    tiles for 2.25x fewer multiply-adds than the shifted products'). (By shifted products where Winograd does not
    pay, see `pays`.)"""
    _, f, c = taps.shape
    if not pays(c, f):
        return shifted_conv.forward(x_cnhw, taps, grid)
    out, finite = convolve_checked(x_cnhw, transform_weight(taps))
    # an inf (or a value near float32's max) in a tile's patch makes its transforms inf - inf = NaN: where a value
    # came out non-finite, the shifted products give the convolution's own infinities
    if not finite:
        return shifted_conv.forward(x_cnhw, taps, grid)
    if (grid.out_h, grid.out_w) != out.shape[2:]:  # "valid": the interior
        return np.ascontiguousarray(out[:, :, 1:-1, 1:-1])
    return out


def backward_input(grad_cnhw, taps, grid, x_shape, grad_rows=None):
    """grad_output (F, N, H, W) channel-major, taps (9, F, C) -> grad_input (C, N, H, W): the "same" convolution of
    the gradient with the flipped, channel-swapped kernel; by shifted products (on ``grad_rows`` when given) where
    Winograd from F to C channels does not pay."""
    _, f, c = taps.shape
    if not pays(f, c):
        return shifted_conv.backward_input(grad_cnhw, taps, grid, x_shape, grad_rows)
    grad_x, finite = convolve_checked(grad_cnhw, transform_weight(flipped_taps(taps)), _tile_rows(grad_rows))
    if finite:
        return grad_x
    return shifted_conv.backward_input(grad_cnhw, taps, grid, x_shape)  # a non-finite gradient, as in `forward`


# B^T has two nonzero entries per row: row a combines patch rows (or columns) PAIRS[a] as  first + SIGNS[a] * second.
# The signs (and A_ROWS below) are float32, so a float32 input's transforms add in float32 (a float64 sign turned
# every sum into float64, with a conversion each way: the input transform took 0.089 ms instead of 0.063 at 16->32);
# a float64 input's stay float64 (the signs are exact either way).
PAIRS = np.array([[0, 2], [1, 2], [2, 1], [1, 3]], dtype=np.int64)
SIGNS = np.array([-1.0, 1.0, -1.0, -1.0], dtype=np.float32)


@njit(cache=True)
def _input_transform(row, block, pitch, images, ty, tx0, columns, v, c):
    """v[:, c, :columns] = B^T d B for the patches of tile row ty, tile columns tx0, tx0 + 1, ...: patch value
    (i, j) of tile column tx, image n sits in the input phase grid at
    ``(j % 2)*block + ((2ty + i)*pitch + j // 2 + tx)*N + n``, so over the block's (tx, n) it is one contiguous run
    of ``columns`` values. Row a of V = (B^T d) B is one loop over these columns: it reads the two patch rows that
    row a of B^T combines at the 4 patch columns (8 runs), and writes the 4 values of V's row a (LLVM runs it as
    vector lanes; indices are unsigned, so Numba emits no negative-index wraparound that would stop that)."""
    odd, next_column = np.uint64(block), np.uint64(images)  # patch columns 0, 1, 2, 3 at +0, +odd, +next, +odd+next
    for a in range(4):
        sign = SIGNS[a]
        top = np.uint64(((2 * ty + PAIRS[a, 0]) * pitch + tx0) * images)
        bottom = np.uint64(((2 * ty + PAIRS[a, 1]) * pitch + tx0) * images)
        v0, v1, v2, v3 = v[4 * a, c], v[4 * a + 1, c], v[4 * a + 2, c], v[4 * a + 3, c]
        for q in range(columns):
            k = np.uint64(q)
            d0 = row[top + k] + sign * row[bottom + k]  # (B^T d)[a, j] for the 4 patch columns j
            d1 = row[top + odd + k] + sign * row[bottom + odd + k]
            d2 = row[top + next_column + k] + sign * row[bottom + next_column + k]
            d3 = row[top + odd + next_column + k] + sign * row[bottom + odd + next_column + k]
            v0[k] = d0 - d2  # times B: the same pairs along the columns
            v1[k] = d1 + d2
            v2[k] = d2 - d1
            v3[k] = d1 - d3


@njit(cache=True)
def _row_pass(m, f, s, columns):
    """s (8, columns) = A^T M for filter f: rows 0-3 the sum of M's rows 0-2, rows 4-7 row 1 minus rows 2 and 3
    (per column j of the 4x4 tile), from m[:, f, :columns]. Returns True when a value of s is NaN or infinite
    (``v - v`` is 0 only for a finite v; an OR over the lanes, so the loop stays vectorised): every value of M
    enters s, so an inf or NaN that the transforms made shows here."""
    not_finite = False
    for j in range(4):
        upper, lower = s[j], s[4 + j]
        m0, m1, m2, m3 = m[j, f], m[4 + j, f], m[8 + j, f], m[12 + j, f]
        for q in range(columns):
            top = m0[q] + m1[q] + m2[q]
            bottom = m1[q] - m2[q] - m3[q]
            upper[q] = top
            lower[q] = bottom
            not_finite |= (top - top != 0) | (bottom - bottom != 0)
    return not_finite


@njit(cache=True)
def _output_transform(m, f, s, row, block, pitch, images, ty, tx0, columns):
    """The 2x2 output tiles A^T M A of filter f for the block's (tx, n), from m[:, f, :columns], written into the
    output phase grid ``row``: output (2ty + a, 2tx + b) of image n at ``b*block + ((2ty + a)*pitch + tx)*N + n``
    (contiguous over the block's (tx, n) again). s (8, columns): the row pass A^T M. Returns its finiteness flag."""
    not_finite = _row_pass(m, f, s, columns)
    for a in range(2):
        s0, s1, s2, s3 = s[4 * a], s[4 * a + 1], s[4 * a + 2], s[4 * a + 3]
        even = np.uint64(((2 * ty + a) * pitch + tx0) * images)
        odd = even + np.uint64(block)
        for q in range(columns):
            k = np.uint64(q)
            row[even + k] = s0[q] + s1[q] + s2[q]
            row[odd + k] = s1[q] - s2[q] - s3[q]
    return not_finite


@njit(cache=True)
def _output_transform_in_place(m, f, s, plane, ty, tx0, columns):
    """As `_output_transform`, but the 2x2 tiles go straight to their places in plane (N, H, W), cropped at the
    map's edge: each image's pixels N planes apart (scattered stores, no second pass over the output; LLVM turns
    the loop over the images into scatter instructions, which cost per value stored: where the map's width is even
    and the values are float32, `_store_pairs` stores the two outputs of a tile row together)."""
    images, h, w = plane.shape
    not_finite = _row_pass(m, f, s, columns)
    if w % 2 == 0 and plane.itemsize == 4 and PAIRS_FIT:
        _store_pairs(s, plane, ty, tx0, columns)
        return not_finite
    for a in range(min(2, h - 2 * ty)):
        y = 2 * ty + a
        s0, s1, s2, s3 = s[4 * a], s[4 * a + 1], s[4 * a + 2], s[4 * a + 3]
        for t in range(columns // images):
            x = 2 * (tx0 + t)
            first = t * images
            for n in range(images):
                plane[n, y, x] = s0[first + n] + s1[first + n] + s2[first + n]
            if x + 1 < w:
                for n in range(images):
                    plane[n, y, x + 1] = s1[first + n] - s2[first + n] - s3[first + n]
    return not_finite


@njit(cache=True)
def _store_pairs(s, plane, ty, tx0, columns):
    """The column pass of `_output_transform_in_place` for float32 on a map of even width: a tile's two outputs in
    a row, (y, 2tx) and (y, 2tx + 1), are neighbours, so they go out as one 8-byte value (`pairs.pack`) through a
    uint64 view of plane (N, H, W/2): half as many scattered stores."""
    images, h, _ = plane.shape
    pairs = plane.view(np.uint64)
    for a in range(min(2, h - 2 * ty)):
        y = 2 * ty + a
        s0, s1, s2, s3 = s[4 * a], s[4 * a + 1], s[4 * a + 2], s[4 * a + 3]
        for t in range(columns // images):
            first = t * images
            for n in range(images):
                q = first + n
                pairs[n, y, tx0 + t] = pack(s0[q] + s1[q] + s2[q], s1[q] - s2[q] - s3[q])


@njit(parallel=True, cache=True)
def _winograd(itemsize, x_rows, in_block, in_pitch, u, ld_u, out_rows, out_block, out_pitch, tiles_h, tiles_w,
              per_block, images, v_all, m_all, s_all, out, in_place, not_finite):
    """Every thread: its share of the blocks (``per_block`` tile columns of one tile row); per block the input
    transform into v, the 16 products into m, the output transform into out_rows, or with ``in_place`` straight
    into out (F, N, H, W) (see the module docstring). not_finite[thread]: set when its row passes met NaN or inf."""
    channels, filters = x_rows.shape[0], out.shape[0]
    blocks_per_row = -(-tiles_w // per_block)
    threads = v_all.shape[0]
    for part in prange(threads):
        v, m, s = v_all[part], m_all[part], s_all[part]
        flag = False
        first, count = _block(part, threads, tiles_h * blocks_per_row)
        for b in range(first, first + count):
            ty, tx0 = b // blocks_per_row, (b % blocks_per_row) * per_block
            columns = (min(tx0 + per_block, tiles_w) - tx0) * images
            for c in range(channels):  # V = B^T d B
                _input_transform(x_rows[c], in_block, in_pitch, images, ty, tx0, columns, v, c)
            for k in range(16):  # M_k (F, columns) = U_k (F, C) @ V_k (C, columns)
                _gemm(itemsize, blas.NO_TRANS, blas.NO_TRANS, filters, columns, channels,
                      u + k * filters * ld_u * itemsize, ld_u, v[k].ctypes.data, v.shape[2], 0.0,
                      m[k].ctypes.data, m.shape[2])
            for f in range(filters):  # out_tile = A^T M A
                if in_place:
                    flag |= _output_transform_in_place(m, f, s, out[f], ty, tx0, columns)
                else:
                    flag |= _output_transform(m, f, s, out_rows[f], out_block, out_pitch, images, ty, tx0, columns)
        not_finite[part] = flag


_winograd_serial = serial_twin(_winograd)  # small convolutions: one block, no parallel region


# --- the weight gradient: dU_k = dM_k @ V_kᵀ summed over the tiles, then dW = Gᵀ dU G ------------------------------
# A = (A^T)^T, row i: the combination of the two tile rows (or columns) that gives dM's row i (column i)
A_ROWS = np.array([[1.0, 0.0], [1.0, 1.0], [1.0, -1.0], [0.0, -1.0]], dtype=np.float32)


@njit(cache=True)
def _gradient_transform(row, block, pitch, images, ty, tx0, columns, dm, f):
    """dm[:, f, :columns] = A dY Aᵀ (the adjoint of the output transform) for the 2x2 gradient tiles of filter f,
    read from ``row``, the output gradient in the (padded) input grid of `tile_grids`, as the input gradient's
    convolution reads it: output (y, x) is padded pixel (y + 1, x + 1), so a tile's left column (x = 2tx) sits in
    the odd phase at tx, its right column in the even phase at tx + 1 (zeros past the map's edge). Row i of dM is
    one loop over the columns: it combines the tile's two rows (A's row i) in its left and right column (4 runs
    read), then writes the row's 4 values (A's rows again: left, left + right, left - right, -right); LLVM runs it
    as vector lanes."""
    left = np.uint64(block + ((2 * ty + 1) * pitch + tx0) * images)
    right = np.uint64(((2 * ty + 1) * pitch + tx0 + 1) * images)
    below = np.uint64(pitch * images)
    for i in range(4):
        a0, a1 = A_ROWS[i, 0], A_ROWS[i, 1]
        d0, d1, d2, d3 = dm[4 * i, f], dm[4 * i + 1, f], dm[4 * i + 2, f], dm[4 * i + 3, f]
        for q in range(columns):
            k = np.uint64(q)
            in_left = a0 * row[left + k] + a1 * row[left + below + k]  # (A dY)[i, left and right column]
            in_right = a0 * row[right + k] + a1 * row[right + below + k]
            d0[k] = in_left  # times Aᵀ
            d1[k] = in_left + in_right
            d2[k] = in_left - in_right
            d3[k] = -in_right


@njit(parallel=True, cache=True)
def _winograd_weight_grad(itemsize, x_rows, grad_rows, block, pitch, tiles_h, tiles_w, per_block, images, v_all,
                          dm_all, partial):
    """partial[thread] (16, F, C) = sum over the thread's blocks of dM_k (F, columns) @ V_k (C, columns)ᵀ."""
    channels, filters = x_rows.shape[0], grad_rows.shape[0]
    blocks_per_row = -(-tiles_w // per_block)
    threads = v_all.shape[0]
    for part in prange(threads):
        v, dm = v_all[part], dm_all[part]
        partial[part] = 0
        first, count = _block(part, threads, tiles_h * blocks_per_row)
        for b in range(first, first + count):
            ty, tx0 = b // blocks_per_row, (b % blocks_per_row) * per_block
            columns = (min(tx0 + per_block, tiles_w) - tx0) * images
            for c in range(channels):
                _input_transform(x_rows[c], block, pitch, images, ty, tx0, columns, v, c)
            for f in range(filters):
                _gradient_transform(grad_rows[f], block, pitch, images, ty, tx0, columns, dm, f)
            for k in range(16):  # dU_k (F, C) += dM_k (F, columns) @ V_k (C, columns)ᵀ
                _gemm(itemsize, blas.NO_TRANS, blas.TRANS, filters, channels, columns, dm[k].ctypes.data,
                      dm.shape[2], v[k].ctypes.data, v.shape[2], 1.0, partial[part, k].ctypes.data, channels)


_winograd_weight_grad_serial = serial_twin(_winograd_weight_grad)


WEIGHT_GRAD_COLUMNS = 1024  # columns of the dM and V blocks: longer inner dimensions for the dU products


def weight_gradient_pays(channels, out_channels, size):
    """Where Winograd's weight gradient beats the shifted outer products (measured on 2 cores, batch 32): from 64
    channels on maps of 6 or more (0.69-0.87x their time on maps of 7 to 35), from 16 channels on maps of 8 or
    more, where it shares the output gradient's layout with Winograd's input gradient (`grad_layout`; forward and
    backward of a 16->32 convolution at 28x28 0.87x the time with the register-blocked outer products, 16->64 at
    14x14 0.79x, 32->48 at 17x17 0.97x; 32->32 at 7x7 1.04x). Not on 4x4 maps, where a 2x2 block of tiles is
    mostly padding."""
    smallest = min(channels, out_channels)
    return min(size) >= 6 if smallest >= 64 else smallest >= 16 and min(size) >= 8


def weight_gradient(grad_cnhw, x_cnhw, grad_rows=None):
    """grad_output (F, N, H, W) and x (C, N, H, W), channel-major -> the weight gradient's taps (9, F, C):
    dU (16, F, C) summed over the tiles, then the adjoint of `transform_weight`, kron(G, G)ᵀ @ dU. grad_rows: the
    output gradient already in the input grid of `tile_grids` (`TileGrad`), or None."""
    c, n, h, w = x_cnhw.shape
    f = grad_cnhw.shape[0]
    if n == 0:  # an empty batch adds nothing
        return np.zeros((9, f, c), dtype=x_cnhw.dtype)
    in_grid, _, tiles_h, tiles_w = tile_grids(x_cnhw.shape)
    x_rows = strided_conv.to_phase_grid(x_cnhw, in_grid, "winograd_input")
    if grad_rows is None:
        grad_rows = strided_conv.to_phase_grid(grad_cnhw, in_grid, "winograd_grad")
    per_block = max(1, min(tiles_w, WEIGHT_GRAD_COLUMNS // n))
    threads = max(1, min(numba_threads(), tiles_h * -(-tiles_w // per_block)))
    columns = per_block * n
    v = workspace.scratch("winograd_v", (threads, 16, c, columns), x_cnhw.dtype)
    dm = workspace.scratch("winograd_m", (threads, 16, f, columns), x_cnhw.dtype)
    partial = np.empty((threads, 16, f, c), dtype=x_cnhw.dtype)
    threaded_blas.keep_openblas_on_one_thread()
    kernel = _winograd_weight_grad if threads > 1 else _winograd_weight_grad_serial
    with section("winograd"):
        kernel(x_rows.itemsize, x_rows, grad_rows, in_grid.block, in_grid.pitch, tiles_h, tiles_w, per_block, n, v, dm,
               partial)
    grad_u = partial.sum(axis=0).reshape(16, f * c)
    return (KRON_G[x_cnhw.dtype].T @ grad_u).reshape(9, f, c)
