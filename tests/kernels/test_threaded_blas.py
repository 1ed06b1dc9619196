"""Products on Numba's threads (kernels/threaded_blas.py) equal NumPy's, for every way the work is split."""
import os
import subprocess
import sys

import numpy as np
import pytest

from tinyinception.kernels import threaded_blas

needs_pool = pytest.mark.skipif(not threaded_blas.available(np.float32),
                                reason="products do not run on Numba's threads here (no scipy-openblas or OpenMP)")

TOLERANCE = {np.float32: 1e-5, np.float64: 1e-12}


def _random(shape, dtype, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.fixture(params=["split", "whole"])
def split_small_products(request, monkeypatch):
    """Each test twice: every small product split between the threads (each path with several parts), and every
    product run whole on the calling thread (the serial kernels small products take)."""
    monkeypatch.setattr(threaded_blas, "MIN_PART_FLOPS", 1 if request.param == "split" else 1 << 60)


def _close(got, expected, dtype):
    np.testing.assert_allclose(got, expected, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])


@needs_pool
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m, k, n", [(5, 7, 40), (40, 7, 5), (6, 90, 4), (1, 1, 1), (3, 4, 0)])  # columns, rows,
# inner-dimension split, a single value, an empty result
@pytest.mark.parametrize("transposed", ["none", "a", "b"])
@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_gemm_matches_numpy(dtype, m, k, n, transposed, beta, split_small_products):
    a, b = _random((m, k), dtype), _random((k, n), dtype, 1)
    if transposed == "a":
        a = np.ascontiguousarray(a.T).T  # the .T of a row-major array, as BLAS reads it
    if transposed == "b":
        b = np.ascontiguousarray(b.T).T
    buffer = _random((m + 2, n + 3), dtype, 2)
    out = buffer[1:m + 1, 2:n + 2]  # a view into a larger array: its leading dimension is not n
    expected = a @ b + beta * out
    untouched = buffer.copy()
    assert threaded_blas.gemm(a, b, out, beta=beta) is out
    _close(out, expected, dtype)
    outside = np.ones(buffer.shape, dtype=bool)
    outside[1:m + 1, 2:n + 2] = False
    np.testing.assert_array_equal(buffer[outside], untouched[outside])  # nothing written around the view


@needs_pool
def test_gemm_rejects_mismatched_shapes_and_dtypes():
    with pytest.raises(ValueError, match="do not match"):
        threaded_blas.gemm(np.ones((2, 3), np.float32), np.ones((4, 5), np.float32), np.empty((2, 5), np.float32))
    with pytest.raises(TypeError, match="dtypes differ"):
        threaded_blas.gemm(np.ones((2, 3), np.float32), np.ones((3, 5)), np.empty((2, 5), np.float32))


@needs_pool
@pytest.mark.parametrize("a, b", [
    (np.arange(24.0).reshape(2, 3, 4), np.ones((4, 2))),  # batched: NumPy's matmul
    (np.arange(12).reshape(3, 4), np.arange(8).reshape(4, 2)),  # integers
    (np.ones((6, 8), np.float32)[:, ::2], np.ones((4, 3), np.float32)),  # a stride-2 view BLAS cannot read
])
def test_matmul_falls_back_to_numpy(a, b):
    np.testing.assert_array_equal(threaded_blas.matmul(a, b), np.matmul(a, b))


@needs_pool
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_into_out(dtype, split_small_products):
    a, b = _random((9, 5), dtype), _random((5, 30), dtype, 1)
    out = np.empty((9, 30), dtype)
    assert threaded_blas.matmul(a, b, out=out) is out
    _close(out, a @ b, dtype)


