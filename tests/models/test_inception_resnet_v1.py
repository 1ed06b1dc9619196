"""Inception-ResNet-v1 against facenet-pytorch ``InceptionResnetV1(classify=True, num_classes=1000)``
(``head="facenet"``): parameter counts, state_dict names, weight round trip, golden parity (eval and train mode),
input-size errors; the plain ImageNet head by counts, a forward/backward and a float64 gradient check.
The blocks themselves are gradient-checked in test_inception_resnet_v2.py (same classes)."""
import json
import os
import sys

import numpy as np
import pytest

import tinyinception as ti

HERE = os.path.dirname(os.path.abspath(__file__))
REFERENCE = os.path.join(HERE, "..", "reference")
sys.path.insert(0, REFERENCE)
import weights  # noqa: E402  (tests/reference/weights.py: the deterministic weight rule)
from helpers import assert_close  # noqa: E402

NETWORK = "inception_resnet_v1"
GOLDEN = os.path.join(REFERENCE, "golden", f"{NETWORK}.npz")
KEYS = os.path.join(REFERENCE, "keys", f"{NETWORK}.json")
needs_golden = pytest.mark.skipif(not os.path.exists(GOLDEN), reason=f"{GOLDEN} not generated yet")
needs_keys = pytest.mark.skipif(not os.path.exists(KEYS), reason=f"{KEYS} not generated yet")
# Reference module name (golden activations) -> our module path.
ACTIVATIONS = {"conv2d_4b": "stem.conv2d_4b", "repeat_1": "blocks_a", "repeat_2": "blocks_b",
               "block8": "last_block_c"}


def count(module):
    return sum(int(p.data.size) for p in module.parameters())


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


def reference_keys_file():
    with open(KEYS) as f:
        return json.load(f)


@pytest.mark.slow
@needs_keys
def test_state_dict_maps_one_to_one_onto_facenet(facenet_model):
    keys = reference_keys_file()
    table = ti.interop.to_torch_state_dict(facenet_model)
    expected = [(e["name"], tuple(e["shape"])) for e in keys["state_dict"]]
    assert [(name, tuple(value.shape)) for name, value in table.items()] == expected
    assert keys["num_params"] == count(facenet_model)


@pytest.mark.slow
def test_torch_state_dict_round_trip_is_exact(facenet_model):
    exported = ti.interop.to_torch_state_dict(facenet_model)
    for value in exported.values():
        if value.dtype.kind == "f":
            value -= np.float32(0.375)
    fresh = ti.models.inception_resnet_v1(head="facenet")
    ti.interop.load_torch_state_dict(fresh, exported)
    back = ti.interop.to_torch_state_dict(fresh)
    assert list(back) == list(exported)
    for key in exported:
        np.testing.assert_array_equal(back[key], exported[key], err_msg=key)


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
# Golden parity (head="facenet"): one forward + backward per mode, shared by the tests below
# ----------------------------------------------------------------------------------------------------------------
def run_mode(golden, train, dtype, backward=True):
    """Forward (+ backward of sum(logits * projection)) as the generator did; returns logits, activations, the
    input gradient (None without backward) and the model (for its running statistics)."""
    shapes = {e["name"]: tuple(e["shape"]) for e in reference_keys_file()["state_dict"]}
    model = ti.models.inception_resnet_v1(head="facenet")
    ti.interop.load_torch_state_dict(model, weights.deterministic_state_dict(shapes, seed=golden["meta"]["seed"]))
    if dtype == np.float64:
        model.double()
    model.train(train)
    model.dropout.eval()  # the golden train mode has facenet's Dropout(0.6) in eval (identity)
    acts, modules = {}, dict(model.named_modules())
    for ref_name, ours in ACTIVATIONS.items():
        modules[ours].register_forward_hook(lambda m, inp, out, name=ref_name: acts.__setitem__(name, out.numpy()))
    x = ti.Tensor(golden["input"].astype(dtype), requires_grad=backward)
    with ti.enable_grad() if backward else ti.no_grad():
        logits = model(x)
    if backward:
        (logits * ti.Tensor(golden["proj/logits"].astype(dtype))).sum().backward()
    return {"logits": logits.numpy(), "acts": acts, "grad_input": x.grad, "model": model}


