"""ReLU kernels (kernels/activation.py): NumPy, Numba and PyTorch agree, special values included, layouts kept."""
import numpy as np
import pytest

import tinyinception as ti
import tinyinception.functional as F
from tinyinception.kernels import activation, layout

SPECIAL = np.array([-np.inf, -1.5, -0.0, 0.0, 2.5, np.nan, np.inf], dtype=np.float32)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(7,), (3, 4, 5, 6), (70_000,)])  # the last one runs the threaded kernel
def test_numba_matches_numpy(dtype, shape):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    x.reshape(-1)[:7] = SPECIAL
    grad = rng.standard_normal(shape).astype(dtype)
    y = activation.relu_forward_numba(x)
    np.testing.assert_array_equal(y, activation.relu_forward_numpy(x))
    np.testing.assert_array_equal(activation.relu_backward_numba(grad, y), activation.relu_backward_numpy(grad, y))
    assert y.dtype == np.dtype(dtype)


def test_channel_major_layout_is_kept_and_strided_views_work():
    x = layout.from_channel_major(np.random.default_rng(1).standard_normal((3, 2, 4, 5)).astype(np.float32))
    y = activation.relu_forward_numba(x)
    assert layout.is_channel_major(y) and not y.flags.c_contiguous
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    view = np.random.default_rng(2).standard_normal((6, 8)).astype(np.float32)[:, ::2]  # not dense: NumPy path
    np.testing.assert_array_equal(activation.relu_forward_numba(view), np.maximum(view, 0))
    np.testing.assert_array_equal(activation.relu_backward_numba(np.ones_like(view), np.maximum(view, 0)),
                                  (view > 0).astype(np.float32))


@pytest.mark.torch
@pytest.mark.parametrize("kernels", ["numba", "numpy"])
def test_special_values_like_torch(kernels):
    torch = pytest.importorskip("torch")
    x = ti.Tensor(SPECIAL.copy(), requires_grad=True)
    with ti.using_kernels(kernels):
        y = F.relu(x)
        y.backward(np.ones(7, np.float32))
    reference = torch.tensor(SPECIAL, requires_grad=True)
    torch.relu(reference).backward(torch.ones(7))
    np.testing.assert_array_equal(y.data, torch.relu(reference).detach().numpy())
    np.testing.assert_array_equal(x.grad, reference.grad.numpy())
