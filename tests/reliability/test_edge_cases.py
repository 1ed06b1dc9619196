"""Edge cases a user meets: dimensions out of range, integer arrays where floats are needed, empty batches,
kernels larger than the map, and NumPy integers as sizes, strides and paddings."""
import os
import subprocess
import sys

import numpy as np
import pytest

import tinyinception as ti
import tinyinception.functional as F
from helpers import check_parity

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def tensor(shape, seed=0, requires_grad=False):
    data = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return ti.Tensor(data, requires_grad=requires_grad)


# ---------------------------------------------------------------------------------------------------------------
# Dimensions out of range: an IndexError, as PyTorch's, never another axis
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dim", [4, 5, -5, 100])
def test_concat_rejects_a_dimension_out_of_range(dim):
    x = tensor((2, 3, 4, 4))
    with pytest.raises(IndexError, match=r"concat: dimension out of range .*\[-4, 3\].*" + str(dim)):
        F.concat([x, x], dim=dim)


@pytest.mark.parametrize("dim", [3, -4])
def test_concat_takes_every_dimension_in_range(dim):
    x, y = tensor((2, 3, 4, 4)), tensor((2, 3, 4, 4), seed=1)
    expected = np.concatenate([x.numpy(), y.numpy()], axis=dim)
    np.testing.assert_array_equal(F.concat([x, y], dim=dim).numpy(), expected)


@pytest.mark.parametrize("call", [
    lambda x: F.flatten(x, 5), lambda x: F.flatten(x, 0, -5), lambda x: F.transpose(x, 0, 4),
    lambda x: F.transpose(x, -5, 1), lambda x: F.permute(x, (0, 1, 2, 7)), lambda x: F.softmax(x, dim=4),
    lambda x: F.log_softmax(x, dim=-5), lambda x: F.sum(x, dim=4), lambda x: F.mean(x, dim=-5),
    lambda x: F.max(x, dim=4), lambda x: F.normalize(x, dim=4), lambda x: F.argmax(x, dim=4)])
def test_other_ops_taking_a_dimension_reject_one_out_of_range(call):
    with pytest.raises(IndexError):
        call(tensor((2, 3, 4, 4)))


def test_flatten_with_start_after_end_is_an_error():
    with pytest.raises(ValueError, match="start_dim"):
        F.flatten(tensor((2, 3, 4, 4)), 3, 1)


# ---------------------------------------------------------------------------------------------------------------
# Integer arrays where floats are needed: a TypeError naming what is wrong
# ---------------------------------------------------------------------------------------------------------------
def test_local_response_norm_refuses_an_integer_input():
    with pytest.raises(TypeError, match="local_response_norm: input must be a floating-point tensor.*int64"):
        F.local_response_norm(ti.Tensor(np.arange(2 * 6 * 2 * 2).reshape(2, 6, 2, 2)), 5)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("which", ["running_mean", "running_var"])
def test_batch_norm_refuses_integer_running_statistics(which, training):
    stats = {"running_mean": np.zeros(3, np.float32), "running_var": np.ones(3, np.float32)}
    stats[which] = stats[which].astype(np.int64)
    with pytest.raises(TypeError, match=f"batch_norm: {which} must hold floating-point values, got dtype int64"):
        F.batch_norm(tensor((4, 3, 2, 2)), stats["running_mean"], stats["running_var"], training=training)


# ---------------------------------------------------------------------------------------------------------------
# Empty batches (N = 0): empty outputs and empty (or zero) gradients on every path, as PyTorch's
# ---------------------------------------------------------------------------------------------------------------
CONVOLUTIONS = {
    "winograd": ((0, 16, 8, 8), (32, 16, 3, 3), dict(padding=1)),
    "shifted": ((0, 4, 8, 8), (8, 4, 3, 3), dict(padding=1)),
    "strided": ((0, 16, 9, 9), (8, 16, 3, 3), dict(stride=2, padding=1)),
    "1x7": ((0, 4, 9, 9), (6, 4, 1, 7), dict(padding=(0, 3))),
    "im2col": ((0, 4, 9, 9), (6, 4, 3, 3), dict(stride=2, padding=1)),
    "groups": ((0, 4, 8, 8), (6, 2, 3, 3), dict(padding=1, groups=2)),
    "pointwise": ((0, 4, 8, 8), (6, 4, 1, 1), {}),
    "pointwise_strided": ((0, 4, 8, 8), (6, 4, 1, 1), dict(stride=2)),
}


