"""Inception-v3 against torchvision ``inception_v3``: parameter counts, state_dict names (identical to
torchvision's), weight round trip, golden parity (eval and train mode with the aux head), multiply-adds,
transform_input, input-size errors, width/small_input builds, and float64 gradient checks of every block kind.

Golden parity through tests/models/golden.py, small-build checks through tests/models/small_builds.py."""
import importlib
import os

import numpy as np
import pytest

import tinyinception as ti
from golden import (assert_matches, check_golden, check_reference_names, check_round_trip, count, golden_input,
                    keys_path, load_golden, load_keys, needs_golden, needs_keys, run_golden, shifted_state)
from small_builds import (check_small_input_keeps_parameter_shapes, check_small_input_minimum, check_training_step,
                          gradcheck_eval_block, output_sizes, random_batch)
v3 = importlib.import_module("tinyinception.models.inception_v3")  # the module (the package exports the builder)

NETWORK = "inception_v3"
# Golden activation -> our module path: the same module names here and in torchvision.
ACTIVATIONS = {name: name for name in ("Mixed_5d", "Mixed_6e", "Mixed_7c")}
AUX_HEADS = {"aux": "aux_logits"}  # golden head -> field of InceptionOutputs


# ----------------------------------------------------------------------------------------------------------------
# Counts, names, round trip (cheap: no forward)
# ----------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model():
    return ti.models.inception_v3()


@pytest.mark.slow
def test_parameter_counts_equal_torchvision(model):
    assert count(model) == 27_161_264
    assert count(ti.models.inception_v3(aux_logits=False)) == 23_834_568
    assert count(model.AuxLogits) == 3_326_696


@pytest.mark.slow
def test_block_parameter_counts(model):
    """Per-block counts of the fact sheet (appendix A): each block is built with the table's widths."""
    assert sum(count(getattr(model, name)) for name in model.stem_names) == 172_672
    expected = dict(Mixed_5b=255_904, Mixed_5c=277_472, Mixed_5d=285_152, Mixed_6a=1_153_280, Mixed_6b=1_297_408,
                    Mixed_6c=1_691_008, Mixed_6d=1_691_008, Mixed_6e=2_141_952, Mixed_7a=1_698_304,
                    Mixed_7b=5_044_608, Mixed_7c=6_076_800, fc=2_049_000)
    assert {name: count(getattr(model, name)) for name in expected} == expected


@pytest.mark.slow
def test_pools_and_batchnorm_follow_torchvision(model):
    assert {m.eps for m in model.modules() if isinstance(m, ti.nn.BatchNorm2d)} == {1e-3}
    assert model.dropout.p == 0.5
    assert [model.Mixed_5b.out_channels, model.Mixed_6a.out_channels, model.Mixed_7a.out_channels,
            model.Mixed_7c.out_channels] == [256, 768, 1280, 2048]


@needs_keys(NETWORK)
@pytest.mark.slow
def test_state_dict_names_equal_torchvision(model):
    """Our names are torchvision's, in torchvision's order (AuxLogits between Mixed_6e and Mixed_7a)."""
    keys = check_reference_names(model, NETWORK)
    assert [(name, tuple(value.shape)) for name, value in model.state_dict().items()] == \
        [(e["name"], tuple(e["shape"])) for e in keys["state_dict"]]


@pytest.mark.slow
def test_torch_state_dict_round_trip_is_exact(model):
    check_round_trip(ti.models.inception_v3(), shifted_state(model, 0.125))


def test_loading_a_state_dict_without_aux_weights_names_them():
    small = ti.models.inception_v3(num_classes=4, width=0.05)
    state = {k: v for k, v in ti.interop.to_torch_state_dict(small).items() if not k.startswith("AuxLogits.")}
    with pytest.raises(KeyError, match=r"missing from the state_dict \(14\): AuxLogits.conv0.conv.weight"):
        ti.interop.load_torch_state_dict(small, state)
    no_aux = ti.models.inception_v3(num_classes=4, width=0.05, aux_logits=False)
    ti.interop.load_torch_state_dict(no_aux, state)  # torchvision's aux_logits=False checkpoint layout


# ----------------------------------------------------------------------------------------------------------------
# Golden parity (299x299: the aux head needs Mixed_6e >= 17x17): one test per golden run (mode, dtype)
# ----------------------------------------------------------------------------------------------------------------
@needs_golden(NETWORK)
@pytest.mark.slow
def test_golden_input_is_the_deterministic_input():
    gold = load_golden(NETWORK)
    assert_matches(golden_input(gold), gold, "input", rtol=0, atol=0)


