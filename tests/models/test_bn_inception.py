"""BN-Inception against Cadene ``pretrainedmodels.bninception``: parameter counts, the reference's BN eps and
pooling kinds, flat state_dict names, weight round trip, golden parity in eval and train mode (logits,
activations, input gradients, BatchNorm running statistics), input-size errors, width/small_input builds, and
float64 gradient checks of both block kinds.

Golden files: tests/reference/golden/bninception.npz and keys/bninception.json (tests/reference/generate.py, in
float64, at 223x223: the reference's fixed 7x7 final pool accepts only inputs whose last map is 7x7), read through
tests/models/golden.py.
"""
import numpy as np
import pytest

import tinyinception as ti
from tinyinception.models import inception_v2 as v2
from golden import (check_golden, check_reference_names, check_round_trip, count, load_golden, needs_golden,
                    needs_keys, reference_state_dict, run_golden)

NETWORK = "bninception"
# Golden activation (a Caffe blob: the concatenated output of a block) -> our block.
ACTIVATIONS = {"inception_3a_output": "inception3a", "inception_3c_output": "inception3c",
               "inception_5b_output": "inception5b"}


# ----------------------------------------------------------------------------------------------------------------
# Counts and layout (cheap: no forward)
# ----------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model():
    return ti.models.bn_inception()


def test_parameter_count_equals_cadene(model):
    assert count(model) == 11_295_240
    assert "bn_inception" in ti.models.list_models()


def test_block_parameter_counts(model):
    expected = {"conv1": 9_600, "conv2_reduce": 4_288, "conv2": 111_168, "inception3a": 219_552,
                "inception3b": 260_704, "inception3c": 385_632, "inception4a": 610_848, "inception4b": 666_240,
                "inception4c": 915_456, "inception4d": 1_144_000, "inception4e": 1_451_008,
                "inception5a": 2_210_496, "inception5b": 2_281_248, "fc": 1_025_000}
    assert {name: count(getattr(model, name)) for name in expected} == expected
    assert [getattr(model, n).out_channels for n in model.block_names] == [256, 320, 576, 576, 576, 608, 608, 1056,
                                                                           1024, 1024]


def test_reference_details(model):
    assert {m.eps for m in model.modules() if isinstance(m, ti.nn.BatchNorm2d)} == {1e-5}
    assert all(m.bias is not None for m in model.modules() if isinstance(m, ti.nn.Conv2d))
    assert all(m.ceil_mode for m in model.modules() if isinstance(m, (ti.nn.MaxPool2d, ti.nn.AvgPool2d)))
    pools = {name: type(getattr(model, name).branch_pool.pool).__name__
             for name in model.block_names if isinstance(getattr(model, name), v2.InceptionBN)}
    assert pools == {**{n: "AvgPool2d" for n in ("inception3a", "inception3b", "inception4a", "inception4b",
                                                 "inception4c", "inception4d", "inception5a")},
                     "inception5b": "MaxPool2d"}
    assert model.inception3a.branch_pool.pool.count_include_pad is True
    assert model.inception3c.branch_3x3.conv.conv.stride == (2, 2)
    assert model.inception4e.branch_3x3dbl.conv2.conv.stride == (2, 2)


# ----------------------------------------------------------------------------------------------------------------
# Names and weight exchange
# ----------------------------------------------------------------------------------------------------------------
@needs_keys(NETWORK)
def test_state_dict_maps_one_to_one_onto_cadene(model):
    keys = check_reference_names(model, NETWORK)
    assert keys["batchnorm_eps"] == [1e-05]
    names = ti.interop.reference_keys(model)
    assert "inception_4c_double_3x3_1_bn.running_mean" in names and "last_linear.weight" in names


@needs_keys(NETWORK)
def test_round_trip_is_exact():
    state = reference_state_dict(NETWORK)
    model = check_round_trip(ti.models.bn_inception(), state)
    np.testing.assert_array_equal(model.inception4c.branch_3x3dbl.conv1.bn.weight.data,
                                  state["inception_4c_double_3x3_1_bn.weight"])
    np.testing.assert_array_equal(model.conv2_reduce.conv.bias.data, state["conv2_3x3_reduce.bias"])


