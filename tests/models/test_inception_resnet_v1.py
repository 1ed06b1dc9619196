"""Inception-ResNet-v1 against facenet-pytorch ``InceptionResnetV1(classify=True, num_classes=1000)``
(``head="facenet"``): parameter counts, state_dict names, weight round trip, golden parity (eval and train mode),
input-size errors; the plain ImageNet head by counts, a forward/backward and a float64 gradient check.
The blocks themselves are gradient-checked in test_inception_resnet_v2.py (same classes)."""
import numpy as np
import pytest

import tinyinception as ti
from golden import (check_golden, check_reference_names, check_round_trip, count, load_golden, needs_golden,
                    needs_keys, run_golden, shifted_state)
from small_builds import check_training_step, output_sizes, random_batch

NETWORK = "inception_resnet_v1"
# Reference module name (golden activations) -> our module path.
ACTIVATIONS = {"conv2d_4b": "stem.conv2d_4b", "repeat_1": "blocks_a", "repeat_2": "blocks_b",
               "block8": "last_block_c"}


@pytest.fixture(scope="module")
def facenet_model():
    return ti.models.inception_resnet_v1(head="facenet")


# ----------------------------------------------------------------------------------------------------------------
# Counts, names, round trip (cheap: no forward)
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_parameter_counts_of_both_heads(facenet_model):
    assert count(facenet_model) == 23_995_624  # = facenet InceptionResnetV1(classify=True, num_classes=1000)
    assert count(ti.models.inception_resnet_v1()) == 24_357_096  # plain head: trunk + Linear(1792, 1000)


@pytest.mark.slow
def test_block_parameter_counts(facenet_model):
    """Per-block counts of the fact sheet (appendix A)."""
    m = facenet_model
    assert count(m.stem) == 928 + 9_280 + 18_560 + 5_280 + 138_624 + 442_880
    assert [count(b) for b in m.blocks_a] == [77_440] * 5
    assert count(m.reduction_a) == 1_710_080
    assert [count(b) for b in m.blocks_b] == [690_048] * 10
    assert count(m.reduction_b) == 3_346_176
    assert [count(b) for b in m.blocks_c] + [count(m.last_block_c)] == [1_600_768] * 6
    assert count(m.embedding) + count(m.embedding_bn) == 918_528
    assert m.embedding.bias is None
    assert (m.embedding_bn.eps, m.embedding_bn.momentum, m.dropout.p) == (1e-3, 0.1, 0.6)
    assert [b.scale for b in m.blocks_a] + [b.scale for b in m.blocks_b] == [0.17] * 5 + [0.10] * 10
    assert {b.scale for b in m.blocks_c} == {0.20}
    assert m.last_block_c.scale == 1.0 and m.last_block_c.activation is False


@pytest.mark.slow
@needs_keys(NETWORK)
def test_state_dict_maps_one_to_one_onto_facenet(facenet_model):
    check_reference_names(facenet_model, NETWORK)


@pytest.mark.slow
def test_torch_state_dict_round_trip_is_exact(facenet_model):
    check_round_trip(ti.models.inception_resnet_v1(head="facenet"), shifted_state(facenet_model, -0.375))


def test_plain_head_keeps_facenet_trunk_names_and_its_own_fc():
    plain = ti.interop.to_torch_state_dict(ti.models.inception_resnet_v1(num_classes=5, width=0.05))
    assert "repeat_1.0.conv2d.weight" in plain and "block8.branch1.2.bn.running_var" in plain
    assert [k for k in plain if not k.startswith(("conv2d_", "repeat_", "mixed_", "block8"))] == ["fc.weight",
                                                                                                    "fc.bias"]


def test_unknown_head_is_rejected():
    with pytest.raises(ValueError, match=r"inception_resnet_v1: head must be one of \('plain', 'facenet'\), "
                                         r"got 'arcface'"):
        ti.models.inception_resnet_v1(head="arcface")