def load_golden():
    with np.load(GOLDEN) as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="module")
def golden():
    data = load_golden()
    data["meta"] = json.loads(str(data["meta"]))
    return data


@pytest.fixture(scope="module")
def eval_run(golden):
    """Eval mode forward in float32, the networks' working precision."""
    return run_mode(golden, train=False, dtype=np.float32, backward=False)


@pytest.fixture(scope="module")
def eval_run64(golden):
    """Eval mode forward + backward in float64 (tests/reference/README.md: gradient parity in float64; in
    float32 the input gradient of the residual stacks is only good to ~1e-3 relative)."""
    return run_mode(golden, train=False, dtype=np.float64)


@pytest.fixture(scope="module")
def train_run(golden):
    """Train mode in float64 (tests/reference/README.md): with batch 2 at 75x75 the C blocks are 1x1 and facenet's
    last_bn is a BatchNorm1d over two values, which float32 cannot resolve to 1e-4; float64 matches to ~1e-12."""
    return run_mode(golden, train=True, dtype=np.float64)


def relative_norm_error(actual, expected):
    """||actual - expected||_2 / ||expected||_2 over the whole array."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    return float(np.linalg.norm(actual - expected) / np.linalg.norm(expected))


def check_activations(run, golden, mode):
    """Each golden activation digest view (weights.digest) against the same view of ours, rtol 1e-4 and atol
    1e-4 times the view's largest magnitude (activations grow through the residual stacks)."""
    for name, ours in run["acts"].items():
        for view, value in weights.digest(ours).items():
            key = f"{mode}/act/{name}/{view}" if view else f"{mode}/act/{name}"
            expected = golden[key]
            assert_close(value, expected, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(expected).max())), what=key)


@pytest.mark.slow
@needs_golden
@needs_keys
def test_eval_logits_and_activations_match_golden_in_float32(eval_run, golden):
    assert eval_run["logits"].dtype == np.float32
    assert_close(eval_run["logits"], golden["eval/logits"], rtol=1e-4, atol=1e-4, what="eval logits")
    check_activations(eval_run, golden, "eval")


@pytest.mark.slow
@needs_golden
@needs_keys
def test_eval_input_gradient_matches_golden(eval_run64, golden):
    assert_close(eval_run64["logits"], golden["eval/logits"], rtol=1e-4, atol=1e-4, what="eval logits (float64)")
    assert relative_norm_error(eval_run64["grad_input"], golden["eval/grad_input"]) < 1e-3


@pytest.mark.slow
@needs_golden
@needs_keys
def test_train_logits_activations_and_gradient_match_golden(train_run, golden):
    assert_close(train_run["logits"], golden["train/logits"], rtol=1e-4, atol=1e-4, what="train logits")
    check_activations(train_run, golden, "train")
    assert relative_norm_error(train_run["grad_input"], golden["train/grad_input"]) < 1e-3


@pytest.mark.slow
@needs_golden
@needs_keys
def test_train_updates_running_statistics_like_facenet(train_run, golden):
    ours = ti.interop.to_torch_state_dict(train_run["model"])
    tracked = [key for key in golden if key.startswith("train/state/")]
    assert tracked
    for key in tracked:
        assert_close(ours[key[len("train/state/"):]], golden[key], rtol=1e-5, atol=1e-6, what=key)


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
    shapes = {}
    model.blocks_a[0].register_forward_hook(lambda m, i, o: shapes.__setitem__("a", o.shape))
    model.blocks_c[0].register_forward_hook(lambda m, i, o: shapes.__setitem__("c", o.shape))
    x = ti.Tensor(np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32), requires_grad=True)
    logits = model(x)
    assert logits.shape == (2, 10) and logits.dtype == np.float32
    assert (shapes["a"][2:], shapes["c"][2:]) == ((16, 16), (3, 3))
    ti.functional.cross_entropy(logits, ti.Tensor(np.array([3, 9]))).backward()
    assert x.grad.shape == x.shape and np.isfinite(x.grad).all()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.dtype == np.float32, name


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
