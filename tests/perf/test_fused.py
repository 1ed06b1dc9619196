"""Stacked sibling 1x1 convolutions (nn/fused.py) and the small-map pooling kernels compute exactly what the
reference computes: units run one by one on the NumPy kernels, and the row kernels on the same data."""
import numpy as np
import pytest

import tinyinception as ti
from tinyinception.kernels import layout, pooling
from tinyinception.models.common import BasicConv2d
from tinyinception.nn import fused

TOLERANCE = {np.float32: (2e-4, 2e-5), np.float64: (1e-10, 1e-12)}


class _BiasedUnit(ti.nn.Module):
    """Conv(bias)-BN-ReLU, like BN-Inception's unit."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.conv = ti.nn.Conv2d(in_channels, out_channels, 1, bias=True)
        self.bn = ti.nn.BatchNorm2d(out_channels)

    def forward(self, x):
        return self.bn.forward_relu(self.conv(x))


def _units(kind, dtype, sizes=(3, 5, 2), in_channels=4):
    ti.manual_seed(0)
    make = BasicConv2d if kind == "basic" else _BiasedUnit
    units = [make(in_channels, size, 1) if kind == "basic" else make(in_channels, size) for size in sizes]
    for unit in units:
        unit.train()
        if dtype == np.float64:
            unit.double()
    return units


def _run(kernels_name, kind, dtype, x_array, grads):
    """Outputs, input gradient, parameter gradients and running statistics after one forward+backward."""
    units = _units(kind, dtype)
    with ti.using_kernels(kernels_name):
        x = ti.Tensor(x_array.copy(), requires_grad=True)
        outputs = fused.stacked_pointwise(x, units)
        loss = sum((out * ti.Tensor(g)).sum() for out, g in zip(outputs, grads))
        loss.backward()
    params = [p.grad for unit in units for p in unit.parameters()]
    buffers = [b for unit in units for b in (unit.bn.running_mean.data, unit.bn.running_var.data)]
    return [o.data for o in outputs], x.grad, params, buffers


@pytest.mark.parametrize("kind", ["basic", "biased"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stacked_pointwise_matches_units_one_by_one_on_numpy(kind, dtype):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 4, 5, 6)).astype(dtype)
    grads = [rng.standard_normal((3, size, 5, 6)).astype(dtype) for size in (3, 5, 2)]
    fast = _run("numba", kind, dtype, layout.from_channel_major(layout.channel_major(x)), grads)
    reference = _run("numpy", kind, dtype, x, grads)
    rtol, atol = TOLERANCE[dtype]
    for name, got, want in zip(("outputs", "input gradient", "parameter gradients", "running statistics"),
                               fast, reference):
        for a, b in zip(got if isinstance(got, list) else [got], want if isinstance(want, list) else [want]):
            assert a.dtype == np.dtype(dtype), name
            np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=name)


def test_stacked_pointwise_runs_one_convolution_and_falls_back_when_asked():
    units = _units("basic", np.float32)
    x = ti.Tensor(np.random.default_rng(2).standard_normal((2, 4, 3, 3)).astype(np.float32), requires_grad=True)
    with ti.using_kernels("numba"):
        with ti.profiler.profile() as stacked:
            fused.stacked_pointwise(x, units)
        with fused.stacking(False), ti.profiler.profile() as plain:
            fused.stacked_pointwise(x, units)
        handle = units[0].conv.register_forward_hook(lambda module, inputs, output: None)
        with ti.profiler.profile() as hooked:  # hooks (ti.summary) must see every convolution
            fused.stacked_pointwise(x, units)
        handle.remove()
    assert stacked.calls["Conv2d.forward"] == 1
    assert plain.calls["Conv2d.forward"] == 3
    assert hooked.calls["Conv2d.forward"] == 3


def test_split_channels_gathers_one_gradient_and_supports_retain_graph():
    data = layout.from_channel_major(np.arange(2 * 5 * 2 * 2, dtype=np.float32).reshape(5, 2, 2, 2))
    x = ti.Tensor(data, requires_grad=True)
    first, second = fused.split_channels(x, [2, 3])
    np.testing.assert_array_equal(second.data, data[:, 2:])
    loss = (first * 2.0).sum() + (second * 3.0).sum()
    loss.backward(retain_graph=True)
    expected = np.concatenate([np.full((2, 2, 2, 2), 2.0), np.full((2, 3, 2, 2), 3.0)], axis=1)
    np.testing.assert_array_equal(x.grad, expected)
    loss.backward()
    np.testing.assert_array_equal(x.grad, 2 * expected)
    with pytest.raises(ValueError, match=r"split_channels: sizes \[2, 2\] add up to 4, but the input has 5"):
        fused.split_channels(x, [2, 2])


@pytest.mark.parametrize("geometry", [((3, 3), (1, 1), (1, 1)), ((3, 3), (2, 2), (0, 0)), ((1, 3), (1, 1), (0, 1))])
def test_small_map_pooling_kernels_match_the_row_kernels(geometry):
    """Max pooling's row kernel and its side-by-side kernel, average pooling's row kernel and its plain scan: the
    same values, argmax and gradients on one small map."""
    kernel, stride, padding = geometry
    rng = np.random.default_rng(3)
    x = np.maximum(rng.standard_normal((6, 7, 9)), 0).astype(np.float32)  # ReLU-like: many ties at 0
    x[0, 2, 3] = np.nan
    out_h = (x.shape[1] + 2 * padding[0] - kernel[0]) // stride[0] + 1
    out_w = (x.shape[2] + 2 * padding[1] - kernel[1]) // stride[1] + 1
    results = []
    for side_by_side in (False, True):
        out = np.empty((6, out_h, out_w), np.float32)
        argmax = np.empty((6, out_h, out_w), np.int64)
        if side_by_side:
            pooling._max_pool_planes_side_by_side(x, out, argmax, *kernel, *stride, *padding, True)
        else:
            pooling._max_pool_planes(x, out, argmax, *kernel, *stride, *padding)
        results.append((out, argmax))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])

    x = np.nan_to_num(x)
    divisors = pooling._avg_pool_axis_divisors((1, 6) + x.shape[1:], kernel, stride, padding, (out_h, out_w),
                                               False, np.float32)
    grad_out = rng.standard_normal((6, out_h, out_w)).astype(np.float32)
    forward, backward = [], []
    for avg_kernel, avg_backward in ((pooling._avg_pool_planes, pooling._avg_pool_backward_planes),
                                     (pooling._avg_pool_planes_scalar, pooling._avg_pool_backward_planes_scalar)):
        out = np.empty((6, out_h, out_w), np.float32)
        avg_kernel(x, out, *kernel, *stride, *padding, *divisors)
        grad = np.zeros_like(x)
        avg_backward(grad_out, grad, *kernel, *stride, *padding, *divisors)
        forward.append(out)
        backward.append(grad)
    np.testing.assert_allclose(forward[0], forward[1], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(backward[0], backward[1], rtol=1e-6, atol=1e-6)


def test_a_hook_on_a_branch_sees_it_run_whole_and_changes_nothing():
    """GoogLeNet's inception blocks stack the 1x1 convolutions that open their branches; a forward hook on a branch
    (a Sequential) makes the block call the branches instead, with the same result."""
    model = ti.models.googlenet(num_classes=5, small_input=True, width=0.25, aux_logits=False).eval()
    x = ti.Tensor(np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32))
    with ti.using_kernels("numba"), ti.no_grad():
        expected = model(x).data
        seen = []
        handle = model.inception3a.branch_3x3.register_forward_hook(
            lambda module, inputs, output: seen.append(output.shape))
        hooked = model(x).data
        handle.remove()
    assert seen == [(2, model.inception3a.branch_3x3.conv.conv.out_channels, 16, 16)]  # small_input: 32 -> 16
    np.testing.assert_allclose(hooked, expected, rtol=1e-5, atol=1e-6)
