"""Inception-ResNet-v2 against timm ``inception_resnet_v2``: parameter counts, state_dict names, weight round trip,
golden parity (eval and train mode), input-size errors, width/small_input builds, and float64 gradient checks of
every block kind of ``tinyinception/models/inception_resnet.py`` (shared with Inception-ResNet-v1)."""
import json
import os
import sys

import numpy as np
import pytest

import tinyinception as ti
from tinyinception.models import inception_resnet as irn

HERE = os.path.dirname(os.path.abspath(__file__))
REFERENCE = os.path.join(HERE, "..", "reference")
sys.path.insert(0, REFERENCE)
import weights  # noqa: E402  (tests/reference/weights.py: the deterministic weight rule)
from helpers import assert_close  # noqa: E402

NETWORK = "inception_resnet_v2"
GOLDEN = os.path.join(REFERENCE, "golden", f"{NETWORK}.npz")
KEYS = os.path.join(REFERENCE, "keys", f"{NETWORK}.json")
needs_golden = pytest.mark.skipif(not os.path.exists(GOLDEN), reason=f"{GOLDEN} not generated yet")
needs_keys = pytest.mark.skipif(not os.path.exists(KEYS), reason=f"{KEYS} not generated yet")
# Reference module name (golden activations) -> our module path.
ACTIVATIONS = {"mixed_5b": "mixed_5b", "repeat": "blocks_a", "repeat_1": "blocks_b", "conv2d_7b": "conv2d_7b"}


# ----------------------------------------------------------------------------------------------------------------
# Counts, names, round trip (cheap: no forward)
# ----------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model():
    return ti.models.inception_resnet_v2()


def count(module):
    return sum(int(p.data.size) for p in module.parameters())


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


def reference_keys_file():
    with open(KEYS) as f:
        return json.load(f)


@pytest.mark.slow
@needs_keys
def test_state_dict_maps_one_to_one_onto_timm(model):
    keys = reference_keys_file()
    table = ti.interop.to_torch_state_dict(model)
    expected = [(e["name"], tuple(e["shape"])) for e in keys["state_dict"]]
    assert [(name, tuple(value.shape)) for name, value in table.items()] == expected
    assert keys["num_params"] == count(model)


@pytest.mark.slow
def test_torch_state_dict_round_trip_is_exact(model):
    exported = ti.interop.to_torch_state_dict(model)
    for key, value in exported.items():  # make every tensor distinct from a fresh model's
        if value.dtype.kind == "f":
            value += np.float32(0.125)
    fresh = ti.models.inception_resnet_v2()
    ti.interop.load_torch_state_dict(fresh, exported)
    back = ti.interop.to_torch_state_dict(fresh)
    assert list(back) == list(exported)
    for key in exported:
        np.testing.assert_array_equal(back[key], exported[key], err_msg=key)


def test_loading_a_wrong_state_dict_names_the_keys():
    small = ti.models.inception_resnet_v2(width=0.05, small_input=True)
    state = ti.interop.to_torch_state_dict(small)
    state["repeat.0.conv2d.weight"] = state["repeat.0.conv2d.weight"][:1]
    del state["classif.bias"]
    with pytest.raises(KeyError) as failure:
        ti.interop.load_torch_state_dict(small, state)
    message = str(failure.value)
    assert "missing from the state_dict (1): classif.bias" in message
    assert "repeat.0.conv2d.weight -> blocks_a.0.expand_1x1.weight" in message


# ----------------------------------------------------------------------------------------------------------------
# Golden parity: one forward + backward per mode, shared by the tests below
# ----------------------------------------------------------------------------------------------------------------
def load_golden():
    with np.load(GOLDEN) as data:
        return {key: data[key] for key in data.files}


