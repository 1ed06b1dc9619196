"""Inference with BatchNorm folded into the convolution's output pass (nn/fold.py, kernels/epilogue.py): the same
result as the layers run one by one, for every network, on the Numba kernels and against the NumPy reference, and
always from the current parameters and statistics."""
import threading

import numpy as np
import pytest

import tinyinception as ti
from tinyinception.kernels import epilogue, layout
from tinyinception.models.common import BasicConv2d
from tinyinception.nn import fold, fused

from helpers import randomise_batch_norms

NETWORKS = {  # name: (builder arguments, input size)
    "googlenet": (dict(aux_logits=False, small_input=True, width=0.25), 32),
    "bn_inception": (dict(small_input=True, width=0.25), 32),
    "inception_v3": (dict(aux_logits=False, small_input=True, width=0.25), 32),
    "inception_v4": (dict(small_input=True, width=0.25), 32),
    "inception_resnet_v1": (dict(small_input=True, width=0.25), 32),
    "inception_resnet_v2": (dict(small_input=True, width=0.25), 32),
}


def _close(got, want):
    scale = float(np.abs(want).max())
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-6 * scale)


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_every_network_folded_equals_unfolded_and_the_numpy_reference(name):
    arguments, size = NETWORKS[name]
    ti.manual_seed(0)
    model = randomise_batch_norms(ti.models.create(name, num_classes=5, **arguments)).eval()
    x = ti.Tensor(np.random.default_rng(1).standard_normal((2, 3, size, size)).astype(np.float32))
    with ti.using_kernels("numba"):
        with ti.no_grad(), ti.profiler.profile() as folded_profile:
            folded = model(x)
        unfolded = model(x)  # parameters require grad: the graph is recorded, nothing folds
    with ti.using_kernels("numpy"):
        reference = model(x)
    assert folded_profile.calls.get("BatchNorm.forward", 0) == 0  # every BatchNorm ran inside a convolution's pass
    assert folded.grad_fn is None and unfolded.grad_fn is not None
    _close(folded.data, unfolded.data)
    _close(folded.data, reference.data)


def _unit(seed=0):
    ti.manual_seed(seed)
    unit = BasicConv2d(4, 6, 3, padding=1)
    return randomise_batch_norms(unit, seed).eval()


def _folded_and_plain(unit, x):
    with ti.no_grad():
        folded = unit(x).data.copy()
    return folded, unit(x).data  # recorded: the plain layers


def test_the_fold_follows_every_change_of_parameters_and_statistics():
    unit = _unit()
    x = ti.Tensor(np.random.default_rng(2).standard_normal((2, 4, 5, 5)).astype(np.float32))
    before, _ = _folded_and_plain(unit, x)

    unit.bn.running_var.data[...] *= 3.0  # a running statistic changes in place
    folded, plain = _folded_and_plain(unit, x)
    assert not np.allclose(folded, before)
    _close(folded, plain)

    unit.load_state_dict(_unit(seed=5).state_dict())  # other weights and statistics loaded
    folded, plain = _folded_and_plain(unit, x)
    _close(folded, plain)
    np.testing.assert_allclose(folded, _folded_and_plain(_unit(seed=5), x)[0], rtol=1e-6, atol=1e-7)

    optimizer = ti.optim.SGD(unit.parameters(), lr=0.5)  # an optimizer step changes conv and BatchNorm parameters
    unit(x).sum().backward()
    optimizer.step()
    after_step, plain = _folded_and_plain(unit, x)
    assert not np.allclose(after_step, folded)
    _close(after_step, plain)

    unit.train()  # training mode: batch statistics, running statistics updated, never folded
    unit(x)
    unit.eval()
    folded, plain = _folded_and_plain(unit, x)
    _close(folded, plain)


def test_nothing_is_recorded_or_kept_under_no_grad():
    unit = _unit()
    x = ti.Tensor(np.random.default_rng(3).standard_normal((1, 4, 6, 6)).astype(np.float32))
    with ti.no_grad(), ti.profiler.profile() as profile:
        y = unit(x)
    assert y.grad_fn is None and not y.requires_grad
    assert profile.calls["Conv2d.forward"] == 1 and profile.calls.get("BatchNorm.forward", 0) == 0


