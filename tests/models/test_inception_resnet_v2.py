"""Inception-ResNet-v2 against timm ``inception_resnet_v2``: parameter counts, state_dict names, weight round trip,
golden parity (eval and train mode), input-size errors, width/small_input builds, and float64 gradient checks of
every block kind of ``tinyinception/models/inception_resnet.py`` (shared with Inception-ResNet-v1)."""
import numpy as np
import pytest

import tinyinception as ti
from tinyinception.models import inception_resnet as irn
from golden import (check_golden, check_reference_names, check_round_trip, count, load_error_message, load_golden,
                    needs_golden, needs_keys, run_golden, shifted_state)
from small_builds import (check_native_input_limits, check_small_input_keeps_parameter_shapes,
                          check_small_input_minimum, check_training_step, output_sizes, random_batch)

NETWORK = "inception_resnet_v2"
# Reference module name (golden activations) -> our module path.
ACTIVATIONS = {"mixed_5b": "mixed_5b", "repeat": "blocks_a", "repeat_1": "blocks_b", "conv2d_7b": "conv2d_7b"}


# ----------------------------------------------------------------------------------------------------------------
# Counts, names, round trip (cheap: no forward)
# ----------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model():
    return ti.models.inception_resnet_v2()


@pytest.mark.slow
def test_parameter_count_equals_timm(model):
    assert count(model) == 55_843_464


@pytest.mark.slow
def test_block_parameter_counts(model):
    """Per-block counts of the fact sheet (appendix A): each block is built with the right widths."""
    assert count(model.mixed_5b) == 268_320
    assert [count(b) for b in model.blocks_a] == [123_168] * 10
    assert count(model.reduction_a) == 2_664_960
    assert [count(b) for b in model.blocks_b] == [1_126_784] * 20
    assert count(model.reduction_b) == 3_880_960
    assert [count(b) for b in model.blocks_c] + [count(model.last_block_c)] == [2_035_424] * 10
    assert count(model.conv2d_7b) == 3_197_952
    assert count(model.fc) == 1_537_000


@pytest.mark.slow
def test_residual_scales_and_last_block(model):
    assert {b.scale for b in model.blocks_a} == {0.17}
    assert {b.scale for b in model.blocks_b} == {0.10}
    assert {b.scale for b in model.blocks_c} == {0.20} and all(b.activation for b in model.blocks_c)
    assert model.last_block_c.scale == 1.0 and model.last_block_c.activation is False
    assert model.mixed_5b.branch_pool[0].count_include_pad is False
    assert {m.eps for m in model.modules() if isinstance(m, ti.nn.BatchNorm2d)} == {1e-3}
    assert model.blocks_a[0].expand_1x1.bias is not None  # the residual projection: bias, no BatchNorm


@pytest.mark.slow
@needs_keys(NETWORK)
def test_state_dict_maps_one_to_one_onto_timm(model):
    check_reference_names(model, NETWORK)


@pytest.mark.slow
def test_torch_state_dict_round_trip_is_exact(model):
    check_round_trip(ti.models.inception_resnet_v2(), shifted_state(model, 0.125))


def test_loading_a_wrong_state_dict_names_the_keys():
    message = load_error_message(ti.models.inception_resnet_v2(width=0.05, small_input=True),
                                 mis_shaped="repeat.0.conv2d.weight", dropped="classif.bias")
    assert "missing from the state_dict (1): classif.bias" in message
    assert "repeat.0.conv2d.weight -> blocks_a.0.expand_1x1.weight" in message


# ----------------------------------------------------------------------------------------------------------------
# Golden parity: one test per golden run (mode, dtype)
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.slow
@needs_golden(NETWORK)
@pytest.mark.parametrize("mode, dtype", [("eval", np.float32), ("eval", np.float64), ("train", np.float64)])
def test_matches_golden(mode, dtype):
    """The eval forward in float32 (the working precision). Float64 for the input gradient, as
    tests/reference/README.md prescribes (in float32 the residual stacks' input gradient is good to ~1e-3 only),
    and for train mode: at the 75x75 golden size the 8x8 stage is 1x1, so train-mode BatchNorm normalises two
    values per channel, which float32 itself cannot resolve to 1e-4 (timm in float32 differs from timm in float64
    by ~5e-4 in the logits); in float64 the comparison is exact to ~1e-12. Activations: rtol and atol 1e-4."""
    gold = load_golden(NETWORK)
    run = run_golden(ti.models.inception_resnet_v2(), gold, train=mode == "train", dtype=dtype,
                     activations=ACTIVATIONS, backward=dtype == np.float64,
                     dropouts=["dropout"])  # the golden train mode has every Dropout in eval (timm's drop_rate is 0)
    check_golden(run, gold, mode)


