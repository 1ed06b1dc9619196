"""Matrix products split over Numba's threads, each part one single-threaded BLAS call: one thread pool.

NumPy's OpenBLAS runs its products on threads of its own, and after every product those threads keep spinning
(for about 0.1 s) waiting for the next one. A training step alternates products with Numba kernels (batch norm,
ReLU, pooling, the convolutions' layout copies, the blocked weight gradient), whose threads then share the two cores
with a spinning OpenBLAS thread: measured, such a kernel right after a product ran 1.5-2x slower than alone. (It also
slowed whatever ran next in the process: PyTorch's convolutions in our side-by-side benchmarks.)

So, on the CPU, our products run on Numba's threads instead: the work is split into one part per thread
(column blocks of the result, blocks of anchors for the shifted products, blocks of the inner dimension with one
partial result per thread for the weight gradients), and each thread calls BLAS on its part, with OpenBLAS set to
one thread. One pool of threads for everything. That pool must start a parallel region in microseconds (a step
has ~1,000 products, many small): Numba's OpenMP layer does, its threads spin briefly between regions; the work
queue layer wakes sleeping threads (GoogLeNet's step: 177 ms instead of 92). The OpenMP layer was unusable while
OpenBLAS's threads spun too (two spinning pools on two cores: steps 10x slower), so the two go together: when this
module can set OpenBLAS's threads it asks Numba for the OpenMP layer, and at the first product, if that layer is
the one running, sets OpenBLAS to one thread for the process (NumPy's own ``@`` then runs on one core; ours use
every core) and takes over the products. Measured on 2 cores against the previous arrangement (OpenBLAS's
threads plus Numba's work queue): training steps 10-25% faster, inception (3a) forward+backward 130 -> 104 ms.

BLAS is called from compiled code by name (`numba.types.ExternalFunction`, the symbols of NumPy's bundled
scipy-openblas, loaded into LLVM's symbol table), so the kernels are cached like every other. Where that library
or the OpenMP layer is missing, `available` is False and the callers use `blas.gemm` and NumPy's ``@`` on
OpenBLAS's threads, with Numba's work queue. ``TINYINCEPTION_ONE_POOL=0`` chooses that arrangement; setting
``NUMBA_THREADING_LAYER`` yourself leaves the layer to you (and this module on only if it is OpenMP).
"""
import ctypes
import os
import threading

import numpy as np

from . import blas
from . import fork_guard
from ._numba import NUMBA_AVAILABLE, njit, numba_threads, prange, serial_twin, use_one_pool

# NumPy >= 2 wheels: scipy-openblas with 64-bit integers, prefixed and suffixed names
_SGEMM, _DGEMM = "scipy_cblas_sgemm64_", "scipy_cblas_dgemm64_"
_SET_THREADS, _GET_THREADS = "scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"
MIN_PART_FLOPS = 1 << 21  # below ~2 MFLOP per part a product runs as one call: starting threads costs more


def _bind_library():
    """(set_threads, get_threads) of the library `blas` found, with its GEMMs registered for compiled code; or None."""
    if not NUMBA_AVAILABLE or os.environ.get("TINYINCEPTION_ONE_POOL", "1") == "0" or blas.LIBRARY_PATH is None:
        return None
    library = ctypes.CDLL(blas.LIBRARY_PATH)
    if not all(hasattr(library, name) for name in (_SGEMM, _DGEMM, _SET_THREADS, _GET_THREADS)):
        return None
    import llvmlite.binding

    llvmlite.binding.load_library_permanently(blas.LIBRARY_PATH)
    set_threads, get_threads = getattr(library, _SET_THREADS), getattr(library, _GET_THREADS)
    set_threads.argtypes, set_threads.restype = [ctypes.c_int], None
    get_threads.argtypes, get_threads.restype = [], ctypes.c_int
    return set_threads, get_threads


_THREAD_CONTROL = _bind_library()
_STATE = {}  # "enabled": decided at the first product, once Numba's threads have started
_DECIDING = threading.Lock()  # two Python threads making the first product at once: one decides, once

if _THREAD_CONTROL is not None:
    import numba
    from numba import types

    if "NUMBA_THREADING_LAYER" not in os.environ:
        numba.config.THREADING_LAYER = "omp"  # see the module docstring; falls back below if it cannot load

    def _cblas(name, real):
        i64, pointer = types.int64, types.voidptr
        return types.ExternalFunction(name, types.void(i64, i64, i64, i64, i64, i64, real, pointer, i64, pointer,
                                                       i64, real, pointer, i64))

    _sgemm, _dgemm = _cblas(_SGEMM, types.float32), _cblas(_DGEMM, types.float64)


