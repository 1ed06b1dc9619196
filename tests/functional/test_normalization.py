"""batch_norm (with and without the fused ReLU) and local_response_norm: gradient checks and PyTorch parity.
The full element-by-element check runs on the NumPy reference kernels; the Numba kernels get the one-direction
fast mode (their agreement with NumPy is checked element by element in tests/kernels).
"""
import numpy as np
import pytest

import tinyinception as ti
import tinyinception.functional as F
from helpers import assert_close, check_gradcheck, check_parity

SHAPES = [(4, 3), (2, 3, 4, 5), (3, 2, 1, 1)]


@pytest.mark.parametrize("kernels", ["numpy", "numba"])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_gradcheck(shape, relu, training, kernels):
    c = shape[1]
    rng = np.random.default_rng(3)
    running_mean, running_var = rng.standard_normal(c), rng.uniform(0.5, 2, c)
    op = F.batch_norm_relu if relu else F.batch_norm
    with ti.using_kernels(kernels):
        assert check_gradcheck(
            lambda x, w, b: op(x, running_mean.copy(), running_var.copy(), w, b, training=training, eps=1e-3),
            [shape, (c,), (c,)], fast_mode=kernels == "numba")


@pytest.mark.torch
@pytest.mark.parametrize("shape", SHAPES[:2])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_matches_torch(shape, training, affine):
    torch = pytest.importorskip("torch")
    c = shape[1]
    rng = np.random.default_rng(5)
    mean, var = rng.standard_normal(c).astype(np.float32), rng.uniform(0.5, 2, c).astype(np.float32)
    shapes = [shape] + ([(c,), (c,)] if affine else [])
    check_parity(
        lambda x, *wb: F.batch_norm(x, mean.copy(), var.copy(), *wb, training=training, eps=1e-3),
        lambda x, *wb: torch.nn.functional.batch_norm(x, torch.tensor(mean), torch.tensor(var), *wb,
                                                      training=training, eps=1e-3),
        shapes, rtol=1e-4, atol=1e-4)


@pytest.mark.torch
def test_fused_batch_norm_relu_matches_torch():
    torch = pytest.importorskip("torch")
    check_parity(lambda x, w, b: F.batch_norm_relu(x, None, None, w, b, training=True),
                 lambda x, w, b: torch.relu(torch.nn.functional.batch_norm(x, None, None, w, b, training=True)),
                 [(4, 6, 5, 5), (6,), (6,)], rtol=1e-4, atol=1e-4)


@pytest.mark.torch
@pytest.mark.parametrize("momentum", [0.1, 0.5, None])
def test_running_statistics_follow_torch_over_several_steps(momentum):
    torch = pytest.importorskip("torch")
    ours, theirs = ti.nn.BatchNorm2d(4, momentum=momentum), torch.nn.BatchNorm2d(4, momentum=momentum)
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = rng.standard_normal((3, 4, 5, 5)).astype(np.float32) * 3 + 1
        ours(ti.tensor(x))
        theirs(torch.tensor(x))
    for key, value in theirs.state_dict().items():
        assert_close(ours.state_dict()[key], value.numpy(), 1e-5, 1e-6, what=key)
    ours.eval(), theirs.eval()
    x = rng.standard_normal((2, 4, 3, 3)).astype(np.float32)
    assert_close(ours(ti.tensor(x)).numpy(), theirs(torch.tensor(x)).detach().numpy(), 1e-5, 1e-5, "eval output")


def test_batch_norm_layer_buffers_and_keys_match_pytorch_names():
    layer = ti.nn.BatchNorm2d(3)
    assert list(layer.state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert [name for name, _ in layer.named_parameters()] == ["weight", "bias"]
    assert layer.state_dict()["num_batches_tracked"].dtype == np.int64


def test_batch_norm_errors_are_clear():
    layer = ti.nn.BatchNorm2d(3)
    with pytest.raises(ValueError, match=r"BatchNorm2d\(3\) got input with 4 channels"):
        layer(ti.tensor(np.zeros((2, 4, 3, 3), np.float32)))
    with pytest.raises(ValueError, match="4-D input"):
        layer(ti.tensor(np.zeros((2, 3), np.float32)))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        ti.nn.BatchNorm1d(3)(ti.tensor(np.zeros((1, 3), np.float32)))


@pytest.mark.parametrize("size", [1, 2, 5])
def test_local_response_norm_gradcheck(size):
    assert check_gradcheck(lambda x: F.local_response_norm(x, size, alpha=0.3, beta=0.75, k=2.0),
                           [(2, 6, 3, 3)])


@pytest.mark.torch
@pytest.mark.parametrize("size,alpha,beta,k", [(5, 1e-4, 0.75, 1.0), (2, 0.3, 0.5, 2.0), (4, 0.1, 0.75, 1.0)])
def test_local_response_norm_matches_torch(size, alpha, beta, k):
    torch = pytest.importorskip("torch")
    check_parity(lambda x: F.local_response_norm(x, size, alpha, beta, k),
                 lambda x: torch.nn.functional.local_response_norm(x, size, alpha, beta, k), [(2, 7, 4, 4)])


@pytest.mark.parametrize("p, dim", [(2.0, 1), (1.0, 0), (3.0, -1)])
def test_normalize_gradcheck(p, dim):
    # away from 0: |x|^(p-1) and sign(x) are not differentiable there for p = 1
    assert check_gradcheck(lambda x: F.normalize(x, p, dim), [(3, 4)], low=0.5, high=2.0)


@pytest.mark.torch
@pytest.mark.parametrize("p, dim", [(2.0, 1), (1.0, 0), (3.0, 1)])
def test_normalize_matches_torch(p, dim):
    torch = pytest.importorskip("torch")
    check_parity(lambda x: F.normalize(x, p, dim), lambda x: torch.nn.functional.normalize(x, p, dim), [(4, 5)])


@pytest.mark.torch
def test_normalize_of_a_zero_row_uses_eps_like_torch():
    torch = pytest.importorskip("torch")
    x = np.array([[0.0, 0.0, 0.0], [3.0, 4.0, 0.0]], np.float32)
    grad = np.array([[1.0, 2.0, 3.0], [1.0, -1.0, 2.0]], np.float32)
    ours = ti.Tensor(x.copy(), requires_grad=True)
    out = F.normalize(ours, eps=1e-6)
    out.backward(grad)
    theirs = torch.tensor(x, requires_grad=True)
    expected = torch.nn.functional.normalize(theirs, eps=1e-6)
    expected.backward(torch.tensor(grad))
    np.testing.assert_allclose(out.data, expected.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=1e-5)


def test_normalize_errors_name_the_problem():
    x = ti.Tensor(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match="normalize: p must be positive"):
        F.normalize(x, p=0)
    with pytest.raises(IndexError, match=r"normalize: dim 2 is out of range for an input of shape \(2, 3\)"):
        F.normalize(x, dim=2)