@pytest.mark.torch
@pytest.mark.parametrize("kernels", ["numba", "numpy"])
@pytest.mark.parametrize("path", list(CONVOLUTIONS))
def test_conv2d_on_an_empty_batch(path, kernels):
    torch = pytest.importorskip("torch")
    x_shape, w_shape, kwargs = CONVOLUTIONS[path]
    with ti.using_kernels(kernels):
        check_parity(lambda x, w, b: F.conv2d(x, w, b, **kwargs),
                     lambda x, w, b: torch.nn.functional.conv2d(x, w, b, **kwargs),
                     [x_shape, w_shape, (w_shape[0],)])


EMPTY_OPS = {
    "max_pool": lambda m, x: m.max_pool2d(x, 3, 2),
    "max_pool_ceil": lambda m, x: m.max_pool2d(x, 3, 2, ceil_mode=True),
    "avg_pool": lambda m, x: m.avg_pool2d(x, 3, 1, 1),
    "adaptive_pool": lambda m, x: m.adaptive_avg_pool2d(x, 4),
    "global_pool": lambda m, x: m.adaptive_avg_pool2d(x, 1),
    "local_response_norm": lambda m, x: m.local_response_norm(x, 5),
    "relu": lambda m, x: m.relu(x),
    "dropout_eval": lambda m, x: m.dropout(x, 0.5, training=False),
}


@pytest.mark.torch
@pytest.mark.parametrize("kernels", ["numba", "numpy"])
@pytest.mark.parametrize("op", list(EMPTY_OPS))
def test_ops_on_an_empty_batch(op, kernels):
    torch = pytest.importorskip("torch")
    with ti.using_kernels(kernels):
        check_parity(lambda x: EMPTY_OPS[op](F, x), lambda x: EMPTY_OPS[op](torch.nn.functional, x), [(0, 6, 8, 8)])


@pytest.mark.torch
@pytest.mark.parametrize("kernels", ["numba", "numpy"])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_on_an_empty_batch(training, relu, kernels):
    """As PyTorch: an empty output, zero gradients for weight and bias, the running statistics unchanged."""
    torch = pytest.importorskip("torch")
    mean, var = np.full(6, 0.5, np.float32), np.full(6, 2.0, np.float32)
    ours_mean, ours_var = mean.copy(), var.copy()
    op = F.batch_norm_relu if relu else F.batch_norm

    def reference(x, w, b):
        y = torch.nn.functional.batch_norm(x, torch.tensor(mean), torch.tensor(var), w, b, training=training)
        return torch.relu(y) if relu else y

    with ti.using_kernels(kernels):
        check_parity(lambda x, w, b: op(x, ours_mean, ours_var, w, b, training=training), reference,
                     [(0, 6, 4, 4), (6,), (6,)])
    np.testing.assert_array_equal(ours_mean, mean)
    np.testing.assert_array_equal(ours_var, var)


@pytest.mark.slow
@pytest.mark.parametrize("paper", [False, True])
def test_googlenet_forward_and_backward_on_an_empty_batch(paper):
    model = ti.models.googlenet(num_classes=10, width=0.25, paper=paper)
    model.train()
    x = ti.Tensor(np.zeros((0, 3, 224, 224), np.float32), requires_grad=True)
    outputs = model(x)
    assert [tuple(o.shape) for o in outputs] == [(0, 10)] * 3
    sum(o.sum() for o in outputs).backward()
    assert x.grad.shape == (0, 3, 224, 224)
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and not np.any(parameter.grad), name
    model.eval()
    assert model(x).shape == (0, 10)