# ----------------------------------------------------------------------------------------------------------------
# Sizes, width, small_input
# ----------------------------------------------------------------------------------------------------------------
def test_input_smaller_than_75_is_rejected_with_the_network_name():
    check_native_input_limits(ti.models.inception_resnet_v2(width=0.05), "inception_resnet_v2")


def test_small_input_minimum_size():
    check_small_input_minimum(ti.models.inception_resnet_v2(num_classes=3, width=0.05, small_input=True),
                              "inception_resnet_v2")


def test_small_input_keeps_every_parameter_shape():
    check_small_input_keeps_parameter_shapes(ti.models.inception_resnet_v2)


def test_tiny_width_small_input_trains_on_32x32():
    model = ti.models.create(NETWORK, num_classes=10, width=0.05, small_input=True)
    sizes = output_sizes(model, ["blocks_a.0", "blocks_b.0", "blocks_c.0"])
    x = random_batch()
    logits = model(x)
    assert logits.shape == (2, 10) and logits.dtype == np.float32
    assert sizes == {"blocks_a.0": (16, 16), "blocks_b.0": (7, 7), "blocks_c.0": (3, 3)}
    check_training_step(model, x, ti.functional.cross_entropy(logits, ti.Tensor(np.array([1, 7]))))


# ----------------------------------------------------------------------------------------------------------------
# Float64 gradient checks through one block of each kind (input and every parameter)
# ----------------------------------------------------------------------------------------------------------------
A_WIDTHS = {"branch_1x1": 2, "branch_3x3": (2, 3), "branch_3x3dbl": (2, 3, 2)}
BLOCKS = {
    "mixed_5b": lambda: irn.Mixed5b(3, {"branch_1x1": 2, "branch_5x5": (2, 3), "branch_3x3dbl": (2, 2, 3),
                                        "branch_pool": 2}),
    "inception_resnet_a": lambda: irn.InceptionResNetA(4, A_WIDTHS, scale=0.17),
    "inception_resnet_b": lambda: irn.InceptionResNetB(4, {"branch_1x1": 2, "branch_7x7": (2, 3, 2)}, scale=0.1),
    "inception_resnet_c": lambda: irn.InceptionResNetC(4, {"branch_1x1": 2, "branch_3x3": (2, 3, 2)}, scale=0.2),
    "inception_resnet_c_linear": lambda: irn.InceptionResNetC(4, {"branch_1x1": 2, "branch_3x3": (2, 3, 2)},
                                                              scale=1.0, activation=False),
    "reduction_a": lambda: irn.ReductionA(3, {"branch_3x3": 2, "branch_3x3dbl": (2, 3, 2)}),
    "reduction_b": lambda: irn.ReductionB(3, {"branch_3x3a": (2, 3), "branch_3x3b": (2, 2),
                                              "branch_3x3dbl": (2, 3, 2)}),
}


@pytest.mark.parametrize("kind", sorted(BLOCKS))
def test_block_gradcheck_float64(kind):
    block = BLOCKS[kind]().double()
    block.eval()  # fixed BatchNorm statistics: finite differences see the same function on every call
    rng = np.random.default_rng(3)
    for module in block.modules():  # random BatchNorm statistics and affine terms, so no ReLU input is exactly 0
        if isinstance(module, ti.nn.BatchNorm2d):  # where a window sees only zeros (padding, dead ReLUs)
            for tensor, (low, high) in [(module.running_mean, (-0.3, 0.3)), (module.running_var, (0.5, 1.5)),
                                        (module.weight, (0.5, 1.5)), (module.bias, (-0.3, 0.3))]:
                tensor.data[...] = rng.uniform(low, high, module.num_features)
    channels = block.channels if hasattr(block, "channels") else 3
    x = ti.Tensor(rng.standard_normal((2, channels, 7, 7)), requires_grad=True)
    params = list(block.parameters())
    assert ti.gradcheck(lambda x, *p: block(x), (x, *params), fast_mode=True)


def test_residual_block_is_x_plus_scaled_branch():
    """The block's output is relu(x + scale * residual(x)) exactly (F.residual_add: branch * scale + x)."""
    block = irn.InceptionResNetA(4, A_WIDTHS, scale=0.17).eval()
    x = ti.Tensor(np.random.default_rng(0).standard_normal((2, 4, 5, 5)).astype(np.float32))
    expected = np.maximum(block.residual(x).numpy() * np.float32(0.17) + x.numpy(), 0)
    np.testing.assert_array_equal(block(x).numpy(), expected)
    with pytest.raises(ValueError, match=r"InceptionResNetA\(4\) expects input \(N, 4, H, W\), got shape"):
        block(ti.Tensor(np.zeros((2, 3, 5, 5), np.float32)))
