"""Training-mode batch norm (plain and fused with ReLU): NumPy vs Numba, NumPy vs PyTorch."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernel_testing import DTYPES, assert_close, random_array
from tinyinception import backend
from tinyinception.kernels import (batch_norm_backward, batch_norm_relu_backward,
                                   batch_norm_relu_train_forward, batch_norm_train_forward)
from tinyinception.kernels.batchnorm import (
    batch_norm_backward_numba, batch_norm_backward_numpy, batch_norm_relu_backward_numba,
    batch_norm_relu_backward_numpy, batch_norm_relu_train_forward_numba,
    batch_norm_relu_train_forward_numpy, batch_norm_train_forward_numba,
    batch_norm_train_forward_numpy)

SHAPES = ((4, 3), (2, 5, 7), (3, 4, 5, 6), (1, 2, 3, 3), (2, 1, 2, 2, 2))
PAIRS = {
    "plain": (batch_norm_train_forward_numpy, batch_norm_train_forward_numba,
              batch_norm_backward_numpy, batch_norm_backward_numba),
    "relu": (batch_norm_relu_train_forward_numpy, batch_norm_relu_train_forward_numba,
             batch_norm_relu_backward_numpy, batch_norm_relu_backward_numba),
}


def _inputs(seed, shape, dtype, affine, offset=0.0):
    x = random_array(seed, shape, dtype) * 2 + dtype(offset)
    if not affine:
        return x, None, None
    weight = random_array(seed + 1, shape[1:2], dtype)
    bias = random_array(seed + 2, shape[1:2], dtype)
    return x, weight, bias


def _backward(variant, function, grad_y, y, x, mean, inv_std, weight):
    if variant == "relu":
        return function(grad_y, y, x, mean, inv_std, weight)
    return function(grad_y, x, mean, inv_std, weight)


@settings(max_examples=25, deadline=None)
@given(shape=st.sampled_from(SHAPES), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**16),
       affine=st.booleans(), variant=st.sampled_from(sorted(PAIRS)))
def test_numba_matches_numpy(shape, dtype, seed, affine, variant):
    forward_numpy, forward_numba, backward_numpy, backward_numba = PAIRS[variant]
    x, weight, bias = _inputs(seed, shape, dtype, affine)
    expected = forward_numpy(x, weight, bias, 1e-3)
    actual = forward_numba(x, weight, bias, 1e-3)
    for got, want in zip(actual, expected):
        assert_close(got, want, dtype, scale=10)
    y, mean, _, inv_std = expected
    grad_y = random_array(seed + 3, shape, dtype)
    expected_grads = _backward(variant, backward_numpy, grad_y, y, x, mean, inv_std, weight)
    actual_grads = _backward(variant, backward_numba, grad_y, y, x, mean, inv_std, weight)
    for got, want in zip(actual_grads, expected_grads):
        if want is None:
            assert got is None
        else:
            assert_close(got, want, dtype, scale=10)


@pytest.mark.torch
@pytest.mark.parametrize("variant", sorted(PAIRS))
@pytest.mark.parametrize("shape", [(8, 6), (4, 3, 5, 5)])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
def test_numpy_matches_torch(variant, shape, affine, dtype):
    torch = pytest.importorskip("torch")
    forward_numpy, _, backward_numpy, _ = PAIRS[variant]
    x, weight, bias = _inputs(7, shape, dtype, affine, offset=3.0)
    leaves = [torch.tensor(a, requires_grad=True) for a in (x, weight, bias) if a is not None]
    x_t, weight_t, bias_t = leaves + [None] * (3 - len(leaves))
    y_t = torch.nn.functional.batch_norm(x_t, None, None, weight_t, bias_t, training=True, eps=1e-3)
    if variant == "relu":
        y_t = torch.relu(y_t)
    grad_y = random_array(8, shape, dtype)
    y_t.backward(torch.from_numpy(grad_y))
    y, mean, var, inv_std = forward_numpy(x, weight, bias, 1e-3)
    dims = (0,) + tuple(range(2, len(shape)))
    assert_close(y, y_t.detach().numpy(), dtype, scale=10)
    assert_close(mean, x_t.detach().mean(dim=dims).numpy(), dtype, scale=10)
    assert_close(var, x_t.detach().var(dim=dims, unbiased=False).numpy(), dtype, scale=10)
    assert_close(inv_std, 1 / np.sqrt(var.astype(np.float64) + 1e-3), dtype, scale=10)
    grad_x, grad_weight, grad_bias = _backward(variant, backward_numpy, grad_y, y, x, mean,
                                               inv_std, weight)
    assert_close(grad_x, x_t.grad.numpy(), dtype, scale=10)
    if affine:
        assert_close(grad_weight, weight_t.grad.numpy(), dtype, scale=10)
        assert_close(grad_bias, bias_t.grad.numpy(), dtype, scale=10)
    else:
        assert grad_weight is None and grad_bias is None


@pytest.mark.parametrize("kernels", ["numpy", "numba"])
def test_float32_statistics_are_accurate_far_from_zero(kernels):
    """Values near 1000 with spread 1: float64 accumulation keeps mean and var accurate."""
    x = random_array(11, (16, 4, 8, 8), np.float32) + np.float32(1000)
    exact = x.astype(np.float64)
    with backend.using_kernels(kernels):
        y, mean, var, inv_std = batch_norm_train_forward(x, None, None, 1e-5)
    assert mean.dtype == var.dtype == inv_std.dtype == y.dtype == np.float32
    np.testing.assert_allclose(mean, exact.mean(axis=(0, 2, 3)), rtol=1e-7)
    np.testing.assert_allclose(var, exact.var(axis=(0, 2, 3)), rtol=1e-4)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-4)


@pytest.mark.parametrize("kernels", ["numpy", "numba"])
def test_fused_relu_equals_relu_of_plain(kernels):
    x, weight, bias = _inputs(2, (3, 4, 5, 5), np.float32, affine=True)
    grad_y = random_array(4, x.shape, np.float32)
    with backend.using_kernels(kernels):
        y_plain, mean, _, inv_std = batch_norm_train_forward(x, weight, bias, 1e-3)
        y_fused = batch_norm_relu_train_forward(x, weight, bias, 1e-3)[0]
        fused_grads = batch_norm_relu_backward(grad_y, y_fused, x, mean, inv_std, weight)
        plain_grads = batch_norm_backward(grad_y * (y_plain > 0), x, mean, inv_std, weight)
    np.testing.assert_allclose(y_fused, np.maximum(y_plain, 0), rtol=1e-6, atol=1e-6)
    for fused, plain in zip(fused_grads, plain_grads):
        np.testing.assert_allclose(fused, plain, rtol=1e-5, atol=1e-5)


def test_bad_input_names_the_op():
    x = np.zeros((2, 3, 4, 4), np.float32)
    with pytest.raises(ValueError, match=r"batch_norm: weight must have shape \(3,\)"):
        batch_norm_train_forward(x, np.ones(4, np.float32), None, 1e-5)
    with pytest.raises(TypeError, match=r"batch_norm: weight dtype float64 differs"):
        batch_norm_train_forward(x, np.ones(3), None, 1e-5)
    with pytest.raises(ValueError, match=r"batch_norm_relu_backward: y must have shape"):
        batch_norm_relu_backward(x, x[:1], x, np.zeros(3, np.float32), np.ones(3, np.float32), None)
    with pytest.raises(ValueError, match=r"batch_norm: x must be \(N, C\)"):
        batch_norm_train_forward(np.zeros(5, np.float32), None, None, 1e-5)
