"""Window geometry shared by the Numba kernels (compiled helpers, inlined by LLVM)."""
from ._numba import njit


@njit(cache=True)
def inside_range(offset, stride, size, out):
    """Output indices ``o`` in ``[lo, hi)`` with ``0 <= o*stride - offset < size``, clipped to
    ``[0, out)``: the outputs whose tap at ``o*stride - offset`` reads a real pixel."""
    lo = 0 if offset <= 0 else (offset + stride - 1) // stride
    hi = (size + offset + stride - 1) // stride
    lo = min(lo, out)
    hi = max(lo, min(hi, out))
    return lo, hi
