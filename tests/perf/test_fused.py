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


# --- the pool branch: an average pool moved past its 1x1 convolution into the stacked product -----------------------
POOL_CASES = {
    "padding counted": dict(kernel_size=3, stride=1, padding=1, count_include_pad=True),
    "real pixels only": dict(kernel_size=3, stride=1, padding=1, count_include_pad=False),
    "ceil mode": dict(kernel_size=3, stride=1, padding=1, ceil_mode=True, count_include_pad=True),
}


def _pool_block(kind, dtype, training):
    """Three 1x1 units and a pooled unit on 4 channels (in train or eval mode, random running statistics)."""
    units = _units(kind, dtype, sizes=(3, 5, 2, 4))
    rng = np.random.default_rng(7)
    for unit in units:
        unit.bn.running_mean.data[...] = rng.standard_normal(unit.bn.num_features)
        unit.bn.running_var.data[...] = rng.uniform(0.5, 2.0, unit.bn.num_features)
        unit.train(training)
    return units[:3], units[3]


def _run_pool_branch(kernels_name, kind, dtype, pool, x_array, training, stacking=True):
    """(outputs, input gradient or None, parameter gradients, Conv2d.forward calls) of the block with a pool branch;
    in eval mode under no_grad (the folded path), in train mode with a backward pass."""
    units, pooled_unit = _pool_block(kind, dtype, training)
    with ti.using_kernels(kernels_name), fused.stacking(stacking), ti.profiler.profile() as profile:
        x = ti.Tensor(x_array.copy(), requires_grad=training)
        if not training:
            with ti.no_grad():
                return [o.data for o in fused.stacked_pointwise(x, units, pooled_unit, pool)], None, [], profile
        outputs = fused.stacked_pointwise(x, units, pooled_unit, pool)
        rng = np.random.default_rng(3)
        loss = sum((out * ti.Tensor(rng.standard_normal(out.shape).astype(dtype))).sum() for out in outputs)
        loss.backward()
    params = [p.grad for unit in units + [pooled_unit] for p in unit.parameters()]
    return [o.data for o in outputs], x.grad, params, profile


def _channel_major_input(dtype, seed=1, shape=(3, 4, 5, 6)):
    x = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    return layout.from_channel_major(layout.channel_major(x))


@pytest.mark.parametrize("pool", sorted(POOL_CASES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_pool_branch_after_its_1x1_equals_the_branch_as_written(pool, dtype, training):
    """avg_pool(conv1x1(x)) in the stacked product equals conv1x1(avg_pool(x)) run as written on the NumPy kernels:
    outputs, and in training the input's and every parameter's gradient, in float64 to 1e-10."""
    x = _channel_major_input(dtype)
    fast = _run_pool_branch("numba", "basic", dtype, POOL_CASES[pool], x, training)
    reference = _run_pool_branch("numpy", "basic", dtype, POOL_CASES[pool], x, training)
    assert fast[3].calls["Conv2d.forward"] == 1  # the four units' convolutions as one product
    assert reference[3].calls["Conv2d.forward"] == 4
    assert fast[0][3].shape == (3, 4, 5, 6)
    rtol, atol = TOLERANCE[dtype]
    for got, want in zip(fast[0] + ([fast[1]] if training else []) + fast[2],
                         reference[0] + ([reference[1]] if training else []) + reference[2]):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


def test_pool_branch_with_a_bias_moves_only_where_the_bias_is_added_after_the_pool():
    """With count_include_pad a pooled bias shrinks at the border, so a unit with a bias keeps its pool first in
    training (two products: the stacked three, then the pool branch) and moves it in inference (the folded output
    pass adds the bias after the pool); both equal the NumPy reference."""
    pool = POOL_CASES["padding counted"]
    x = _channel_major_input(np.float64)
    for training, convolutions in ((True, 2), (False, 1)):
        fast = _run_pool_branch("numba", "biased", np.float64, pool, x, training)
        reference = _run_pool_branch("numpy", "biased", np.float64, pool, x, training)
        assert fast[3].calls["Conv2d.forward"] == convolutions
        for got, want in zip(fast[0] + fast[2], reference[0] + reference[2]):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("pool", [dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=3, stride=1, padding=0),
                                  dict(kernel_size=2, stride=1, padding=0)])
def test_a_pool_that_changes_the_map_stays_before_its_1x1(pool):
    """Only a stride-1 pool that keeps the map's size moves (otherwise the product would do more work than the
    branch): the others run as written, with the same result."""
    x = _channel_major_input(np.float32)
    fast = _run_pool_branch("numba", "basic", np.float32, pool, x, training=False)
    reference = _run_pool_branch("numpy", "basic", np.float32, pool, x, training=False)
    assert fast[3].calls["Conv2d.forward"] == 2
    for got, want in zip(fast[0], reference[0]):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_pool_branch_after_its_1x1_keeps_non_finite_inputs_where_the_branch_does(value):
    """A NaN or infinity in x reaches the same outputs, as the same kind of non-finite value, whichever runs first:
    the pool spreads it over its 3x3 neighbourhood, the 1x1 over every output channel."""
    x = _channel_major_input(np.float32)
    x[1, 2, 2, 3] = value
    x[2, 0, 0, 0] = value
    fast = _run_pool_branch("numba", "basic", np.float32, POOL_CASES["padding counted"], x, training=False)
    reference = _run_pool_branch("numba", "basic", np.float32, POOL_CASES["padding counted"], x, training=False,
                                 stacking=False)
    got, want = fast[0][3], reference[0][3]
    assert np.isnan(want).any() or np.isinf(want).any()
    for kind in (np.isnan, np.isposinf, np.isneginf):
        np.testing.assert_array_equal(kind(got), kind(want))
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=2e-5, atol=2e-6)


