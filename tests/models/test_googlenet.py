"""GoogLeNet against torchvision ``googlenet``: parameter counts (torchvision's and the paper layout's, the latter
derived by hand from the channel table), state_dict names, weight round trip, golden parity in eval and train mode
(logits, aux logits, activations, input gradients, BatchNorm running statistics), input-size errors,
width/small_input builds, and float64 gradient checks of each block kind.

Golden files: tests/reference/golden/googlenet.npz and keys/googlenet.json (written by tests/reference/generate.py
in float64), read through tests/models/golden.py.
"""
import numpy as np
import pytest

import tinyinception as ti
from tinyinception.models import inception_v1 as v1
from golden import (check_golden, check_reference_names, check_round_trip, count, load_golden, needs_golden,
                    needs_keys, reference_state_dict, run_golden)

NETWORK = "googlenet"
# Golden activation -> our module path: the same module names here and in torchvision.
ACTIVATIONS = {name: name for name in ("conv1", "inception3a", "inception4a", "inception5b")}
AUX_HEADS = {"aux1": "aux_logits1", "aux2": "aux_logits2"}  # golden head -> field of GoogLeNetOutputs


# ----------------------------------------------------------------------------------------------------------------
# Counts and layout (cheap: no forward)
# ----------------------------------------------------------------------------------------------------------------
def test_parameter_counts_equal_torchvision():
    assert count(ti.models.googlenet()) == 13_004_888
    assert count(ti.models.googlenet(aux_logits=False)) == 6_624_904


def test_block_parameter_counts_torchvision():
    model = ti.models.googlenet()
    expected = {"conv1": 9_536, "conv2": 4_224, "conv3": 110_976, "inception3a": 155_872, "inception3b": 340_224,
                "inception4a": 364_512, "inception4b": 425_232, "inception4c": 486_192, "inception4d": 573_312,
                "inception4e": 803_840, "inception5a": 978_944, "inception5b": 1_347_040, "fc": 1_025_000,
                "aux1": 3_188_968, "aux2": 3_191_016}
    assert {name: count(getattr(model, name)) for name in expected} == expected


def paper_count_by_hand(num_classes=1000, aux=True):
    """The paper layout's parameters from the channel table alone: every conv has a bias, no BatchNorm."""
    def conv(c_in, c_out, k):
        return c_in * c_out * k * k + c_out

    def linear(n_in, n_out):
        return n_in * n_out + n_out

    total = conv(3, 64, 7) + conv(64, 64, 1) + conv(64, 192, 3)
    channels = 192
    for name, spec in v1.GOOGLENET_STAGES:
        if spec == "pool":
            continue
        c1, r3, c3, r5, c5, proj = spec
        total += conv(channels, c1, 1) + conv(channels, r3, 1) + conv(r3, c3, 3) + conv(channels, r5, 1)
        total += conv(r5, c5, 5) + conv(channels, proj, 1)
        channels = c1 + c3 + c5 + proj
        if aux and name in ("inception4a", "inception4d"):
            total += conv(channels, 128, 1) + linear(128 * 4 * 4, 1024) + linear(1024, num_classes)
    return total + linear(channels, num_classes)


def test_paper_layout_parameter_count_equals_hand_derivation():
    assert count(ti.models.googlenet(paper=True)) == paper_count_by_hand() == 13_378_280
    assert count(ti.models.googlenet(paper=True, aux_logits=False)) == paper_count_by_hand(aux=False) == 6_998_552
    assert count(ti.models.googlenet(paper=True, num_classes=10)) == paper_count_by_hand(num_classes=10)


