"""The direct BLAS call (kernels/blas.py) computes ``out = a @ b + beta * out`` on views, like NumPy's ``@``."""
import numpy as np
import pytest

from tinyinception.kernels import blas

pytestmark = pytest.mark.skipif(not blas.available(), reason="no direct BLAS found in this process")


def _view(rng, shape, dtype, transposed):
    """A (rows, cols) view into a larger array: row-major with a longer leading dimension, or the .T of one."""
    rows, cols = shape
    if transposed:
        return rng.standard_normal((cols + 2, rows + 3)).astype(dtype)[1:1 + cols, 2:2 + rows].T
    return rng.standard_normal((rows + 2, cols + 3)).astype(dtype)[1:1 + rows, 2:2 + cols]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("transpose_a, transpose_b", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_gemm_on_views_matches_numpy(dtype, transpose_a, transpose_b, beta):
    rng = np.random.default_rng(0)
    m, k, n = 5, 7, 4
    a, b = _view(rng, (m, k), dtype, transpose_a), _view(rng, (k, n), dtype, transpose_b)
    out_big = rng.standard_normal((m + 3, n + 4)).astype(dtype)
    out = out_big[1:1 + m, 2:2 + n]
    expected, before = a @ b + beta * out, out_big.copy()
    blas.gemm(a, b, out, beta=beta)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, expected, rtol=rtol, atol=rtol)
    outside = np.ones(out_big.shape, bool)
    outside[1:1 + m, 2:2 + n] = False
    np.testing.assert_array_equal(out_big[outside], before[outside])  # nothing outside the view is written


def test_gemm_beta_zero_ignores_old_contents():
    a, b = np.ones((2, 3), np.float32), np.ones((3, 2), np.float32)
    out = np.full((2, 2), np.nan, np.float32)
    blas.gemm(a, b, out)
    np.testing.assert_array_equal(out, np.full((2, 2), 3, np.float32))


def test_gemm_errors_name_the_problem():
    a, b = np.ones((2, 3), np.float32), np.ones((4, 2), np.float32)
    with pytest.raises(ValueError, match=r"shapes a \(2, 3\) @ b \(4, 2\)"):
        blas.gemm(a, b, np.empty((2, 2), np.float32))
    with pytest.raises(TypeError, match="dtypes differ"):
        blas.gemm(a, np.ones((3, 2)), np.empty((2, 2), np.float32))
    with pytest.raises(ValueError, match="row-major view or the .T of one"):
        blas.gemm(np.ones((4, 6), np.float32)[:, ::2], np.ones((3, 2), np.float32), np.empty((4, 2), np.float32))
    with pytest.raises(ValueError, match="out must be a row-major view"):
        blas.gemm(a, np.ones((3, 2), np.float32), np.empty((2, 2), np.float32).T)
