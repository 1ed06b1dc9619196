"""Every operation on the GPU (CuPy arrays) against the same operation on the CPU, forward and gradients.

The autograd code is the same on both devices; only the kernels differ, so these tests check the CuPy kernels and
the array-module dispatch. Skipped cleanly where no CUDA device answers (ti.cuda.is_available() is False).
The whole CPU op suite can also be pointed at the GPU: see benchmarks/gpu_check.py.
"""
import numpy as np
import pytest

import tinyinception as ti
import tinyinception.functional as F
from helpers import assert_close, make_arrays

pytestmark = pytest.mark.gpu

OPS = {
    "add": (lambda a, b: a + b, [(2, 3, 4), (3, 1)]),
    "mul_div": (lambda a, b: a * b / (b * b + 1), [(2, 3), (2, 3)]),
    "pow_exp_log_sqrt": (lambda a: (a ** 2 + 1).log().sqrt().exp(), [(3, 4)]),
    "matmul": (lambda a, b: a @ b, [(2, 3, 4), (4, 5)]),
    "sum_mean_max": (lambda a: a.sum(1) + a.mean(1) + a.max(1), [(3, 4, 5)]),
    "reshape_permute_getitem": (lambda a: a.permute(2, 0, 1).reshape(5, -1)[1:4, ::2], [(3, 4, 5)]),
    "integer_index": (lambda a: a[np.array([0, 2, 2])], [(4, 3)]),
    "activations": (lambda a: a.relu() + a.sigmoid() + a.tanh() + F.softmax(a, 1) + F.log_softmax(a, 1), [(4, 6)]),
    "cross_entropy": (lambda a: F.cross_entropy(a, np.array([0, 3, 1, 2]), label_smoothing=0.1), [(4, 5)]),
    "linear": (lambda x, w, b: F.linear(x, w, b), [(4, 3), (5, 3), (5,)]),
    "conv3x3": (lambda x, w, b: F.conv2d(x, w, b, padding=1), [(2, 3, 8, 8), (4, 3, 3, 3), (4,)]),
    "conv1x7_stride2_groups": (lambda x, w: F.conv2d(x, w, stride=2, padding=(0, 3), groups=2),
                               [(2, 4, 9, 9), (6, 2, 1, 7)]),
    "conv_dilated": (lambda x, w: F.conv2d(x, w, padding=2, dilation=2), [(1, 2, 7, 7), (3, 2, 3, 3)]),
    "conv1x1": (lambda x, w: F.conv2d(x, w), [(2, 6, 5, 5), (4, 6, 1, 1)]),
    "max_pool_ceil": (lambda x: F.max_pool2d(x, 3, 2, ceil_mode=True), [(2, 3, 8, 8)]),
    "avg_pool_exclude_pad": (lambda x: F.avg_pool2d(x, 3, 1, 1, count_include_pad=False), [(2, 3, 6, 6)]),
    "avg_pool_1x3": (lambda x: F.avg_pool2d(x, (1, 3), (1, 2), (0, 1), ceil_mode=True), [(1, 2, 5, 7)]),
    "adaptive_avg_pool": (lambda x: F.adaptive_avg_pool2d(x, 4), [(2, 3, 14, 14)]),
    "batch_norm_train": (lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), [(4, 3, 5, 5), (3,), (3,)]),
    "batch_norm_relu_train": (lambda x, w, b: F.batch_norm_relu(x, None, None, w, b, training=True),
                              [(4, 3, 5, 5), (3,), (3,)]),
    "batch_norm_eval": (None, [(4, 3, 5, 5), (3,), (3,)]),  # running statistics must live on each device
    "local_response_norm": (lambda x: F.local_response_norm(x, 5, 0.1), [(2, 7, 3, 3)]),
    "concat": (lambda a, b: ti.cat([a, b], dim=1), [(2, 3, 4, 4), (2, 5, 4, 4)]),
    "residual_add": (lambda x, b: F.residual_add(x, b, 0.17), [(2, 3, 4, 4), (2, 3, 4, 4)]),
    "residual_add_relu": (lambda x, b: F.residual_add(x, b, 0.17, relu=True), [(2, 3, 4, 4), (2, 3, 4, 4)]),
    "normalize": (lambda x: F.normalize(x, 2.0, 1), [(3, 5)]),
    # on the CPU this one takes the phase-image path (16 channels, stride 2), on the GPU per-image im2col
    "conv_stride2_16_channels": (lambda x, w: F.conv2d(x, w, stride=2, padding=1), [(2, 16, 7, 7), (4, 16, 3, 3)]),
}


def _run(fn, arrays, device):
    inputs = [ti.Tensor(ti.backend.to_device(a.copy(), device), requires_grad=True) for a in arrays]
    out = fn(*inputs)
    upstream = np.random.default_rng(7).standard_normal(out.shape).astype(out.dtype)
    out.backward(ti.backend.to_device(upstream, device))
    return out.numpy(), [ti.backend.to_device(x.grad, "cpu") for x in inputs]




@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_op_on_gpu_matches_cpu(name, dtype):
    fn, shapes = OPS[name]
    if name == "batch_norm_eval":
        import cupy
        fn = lambda x, w, b: F.batch_norm(x, cupy.zeros(3, dtype), cupy.ones(3, dtype), w, b)  # noqa: E731
        cpu_fn = lambda x, w, b: F.batch_norm(x, np.zeros(3, dtype), np.ones(3, dtype), w, b)  # noqa: E731
    else:
        cpu_fn = fn
    arrays = make_arrays(shapes, dtype, seed=3)
    cpu_out, cpu_grads = _run(cpu_fn, arrays, "cpu")
    gpu_out, gpu_grads = _run(fn, arrays, "cuda")
    tol = 1e-4 if dtype == np.float32 else 1e-10
    assert_close(gpu_out, cpu_out, tol, tol, what=f"{name} forward")
    for k, (mine, reference) in enumerate(zip(gpu_grads, cpu_grads)):
        assert mine.dtype == dtype
        assert_close(mine, reference, tol, tol, what=f"{name} gradient of input {k}")


def test_tensor_and_module_move_between_devices():
    layer = ti.nn.Sequential(ti.nn.Conv2d(3, 4, 3), ti.nn.BatchNorm2d(4), ti.nn.ReLU())
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 6)).astype(np.float32)
    cpu_out = layer(ti.tensor(x)).numpy()
    layer.to("cuda")
    assert all(p.device == "cuda" for p in layer.parameters())
    assert all(b.device == "cuda" for b in layer.buffers())
    layer.load_state_dict(layer.state_dict())
    # running statistics were updated by the CPU call above; the second call starts from them on both sides
    gpu_in = ti.tensor(x).to("cuda")
    out = layer(gpu_in)
    assert out.device == "cuda"
    layer.to("cpu")
    assert layer[0].weight.device == "cpu"
    assert cpu_out.shape == out.shape


def test_gradient_flows_back_across_devices():
    x = ti.tensor(np.ones((2, 3), np.float32), requires_grad=True)
    y = (x.to("cuda") * 3).sum()
    y.backward()
    assert x.grad.__class__ is np.ndarray and (x.grad == 3).all()


def test_dropout_on_gpu_keeps_expected_fraction():
    x = ti.tensor(np.ones((200, 200), np.float32)).to("cuda")
    y = F.dropout(x, 0.3, training=True).numpy()
    assert abs((y == 0).mean() - 0.3) < 0.02
    assert np.allclose(y[y != 0], 1 / 0.7)