@needs_golden(NETWORK)
@pytest.mark.slow
@pytest.mark.parametrize("mode, dtype", [("eval", np.float32), ("eval", np.float64), ("train", np.float64)])
def test_matches_golden(mode, dtype):
    """Eval mode in float32 and float64, train mode (with the aux head) in float64: batch statistics over 2 x 1 x 1
    values per channel (the aux head's conv1) are chaotic in float32 (torchvision's own float32 run differs from
    its float64 run by ~1e-4 in the aux logits). Activations: rtol and atol 1e-4.
    The input gradient is compared in float64, on the whole array (through the golden gradient's sketch, so a
    value moved to a neighbouring pixel anywhere counts), at 1e-6: measured 2e-15 in eval mode and 1e-10 in train
    mode. In float32 max-pool windows whose two largest values differ by less than float32 rounding send single
    gradient values to the other pixel: the whole-array error is 1.6e-3 here, 2.4e-3 for torchvision's own float32
    run, so the float32 run is compared on its values only."""
    gold = load_golden(NETWORK)
    run = run_golden(ti.models.inception_v3(), gold, train=mode == "train", dtype=dtype, activations=ACTIVATIONS,
                     aux_heads=AUX_HEADS, dropouts=["dropout"],  # the golden train mode has every Dropout in eval
                     backward=dtype == np.float64)
    check_golden(run, gold, mode, whole_gradient=True, gradient_tol=1e-6)
    assert dtype == np.float32 or f"{mode}/grad_input/sketch" in gold
    assert mode == "eval" or any(key.startswith("train/state/AuxLogits.") for key in gold)


# ----------------------------------------------------------------------------------------------------------------
# Multiply-adds (ti.summary: a hook-based eval forward at 299, batch 1)
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_multiply_adds_at_299_equal_torchvision(model):
    result = ti.summary(model, (3, 299, 299), show=False)
    assert round(result.total_macs / 1e9, 3) == 5.713  # torchvision's published 5.713 GFLOPS (conv + linear)
    assert result.total_macs == 5_713_216_096
    assert result.used_params == 23_834_568  # the aux head does not run in eval mode
    if os.path.exists(keys_path(NETWORK)):  # the generator's count on torchvision's own layers (conv + linear hooks)
        assert result.total_macs == load_keys(NETWORK)["macs"]["eval@299"]


# ----------------------------------------------------------------------------------------------------------------
# transform_input, train/eval outputs, sizes, width, small_input
# ----------------------------------------------------------------------------------------------------------------
def test_transform_input_matches_torchvision_formula():
    model = ti.models.inception_v3(transform_input=True, width=0.05)
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32)
    out = model._transform_input(ti.Tensor(x)).numpy()
    assert out.dtype == np.float32
    for c, (mean, std) in enumerate(zip((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))):
        expected = x[:, c] * np.float32(std / 0.5) + np.float32((mean - 0.5) / 0.5)
        np.testing.assert_allclose(out[:, c], expected, rtol=1e-6, atol=1e-6)


def test_input_smaller_than_the_minimum_is_rejected_with_the_network_name():
    small = ti.models.inception_v3(width=0.05)
    small.eval()
    with pytest.raises(ValueError, match=r"inception_v3: input 74x75 .* 75x75"):
        small(ti.Tensor(np.zeros((1, 3, 74, 75), np.float32)))
    with pytest.raises(ValueError, match=r"inception_v3: expected input \(N, 3, H, W\)"):
        small(ti.Tensor(np.zeros((1, 1, 80, 80), np.float32)))
    small.train()  # the aux head needs Mixed_6e >= 17x17, i.e. a 299x299 input
    with pytest.raises(ValueError, match=r"inception_v3 in training mode with aux_logits .* 298x298 .* 299x299"):
        small(ti.Tensor(np.zeros((2, 3, 298, 298), np.float32)))


@pytest.mark.slow
def test_smallest_input_runs_in_eval_and_without_aux():
    x = ti.Tensor(np.random.default_rng(0).standard_normal((2, 3, 75, 75)).astype(np.float32))
    eval_model = ti.models.inception_v3(num_classes=5, width=0.1).eval()
    assert eval_model(x).shape == (2, 5)
    no_aux = ti.models.inception_v3(num_classes=5, width=0.1, aux_logits=False)  # train mode, no aux: 75 is fine
    assert no_aux(x).shape == (2, 5)


def test_small_input_minimum_size():
    check_small_input_minimum(ti.models.inception_v3(num_classes=3, width=0.05, small_input=True),
                              r"inception_v3 \(small_input\)")