def run_mode(golden, train, dtype, backward=True):
    """Forward (+ backward of sum(logits * projection)) as the generator did; returns logits, activations, the
    input gradient (None without backward) and the model (for its running statistics)."""
    shapes = {e["name"]: tuple(e["shape"]) for e in reference_keys_file()["state_dict"]}
    model = ti.models.inception_resnet_v2()
    ti.interop.load_torch_state_dict(model, weights.deterministic_state_dict(shapes, seed=golden["meta"]["seed"]))
    if dtype == np.float64:
        model.double()
    model.train(train)
    model.dropout.eval()  # the golden train mode has every Dropout in eval (timm's drop_rate is 0 anyway)
    acts = {}
    for ref_name, ours in ACTIVATIONS.items():
        module = dict(model.named_modules())[ours]
        module.register_forward_hook(lambda m, inp, out, name=ref_name: acts.__setitem__(name, out.numpy()))
    x = ti.Tensor(golden["input"].astype(dtype), requires_grad=backward)
    with ti.enable_grad() if backward else ti.no_grad():
        logits = model(x)
    if backward:
        (logits * ti.Tensor(golden["proj/logits"].astype(dtype))).sum().backward()
    return {"logits": logits.numpy(), "acts": acts, "grad_input": x.grad, "model": model}


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
    """Train mode in float64: at the 75x75 golden size the 8x8 stage is 1x1, so train-mode BatchNorm normalises two
    values per channel, which float32 itself cannot resolve to 1e-4 (timm in float32 differs from timm in float64
    by ~5e-4 in the logits). In float64 the comparison is exact to ~1e-12."""
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
def test_train_updates_running_statistics_like_timm(train_run, golden):
    ours = ti.interop.to_torch_state_dict(train_run["model"])
    tracked = [key for key in golden if key.startswith("train/state/")]
    assert tracked
    for key in tracked:
        assert_close(ours[key[len("train/state/"):]], golden[key], rtol=1e-5, atol=1e-6, what=key)


# ----------------------------------------------------------------------------------------------------------------
# Sizes, width, small_input
# ----------------------------------------------------------------------------------------------------------------
def test_input_smaller_than_75_is_rejected_with_the_network_name():
    small = ti.models.inception_resnet_v2(width=0.05)
    with pytest.raises(ValueError, match=r"inception_resnet_v2: input 74x75 .* 75x75"):
        small(ti.Tensor(np.zeros((1, 3, 74, 75), np.float32)))
    with pytest.raises(ValueError, match=r"inception_resnet_v2: expected input \(N, 3, H, W\)"):
        small(ti.Tensor(np.zeros((1, 1, 80, 80), np.float32)))


def test_small_input_minimum_size():
    small = ti.models.inception_resnet_v2(num_classes=3, width=0.05, small_input=True)
    small.eval()
    assert small(ti.Tensor(np.zeros((1, 3, 13, 13), np.float32))).shape == (1, 3)
    with pytest.raises(ValueError, match=r"inception_resnet_v2: input 12x12 .* 13x13"):
        small(ti.Tensor(np.zeros((1, 3, 12, 12), np.float32)))


def test_small_input_keeps_every_parameter_shape():
    native = ti.interop.to_torch_state_dict(ti.models.inception_resnet_v2(num_classes=10, width=0.1))
    small = ti.interop.to_torch_state_dict(ti.models.inception_resnet_v2(num_classes=10, width=0.1, small_input=True))
    assert {k: v.shape for k, v in native.items()} == {k: v.shape for k, v in small.items()}


def test_tiny_width_small_input_trains_on_32x32():
    model = ti.models.create(NETWORK, num_classes=10, width=0.05, small_input=True)
    shapes = {}
    model.blocks_a[0].register_forward_hook(lambda m, i, o: shapes.__setitem__("a", o.shape))
    model.blocks_b[0].register_forward_hook(lambda m, i, o: shapes.__setitem__("b", o.shape))
    model.blocks_c[0].register_forward_hook(lambda m, i, o: shapes.__setitem__("c", o.shape))
    x = ti.Tensor(np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32), requires_grad=True)
    logits = model(x)
    assert logits.shape == (2, 10) and logits.dtype == np.float32
    assert (shapes["a"][2:], shapes["b"][2:], shapes["c"][2:]) == ((16, 16), (7, 7), (3, 3))
    ti.functional.cross_entropy(logits, ti.Tensor(np.array([1, 7]))).backward()
    assert x.grad.shape == x.shape and np.isfinite(x.grad).all()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.dtype == np.float32, name


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