def test_bn_inception_pool_branch_joins_the_product_and_a_hook_keeps_it_whole():
    """BN-Inception's ``branch_pool = Sequential(AvgPool2d, unit)`` joins its block's stacked product in inference
    (one convolution for the four 1x1s); a forward hook on it makes the block call it as written, and sees it."""
    model = ti.models.bn_inception(num_classes=5, width=0.25).eval()
    block = model.inception3a
    x = ti.Tensor(_channel_major_input(np.float32, shape=(2, block.branch_1x1.conv.in_channels, 7, 7)))
    with ti.using_kernels("numba"), ti.no_grad():
        with ti.profiler.profile() as stacked:
            expected = block(x).data
        seen = []
        handle = block.branch_pool.register_forward_hook(lambda module, inputs, output: seen.append(output.shape))
        with ti.profiler.profile() as hooked:
            got = block(x).data
        handle.remove()
        with fused.stacking(False):
            plain = block(x).data
    assert stacked.calls["Conv2d.forward"] == 4  # the four 1x1s as one, then the three 3x3s
    assert hooked.calls["Conv2d.forward"] == 5  # the pool branch on its own
    assert seen == [(2, block.branch_pool.proj.conv.out_channels, 7, 7)]
    np.testing.assert_allclose(got, plain, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(expected, plain, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("channel_major", [True, False], ids=["channel-major", "nchw"])
def test_inference_product_multiplies_each_weight_into_its_own_rows(dtype, channel_major):
    """The stacked 1x1 product of inference, made without concatenating the weights (channel-major input) or with
    (any other), equals one convolution by the concatenated weights, a non-finite weight included."""
    rng = np.random.default_rng(5)
    x_array = rng.standard_normal((2, 6, 5, 4)).astype(dtype)
    x = ti.Tensor(layout.from_channel_major(layout.channel_major(x_array)) if channel_major else x_array)
    weights = [ti.Tensor(rng.standard_normal((size, 6, 1, 1)).astype(dtype)) for size in (3, 5, 2)]
    weights[1].data[2, 4, 0, 0] = np.nan
    with ti.using_kernels("numba"), ti.no_grad():
        got = fused.inference_product(x, weights)
        want = ti.functional.conv2d(ti.Tensor(x_array), ti.concat(weights, dim=0))
    assert got.shape == (2, 10, 5, 4)
    assert layout.is_channel_major(got.data) or not channel_major  # channel-major in, channel-major out
    rtol, atol = TOLERANCE[dtype]
    np.testing.assert_allclose(got.data, want.data, rtol=rtol, atol=atol)
    assert np.isnan(got.data[:, 5]).all() and np.isfinite(np.delete(got.data, 5, axis=1)).all()
