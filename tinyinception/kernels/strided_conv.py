"""A strided convolution as shifted matrix products too: split the input into stride x stride phase images.

`tinyinception.kernels.shifted_conv` turns a stride-1 convolution into kh*kw shifted 1x1 products. With stride 2
the outputs read every other input pixel, which no shifted view of a flat row can express. But split the padded
input into its sh*sw "phases" (phase (a, b) holds the pixels at rows a, a + sh, ... and columns b, b + sw, ...),

    phase[a, b][u, v] = x_padded[u*sh + a, v*sw + b],

and output (y, x)'s tap (i, j) reads x_padded[y*sh + i*dh, x*sw + j*dw] = phase[a, b][y + i*dh // sh, x + j*dw // sw]
with (a, b) = (i*dh % sh, j*dw % sw): an unstrided, shifted read of ONE phase image. Each channel's row holds its
sh*sw phase images one after another (each a (N, phase_h, phase_w) block with phase_h = ceil((H + 2ph) / sh)),
so tap (i, j) reads at ``anchor + offset`` with ``offset = phase*block + (i*dh // sh)*phase_w + j*dw // sw``, and
the same sum of shifted products as for stride 1 computes the convolution (padding is stored as zeros here: the
phase split copies the input once anyway). A 3x3 stride-2 kernel splits as 4 + 2 + 2 + 1 taps over the 4 phases.

Backward: the weight gradient is the same sum of outer products; the input gradient is computed phase by phase,
each phase summing only its own taps, then put back in place (every input pixel lies in exactly one phase).
im2col (`tinyinception.kernels.im2col`) is the definition these are tested against.
"""
from typing import NamedTuple

import numpy as np

from . import workspace
from ._numba import njit, prange, threaded_when_large
from .shifted_conv import from_grid, shifted_outer_products, sum_of_shifted_products, to_grid


class PhaseGrid(NamedTuple):
    """Geometry of the phase layout of an (N, C, H, W) input for one strided convolution."""

    stride: tuple  # (sh, sw): sh*sw phase images per channel
    padding: tuple  # (ph, pw), stored as zeros
    pitch_h: int  # phase_h = ceil((H + 2ph) / sh): rows of every phase image
    pitch_w: int  # phase_w = ceil((W + 2pw) / sw)
    anchors: int  # N * phase_h * phase_w: one phase block; outputs are computed at these positions
    offsets: tuple  # per tap (i, j), row-major: phase * anchors + shift
    tap_phases: tuple  # per tap: which phase it reads
    shifts: tuple  # per tap: where it reads inside its phase, relative to the anchor
    out_h: int
    out_w: int

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