# ---------------------------------------------------------------------------------------------------------------
# Kernels larger than the map
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.torch
def test_5x5_on_a_2x2_map_without_direct_blas():
    """im2col's "same" kernel shifted a row by more than the whole 2x2 plane (a ValueError); run in a fresh process
    because TINYINCEPTION_DIRECT_BLAS is read once."""
    script = (
        "import numpy as np, torch, tinyinception as ti, tinyinception.functional as F\n"
        "from tinyinception.kernels import blas\n"
        "assert not blas.available(np.dtype(np.float32))\n"
        "rng = np.random.default_rng(0)\n"
        "x, w = rng.standard_normal((2, 4, 2, 2), np.float32), rng.standard_normal((6, 4, 5, 5), np.float32)\n"
        "ours_x, ours_w = ti.Tensor(x, requires_grad=True), ti.Tensor(w, requires_grad=True)\n"
        "theirs_x, theirs_w = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)\n"
        "ours = F.conv2d(ours_x, ours_w, padding=2)\n"
        "theirs = torch.nn.functional.conv2d(theirs_x, theirs_w, padding=2)\n"
        "ours.sum().backward(); theirs.sum().backward()\n"
        "np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-4, atol=1e-4)\n"
        "np.testing.assert_allclose(ours_x.grad, theirs_x.grad.numpy(), rtol=1e-4, atol=1e-4)\n"
        "np.testing.assert_allclose(ours_w.grad, theirs_w.grad.numpy(), rtol=1e-4, atol=1e-4)\n"
    )
    env = dict(os.environ, TINYINCEPTION_DIRECT_BLAS="0")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.torch
@pytest.mark.parametrize("kernels", ["numba", "numpy"])
def test_5x5_on_a_2x2_map(kernels):
    torch = pytest.importorskip("torch")
    with ti.using_kernels(kernels):
        check_parity(lambda x, w: F.conv2d(x, w, padding=2), lambda x, w: torch.nn.functional.conv2d(x, w, padding=2),
                     [(2, 4, 2, 2), (6, 4, 5, 5)], rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------------------------------------------
# NumPy integers work as ints wherever a size, stride, padding or dilation is accepted
# ---------------------------------------------------------------------------------------------------------------
NUMPY_INTEGERS = [np.int64, np.int32, np.int16, np.uint8]


@pytest.mark.parametrize("kind", NUMPY_INTEGERS)
def test_numpy_integers_in_functional_ops(kind):
    x = tensor((2, 16, 9, 9))
    w = tensor((8, 16, 3, 3), seed=1)
    np.testing.assert_array_equal(
        F.conv2d(x, w, stride=kind(2), padding=kind(1), dilation=kind(1), groups=kind(1)).numpy(),
        F.conv2d(x, w, stride=2, padding=1).numpy())
    np.testing.assert_array_equal(F.conv2d(x, w, stride=(kind(2), kind(1))).numpy(),
                                  F.conv2d(x, w, stride=(2, 1)).numpy())
    np.testing.assert_array_equal(F.max_pool2d(x, kind(3), kind(2), kind(1)).numpy(),
                                  F.max_pool2d(x, 3, 2, 1).numpy())
    np.testing.assert_array_equal(F.avg_pool2d(x, kind(3), kind(2), ceil_mode=True).numpy(),
                                  F.avg_pool2d(x, 3, 2, ceil_mode=True).numpy())
    np.testing.assert_array_equal(F.adaptive_avg_pool2d(x, kind(4)).numpy(), F.adaptive_avg_pool2d(x, 4).numpy())
    np.testing.assert_array_equal(F.adaptive_avg_pool2d(x, (kind(4), None)).numpy(),
                                  F.adaptive_avg_pool2d(x, (4, None)).numpy())
    np.testing.assert_array_equal(F.local_response_norm(x, kind(5)).numpy(), F.local_response_norm(x, 5).numpy())


@pytest.mark.parametrize("kind", NUMPY_INTEGERS)
def test_numpy_integers_in_layers(kind):
    x = tensor((2, 16, 9, 9))
    conv = ti.nn.Conv2d(16, 8, kind(3), stride=kind(2), padding=kind(1))
    assert conv.kernel_size == (3, 3) and type(conv.stride[0]) is int
    assert conv(x).shape == (2, 8, 5, 5)
    assert ti.nn.MaxPool2d(kind(3), kind(2), ceil_mode=True)(x).shape == (2, 16, 4, 4)
    assert ti.nn.AvgPool2d(kind(3), kind(1), kind(1))(x).shape == (2, 16, 9, 9)
    assert ti.nn.AdaptiveAvgPool2d(kind(4))(x).shape == (2, 16, 4, 4)
