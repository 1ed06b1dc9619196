"""A strided convolution as shifted matrix products too: split the input into stride x stride phase images.

`tinyinception.kernels.shifted_conv` turns a stride-1 convolution into kh*kw shifted 1x1 products. With stride 2
the outputs read every other input pixel, which no shifted view of a flat row can express. But split the padded
input into its sh*sw "phases" (phase (a, b) holds the pixels at rows a, a + sh, ... and columns b, b + sw, ...),

    phase[a, b][u, v] = x_padded[u*sh + a, v*sw + b],

and output (y, x)'s tap (i, j) reads x_padded[y*sh + i*dh, x*sw + j*dw] = phase[a, b][y + i*dh // sh, x + j*dw // sw]
with (a, b) = (i*dh % sh, j*dw % sw): an unstrided, shifted read of ONE phase image. Each channel's row holds its
sh*sw phase images one after another (each a block of phase_h x phase_w pixels with the N images' values of a
pixel side by side, as in `tinyinception.kernels.shifted_conv`; phase_h = ceil((H + 2ph) / sh)), so tap (i, j)
reads at ``anchor + offset`` with ``offset = phase*block + ((i*dh // sh)*phase_w + j*dw // sw)*N``, and the same
sum of shifted products as for stride 1 computes the convolution at the anchors of the first out_h rows (padding
is stored as zeros here: the phase split copies the input once anyway). A 3x3 stride-2 kernel splits as
4 + 2 + 2 + 1 taps over the 4 phases.

Backward: the weight gradient is the same sum of outer products; the input gradient is computed phase by phase,
each phase summing only its own taps, then put back in place (every input pixel lies in exactly one phase).
im2col (`tinyinception.kernels.im2col`) is the definition these are tested against.
"""
import functools
from typing import NamedTuple

import numpy as np

from . import pairs, workspace
from ._numba import njit, prange, threaded_when_large
from .shifted_conv import from_grid, shifted_outer_products, sum_of_shifted_products, to_grid


class PhaseLayout(NamedTuple):
    """Only the layout of a phase grid, for a caller with taps of its own (`tinyinception.kernels.winograd`): what
    `to_phase_grid` and `from_phase_grid` read, the same fields as `PhaseGrid`'s."""

    stride: tuple  # (sh, sw)
    padding: tuple  # (ph, pw), stored as zeros
    rows: int
    pitch: int
    images: int
    block: int  # rows * pitch * images
    after: int = 0  # zeros after the last phase block

    @property
    def phases(self):
        return self.stride[0] * self.stride[1]


class PhaseGrid(NamedTuple):
    """Geometry of the phase layout of an (N, C, H, W) input for one strided convolution: pixel (u, v) of a phase
    image of image n sits at ``phase * block + (u*pitch + v)*images + n`` (the batch innermost, as in
    `tinyinception.kernels.shifted_conv.Grid`, whose layout functions read these fields too)."""

    stride: tuple  # (sh, sw): sh*sw phase images per channel
    padding: tuple  # (ph, pw), stored as zeros
    rows: int  # phase_h = ceil((H + 2ph) / sh): rows of every phase image
    pitch: int  # phase_w = ceil((W + 2pw) / sw): values (pixels) per row
    images: int  # N
    block: int  # rows * pitch * images: one phase image of the whole batch
    anchors: int  # out_h * pitch * images: outputs are computed at these positions (the first out_h rows)
    offsets: tuple  # per tap (i, j), row-major: phase * block + shift
    tap_phases: tuple  # per tap: which phase it reads
    shifts: tuple  # per tap: where it reads inside its phase, relative to the anchor
    out_h: int
    out_w: int
    transposed: bool = False  # rows run along y (for the shared layout functions)

    @property
    def phases(self):
        return self.stride[0] * self.stride[1]

    @property
    def after(self):
        """Zeros needed after the last phase block so that the last anchors' taps stay inside the buffer."""
        return max(self.shifts)


def supports(kernel_size, stride, channels):
    """Strided convolutions with at least 16 input channels (below that each product's inner dimension, the
    channel count, is too short for BLAS to run well, and im2col's C*kh*kw is better)."""
    return stride != (1, 1) and kernel_size != (1, 1) and channels >= 16