@needs_pool
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_product_too_small_to_split_is_one_numpy_call(dtype, monkeypatch):
    """Below MIN_PART_FLOPS (one part) matmul hands the product to NumPy's ``@`` (never to `gemm`), which makes the
    same single BLAS call: the same values, bit for bit, into ``out`` when given."""
    a, b = _random((16, 9), dtype), _random((9, 40), dtype, 1)
    assert 2.0 * 16 * 9 * 40 < threaded_blas.MIN_PART_FLOPS

    def no_gemm(*args, **kwargs):
        raise AssertionError("a small product went through threaded_blas.gemm")

    monkeypatch.setattr(threaded_blas, "gemm", no_gemm)
    out = np.full((16, 40), np.nan, dtype)
    assert threaded_blas.matmul(a, b, out=out) is out
    np.testing.assert_array_equal(out, a @ b)
    np.testing.assert_array_equal(threaded_blas.matmul(a, b), a @ b)


@needs_pool
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("chunk", [3, 1000])
def test_shifted_sum_matches_per_tap_products(dtype, transposed, chunk, split_small_products):
    taps = _random((4, 6, 5), dtype)  # (T, M, K)
    # one (T, M, K) array, row-major matrices or the transposes of row-major ones (as taps.transpose(0, 2, 1))
    matrices = np.ascontiguousarray(taps.transpose(0, 2, 1)).transpose(0, 2, 1) if transposed else taps
    rows = _random((5, 60), dtype, 1)
    starts, anchors = [9, 0, 3, 17], 41
    out = np.full((6, anchors), np.nan, dtype=dtype)
    threaded_blas.shifted_sum(matrices, rows, starts, out, chunk)
    expected = sum(matrix @ rows[:, start:start + anchors] for matrix, start in zip(matrices, starts))
    _close(out, expected, dtype)


@needs_pool
def test_shifted_sum_takes_one_array_of_matrices():
    taps, rows = _random((2, 3, 4), np.float32), _random((4, 20), np.float32, 1)
    with pytest.raises(ValueError, match="one \\(T, M, K\\) array"):
        threaded_blas.shifted_sum(list(taps), rows, [0, 1], np.empty((3, 10), np.float32), 8)


@needs_pool
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("chunk", [4, 1000])
def test_shifted_outer_matches_per_tap_products(dtype, chunk, split_small_products):
    grad_rows, rows = _random((3, 50), dtype), _random((7, 70), dtype, 1)
    starts, anchors = [0, 5, 12], 44
    out = np.full((3, 3, 7), np.nan, dtype=dtype)
    threaded_blas.shifted_outer(grad_rows, 2, rows, starts, anchors, out, chunk)
    expected = np.stack([grad_rows[:, 2:2 + anchors] @ rows[:, start:start + anchors].T for start in starts])
    _close(out, expected, dtype)


@needs_pool
def test_one_pool_of_threads():
    """Where the products run on Numba's threads, Numba runs on OpenMP and OpenBLAS on a single thread."""
    import numba

    assert threaded_blas.enabled()
    assert numba.threading_layer() == "omp"
    _, get_threads = threaded_blas._THREAD_CONTROL
    threaded_blas.matmul(np.ones((4, 4), np.float32), np.ones((4, 4), np.float32))
    assert get_threads() == 1


_PROBE = """
import numba, numpy as np
from tinyinception.kernels import threaded_blas
a = np.arange(12, dtype=np.float32).reshape(3, 4)
assert np.array_equal(threaded_blas.matmul(a, a.T), a @ a.T)
numba.get_num_threads()  # starts the threads, whatever ran before
print(threaded_blas.enabled(), numba.threading_layer())
"""


@pytest.mark.parametrize("variable, value", [("TINYINCEPTION_ONE_POOL", "0"),  # asked for the old arrangement
                                             ("NUMBA_THREADING_LAYER", "tbb")])  # a layer that cannot load here
def test_without_the_one_pool_products_run_on_openblas_and_the_work_queue(variable, value):
    """Off by request, or when Numba's threads cannot run on OpenMP: products fall back to BLAS's own threads and
    Numba runs on its work queue (never OpenMP next to a multi-threaded OpenBLAS)."""
    pytest.importorskip("numba")
    if variable == "NUMBA_THREADING_LAYER":
        try:
            import tbb  # noqa: F401
            pytest.skip("TBB is installed here: the layer would load")
        except ImportError:
            pass
    env = dict(os.environ, **{variable: value})
    result = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "workqueue"]
