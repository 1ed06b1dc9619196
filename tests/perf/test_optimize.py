"""``ti.optimize``: a block written with ti.nn layers gets the networks' fusions, with the same results, state_dict
keys, hooks and summary as before."""
import copy

import numpy as np
import pytest

import tinyinception as ti
from tinyinception import nn
from tinyinception.nn import fused

from helpers import randomise_batch_norms


def unit(in_channels, out_channels, kernel_size, padding=0, bias=False):
    return [nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, bias=bias),
            nn.BatchNorm2d(out_channels, eps=1e-3), nn.ReLU()]


class UserInception(nn.Module):
    """Inception (3a) as a user writes it from ti.nn layers (channels scaled by 1/8): flat and nested Sequentials."""

    def __init__(self, c=24):
        super().__init__()
        self.branch_1x1 = nn.Sequential(*unit(c, 8, 1))
        self.branch_3x3 = nn.Sequential(*unit(c, 12, 1), *unit(12, 16, 3, padding=1))
        self.branch_5x5 = nn.Sequential(nn.Sequential(*unit(c, 2, 1)), nn.Sequential(*unit(2, 4, 3, padding=1)))
        self.branch_pool = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), *unit(c, 4, 1))

    def forward(self, x):
        return ti.concat([self.branch_1x1(x), self.branch_3x3(x), self.branch_5x5(x), self.branch_pool(x)], dim=1)


def block_pair(seed=0):
    ti.manual_seed(seed)
    plain = randomise_batch_norms(UserInception(), seed)
    return plain, ti.optimize(copy.deepcopy(plain))


def batch(seed=1, shape=(2, 24, 7, 7)):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def train_step(model, x_array, kernels):
    """Output, input gradient, parameter gradients and running statistics after one training forward+backward."""
    model.train()
    with ti.using_kernels(kernels):
        x = ti.Tensor(x_array.copy(), requires_grad=True)
        out = model(x)
        (out * ti.Tensor(np.linspace(-1, 1, out.numel(), dtype=np.float32).reshape(out.shape))).sum().backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    buffers = {name: b.copy() for name, b in model.state_dict().items() if "running" in name}
    return out.data, x.grad, grads, buffers


def close(got, want, what):
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5 * max(1.0, float(np.abs(want).max())), err_msg=what)


def test_optimize_keeps_the_model_and_its_keys():
    plain, optimized = block_pair()
    assert ti.optimize(optimized) is optimized
    assert list(plain.state_dict()) == list(optimized.state_dict())
    assert type(optimized.branch_3x3) is nn.FusedSequential and isinstance(optimized.branch_3x3, nn.Sequential)
    assert type(optimized.branch_pool[0]) is nn.MaxPool2d
    assert repr(optimized).replace("FusedSequential", "Sequential") == repr(plain)


@pytest.mark.parametrize("kernels", ["numba", "numpy"])
def test_optimized_training_step_equals_the_plain_block(kernels):
    plain, optimized = block_pair()
    x = batch()
    reference = train_step(plain, x, "numpy")
    with ti.profiler.profile() as profile:
        result = train_step(optimized, x, kernels)
    for what, got, want in zip(("output", "input gradient"), result[:2], reference[:2]):
        close(got, want, what)
    for what in (2, 3):
        assert result[what].keys() == reference[what].keys()
        for name in reference[what]:
            close(result[what][name], reference[what][name], name)
    assert profile.calls.get("ReLU.forward", 0) == 0  # every ReLU ran inside its BatchNorm's pass
    if kernels == "numba":  # the three 1x1 heads on x ran as one product: 4 convolutions, not 6
        assert profile.calls["Conv2d.forward"] == 4


def test_optimized_inference_folds_and_equals_the_plain_block():
    plain, optimized = block_pair()
    plain.eval(), optimized.eval()
    x = ti.Tensor(batch(2))
    reference = plain(x).data  # recorded graph: the plain layers
    with ti.using_kernels("numba"), ti.no_grad(), ti.profiler.profile() as profile:
        folded = optimized(x).data
    close(folded, reference, "eval output")
    assert profile.calls.get("BatchNorm.forward", 0) == 0 and profile.calls.get("ReLU.forward", 0) == 0
    assert profile.calls["Conv2d.forward"] == 4