def test_a_hook_on_the_batch_norm_sees_it_run():
    unit = _unit()
    x = ti.Tensor(np.random.default_rng(4).standard_normal((1, 4, 6, 6)).astype(np.float32))
    seen = []
    unit.bn.register_forward_hook(lambda module, inputs, output: seen.append(output.shape))
    with ti.no_grad():
        hooked = unit(x).data.copy()
    unit.bn._forward_hooks.clear()
    with ti.no_grad():
        folded = unit(x).data
    assert seen == [(1, 6, 6, 6)]
    _close(folded, hooked)


@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("kind", ["channel_major", "nchw", "strided"])
def test_the_output_pass_kernel_matches_the_numpy_reference(kind, relu):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 5, 4, 7)).astype(np.float32)
    x[0, 1, 2, 3], x[1, 2, 0, 0], x[2, 4, 3, 6] = np.nan, np.inf, -np.inf
    scale = rng.uniform(0.5, 2, 5).astype(np.float32)
    shift = rng.normal(0, 1, 5).astype(np.float32)
    arrays = {"channel_major": layout.from_channel_major(layout.channel_major(x)), "nchw": x.copy(),
              "strided": np.pad(x, ((0, 0), (0, 0), (0, 0), (0, 1)))[..., :7]}
    fast = arrays[kind]
    epilogue.channel_affine_numba(fast, scale, shift, relu)
    reference = epilogue.channel_affine_numpy(x.copy(), scale, shift, relu)
    np.testing.assert_array_equal(np.isnan(fast), np.isnan(reference))
    np.testing.assert_allclose(fast, reference, rtol=1e-6, atol=1e-6)
    if kind == "channel_major":
        assert layout.is_channel_major(fast)


def test_the_folded_affine_is_batch_norm_in_eval_mode():
    unit = _unit()
    y = ti.Tensor(np.random.default_rng(6).standard_normal((2, 6, 3, 3)).astype(np.float32))
    bias = ti.nn.Parameter(np.random.default_rng(7).standard_normal(6).astype(np.float32))
    scale, shift = fold.folded_affine(unit.bn, bias)
    with ti.no_grad():
        expected = unit.bn(y + bias.reshape(1, 6, 1, 1)).data
    _close(y.data * scale.reshape(1, 6, 1, 1) + shift.reshape(1, 6, 1, 1), expected)


def test_the_stacking_switch_belongs_to_one_thread():
    states = {}
    entered, checked = threading.Event(), threading.Event()

    def switch_off():
        with fused.stacking(False):
            states["inside the switching thread"] = fused.stacking_enabled()
            entered.set()
            checked.wait(10)

    thread = threading.Thread(target=switch_off)
    thread.start()
    entered.wait(10)
    states["another thread meanwhile"] = fused.stacking_enabled()
    checked.set()
    thread.join()
    assert states == {"inside the switching thread": False, "another thread meanwhile": True}


def test_a_hooked_branch_still_runs_stacked():
    """A hook on a branch (a Sequential) fires and the block keeps its stacked 1x1 product (one convolution fewer
    per stacked unit than running the branches one by one)."""
    model = ti.models.googlenet(num_classes=5, small_input=True, width=0.25, aux_logits=False).eval()
    block = model.inception3a
    x = ti.Tensor(np.random.default_rng(8).standard_normal((2, 3, 32, 32)).astype(np.float32))
    seen = []
    block.branch_3x3.register_forward_hook(lambda module, inputs, output: seen.append(output.shape))
    with ti.using_kernels("numba"), ti.no_grad():
        with ti.profiler.profile() as stacked:
            model(x)
        with fused.stacking(False), ti.profiler.profile() as plain:
            model(x)
    assert len(seen) == 2
    assert stacked.calls["Conv2d.forward"] < plain.calls["Conv2d.forward"]