@functools.lru_cache(maxsize=1024)
def grid_geometry(x_shape, kernel_size, stride, padding, dilation):
    """The `PhaseGrid` of a strided convolution of an input of ``x_shape`` (N, C, H, W) (remembered, as
    `shifted_conv.grid_geometry`)."""
    n, _, h, w = x_shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    rows, pitch = -(-(h + 2 * ph) // sh), -(-(w + 2 * pw) // sw)
    block = rows * pitch * n
    out_h = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    out_w = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    tap_phases, shifts = [], []
    for i in range(kh):
        for j in range(kw):
            tap_phases.append((i * dh % sh) * sw + j * dw % sw)
            shifts.append(((i * dh // sh) * pitch + j * dw // sw) * n)
    offsets = tuple(phase * block + shift for phase, shift in zip(tap_phases, shifts))
    return PhaseGrid((sh, sw), (ph, pw), rows, pitch, n, block, out_h * pitch * n, offsets, tuple(tap_phases),
                     tuple(shifts), out_h, out_w)


# --- the layout: (C, N, H, W) planes <-> phase rows ---------------------------------------------------------------
def to_phase_grid_numpy(planes, grid):
    """planes (C, N, H, W) -> rows (C, phases*block + after): phase (a, b) of every image, zeros in the padding."""
    c, n, h, w = planes.shape
    (sh, sw), (ph, pw) = grid.stride, grid.padding
    padded = np.zeros((c, n, grid.rows * sh, grid.pitch * sw), dtype=planes.dtype)
    padded[:, :, ph:ph + h, pw:pw + w] = planes
    rows = np.zeros((c, grid.phases * grid.block + grid.after), dtype=planes.dtype)
    for a in range(sh):
        for b in range(sw):
            phase = (a * sw + b) * grid.block
            rows[:, phase:phase + grid.block] = padded[:, :, a::sh, b::sw].transpose(0, 2, 3, 1).reshape(c, -1)
    return rows


@njit(cache=True)
def _column_offsets(w, sw, pw, block, images):
    """Where column x of a plane goes in its channel's phase row: its phase block plus its column (N values each)."""
    column_at = np.empty(w, dtype=np.int64)
    for x in range(w):
        column_at[x] = ((x + pw) % sw) * block + ((x + pw) // sw) * images
    return column_at


@threaded_when_large
@njit(parallel=True, cache=True)
def _to_phase_grid(planes, rows, sh, sw, ph, pw, grid_rows, pitch):
    """Each channel's row zeroed, then each plane row y copied in order into its phase row (the places of the
    columns worked out once, `_column_offsets`, so no division is left in the inner loop). Images n and n + 1 of a
    pixel are neighbours in the row: for float32 and an even batch they go out together (`pairs.copy_row`)."""
    channels, images, h, w = planes.shape
    block = grid_rows * pitch * images
    column_at = _column_offsets(w, sw, pw, block, images)
    zero = planes.dtype.type(0)
    in_pairs = pairs.fit(rows, images)
    for c in prange(channels):
        rows[c, :] = zero
        for y in range(h):
            row_at = ((y + ph) % sh) * sw * block + ((y + ph) // sh) * pitch * images
            if in_pairs:
                pairs.copy_row(planes[c], y, rows[c], row_at, column_at)
                continue
            for n in range(images):
                for x in range(w):
                    rows[c, row_at + column_at[x] + n] = planes[c, n, y, x]


@threaded_when_large
@njit(parallel=True, cache=True)
def _from_phase_grid(rows, planes, sh, sw, ph, pw, grid_rows, pitch):
    """Row y of every plane read from its phase rows (the inverse walk of `_to_phase_grid`)."""
    channels, images, h, w = planes.shape
    block = grid_rows * pitch * images
    column_at = _column_offsets(w, sw, pw, block, images)
    for c in prange(channels):
        for y in range(h):
            row_at = ((y + ph) % sh) * sw * block + ((y + ph) // sh) * pitch * images
            for n in range(images):
                for x in range(w):
                    planes[c, n, y, x] = rows[c, row_at + column_at[x] + n]


def to_phase_grid(planes, grid, scratch_name):
    """Numba version of `to_phase_grid_numpy`, into the reusable buffer ``scratch_name`` (grid: a `PhaseGrid` or a
    `PhaseLayout`)."""
    rows = workspace.scratch_rows(scratch_name, planes.shape[0], grid.phases * grid.block + grid.after, planes.dtype)
    _to_phase_grid(np.ascontiguousarray(planes), rows, *grid.stride, *grid.padding, grid.rows, grid.pitch)
    return rows


def from_phase_grid(rows, grid, x_shape, out=None):
    """The input pixels of ``rows`` (C, phases*block ...) back in place: (C, N, H, W), contiguous (into ``out``
    when given)."""
    n, c, h, w = x_shape
    planes = np.empty((c, n, h, w), dtype=rows.dtype) if out is None else out
    _from_phase_grid(rows, planes, *grid.stride, *grid.padding, grid.rows, grid.pitch)
    return planes


# --- the products: the same interface as shifted_conv ------------------------------------------------------------
def forward(x_cnhw, taps, grid):
    """x_cnhw (C, N, H, W), taps (kh*kw, F, C) -> out (F, N, out_h, out_w), contiguous."""
    x_rows = to_phase_grid(x_cnhw, grid, "conv_input_grid")
    out_rows = workspace.scratch_rows("conv_output_grid", taps.shape[1], grid.anchors, x_cnhw.dtype)
    sum_of_shifted_products(taps, x_rows, 0, grid.offsets, out_rows[:, :grid.anchors])
    return from_grid(out_rows, grid, 0, grid.out_h, grid.out_w)


def grad_to_grid(grad_cnhw, grid):
    """grad_output (F, N, out_h, out_w) -> rows (F, after + block), zero off the real outputs (backward reads it at
    every position of a phase block, minus a shift)."""
    return to_grid(grad_cnhw, grid, grid.after, grid.block - grid.anchors, "conv_grad_grid")


def backward_input(grad_cnhw, taps, grid, x_shape, grad_rows=None):
    """grad_output (F, N, out_h, out_w) channel-major, taps (kh*kw, F, C) -> grad_input (C, N, H, W): phase by phase,
    each the sum of its own taps' products read at ``anchor - shift``. grad_rows: the gradient already laid out by
    `grad_to_grid` (the weight gradient's), or None."""
    if grad_rows is None:
        grad_rows = grad_to_grid(grad_cnhw, grid)
    channels = taps.shape[2]
    grad_phases = workspace.scratch_rows("conv_output_grid", channels, grid.phases * grid.block, grad_rows.dtype)
    for phase in range(grid.phases):
        out_rows = grad_phases[:, phase * grid.block:(phase + 1) * grid.block]
        own = [t for t, tap_phase in enumerate(grid.tap_phases) if tap_phase == phase]
        if not own:  # a kernel smaller than the stride never reads this phase
            out_rows[...] = 0
            continue
        sum_of_shifted_products(taps[own].transpose(0, 2, 1), grad_rows, grid.after,
                                [-grid.shifts[t] for t in own], out_rows)
    return from_phase_grid(grad_phases, grid, x_shape)


def grad_layout(grad_cnhw, grid, weight_shape, needs_input_grad):
    """The output gradient laid out for backward (`grad_to_grid`), made once for both gradients."""
    return grad_to_grid(grad_cnhw, grid)


def backward_weight(grad_cnhw, x_cnhw, grid, weight_shape, grad_rows=None):
    """grad_output (F, N, out_h, out_w) and x_cnhw (C, N, H, W), channel-major -> grad_weight (F, C, kh, kw),
    tap-major. grad_rows: the gradient already laid out by `grad_to_grid`, or None."""
    if grad_rows is None:
        grad_rows = grad_to_grid(grad_cnhw, grid)
    f, c, kh, kw = weight_shape
    x_rows = to_phase_grid(x_cnhw, grid, "conv_input_grid")
    grad_taps = np.empty((kh * kw, f, c), dtype=grad_rows.dtype)
    shifted_outer_products(grad_rows, grid.after, x_rows, 0, grid.offsets, grid.anchors, grad_taps)
    return grad_taps.reshape(kh, kw, f, c).transpose(2, 3, 0, 1)