def test_hooks_fire_and_summary_is_unchanged():
    plain, optimized = block_pair()
    seen = []
    optimized.branch_3x3.register_forward_hook(lambda module, inputs, output: seen.append(("branch", output.shape)))
    optimized.branch_1x1[0].register_forward_hook(lambda module, inputs, output: seen.append(("conv", output.shape)))
    x = ti.Tensor(batch(3))
    with ti.using_kernels("numba"), ti.no_grad():
        close(optimized.eval()(x).data, plain.eval()(x).data, "hooked output")
    assert seen == [("conv", (2, 8, 7, 7)), ("branch", (2, 16, 7, 7))]
    ours, theirs = (ti.summary(m, (24, 7, 7), show=False) for m in (optimized, plain))
    assert ours.total_macs == theirs.total_macs and ours.used_params == theirs.used_params
    assert [(r.name, r.output_shape, r.macs) for r in ours.rows] == [(r.name, r.output_shape, r.macs)
                                                                    for r in theirs.rows]


class SeparateInputs(nn.Module):
    """Two 1x1 branches that read different tensors: nothing to stack, and nothing may go wrong."""

    def __init__(self):
        super().__init__()
        self.left, self.right = nn.Sequential(*unit(6, 4, 1)), nn.Sequential(*unit(6, 5, 1))

    def forward(self, x):
        return ti.concat([self.left(x), self.right(x * 2.0)], dim=1)


def test_siblings_on_different_inputs_stop_stacking_and_stay_right():
    ti.manual_seed(3)
    plain = randomise_batch_norms(SeparateInputs())
    optimized = ti.optimize(copy.deepcopy(plain))
    x_array = batch(4, (2, 6, 5, 5))
    for _ in range(2):  # the first call stacks for nothing and learns; the second computes each branch alone
        with ti.profiler.profile() as profile:
            result = train_step(optimized, x_array, "numba")
        reference = train_step(plain, x_array, "numpy")
        close(result[0], reference[0], "output")
        close(result[1], reference[1], "input gradient")
        for name in reference[2]:
            close(result[2][name], reference[2][name], name)
    assert profile.calls["Conv2d.forward"] == 2
    assert not optimized.left.__dict__["_siblings"].enabled


def test_stacking_switched_off_gives_the_same_result():
    _, optimized = block_pair()
    x = batch(5)
    stacked = train_step(optimized, x, "numba")[:2]
    optimized.zero_grad()
    with fused.stacking(False), ti.profiler.profile() as profile:
        unstacked = train_step(optimized, x, "numba")[:2]
    assert profile.calls["Conv2d.forward"] == 6
    close(stacked[0], unstacked[0], "output")
    close(stacked[1], unstacked[1], "input gradient")


def test_an_optimized_user_block_runs_the_same_operations_as_the_models_block():
    """Inception (3a) from ti.nn layers after ti.optimize runs exactly the operations of the ti.models block, forward
    and backward: the machine-independent half of "as fast as the block from ti.models"."""
    from benchmarks.user_blocks import UserInception
    from tinyinception.models.inception_v1 import Inception
    x_array = batch(6, (2, 24, 6, 6))
    models_block = Inception(24, 8, 12, 16, 2, 4, 4)
    assert operations(ti.optimize(UserInception(24, 8, 12, 16, 2, 4, 4)), x_array) == operations(models_block, x_array)


def operations(block, x_array):
    """{operation name: calls} of one training forward+backward of ``block`` on the Numba kernels."""
    block.train()
    with ti.using_kernels("numba"), ti.profiler.profile() as profile:
        x = ti.Tensor(x_array, requires_grad=True)
        block(x).sum().backward()
    return dict(profile.calls)


def test_an_optimized_model_survives_deepcopy_and_pickle_and_optimize_leaves_the_networks_alone():
    import pickle
    _, optimized = block_pair()
    x = ti.Tensor(batch(7))
    optimized.eval()
    with ti.no_grad():
        expected = optimized(x).data
        for twin in (copy.deepcopy(optimized), pickle.loads(pickle.dumps(optimized))):
            close(twin(x).data, expected, "copied model")
            assert twin.branch_3x3.__dict__["_siblings"].members[0] is twin.branch_1x1
    network = ti.models.googlenet(num_classes=5, small_input=True, width=0.25, aux_logits=False).eval()
    image = ti.Tensor(batch(8, (1, 3, 32, 32)))
    with ti.no_grad():
        before = network(image).data
        assert ti.optimize(network) is network
        np.testing.assert_array_equal(network(image).data, before)
    assert not any(isinstance(m, nn.FusedSequential) for m in network.modules())