def test_small_input_keeps_every_parameter_shape():
    check_small_input_keeps_parameter_shapes(ti.models.inception_v3)


def test_tiny_width_small_input_trains_on_32x32_with_the_aux_head():
    model = ti.models.create(NETWORK, num_classes=10, width=0.05, small_input=True)
    sizes = output_sizes(model, ["Mixed_5b", "Mixed_6b", "Mixed_7b"])
    x = random_batch()
    out = model(x)
    assert isinstance(out, v3.InceptionOutputs) and out._fields == ("logits", "aux_logits")
    assert out.logits.shape == (2, 10) and out.aux_logits.shape == (2, 10) and out.logits.dtype == np.float32
    assert sizes == {"Mixed_5b": (16, 16), "Mixed_6b": (7, 7), "Mixed_7b": (3, 3)}
    target = ti.Tensor(np.array([1, 7]))
    loss = ti.functional.cross_entropy(out.logits, target) + 0.4 * ti.functional.cross_entropy(out.aux_logits, target)
    check_training_step(model, x, loss)
    model.eval()
    assert model(x).shape == (2, 10)  # eval: logits only


# ----------------------------------------------------------------------------------------------------------------
# Float64 gradient checks through one block of each kind (input and every parameter)
# ----------------------------------------------------------------------------------------------------------------
BLOCKS = {
    "InceptionA": (lambda: v3.InceptionA(3, branch1x1=2, branch5x5=(2, 3), branch3x3dbl=(2, 3, 2), branch_pool=2),
                   (2, 3, 5, 5)),
    "InceptionB": (lambda: v3.InceptionB(3, branch3x3=2, branch3x3dbl=(2, 3, 2)), (2, 3, 7, 7)),
    "InceptionC": (lambda: v3.InceptionC(3, branch1x1=2, branch7x7=(2, 2, 3), branch7x7dbl=(2, 2, 2, 2, 3),
                                         branch_pool=2), (2, 3, 5, 5)),
    "InceptionD": (lambda: v3.InceptionD(3, branch3x3=(2, 3), branch7x7x3=(2, 2, 2, 3)), (2, 3, 7, 7)),
    "InceptionE": (lambda: v3.InceptionE(3, branch1x1=2, branch3x3=(2, 3), branch3x3dbl=(2, 3, 2), branch_pool=2),
                   (2, 3, 4, 4)),
    "InceptionAux": (lambda: v3.InceptionAux(3, num_classes=4, conv0=2, conv1=3), (2, 3, 17, 17)),
    "InceptionAux_adaptive": (lambda: v3.InceptionAux(3, num_classes=4, conv0=2, conv1=3, adaptive_pool=True),
                              (2, 3, 7, 7)),
}


@pytest.mark.parametrize("kind", sorted(BLOCKS))
def test_block_gradcheck_float64(kind):
    build, shape = BLOCKS[kind]
    assert gradcheck_eval_block(build(), shape)


def test_factorised_block_gradcheck_float64_in_train_mode():
    """InceptionC with batch statistics (train-mode BatchNorm backward through 1x7 and 7x1 convolutions)."""
    build, shape = BLOCKS["InceptionC"]
    block = build().double()
    x = ti.Tensor(np.random.default_rng(4).standard_normal((4,) + shape[1:]), requires_grad=True)
    assert ti.gradcheck(lambda x, *p: block(x), (x, *block.parameters()), fast_mode=True)


def test_block_output_channels_and_branch_order():
    """The concatenation order is torchvision's: the 1x1 branch first, the pool branch last."""
    block = v3.InceptionE(3, branch1x1=2, branch3x3=(2, 3), branch3x3dbl=(2, 3, 2), branch_pool=2).eval()
    x = ti.Tensor(np.random.default_rng(0).standard_normal((1, 3, 4, 4)).astype(np.float32))
    out = block(x).numpy()
    assert out.shape == (1, block.out_channels, 4, 4) == (1, 2 + 6 + 4 + 2, 4, 4)
    np.testing.assert_array_equal(out[:, :2], block.branch1x1(x).numpy())
    # the block pools after the branch's 1x1 (tinyinception.nn.fused): equal within float32 rounding
    np.testing.assert_allclose(out[:, -2:], block.branch_pool(ti.functional.avg_pool2d(x, 3, 1, 1)).numpy(),
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"Conv2d\(in_channels=3\) got input with 4 channels"):
        block(ti.Tensor(np.zeros((1, 4, 4, 4), np.float32)))
