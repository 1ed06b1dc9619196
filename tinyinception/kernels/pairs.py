"""Two float32 values in one 8-byte store: halving the scattered stores of a transposing copy.

The layouts of the convolutions keep the N images' values of a pixel side by side, while NumPy's (C, N, H, W) keeps
each image's pixels side by side, so moving data between the two is a transposition: one side is read or written N
values apart. LLVM turns such a loop into scatter instructions, whose cost grows with the number of values they
store. Where two values that land next to each other can be computed in the same loop (two neighbouring images of a
pixel, the two outputs of a Winograd tile row), one uint64 store can carry both: ``pack(first, second)`` puts
``first`` in the low half, which is the lower address on a little-endian machine (x86-64, ARM64), so writing it
through a uint64 view of a float32 array stores the two values in order. `copy_row` is the paired copy both grid
layouts use (`shifted_conv.to_grid`, `strided_conv.to_phase_grid`), where `fit` says it applies; callers fall back
to value-by-value stores elsewhere.

Measured on 2 cores: the Winograd output transform 12% faster (a whole 16->32 convolution at 28x28: 0.69 -> 0.61
ms), the grid copies of the shifted and strided convolutions 17-26% faster. (Reading pairs back the same way, in the
inverse copies, measured 1-6% faster: not done.)
"""
import sys

import numpy as np

from ._numba import njit

PAIRS_FIT = sys.byteorder == "little"  # the packing below assumes the low half is stored first
_HIGH = np.uint64(32)


@njit(cache=True, inline="always")
def pack(first, second):
    """Two float32 values (or values rounded to float32) as one uint64: first in the low 32 bits."""
    low = np.uint64(np.float32(first).view(np.uint32))
    high = np.uint64(np.float32(second).view(np.uint32))
    return low | (high << _HIGH)


@njit(cache=True)
def fit(rows, images):
    """True when a copy of ``images`` images' values into rows (R, L) can store them in pairs: float32, an even batch,
    every row viewable as uint64 pairs (an even length, rows 8 bytes apart: the scratch rows of
    `workspace.scratch_rows` always are), on a little-endian machine."""
    return (PAIRS_FIT and rows.itemsize == 4 and images % 2 == 0 and rows.shape[1] % 2 == 0
            and rows.strides[0] % 8 == 0)


@njit(cache=True)
def copy_row(planes, y, row, row_at, column_at):
    """Row y of planes (N, H, W) into row, pixel x of image n at ``row_at + column_at[x] + n`` (offsets even, N
    even): images n and n + 1 of a pixel as one 8-byte store through a uint64 view of the row, half the scattered
    stores of a value-by-value copy."""
    images, _, w = planes.shape
    row_pairs = row.view(np.uint64)
    for n in range(0, images, 2):
        first, second = planes[n, y], planes[n + 1, y]
        for x in range(w):
            row_pairs[(row_at + column_at[x] + n) >> 1] = pack(first[x], second[x])