def _start():
    """True when Numba's threads run on the OpenMP layer; then OpenBLAS goes to one thread for the process."""
    import numba

    try:
        numba.get_num_threads()  # starts the threads, with the layer chosen above
    except ValueError:  # the OpenMP layer could not be loaded: the work queue it is
        numba.config.THREADING_LAYER = "workqueue"
        numba.get_num_threads()
    if numba.threading_layer() != "omp":
        return False
    set_threads, _ = _THREAD_CONTROL
    set_threads(1)
    use_one_pool()
    fork_guard.install()    # OpenMP is not fork-safe: a forked child is told how to avoid the hang
    return True


def enabled():
    """True when the products run on Numba's threads (decided once, at the first call)."""
    if "enabled" not in _STATE:
        with _DECIDING:
            if "enabled" not in _STATE:
                _STATE["enabled"] = _THREAD_CONTROL is not None and _start()
    return _STATE["enabled"]


def available(dtype=np.float32):
    """True when products of ``dtype`` arrays run on Numba's threads (see the module docstring)."""
    return np.dtype(dtype) in (np.float32, np.float64) and blas.available(dtype) and enabled()


def keep_openblas_on_one_thread():
    """Sets OpenBLAS back to one thread if something else in the process has changed it since `_start`."""
    set_threads, get_threads = _THREAD_CONTROL
    if get_threads() != 1:
        set_threads(1)


# --- the compiled side: addresses in bytes, operands as (address, transpose flag, leading dimension) -------------
@njit(cache=True)
def _gemm(itemsize, trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc):
    """C = A @ B + beta*C by the single- or double-precision BLAS (row-major, alpha 1)."""
    if itemsize == 4:
        _sgemm(101, trans_a, trans_b, m, n, k, np.float32(1.0), a, lda, b, ldb, np.float32(beta), c, ldc)
    else:
        _dgemm(101, trans_a, trans_b, m, n, k, 1.0, a, lda, b, ldb, beta, c, ldc)


@njit(cache=True)
def _column_address(address, trans, ld, column, itemsize):
    """Address of column ``column`` of an operand (row-major: the next value; transposed: the next row)."""
    return address + (column * ld if trans == blas.TRANS else column) * itemsize


@njit(cache=True)
def _row_address(address, trans, ld, row, itemsize):
    """Address of row ``row`` of an operand."""
    return address + (row if trans == blas.TRANS else row * ld) * itemsize


