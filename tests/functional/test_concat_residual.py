"""concat (the filter concatenation of every Inception block) and the scaled residual add of Inception-ResNet."""
import numpy as np
import pytest

import tinyinception as ti
import tinyinception.functional as F
from helpers import check_gradcheck, check_parity


def test_concat_gradcheck():
    assert check_gradcheck(lambda a, b, c: F.concat([a, b, c], dim=1), [(2, 1, 3, 3), (2, 4, 3, 3), (2, 2, 3, 3)])


@pytest.mark.torch
@pytest.mark.parametrize("dim", [0, 1, 3, -1])
def test_concat_matches_torch(dim):
    torch = pytest.importorskip("torch")
    shapes = [tuple(n + (i if d == dim % 4 else 0) for d, n in enumerate((2, 3, 4, 5))) for i in range(3)]
    check_parity(lambda *xs: ti.cat(xs, dim=dim), lambda *xs: torch.cat(xs, dim=dim), shapes)


def test_concat_names_the_dimension_that_differs():
    a = ti.tensor(np.zeros((2, 3, 4, 4), np.float32))
    b = ti.tensor(np.zeros((2, 5, 4, 3), np.float32))
    with pytest.raises(ValueError, match=r"dimension 3 differs \(4 vs 3\)"):
        F.concat([a, b], dim=1)


def test_concat_gradient_only_for_inputs_that_need_it():
    a = ti.tensor(np.ones((1, 2, 2, 2), np.float32), requires_grad=True)
    b = ti.tensor(np.ones((1, 3, 2, 2), np.float32))
    F.concat([a, b]).sum().backward()
    assert a.grad.shape == (1, 2, 2, 2) and b.grad is None


@pytest.mark.parametrize("scale", [0.17, 0.1, 1.0])
def test_residual_add_gradcheck(scale):
    assert check_gradcheck(lambda x, branch: F.residual_add(x, branch, scale), [(2, 3, 4, 4), (2, 3, 4, 4)])


@pytest.mark.torch
def test_residual_add_matches_torch():
    pytest.importorskip("torch")
    check_parity(lambda x, b: F.residual_add(x, b, 0.2), lambda x, b: b * 0.2 + x, [(2, 3, 4, 4), (2, 3, 4, 4)])


@pytest.mark.parametrize("kernels", ["numba", "numpy"])
@pytest.mark.parametrize("scale", [0.17, 1.0])
def test_residual_add_with_relu_gradcheck(scale, kernels):
    with ti.using_kernels(kernels):
        assert check_gradcheck(lambda x, branch: F.residual_add(x, branch, scale, relu=True),
                               [(2, 3, 4, 4), (2, 3, 4, 4)])


@pytest.mark.torch
@pytest.mark.parametrize("kernels", ["numba", "numpy"])
def test_residual_add_with_relu_matches_torch(kernels):
    torch = pytest.importorskip("torch")
    with ti.using_kernels(kernels):
        check_parity(lambda x, b: F.residual_add(x, b, 0.2, relu=True), lambda x, b: torch.relu(b * 0.2 + x),
                     [(2, 3, 4, 4), (2, 3, 4, 4)])


@pytest.mark.parametrize("channel_major", [False, True], ids=["nchw", "channel_major"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_residual_add_with_relu_equals_residual_add_then_relu(dtype, channel_major):
    """The one-pass kernel (here on its parallel path, 4x64x33x33) gives bit for bit what ``F.relu`` of the plain
    residual add gives, forward and backward, in either memory layout, NaN and infinities included."""
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((4, 64, 33, 33)).astype(dtype) for _ in range(3)]
    arrays[0].reshape(-1)[::97] = np.nan
    arrays[1].reshape(-1)[5::89] = np.inf
    arrays[1].reshape(-1)[7::89] = -np.inf
    if channel_major:  # (N, C, H, W) shape over (C, N, H, W) memory, as the networks' activations are
        arrays = [np.ascontiguousarray(a.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3) for a in arrays]
    results = []
    for fused in (True, False):
        x, branch = (ti.tensor(a.copy(order="K"), requires_grad=True) for a in arrays[:2])
        y = F.residual_add(x, branch, 0.17, relu=True) if fused else F.relu(F.residual_add(x, branch, 0.17))
        y.backward(ti.tensor(arrays[2]))
        results.append((y.numpy(), x.grad, branch.grad))
    for fused_array, plain_array in zip(*results):
        np.testing.assert_array_equal(fused_array, plain_array)
    assert results[0][0].strides == arrays[1].strides  # the branch's layout kept


def test_residual_add_rejects_different_shapes():
    with pytest.raises(ValueError, match="residual_add"):
        F.residual_add(ti.tensor(np.zeros((1, 2, 3, 3), np.float32)), ti.tensor(np.zeros((1, 3, 3, 3), np.float32)))
