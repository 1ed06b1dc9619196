"""Every CUDA source string the CuPy kernels compile, by kernel family.

Each source is complete (it compiles on its own with ``nvcc -ptx``) and holds the float and the
double version of every kernel in its family. Batch norm has no entry: its CuPy path is
built from CuPy's own reductions and elementwise kernels.
"""
from .im2col import CUDA_SOURCE as IM2COL_SOURCE
from .pooling import CUDA_SOURCE as POOLING_SOURCE


def all_cuda_sources():
    """``{family: source}`` for every family with hand-written CUDA kernels."""
    return {"im2col": IM2COL_SOURCE, "pooling": POOLING_SOURCE}