def test_torchvision_quirks_and_paper_layout():
    tv, paper = ti.models.googlenet(), ti.models.googlenet(paper=True)
    assert tv.inception3a.branch_5x5.conv.conv.kernel_size == (3, 3)       # torchvision's "5x5" is 3x3
    assert paper.inception3a.branch_5x5.conv.conv.kernel_size == (5, 5)
    assert paper.inception3a.branch_5x5.conv.conv.padding == (2, 2)
    assert tv.maxpool4.kernel_size == 2 and paper.maxpool4.kernel_size == 3
    assert all(m.ceil_mode for m in tv.modules() if isinstance(m, ti.nn.MaxPool2d))
    assert {m.eps for m in tv.modules() if isinstance(m, ti.nn.BatchNorm2d)} == {1e-3}
    assert not any(isinstance(m, ti.nn.LocalResponseNorm) for m in tv.modules())
    assert not any(isinstance(m, ti.nn.BatchNorm2d) for m in paper.modules())
    lrns = [m for m in paper.modules() if isinstance(m, ti.nn.LocalResponseNorm)]
    assert [(m.size, m.alpha, m.beta, m.k) for m in lrns] == [(5, 1e-4, 0.75, 1.0)] * 2
    assert isinstance(tv.aux1.pool, ti.nn.AdaptiveAvgPool2d) and isinstance(paper.aux1.pool, ti.nn.AvgPool2d)
    assert tv.dropout.p == 0.2 and tv.aux1.dropout.p == 0.7


def test_registry_builds_googlenet():
    assert "googlenet" in ti.models.list_models()
    assert count(ti.models.create("googlenet", aux_logits=False)) == 6_624_904


# ----------------------------------------------------------------------------------------------------------------
# Names and weight exchange
# ----------------------------------------------------------------------------------------------------------------
@needs_keys(NETWORK)
def test_state_dict_maps_one_to_one_onto_torchvision():
    keys = check_reference_names(ti.models.googlenet(), NETWORK)
    assert keys["batchnorm_eps"] == [0.001]


@needs_keys(NETWORK)
def test_round_trip_is_exact():
    state = reference_state_dict(NETWORK)
    model = check_round_trip(ti.models.googlenet(), state)
    # the round trip alone would pass a name table that swaps two arrays both ways: each array is checked in its
    # module, against the torchvision name written out here
    bn = model.inception4c.branch_3x3.conv.bn
    for name in ("weight", "bias", "running_mean", "running_var"):
        np.testing.assert_array_equal(getattr(bn, name).data, state[f"inception4c.branch2.1.bn.{name}"], err_msg=name)
    assert not np.array_equal(bn.running_mean.data, bn.running_var.data)
    assert not np.array_equal(bn.running_var.data, np.ones_like(bn.running_var.data))  # not the fresh value
    np.testing.assert_array_equal(model.inception4c.branch_3x3.conv.conv.weight.data,
                                  state["inception4c.branch2.1.conv.weight"])
    np.testing.assert_array_equal(model.inception4c.branch_3x3.reduce.conv.weight.data,
                                  state["inception4c.branch2.0.conv.weight"])
    np.testing.assert_array_equal(model.inception4c.branch_pool.proj.conv.weight.data,
                                  state["inception4c.branch4.1.conv.weight"])
    np.testing.assert_array_equal(model.fc.weight.data, state["fc.weight"])


def test_paper_layout_has_no_reference_table():
    with pytest.raises(ValueError, match="paper=True"):
        ti.interop.to_torch_state_dict(ti.models.googlenet(paper=True))


# ----------------------------------------------------------------------------------------------------------------
# Golden parity
# ----------------------------------------------------------------------------------------------------------------
@needs_golden(NETWORK)
@pytest.mark.slow
@pytest.mark.parametrize("mode, dtype", [("eval", np.float32), ("eval", np.float64), ("train", np.float64)])
def test_matches_golden(mode, dtype):
    """Eval values in float32 and float64; the input gradient is checked in float64 as tests/reference/README.md
    prescribes (in float32 it happens to agree to 7e-7 here). Train mode (with both aux heads) in float64: at the
    golden 15x15 input, inception4a-5b run on 1x1 maps, so train-mode BatchNorm normalises two values per channel
    (batch 2), where float32 rounding is amplified up to 1/sqrt(eps) ~ 30x per layer (float32 here differs from
    the float64 reference by ~1 in the logits; torch's float32 does the same). The golden train mode has every
    Dropout in eval (identity): built here with p = 0."""
    gold = load_golden(NETWORK)
    run = run_golden(ti.models.googlenet(dropout=0.0, dropout_aux=0.0), gold, train=mode == "train", dtype=dtype,
                     activations=ACTIVATIONS, aux_heads=AUX_HEADS, backward=dtype == np.float64)
    check_golden(run, gold, mode)


