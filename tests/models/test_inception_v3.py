"""Inception-v3 against torchvision ``inception_v3``: parameter counts, state_dict names (identical to
torchvision's), weight round trip, golden parity (eval and train mode with the aux head), multiply-adds,
transform_input, input-size errors, width/small_input builds, and float64 gradient checks of every block kind.

Golden parity uses a local helper (no shared tests/models/golden.py existed when this was written)."""
import importlib
import json
import os
import sys

import numpy as np
import pytest

import tinyinception as ti
v3 = importlib.import_module("tinyinception.models.inception_v3")  # the module (the package exports the builder)

HERE = os.path.dirname(os.path.abspath(__file__))
REFERENCE = os.path.join(HERE, "..", "reference")
sys.path.insert(0, REFERENCE)
import weights  # noqa: E402  (tests/reference/weights.py: the deterministic weight rule)
from helpers import assert_close  # noqa: E402

NETWORK = "inception_v3"
GOLDEN = os.path.join(REFERENCE, "golden", f"{NETWORK}.npz")
KEYS = os.path.join(REFERENCE, "keys", f"{NETWORK}.json")
needs_golden = pytest.mark.skipif(not os.path.exists(GOLDEN), reason=f"{GOLDEN} not generated yet")
needs_keys = pytest.mark.skipif(not os.path.exists(KEYS), reason=f"{KEYS} not generated yet")


def count(module):
    return sum(int(p.data.size) for p in module.parameters())


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


@needs_keys
@pytest.mark.slow
def test_state_dict_names_equal_torchvision(model):
    """Our names are torchvision's, in torchvision's order (AuxLogits between Mixed_6e and Mixed_7a)."""
    with open(KEYS) as f:
        keys = json.load(f)
    expected = [(e["name"], tuple(e["shape"])) for e in keys["state_dict"]]
    assert [(name, tuple(value.shape)) for name, value in model.state_dict().items()] == expected
    table = ti.interop.to_torch_state_dict(model)
    assert list(table) == [name for name, _ in expected]
    assert keys["num_params"] == count(model)


@pytest.mark.slow
def test_torch_state_dict_round_trip_is_exact(model):
    exported = ti.interop.to_torch_state_dict(model)
    for value in exported.values():  # make every tensor distinct from a fresh model's
        if value.dtype.kind == "f":
            value += np.float32(0.125)
    fresh = ti.models.inception_v3()
    ti.interop.load_torch_state_dict(fresh, exported)
    back = ti.interop.to_torch_state_dict(fresh)
    assert list(back) == list(exported)
    for key in exported:
        np.testing.assert_array_equal(back[key], exported[key], err_msg=key)


def test_loading_a_state_dict_without_aux_weights_names_them():
    small = ti.models.inception_v3(num_classes=4, width=0.05)
    state = {k: v for k, v in ti.interop.to_torch_state_dict(small).items() if not k.startswith("AuxLogits.")}
    with pytest.raises(KeyError, match=r"missing from the state_dict \(14\): AuxLogits.conv0.conv.weight"):
        ti.interop.load_torch_state_dict(small, state)
    no_aux = ti.models.inception_v3(num_classes=4, width=0.05, aux_logits=False)
    ti.interop.load_torch_state_dict(no_aux, state)  # torchvision's aux_logits=False checkpoint layout


# ----------------------------------------------------------------------------------------------------------------
# Golden parity (299x299: the aux head needs Mixed_6e >= 17x17): one forward + backward per mode, shared
# ----------------------------------------------------------------------------------------------------------------
def run_mode(golden, train, dtype):
    """Forward + backward of the golden loss (sum over heads of sum(head * projection)) as the generator did."""
    with open(KEYS) as f:
        shapes = {e["name"]: tuple(e["shape"]) for e in json.load(f)["state_dict"]}
    model = ti.models.inception_v3()
    ti.interop.load_torch_state_dict(model, weights.deterministic_state_dict(shapes, seed=golden["meta"]["seed"]))
    if dtype == np.float64:
        model.double()
    model.train(train)
    model.dropout.eval()  # the golden train mode has every Dropout in eval
    acts = {}
    for name in golden["meta"]["activations"]:
        getattr(model, name).register_forward_hook(lambda m, i, out, name=name: acts.__setitem__(name, out.numpy()))
    meta = golden["meta"]
    x = ti.Tensor(weights.deterministic_input(meta["input_shape"], meta["seed"], meta["input_name"]).astype(dtype),
                  requires_grad=True)
    out = model(x)
    heads = {"logits": out.logits, "aux": out.aux_logits} if train else {"logits": out}
    loss = None
    for head, value in heads.items():
        term = (value * ti.Tensor(golden[f"proj/{head}"].astype(dtype))).sum()
        loss = term if loss is None else loss + term
    loss.backward()
    return {"heads": {k: v.numpy() for k, v in heads.items()}, "acts": acts, "grad_input": x.grad,
            "input": x.numpy(), "model": model}