@njit(cache=True)
def _block(part, parts, total):
    """(first, count): block ``part`` of ``total`` items split into ``parts`` equal blocks (the last may be short)."""
    per_part = -(-total // parts)
    first = part * per_part
    return first, max(0, min(total, first + per_part) - first)


@njit(parallel=True, cache=True)
def _gemm_by_columns(itemsize, a, trans_a, lda, b, trans_b, ldb, c, ldc, m, n, k, beta, parts):
    """C (M, N) = A @ B + beta*C with the columns of C split into ``parts`` blocks, one per thread."""
    for part in prange(parts):
        first, count = _block(part, parts, n)
        if count > 0:
            _gemm(itemsize, trans_a, trans_b, m, count, k, a, lda, _column_address(b, trans_b, ldb, first, itemsize),
                  ldb, beta, c + first * itemsize, ldc)


@njit(parallel=True, cache=True)
def _gemm_by_rows(itemsize, a, trans_a, lda, b, trans_b, ldb, c, ldc, m, n, k, beta, parts):
    """C (M, N) = A @ B + beta*C with the rows of C split into ``parts`` blocks, one per thread."""
    for part in prange(parts):
        first, count = _block(part, parts, m)
        if count > 0:
            _gemm(itemsize, trans_a, trans_b, count, n, k, _row_address(a, trans_a, lda, first, itemsize), lda,
                  b, ldb, beta, c + first * ldc * itemsize, ldc)


@njit(parallel=True, cache=True)
def _gemm_by_inner(itemsize, a, trans_a, lda, b, trans_b, ldb, m, n, k, partial):
    """partial[s] = A[:, block s] @ B[block s, :]: the inner dimension split into one block per thread (for a small
    result summed over a long inner dimension: a weight gradient); the caller adds the partial results."""
    parts = partial.shape[0]
    for part in prange(parts):
        first, count = _block(part, parts, k)
        if count > 0:
            _gemm(itemsize, trans_a, trans_b, m, n, count, _column_address(a, trans_a, lda, first, itemsize), lda,
                  _row_address(b, trans_b, ldb, first, itemsize), ldb, 0.0, partial[part].ctypes.data, n)
        else:
            partial[part] = 0


@njit(parallel=True, cache=True)
def _shifted_sum(itemsize, matrices, trans_m, ld_m, m, k, rows, ld_rows, starts, out, ld_out, anchors, parts, chunk):
    """out[:, a] = sum over t of M_t @ rows[:, starts[t] + a] for a < anchors: the anchors split into ``parts``
    ranges, one per thread, each walked ``chunk`` anchors at a time with the taps innermost (the block of out
    stays in the cache while the taps add into it). matrices: the address of each M_t (M, K)."""
    for part in prange(parts):
        start, length = _block(part, parts, anchors)
        for first in range(start, start + length, chunk):
            count = min(chunk, start + length - first)
            for tap in range(matrices.size):
                _gemm(itemsize, trans_m, blas.NO_TRANS, m, count, k, matrices[tap], ld_m,
                      rows + (starts[tap] + first) * itemsize, ld_rows, 0.0 if tap == 0 else 1.0,
                      out + first * itemsize, ld_out)


@njit(parallel=True, cache=True)
def _shifted_outer(itemsize, grad, ld_grad, grad_start, rows, ld_rows, starts, anchors, chunk, partial):
    """partial[s, t] = sum over the anchors a of share s of grad[:, grad_start + a] (outer) rows[:, starts[t] + a]
    (each (F, C)); the caller adds the shares."""
    shares, taps, filters, channels = partial.shape
    for share in prange(shares):
        start, length = _block(share, shares, anchors)
        if length == 0:
            partial[share] = 0
        for first in range(start, start + length, chunk):
            count = min(chunk, start + length - first)
            for tap in range(taps):
                _gemm(itemsize, blas.NO_TRANS, blas.TRANS, filters, channels, count,
                      grad + (grad_start + first) * itemsize, ld_grad, rows + (starts[tap] + first) * itemsize,
                      ld_rows, 0.0 if first == start else 1.0, partial[share, tap].ctypes.data, channels)


# small products run on the calling thread: the same kernels compiled without threads
_shifted_sum_serial, _shifted_outer_serial = serial_twin(_shifted_sum), serial_twin(_shifted_outer)


# --- the Python side ----------------------------------------------------------------------------------------------
def _parts(flops):
    """Threads worth using for a product of ``flops`` multiply-adds x 2."""
    return max(1, min(numba_threads(), int(flops // MIN_PART_FLOPS)))


def gemm(a, b, out, beta=0.0):
    """``out = a @ b + beta*out`` in place; the contract of `blas.gemm` (views, or the .T of views), on Numba's
    threads: the result's columns (or rows, when it has few columns) split between them, or, for a small result
    with a long inner dimension, the inner dimension (one partial result per thread, added at the end)."""
    blas.check_shapes(a, b, out)
    (m, k), n = a.shape, b.shape[1]
    if m == 0 or n == 0:
        return out
    trans_a, lda = blas.operand(a, "a")
    trans_b, ldb = blas.operand(b, "b")
    _, ldc = blas.operand(out, "out")
    itemsize, parts = out.itemsize, _parts(2.0 * m * n * k)
    keep_openblas_on_one_thread()
    if parts > 1 and k >= 8 * max(m, n):
        partial = np.empty((parts, m, n), dtype=out.dtype)
        _gemm_by_inner(itemsize, a.ctypes.data, trans_a, lda, b.ctypes.data, trans_b, ldb, m, n, k, partial)
        total = partial.sum(axis=0)
        if beta == 0.0:
            out[...] = total
        else:
            out *= beta
            out += total
    elif parts == 1:  # a small product: one call on this thread (a parallel region would cost more)
        _gemm(itemsize, trans_a, trans_b, m, n, k, a.ctypes.data, lda, b.ctypes.data, ldb, beta, out.ctypes.data,
              ldc)
    elif n >= m:
        _gemm_by_columns(itemsize, a.ctypes.data, trans_a, lda, b.ctypes.data, trans_b, ldb, out.ctypes.data,
                         ldc, m, n, k, beta, parts)
    else:
        _gemm_by_rows(itemsize, a.ctypes.data, trans_a, lda, b.ctypes.data, trans_b, ldb, out.ctypes.data,
                      ldc, m, n, k, beta, parts)
    return out


def matmul(a, b, out=None):
    """``a @ b`` (into ``out`` when given) for 2-D float arrays, by `gemm` where it applies; the arrays' own ``@``
    otherwise (other dtypes, layouts BLAS cannot read in place, batched operands, CuPy arrays), and for a product
    too small to split (one part, `_parts`): NumPy's ``@`` makes the same single BLAS call on this thread with less
    Python around it (measured: 2.5 instead of 8.8 us for a 16x9 @ 9x512 product)."""
    ours = (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.ndim == b.ndim == 2
            and available(a.dtype))
    if ours and 2.0 * a.shape[0] * a.shape[1] * b.shape[1] < MIN_PART_FLOPS:
        keep_openblas_on_one_thread()
        ours = False
    if not (ours and a.dtype == b.dtype and _readable(a) and _readable(b)
            and (out is None or (out.dtype == a.dtype and _readable(out) and out.flags.c_contiguous))):
        return a @ b if out is None else np.matmul(a, b, out=out)  # ``@``: CuPy arrays multiply on the GPU
    if out is None:
        out = np.empty((a.shape[0], b.shape[1]), dtype=a.dtype)
    return gemm(a, b, out)


def _readable(view):
    try:
        blas.operand(view, "operand")
    except ValueError:
        return False
    return True


def _matrix_addresses(matrices):
    """((transpose flag, leading dimension), addresses) of the matrices of one (T, M, K) array, ``strides[0]`` bytes
    apart (e.g. ``taps`` or ``taps.transpose(0, 2, 1)``: no per-matrix view is made)."""
    if not (isinstance(matrices, np.ndarray) and matrices.ndim == 3):
        raise ValueError(f"threaded_blas: the matrices must be one (T, M, K) array, got {type(matrices).__name__}")
    return blas.operand(matrices[0], "matrices"), matrices.ctypes.data + matrices.strides[0] * np.arange(len(matrices))


def shifted_sum(matrices, rows, starts, out_rows, chunk):
    """out_rows[:, a] = sum over t of matrices[t] @ rows[:, starts[t] + a], for every column a of out_rows:
    matrices: one (T, M, K) array (e.g. ``taps`` or ``taps.transpose(0, 2, 1)``), rows (K, ...)."""
    (trans_m, ld_m), addresses = _matrix_addresses(matrices)
    (m, k), anchors = matrices[0].shape, out_rows.shape[1]
    _, ld_rows = blas.operand(rows, "rows")
    _, ld_out = blas.operand(out_rows, "out_rows")
    parts = _parts(2.0 * m * k * anchors * len(matrices))
    keep_openblas_on_one_thread()
    kernel = _shifted_sum if parts > 1 else _shifted_sum_serial
    kernel(out_rows.itemsize, addresses, trans_m, ld_m, m, k, rows.ctypes.data, ld_rows,
           np.asarray(starts, dtype=np.int64), out_rows.ctypes.data, ld_out, anchors, parts, chunk)
    return out_rows


def shifted_outer(grad_rows, grad_base, rows, starts, anchors, out_taps, chunk):
    """out_taps[t] = sum over a < anchors of grad_rows[:, grad_base + a] (outer) rows[:, starts[t] + a]: grad_rows
    (F, ...), rows (C, ...), out_taps (T, F, C); the anchors split between the threads, partial sums added."""
    taps, filters, channels = out_taps.shape
    shares = _parts(2.0 * filters * channels * anchors * taps)
    _, ld_grad = blas.operand(grad_rows, "grad_rows")
    _, ld_rows = blas.operand(rows, "rows")
    partial = np.empty((shares,) + out_taps.shape, dtype=out_taps.dtype)
    keep_openblas_on_one_thread()
    kernel = _shifted_outer if shares > 1 else _shifted_outer_serial
    kernel(out_taps.itemsize, grad_rows.ctypes.data, ld_grad, grad_base, rows.ctypes.data, ld_rows,
           np.asarray(starts, dtype=np.int64), anchors, chunk, partial)
    np.sum(partial, axis=0, out=out_taps)
    return out_taps