@pytest.mark.slow
def test_train_mode_output_order_and_eval_output():
    model = ti.models.googlenet(width=0.125)
    x = ti.tensor(np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32))
    out = model.train()(x)
    assert isinstance(out, v1.GoogLeNetOutputs) and out._fields == ("logits", "aux_logits2", "aux_logits1")
    with ti.no_grad():
        assert isinstance(model.eval()(x), ti.Tensor)
    assert isinstance(ti.models.googlenet(width=0.125, aux_logits=False).train()(x), ti.Tensor)


# ----------------------------------------------------------------------------------------------------------------
# Input handling, transform_input, width and small_input
# ----------------------------------------------------------------------------------------------------------------
def test_input_smaller_than_minimum_is_refused():
    with pytest.raises(ValueError, match=r"GoogLeNet.*14x14.*15x15"):
        ti.models.googlenet(width=0.125).eval()(ti.tensor(np.zeros((1, 3, 14, 14), np.float32)))
    with pytest.raises(ValueError, match=r"GoogLeNet \(paper\).*31x31"):
        ti.models.googlenet(width=0.125, paper=True).eval()(ti.tensor(np.zeros((1, 3, 30, 30), np.float32)))
    with pytest.raises(ValueError, match=r"expected input \(N, 3, H, W\)"):
        ti.models.googlenet(width=0.125).eval()(ti.tensor(np.zeros((1, 1, 32, 32), np.float32)))


def test_transform_input_converts_imagenet_normalisation():
    model = ti.models.googlenet(transform_input=True, width=0.125)
    x = np.random.default_rng(0).standard_normal((1, 3, 4, 4)).astype(np.float32)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    image = x * std[:, None, None] + mean[:, None, None]          # undo ImageNet normalisation
    out = model._transform_input(ti.tensor(x))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.numpy(), (image - 0.5) / 0.5, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("paper", [False, True])
def test_small_input_width_forward_backward_on_32x32(paper):
    model = ti.models.googlenet(num_classes=10, width=0.125, small_input=True, paper=paper)
    assert model.inception3a.branch_1x1.conv.out_channels == 8
    x = ti.tensor(np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32))
    out = model.train()(x)
    assert out.logits.shape == out.aux_logits1.shape == out.aux_logits2.shape == (2, 10)
    (out.logits.sum() + 0.3 * (out.aux_logits1.sum() + out.aux_logits2.sum())).backward()
    assert all(p.grad is not None and p.grad.dtype == np.float32 for p in model.parameters())
    shapes = {}
    model.inception3a.register_forward_hook(lambda m, i, o: shapes.__setitem__("3a", o.shape))
    model.inception5b.register_forward_hook(lambda m, i, o: shapes.__setitem__("5b", o.shape))
    with ti.no_grad():
        assert model.eval()(x).shape == (2, 10)
    assert shapes["3a"][2:] == (16, 16) and shapes["5b"][2:] == (4, 4)


# ----------------------------------------------------------------------------------------------------------------
# float64 gradient checks, one per block kind
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("paper", [False, True])
def test_gradcheck_inception_block(paper):
    block = v1.Inception(3, 2, 2, 3, 2, 2, 2, paper=paper).double()
    block.train(not paper)  # the BatchNorm layout in train mode (batch statistics), the paper layout as is
    x = ti.tensor(np.random.default_rng(0).standard_normal((2, 3, 5, 5)), requires_grad=True)
    params = [p for p in block.parameters()]
    assert ti.gradcheck(lambda x, *ps: block(x), (x, *params), eps=1e-6, atol=1e-5, rtol=1e-3, fast_mode=True)


@pytest.mark.parametrize("paper", [False, True])
def test_gradcheck_aux_head(paper):
    head = v1.InceptionAux(3, 4, dropout=0.0, paper=paper, conv_channels=2, hidden=5).double().train()
    x = ti.tensor(np.random.default_rng(1).standard_normal((2, 3, 14, 14)), requires_grad=True)
    params = [p for p in head.parameters()]
    assert ti.gradcheck(lambda x, *ps: head(x), (x, *params), eps=1e-6, atol=1e-5, rtol=1e-3, fast_mode=True)