def grid_geometry(x_shape, kernel_size, stride, padding, dilation):
    n, _, h, w = x_shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    pitch_h, pitch_w = -(-(h + 2 * ph) // sh), -(-(w + 2 * pw) // sw)
    anchors = n * pitch_h * pitch_w
    tap_phases, shifts = [], []
    for i in range(kh):
        for j in range(kw):
            tap_phases.append((i * dh % sh) * sw + j * dw % sw)
            shifts.append((i * dh // sh) * pitch_w + j * dw // sw)
    offsets = tuple(phase * anchors + shift for phase, shift in zip(tap_phases, shifts))
    out_h = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    out_w = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    return PhaseGrid((sh, sw), (ph, pw), pitch_h, pitch_w, anchors, offsets, tuple(tap_phases), tuple(shifts),
                     out_h, out_w)


# --- the layout: (C, N, H, W) planes <-> phase rows ---------------------------------------------------------------
def to_phase_grid_numpy(planes, grid):
    """planes (C, N, H, W) -> rows (C, phases*anchors + after): phase (a, b) of every image, zeros in the padding."""
    c, n, h, w = planes.shape
    (sh, sw), (ph, pw) = grid.stride, grid.padding
    padded = np.zeros((c, n, grid.pitch_h * sh, grid.pitch_w * sw), dtype=planes.dtype)
    padded[:, :, ph:ph + h, pw:pw + w] = planes
    rows = np.zeros((c, grid.phases * grid.anchors + grid.after), dtype=planes.dtype)
    for a in range(sh):
        for b in range(sw):
            phase = (a * sw + b) * grid.anchors
            rows[:, phase:phase + grid.anchors] = padded[:, :, a::sh, b::sw].reshape(c, -1)
    return rows


@threaded_when_large
@njit(parallel=True, cache=True)
def _to_phase_grid(planes, rows, sh, sw, ph, pw, pitch_h, pitch_w):
    channels, images, h, w = planes.shape
    block = images * pitch_h * pitch_w
    zero = planes.dtype.type(0)
    for c in prange(channels):
        for a in range(sh):
            for b in range(sw):
                phase = (a * sw + b) * block
                for n in range(images):
                    for u in range(pitch_h):
                        y = u * sh + a - ph
                        start = phase + (n * pitch_h + u) * pitch_w
                        for v in range(pitch_w):
                            x = v * sw + b - pw
                            if 0 <= y < h and 0 <= x < w:
                                rows[c, start + v] = planes[c, n, y, x]
                            else:
                                rows[c, start + v] = zero
        for k in range(sh * sw * block, rows.shape[1]):
            rows[c, k] = zero


@threaded_when_large
@njit(parallel=True, cache=True)
def _from_phase_grid(rows, planes, sh, sw, ph, pw, pitch_h, pitch_w):
    channels, images, h, w = planes.shape
    block = images * pitch_h * pitch_w
    for c in prange(channels):
        for n in range(images):
            for y in range(h):
                a, u = (y + ph) % sh, (y + ph) // sh
                for x in range(w):
                    b, v = (x + pw) % sw, (x + pw) // sw
                    planes[c, n, y, x] = rows[c, (a * sw + b) * block + (n * pitch_h + u) * pitch_w + v]


def to_phase_grid(planes, grid, scratch_name):
    """Numba version of `to_phase_grid_numpy`, into the reusable buffer ``scratch_name``."""
    rows = workspace.scratch(scratch_name, (planes.shape[0], grid.phases * grid.anchors + grid.after), planes.dtype)
    _to_phase_grid(np.ascontiguousarray(planes), rows, *grid.stride, *grid.padding, grid.pitch_h, grid.pitch_w)
    return rows


def from_phase_grid(rows, grid, x_shape):
    """The input pixels of ``rows`` (C, phases*anchors ...) back in place: (C, N, H, W), contiguous."""
    n, c, h, w = x_shape
    planes = np.empty((c, n, h, w), dtype=rows.dtype)
    _from_phase_grid(rows, planes, *grid.stride, *grid.padding, grid.pitch_h, grid.pitch_w)
    return planes


# --- the products: the same interface as shifted_conv ------------------------------------------------------------
def forward(x_cnhw, taps, grid):
    """x_cnhw (C, N, H, W), taps (kh*kw, F, C) -> out (F, N, out_h, out_w), contiguous."""
    x_rows = to_phase_grid(x_cnhw, grid, "conv_input_grid")
    out_rows = workspace.scratch("conv_output_grid", (taps.shape[1], grid.anchors), x_cnhw.dtype)
    sum_of_shifted_products(taps, x_rows, 0, grid.offsets, out_rows)
    return from_grid(out_rows, grid, 0, grid.out_h, grid.out_w)


def grad_to_grid(grad_cnhw, grid):
    """grad_output (F, N, out_h, out_w) -> rows (F, after + anchors), zero off the real outputs."""
    return to_grid(grad_cnhw, grid, grid.after, 0, "conv_grad_grid")


def backward_input(grad_rows, taps, grid, x_shape):
    """grad_rows from `grad_to_grid`, taps (kh*kw, F, C) -> grad_input (C, N, H, W): phase by phase, each the sum
    of its own taps' products read at ``anchor - shift``."""
    channels = taps.shape[2]
    grad_phases = workspace.scratch("conv_output_grid", (channels, grid.phases * grid.anchors), grad_rows.dtype)
    for phase in range(grid.phases):
        out_rows = grad_phases[:, phase * grid.anchors:(phase + 1) * grid.anchors]
        own = [t for t, tap_phase in enumerate(grid.tap_phases) if tap_phase == phase]
        if not own:  # a kernel smaller than the stride never reads this phase
            out_rows[...] = 0
            continue
        sum_of_shifted_products([taps[t].T for t in own], grad_rows, grid.after,
                                [-grid.shifts[t] for t in own], out_rows)
    return from_phase_grid(grad_phases, grid, x_shape)


def backward_weight(grad_rows, x_cnhw, grid, weight_shape):
    """grad_rows from `grad_to_grid`, x_cnhw (C, N, H, W) -> grad_weight (F, C, kh, kw), tap-major."""
    f, c, kh, kw = weight_shape
    x_rows = to_phase_grid(x_cnhw, grid, "conv_input_grid")
    grad_taps = np.empty((kh * kw, f, c), dtype=grad_rows.dtype)
    shifted_outer_products(grad_rows, grid.after, x_rows, 0, grid.offsets, grid.anchors, grad_taps)
    return grad_taps.reshape(kh, kw, f, c).transpose(2, 3, 0, 1)