class UserInceptionA(nn.Module):
    """Inception-v3's 35x35 block as a user writes it from ti.nn layers (channels scaled down), with its average-pool
    branch: ``Sequential(AvgPool2d(3, stride=1, padding=1), Conv2d 1x1, BatchNorm2d, ReLU)``."""

    def __init__(self, c=12, bias=False):
        super().__init__()
        self.branch1x1 = nn.Sequential(*unit(c, 6, 1, bias=bias))
        self.branch5x5 = nn.Sequential(*unit(c, 4, 1, bias=bias), *unit(4, 6, 5, padding=2, bias=bias))
        self.branch3x3dbl = nn.Sequential(*unit(c, 6, 1, bias=bias), *unit(6, 8, 3, padding=1, bias=bias),
                                          *unit(8, 8, 3, padding=1, bias=bias))
        self.branch_pool = nn.Sequential(nn.AvgPool2d(3, stride=1, padding=1), *unit(c, 4, 1, bias=bias))

    def forward(self, x):
        return ti.concat([self.branch1x1(x), self.branch5x5(x), self.branch3x3dbl(x), self.branch_pool(x)], dim=1)


def pool_block_pair(seed=0, bias=False):
    ti.manual_seed(seed)
    plain = randomise_batch_norms(UserInceptionA(bias=bias), seed)
    return plain, ti.optimize(copy.deepcopy(plain))


def test_a_pool_branch_joins_its_siblings_product_with_its_pool_after_the_1x1():
    """Training and inference: the four 1x1 convolutions on x run as one product (4 convolutions instead of 7), the
    pool on the branch's 4 channels, and the results equal the plain block's on the NumPy kernels."""
    plain, optimized = pool_block_pair()
    x = batch(9, (2, 12, 7, 7))
    reference = train_step(plain, x, "numpy")
    with ti.profiler.profile() as profile:
        result = train_step(optimized, x, "numba")
    for what, got, want in zip(("output", "input gradient"), result[:2], reference[:2]):
        close(got, want, what)
    for what in (2, 3):
        for name in reference[what]:
            close(result[what][name], reference[what][name], name)
    assert profile.calls["Conv2d.forward"] == 4 and profile.calls["AvgPool2d.forward"] == 1
    plain.eval(), optimized.eval()
    with ti.using_kernels("numba"), ti.no_grad(), ti.profiler.profile() as profile:
        folded = optimized(ti.Tensor(x)).data
    close(folded, plain(ti.Tensor(x)).data, "eval output")
    assert profile.calls["Conv2d.forward"] == 4 and profile.calls.get("BatchNorm.forward", 0) == 0


def test_an_optimized_user_pool_block_runs_the_same_operations_as_inception_v3s_block():
    from tinyinception.models.inception_v3 import InceptionA
    x_array = batch(10, (2, 12, 6, 6))
    assert operations(pool_block_pair()[1], x_array) == operations(InceptionA(12, 6, (4, 6), (6, 8, 8), 4), x_array)


def test_a_hooked_pool_or_a_pooled_bias_in_training_keeps_the_pool_before_its_1x1():
    """A forward hook on the AvgPool2d sees it run on the block's input; a bias on the pool branch's convolution
    keeps the pool first in training (pooling the bias would change the border) and moves it in inference (every
    convolution with a bias here, as in BN-Inception: units stack only with units like them)."""
    plain, optimized = pool_block_pair()
    seen = []
    optimized.branch_pool[0].register_forward_hook(lambda module, inputs, output: seen.append(output.shape))
    x = ti.Tensor(batch(11, (2, 12, 7, 7)))
    with ti.using_kernels("numba"), ti.no_grad():
        expected = plain.eval()(x).data
        with ti.profiler.profile() as profile:
            close(optimized.eval()(x).data, expected, "hooked pool")
    assert seen == [(2, 12, 7, 7)] and profile.calls["Conv2d.forward"] == 5
    plain, optimized = pool_block_pair(bias=True)
    x_array = batch(12, (2, 12, 7, 7))
    with ti.profiler.profile() as profile:
        result = train_step(optimized, x_array, "numba")
    close(result[0], train_step(plain, x_array, "numpy")[0], "biased pool branch, training")
    assert profile.calls["Conv2d.forward"] == 5
    plain.eval(), optimized.eval()
    with ti.using_kernels("numba"), ti.no_grad():
        expected = plain(ti.Tensor(x_array)).data
        with ti.profiler.profile() as profile:
            close(optimized(ti.Tensor(x_array)).data, expected, "biased pool branch, inference")
    assert profile.calls["Conv2d.forward"] == 4
