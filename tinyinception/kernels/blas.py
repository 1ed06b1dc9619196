"""The BLAS matrix product NumPy itself uses, called directly: ``out = a @ b + beta * out`` on views.

NumPy's ``@`` always writes a fresh result (or overwrites ``out=``). The shifted-window convolution
(`tinyinception.kernels.shifted_conv`) needs the one thing BLAS's GEMM can do and ``@`` cannot:
*add* a product into an existing result (``beta=1``), so that nine 3x3 taps accumulate in one output
buffer that stays in the CPU cache. GEMM also reads a matrix whose rows are spread through a larger
buffer (its "leading dimension"), so every operand here is a plain NumPy view: a row-major view
``(rows, cols)`` with unit column stride, or the ``.T`` of one (passed to BLAS as "transposed").

The library is the OpenBLAS that NumPy's wheels bundle (``numpy.libs``) or any BLAS (or MKL) already
loaded into this process; it is found once, checked on a small product against NumPy, and used only if
the check passes. When no usable BLAS is found, :func:`available` is False and callers fall back
to NumPy's ``@`` (the convolution then uses im2col). ``TINYINCEPTION_DIRECT_BLAS=0`` turns it off.
"""
import ctypes
import glob
import os

import numpy as np

_ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112

# (single, double) symbol names: NumPy's bundled scipy-openblas (64-bit ints, prefixed and suffixed
# names), OpenBLAS built with 64-bit ints, then the plain CBLAS names.
_SYMBOLS = [("scipy_cblas_sgemm64_", "scipy_cblas_dgemm64_"),
            ("cblas_sgemm64_", "cblas_dgemm64_"),
            ("cblas_sgemm", "cblas_dgemm")]


def _candidate_libraries():
    """Paths of shared libraries that may hold a CBLAS: NumPy's bundled ones, then any loaded BLAS."""
    numpy_libs = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
    paths = sorted(glob.glob(os.path.join(numpy_libs, "*blas*.so*")))
    try:
        with open("/proc/self/maps") as maps:
            loaded = {line.split()[-1] for line in maps if "/" in line}
        paths += sorted(path for path in loaded if ".so" in path and path not in paths
                        and any(name in os.path.basename(path).lower() for name in ("blas", "mkl_rt")))
    except OSError:  # not Linux: only NumPy's bundled library is tried
        pass
    return paths


def _bind(function, real):
    # Integers are passed as 64-bit: right for the 64-bit-int builds, and read correctly (low half)
    # by 32-bit-int builds on x86-64 and arm64 calling conventions; the self-check below confirms it.
    integer, pointer = ctypes.c_int64, ctypes.c_void_p
    function.argtypes = [integer, integer, integer, integer, integer, integer, real, pointer, integer,
                         pointer, integer, real, pointer, integer]
    function.restype = None
    return function


def _load():
    """({dtype: gemm function}, library path) from the first library whose products agree with NumPy's, or
    ({}, None)."""
    if os.environ.get("TINYINCEPTION_DIRECT_BLAS", "1") == "0":
        return {}, None
    for path in _candidate_libraries():
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for single, double in _SYMBOLS:
            if hasattr(library, single) and hasattr(library, double):
                functions = {np.dtype(np.float32): _bind(getattr(library, single), ctypes.c_float),
                             np.dtype(np.float64): _bind(getattr(library, double), ctypes.c_double)}
                if _agrees_with_numpy(functions):
                    return functions, path
    return {}, None


def operand(view, name):
    """(transpose flag, leading dimension) of a 2-D view for BLAS, which needs unit stride along one axis."""
    item = view.itemsize
    rows_stride, cols_stride = view.strides
    if cols_stride == item and rows_stride % item == 0 and rows_stride >= item * max(view.shape[1], 1):
        return NO_TRANS, rows_stride // item
    if rows_stride == item and cols_stride % item == 0 and cols_stride >= item * max(view.shape[0], 1):
        return TRANS, cols_stride // item
    raise ValueError(f"blas.gemm: {name} must be a row-major view or the .T of one, got strides {view.strides} "
                     f"for shape {view.shape}")


def check_shapes(a, b, out):
    """Raises unless ``out = a @ b`` fits: (M, K) @ (K, N) -> (M, N), one dtype, out a row-major view."""
    if operand(out, "out")[0] != NO_TRANS:
        raise ValueError("blas.gemm: out must be a row-major view")
    (m, k), n = a.shape, b.shape[1]
    if b.shape[0] != k or out.shape != (m, n):
        raise ValueError(f"blas.gemm: shapes a {a.shape} @ b {b.shape} -> out {out.shape} do not match")
    if not (a.dtype == b.dtype == out.dtype):
        raise TypeError(f"blas.gemm: dtypes differ: {a.dtype}, {b.dtype}, {out.dtype}")


def _call(functions, a, b, out, beta):
    check_shapes(a, b, out)
    trans_a, lda = operand(a, "a")
    trans_b, ldb = operand(b, "b")
    _, ldc = operand(out, "out")
    (m, k), n = a.shape, b.shape[1]
    if m == 0 or n == 0:
        return out
    functions[out.dtype](_ROW_MAJOR, trans_a, trans_b, m, n, k, 1.0, a.ctypes.data, lda, b.ctypes.data, ldb,
                         beta, out.ctypes.data, ldc)
    return out


def _agrees_with_numpy(functions):
    """A small product into a view of a larger buffer, with beta=1 and a transposed operand."""
    rng = np.random.default_rng(0)
    for dtype in functions:
        a = rng.standard_normal((5, 7)).astype(dtype)
        b_transposed = rng.standard_normal((4, 9)).astype(dtype)
        out = rng.standard_normal((6, 8)).astype(dtype)
        expected = out.copy()
        expected[1:6, 2:6] += a[:, 1:7] @ b_transposed[:, :6].T
        try:
            _call(functions, a[:, 1:7], b_transposed[:, :6].T, out[1:6, 2:6], 1.0)
        except (OSError, ValueError, TypeError):
            return False
        if not np.allclose(out, expected, rtol=1e-4, atol=1e-4):
            return False
    return True


_FUNCTIONS, LIBRARY_PATH = _load()  # LIBRARY_PATH: the shared library they come from (None: not found)


def available(dtype=np.float32):
    """True when a checked BLAS GEMM for ``dtype`` (float32 or float64) can be called directly."""
    return np.dtype(dtype) in _FUNCTIONS


def gemm(a, b, out, beta=0.0):
    """``out = a @ b + beta * out`` in place, by BLAS. a: (M, K), b: (K, N), out: (M, N), one float dtype.

    Each operand may be a view into a larger array: rows with unit stride (``x[:, i:j]``) or the ``.T``
    of such a view. ``beta=0`` overwrites ``out`` (its old contents are never read); ``beta=1`` adds.
    """
    if not available(out.dtype):
        raise RuntimeError(f"blas.gemm: no direct BLAS for {out.dtype} in this process; use NumPy's @")
    return _call(_FUNCTIONS, a, b, out, beta)