def test_unknown_key_names_the_key():
    from tinyinception.interop.inception_v2 import cadene_key
    assert cadene_key("inception5b.branch_pool.proj.bn.running_var") == "inception_5b_pool_proj_bn.running_var"
    with pytest.raises(KeyError, match="inception3a.branch_7x7.conv.weight"):
        cadene_key("inception3a.branch_7x7.conv.weight")


# ----------------------------------------------------------------------------------------------------------------
# Golden parity
# ----------------------------------------------------------------------------------------------------------------
@needs_golden(NETWORK)
@pytest.mark.slow
@pytest.mark.parametrize("mode, dtype", [("eval", np.float32), ("eval", np.float64), ("train", np.float64)])
def test_matches_golden(mode, dtype):
    """The eval forward in float32; gradients and train mode in float64, as tests/reference/README.md prescribes:
    in float32 the input gradient is ill-conditioned here (ours and torch's float32 both land 0.07-0.8 % (L2) from
    the float64 reference on the stored views, train mode the most) while every forward value agrees to 1e-5. In
    float64 ours agrees with the reference to float32 rounding. The reference has no Dropout."""
    gold = load_golden(NETWORK)
    run = run_golden(ti.models.bn_inception(), gold, train=mode == "train", dtype=dtype, activations=ACTIVATIONS,
                     backward=dtype == np.float64)
    check_golden(run, gold, mode)


# ----------------------------------------------------------------------------------------------------------------
# Input handling, width and small_input
# ----------------------------------------------------------------------------------------------------------------
def test_input_smaller_than_minimum_is_refused():
    net = ti.models.bn_inception(width=0.125).eval()
    with pytest.raises(ValueError, match=r"BNInception.*30x30.*31x31"):
        net(ti.tensor(np.zeros((1, 3, 30, 30), np.float32)))


def test_odd_map_at_a_reduction_block_is_refused():
    net = ti.models.bn_inception(width=0.125).eval()
    with pytest.raises(ValueError, match=r"reduction block: input map 5x5 must have even sides"):
        net(ti.tensor(np.zeros((1, 3, 40, 40), np.float32)))


@pytest.mark.slow
def test_small_input_width_forward_backward_on_32x32():
    model = ti.models.bn_inception(num_classes=10, width=0.125, small_input=True).train()
    x = ti.tensor(np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32))
    shapes = {}
    for name in ("inception3a", "inception4a", "inception5b"):
        getattr(model, name).register_forward_hook(lambda m, i, o, name=name: shapes.__setitem__(name, o.shape[2:]))
    logits = model(x)
    assert logits.shape == (2, 10) and logits.dtype == np.float32
    logits.sum().backward()
    assert all(p.grad is not None and p.grad.dtype == np.float32 for p in model.parameters())
    assert shapes == {"inception3a": (16, 16), "inception4a": (8, 8), "inception5b": (4, 4)}


# ----------------------------------------------------------------------------------------------------------------
# float64 gradient checks, one per block kind (train mode: batch statistics)
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("pool_kind", ["avg", "max"])
def test_gradcheck_inception_block(pool_kind):
    block = v2.InceptionBN(3, 2, 2, 3, 2, 2, pool_kind, 2).double().train()
    x = ti.tensor(np.random.default_rng(0).standard_normal((2, 3, 4, 4)), requires_grad=True)
    params = list(block.parameters())
    assert ti.gradcheck(lambda x, *ps: block(x), (x, *params), eps=1e-6, atol=1e-5, rtol=1e-3, fast_mode=True)


def test_gradcheck_reduction_block():
    block = v2.ReductionBN(3, 2, 3, 2, 2).double().train()
    x = ti.tensor(np.random.default_rng(1).standard_normal((2, 3, 6, 6)), requires_grad=True)
    params = list(block.parameters())
    assert ti.gradcheck(lambda x, *ps: block(x), (x, *params), eps=1e-6, atol=1e-5, rtol=1e-3, fast_mode=True)