# ----------------------------------------------------------------------------------------------------------------
# Golden parity (head="facenet"): one test per golden run (mode, dtype)
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.slow
@needs_golden(NETWORK)
@pytest.mark.parametrize("mode, dtype", [("eval", np.float32), ("eval", np.float64), ("train", np.float64)])
def test_matches_golden(mode, dtype):
    """Eval mode forward in float32, the networks' working precision; the input gradient in float64
    (tests/reference/README.md: gradient parity in float64; in float32 the input gradient of the residual stacks
    is only good to ~1e-3 relative). Train mode in float64 (tests/reference/README.md): with batch 2 at 75x75 the
    C blocks are 1x1 and facenet's last_bn is a BatchNorm1d over two values, which float32 cannot resolve to 1e-4;
    float64 matches to ~1e-12. Activations: rtol and atol 1e-4. The golden train mode has facenet's Dropout(0.6)
    in eval (identity)."""
    gold = load_golden(NETWORK)
    run = run_golden(ti.models.inception_resnet_v1(head="facenet"), gold, train=mode == "train", dtype=dtype,
                     activations=ACTIVATIONS, dropouts=["dropout"], backward=dtype == np.float64)
    check_golden(run, gold, mode)


# ----------------------------------------------------------------------------------------------------------------
# Sizes, width, small_input, the plain head
# ----------------------------------------------------------------------------------------------------------------
def test_input_smaller_than_75_is_rejected_with_the_network_name():
    small = ti.models.inception_resnet_v1(width=0.05)
    with pytest.raises(ValueError, match=r"inception_resnet_v1: input 75x74 .* 75x75"):
        small(ti.Tensor(np.zeros((1, 3, 75, 74), np.float32)))
    tiny = ti.models.inception_resnet_v1(width=0.05, small_input=True)
    with pytest.raises(ValueError, match=r"inception_resnet_v1: input 12x12 .* 13x13"):
        tiny(ti.Tensor(np.zeros((1, 3, 12, 12), np.float32)))


@pytest.mark.parametrize("head", ["plain", "facenet"])
def test_tiny_width_small_input_trains_on_32x32(head):
    model = ti.models.create(NETWORK, num_classes=10, head=head, width=0.05, small_input=True)
    sizes = output_sizes(model, ["blocks_a.0", "blocks_c.0"])
    x = random_batch()
    logits = model(x)
    assert logits.shape == (2, 10) and logits.dtype == np.float32
    assert sizes == {"blocks_a.0": (16, 16), "blocks_c.0": (3, 3)}
    check_training_step(model, x, ti.functional.cross_entropy(logits, ti.Tensor(np.array([3, 9]))))


@pytest.mark.parametrize("head", ["plain", "facenet"])
def test_head_gradcheck_float64(head):
    """The classifier head (pool, dropout, [embedding, BatchNorm1d over the batch], fc) on a small feature map,
    in train mode with dropout off: input and every head parameter."""
    model = ti.models.inception_resnet_v1(num_classes=3, head=head, width=0.05).double()
    model.train()
    model.dropout.eval()
    channels = model.last_block_c.channels
    features = ti.Tensor(np.random.default_rng(5).standard_normal((4, channels, 2, 2)), requires_grad=True)
    head_modules = [model.fc] + ([model.embedding, model.embedding_bn] if head == "facenet" else [])
    params = [p for module in head_modules for p in module.parameters()]
    assert ti.gradcheck(lambda f, *p: model.classifier(f), (features, *params), fast_mode=True)


def test_facenet_embedding_is_the_normalised_pre_logits_vector():
    """``embed`` = facenet's classify=False output: embedding_bn(embedding(pooled features)), L2-normalised."""
    model = ti.models.inception_resnet_v1(num_classes=3, head="facenet", width=0.05, small_input=True).eval()
    x = random_batch()
    embeddings = model.embed(x)
    assert embeddings.shape == (2, model.embedding.out_features) and embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embeddings.data, axis=1), 1.0, rtol=1e-5)
    features = ti.functional.global_avg_pool2d(model.trunk(x))
    before = model.embedding_bn(model.embedding(features)).data
    np.testing.assert_allclose(embeddings.data, before / np.linalg.norm(before, axis=1, keepdims=True), rtol=1e-5,
                               atol=1e-6)
    with pytest.raises(ValueError, match=r"embed: needs head='facenet'"):
        ti.models.inception_resnet_v1(width=0.05, small_input=True).embed(x)
