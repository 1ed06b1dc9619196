"""Compile each CUDA source once per process and launch its kernels (CuPy).

A kernel family's source is a template written once in terms of ``scalar_t``; :func:`render`
writes it out for ``float`` and ``double`` so one source string holds both, with the dtype
name as the suffix of every kernel (``im2col_float``, ``im2col_double``).
"""
import string

import numpy as np

from .. import backend

THREADS_PER_BLOCK = 256
MAX_BLOCKS = 65535  # kernels use grid-stride loops, so any size fits
_CUDA_TYPES = {
    np.dtype(np.float32): ("float", "__int_as_float(0xff800000)"),
    np.dtype(np.float64): ("double", "__longlong_as_double(0xfff0000000000000LL)"),
}
_modules = {}  # family name -> cupy.RawModule, compiled once per process
_functions = {}  # (family name, kernel name) -> cupy function


def render(template):
    """The complete CUDA source: ``template`` for float and for double, one after the other."""
    parts = []
    for scalar_type, negative_infinity in _CUDA_TYPES.values():
        parts.append(
            string.Template(template).substitute(scalar_t=scalar_type, NEG_INF=negative_infinity)
        )
    return "\n".join(parts)


def type_suffix(op, dtype):
    """``"float"`` or ``"double"``: the suffix of the kernel that computes on ``dtype``."""
    try:
        return _CUDA_TYPES[np.dtype(dtype)][0]
    except KeyError:
        raise TypeError(f"{op}: CUDA kernels exist for float32 and float64, got {dtype}") from None


def cuda_function(family, source, name):
    """The compiled kernel ``name`` from ``source``; the module is built on first use only."""
    key = (family, name)
    if key not in _functions:
        if family not in _modules:
            cupy = backend.cupy_module()
            _modules[family] = cupy.RawModule(code=source, options=("--std=c++14",))
        _functions[key] = _modules[family].get_function(name)
    return _functions[key]


def launch(function, total, args):
    """Run ``function`` over ``total`` elements, one thread per element (grid-stride)."""
    if total == 0:
        return
    blocks = min((total + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK, MAX_BLOCKS)
    function((blocks,), (THREADS_PER_BLOCK,), args)


def ints(*values):
    """Kernel integer arguments: every CUDA kernel here takes ``long long`` sizes."""
    return tuple(np.int64(v) for v in values)