@pytest.fixture(scope="module")
def golden():
    with np.load(GOLDEN) as data:
        loaded = {key: data[key] for key in data.files}
    loaded["meta"] = json.loads(str(loaded["meta"]))
    return loaded


@pytest.fixture(scope="module")
def eval_run(golden):
    return run_mode(golden, train=False, dtype=np.float32)


@pytest.fixture(scope="module")
def train_run(golden):
    """Train mode in float64: batch statistics over 2 x 1 x 1 values per channel (the aux head's conv1) are
    chaotic in float32 (torchvision's own float32 run differs from its float64 run by ~1e-4 in the aux logits and
    ~4% in the input gradient); in float64 the comparison is exact to ~1e-9."""
    return run_mode(golden, train=True, dtype=np.float64)


def relative_norm_error(actual, expected):
    """||actual - expected||_2 / ||expected||_2 over the whole array."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    return float(np.linalg.norm(actual - expected) / np.linalg.norm(expected))


def gradient_error(ours, golden, key):
    """||ours - g|| / ||g|| for the golden gradient g stored at ``key``.

    At 299x299 the golden gradient is stored as weights.digest views, not whole. Each view then gives a lower bound
    of the whole-array error, and the largest is returned: the crops are subsets of the elements; for the BxB block
    means, sqrt(sum over blocks of count * mean(difference)^2) <= ||difference|| (Cauchy-Schwarz); and
    | ||ours|| - ||g|| | <= ||ours - g||. (The block means' own relative error is no bound: neighbouring gradient
    values of opposite sign cancel in a mean, so a tiny mean carries a large relative error.)
    """
    if key in golden:  # stored whole
        return relative_norm_error(ours, golden[key])
    reference_norm = float(golden[f"{key}/norm"])
    views = weights.digest(ours)
    bounds = [abs(float(views["norm"]) - reference_norm)]
    for view, value in views.items():
        expected = golden[f"{key}/{view}"].astype(np.float64)
        difference = value.astype(np.float64) - expected
        if view in ("tl", "br"):
            bounds.append(float(np.linalg.norm(difference)))
        elif view.startswith("pool"):
            block = int(view[len("pool"):])
            height, width = ours.shape[2:]
            rows = np.minimum(block, height - block * np.arange(expected.shape[2]))
            cols = np.minimum(block, width - block * np.arange(expected.shape[3]))
            counts = np.outer(rows, cols)  # elements averaged by each block (partial blocks at the edges)
            bounds.append(float(np.sqrt((counts * difference ** 2).sum())))
    return max(bounds) / reference_norm


def compare_digest(ours, golden, key, rtol=1e-4, atol=1e-4):
    """``ours`` against the golden array ``key``, stored whole or as weights.digest views."""
    for view, value in weights.digest(ours).items():
        name = f"{key}/{view}" if view else key
        expected = golden[name]
        assert_close(value, expected, rtol=rtol, atol=atol * max(1.0, float(np.abs(expected).max())), what=name)


@needs_golden
@pytest.mark.slow
def test_golden_input_is_the_deterministic_input(eval_run, golden):
    compare_digest(eval_run["input"], golden, "input", rtol=0, atol=0)


@needs_golden
@pytest.mark.slow
def test_eval_logits_activations_and_gradient_match_golden(eval_run, golden):
    assert_close(eval_run["heads"]["logits"], golden["eval/logits"], rtol=1e-4, atol=1e-4, what="eval logits")
    assert set(eval_run["acts"]) == set(golden["meta"]["activations"])
    for name, value in eval_run["acts"].items():
        compare_digest(value, golden, f"eval/act/{name}")
    assert eval_run["grad_input"].dtype == np.float32
    assert gradient_error(eval_run["grad_input"], golden, "eval/grad_input") < 1e-3


@needs_golden
@pytest.mark.slow
def test_train_logits_aux_activations_and_gradient_match_golden(train_run, golden):
    assert_close(train_run["heads"]["logits"], golden["train/logits"], rtol=1e-4, atol=1e-4, what="train logits")
    assert_close(train_run["heads"]["aux"], golden["train/aux"], rtol=1e-4, atol=1e-4, what="train aux logits")
    for name, value in train_run["acts"].items():
        compare_digest(value, golden, f"train/act/{name}")
    assert gradient_error(train_run["grad_input"], golden, "train/grad_input") < 1e-3


@needs_golden
@pytest.mark.slow
def test_train_updates_running_statistics_like_torchvision(train_run, golden):
    ours = ti.interop.to_torch_state_dict(train_run["model"])
    tracked = [key for key in golden if key.startswith("train/state/")]
    assert tracked and any(key.startswith("train/state/AuxLogits.") for key in tracked)
    for key in tracked:
        assert_close(ours[key[len("train/state/"):]], golden[key], rtol=1e-5, atol=1e-6, what=key)


# ----------------------------------------------------------------------------------------------------------------
# Multiply-adds (ti.summary: a hook-based eval forward at 299, batch 1)
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_multiply_adds_at_299_equal_torchvision(model):
    result = ti.summary(model, (3, 299, 299), show=False)
    assert round(result.total_macs / 1e9, 3) == 5.713  # torchvision's published 5.713 GFLOPS (conv + linear)
    assert result.total_macs == 5_713_216_096
    assert result.used_params == 23_834_568  # the aux head does not run in eval mode
    if os.path.exists(KEYS):  # the generator's count on torchvision's own layers (conv + linear hooks)
        with open(KEYS) as f:
            assert result.total_macs == json.load(f)["macs"]["eval@299"]


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
    small = ti.models.inception_v3(num_classes=3, width=0.05, small_input=True)
    small.eval()
    assert small(ti.Tensor(np.zeros((1, 3, 13, 13), np.float32))).shape == (1, 3)
    with pytest.raises(ValueError, match=r"inception_v3 \(small_input\): input 12x12 .* 13x13"):
        small(ti.Tensor(np.zeros((1, 3, 12, 12), np.float32)))


def test_small_input_keeps_every_parameter_shape():
    native = ti.interop.to_torch_state_dict(ti.models.inception_v3(num_classes=10, width=0.1))
    small = ti.interop.to_torch_state_dict(ti.models.inception_v3(num_classes=10, width=0.1, small_input=True))
    assert {k: v.shape for k, v in native.items()} == {k: v.shape for k, v in small.items()}


def test_tiny_width_small_input_trains_on_32x32_with_the_aux_head():
    model = ti.models.create(NETWORK, num_classes=10, width=0.05, small_input=True)
    shapes = {}
    for name in ("Mixed_5b", "Mixed_6b", "Mixed_7b"):
        getattr(model, name).register_forward_hook(lambda m, i, o, name=name: shapes.__setitem__(name, o.shape))
    x = ti.Tensor(np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32), requires_grad=True)
    out = model(x)
    assert isinstance(out, v3.InceptionOutputs) and out._fields == ("logits", "aux_logits")
    assert out.logits.shape == (2, 10) and out.aux_logits.shape == (2, 10) and out.logits.dtype == np.float32
    assert (shapes["Mixed_5b"][2:], shapes["Mixed_6b"][2:], shapes["Mixed_7b"][2:]) == ((16, 16), (7, 7), (3, 3))
    target = ti.Tensor(np.array([1, 7]))
    loss = ti.functional.cross_entropy(out.logits, target) + 0.4 * ti.functional.cross_entropy(out.aux_logits, target)
    loss.backward()
    assert x.grad.shape == x.shape and np.isfinite(x.grad).all()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.dtype == np.float32, name
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


def set_batchnorm_state(block):
    """Non-trivial running statistics and affine parameters, so eval-mode BatchNorm is not the identity and no
    pre-activation sits exactly on the ReLU kink (a convolution over a window of ReLU zeros outputs exactly 0;
    with mean 0 and bias 0 that 0 would reach the ReLU, where finite differences see half a derivative)."""
    for module in block.modules():
        if isinstance(module, ti.nn.BatchNorm2d):
            module.running_mean.data[...] = np.linspace(-0.2, 0.3, module.num_features)
            module.running_var.data[...] = np.linspace(0.5, 1.5, module.num_features)
            module.bias.data[...] = np.linspace(0.15, -0.1, module.num_features)


@pytest.mark.parametrize("kind", sorted(BLOCKS))
def test_block_gradcheck_float64(kind):
    build, shape = BLOCKS[kind]
    block = build().double()
    block.eval()  # fixed BatchNorm statistics: finite differences see the same function on every call
    set_batchnorm_state(block)
    x = ti.Tensor(np.random.default_rng(3).standard_normal(shape), requires_grad=True)
    params = list(block.parameters())
    assert ti.gradcheck(lambda x, *p: block(x), (x, *params), fast_mode=True)


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
    np.testing.assert_array_equal(out[:, -2:], block.branch_pool(ti.functional.avg_pool2d(x, 3, 1, 1)).numpy())
    with pytest.raises(ValueError, match=r"Conv2d\(in_channels=3\) got input with 4 channels"):
        block(ti.Tensor(np.zeros((1, 4, 4, 4), np.float32)))
