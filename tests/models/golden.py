"""Golden-file parity helpers shared by the network tests in tests/models.

    from golden import check_golden, load_golden, run_golden   # tests/models is on sys.path: it has no
                                                                # __init__.py, so pytest's default "prepend" import
                                                                # mode puts a test file's folder first

    gold = load_golden("inception_v4")
    run = run_golden(ti.models.inception_v4(), gold, train=True, dtype=np.float64,
                     activations={"features.3": "stem.mixed_3a", ...},   # every golden activation -> our module
                     dropouts=["dropout"])
    check_golden(run, gold, "train")

A network's reference files (tests/reference/README.md): ``keys/<network>.json`` (the reference's state_dict
names and shapes, parameter count, ...) and ``golden/<network>.npz`` (the reference's float64 results: logits,
aux logits, hooked activations, input gradients of the golden loss, running statistics; arrays larger than
``weights.FULL_LIMIT`` elements stored as ``weights.digest`` views). ``TI_REFERENCE_DIR`` points the tests at
another folder holding golden/ and keys/ (freshly generated files).

What stays in each network's test file: how its golden model is built, which Dropout modules the golden run
disables, the activation name map, the aux heads, the dtype of each run (and why) and the tolerances.
"""
import json
import os
import sys
from dataclasses import dataclass

import numpy as np
import pytest

import tinyinception as ti
from helpers import assert_close

HERE = os.path.dirname(os.path.abspath(__file__))
REFERENCE = os.environ.get("TI_REFERENCE_DIR", os.path.join(HERE, "..", "reference"))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
import weights  # noqa: E402  (tests/reference/weights.py: the deterministic weight rule shared with the generator)

STATE_PREFIX = "train/state/"


# ----------------------------------------------------------------------------------------------------------------
# Files, skip markers, weights and input
# ----------------------------------------------------------------------------------------------------------------
def keys_path(network):
    """REFERENCE/keys/<network>.json"""
    return os.path.join(REFERENCE, "keys", f"{network}.json")


def golden_path(network):
    """REFERENCE/golden/<network>.npz"""
    return os.path.join(REFERENCE, "golden", f"{network}.npz")


def _skip_unless_present(paths):
    missing = [path for path in paths if not os.path.exists(path)]
    return pytest.mark.skipif(bool(missing), reason=f"{', '.join(missing)} not generated yet")


def needs_keys(network):
    """Skip marker for a test that reads keys/<network>.json."""
    return _skip_unless_present([keys_path(network)])


def needs_golden(network):
    """Skip marker for a golden parity test: it reads golden/<network>.npz, and keys/<network>.json for the
    weights."""
    return _skip_unless_present([golden_path(network), keys_path(network)])


def count(module):
    """Number of parameter elements of ``module`` (buffers not counted), as torch's sum(p.numel())."""
    return sum(int(p.data.size) for p in module.parameters())


def load_keys(network):
    """keys/<network>.json as a dict: "state_dict" [{name, shape, dtype, kind}], "num_params", ..."""
    with open(keys_path(network)) as f:
        return json.load(f)


def reference_state_dict(network, seed=0):
    """The deterministic weights (tests/reference/weights.py) of every tensor of the reference's state_dict.

    Returns {reference name: np.ndarray}, float32 (num_batches_tracked int64), in the reference's order."""
    shapes = {entry["name"]: tuple(entry["shape"]) for entry in load_keys(network)["state_dict"]}
    return weights.deterministic_state_dict(shapes, seed=seed)


def load_golden(network):
    """golden/<network>.npz as {key: np.ndarray}, with "meta" parsed from its JSON string into a dict."""
    with np.load(golden_path(network)) as data:
        gold = {key: data[key] for key in data.files}
    gold["meta"] = json.loads(str(gold["meta"]))
    return gold


def golden_input(gold):
    """The golden input (N, 3, H, W), float32, rebuilt by the generator's rule from ``gold["meta"]`` (a large one
    is stored only as digest views)."""
    meta = gold["meta"]
    return weights.deterministic_input(tuple(meta["input_shape"]), seed=meta["seed"], name=meta["input_name"])


# ----------------------------------------------------------------------------------------------------------------
# Running a network as the generator ran the reference
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class GoldenRun:
    """One golden forward (and backward) of our network; arrays are NumPy, in the run's dtype.

    heads: {"logits": (N, K)} plus, in train mode, the aux heads under their golden names ("aux", "aux1", ...)
    acts: {golden activation name: the hooked module's output (N, C, H, W)}
    grad_input: (N, 3, H, W) gradient of the golden loss with respect to the input; None without backward
    loss: the golden loss, sum over heads h of sum(h * proj/h), as a Python float
    input: the (N, 3, H, W) input, in the run's dtype
    model: the network after the run (train mode has moved its BatchNorm running statistics)
    """
    heads: dict
    acts: dict
    grad_input: object
    loss: float
    input: np.ndarray
    model: object


def _heads(out, aux_heads):
    """{golden head name: Tensor}: a plain Tensor output is the logits; a named tuple (train mode with aux
    heads) gives ``logits`` and each aux head from its field, aux_heads = {golden name: output field}."""
    if isinstance(out, ti.Tensor):
        return {"logits": out}
    return {"logits": out.logits, **{head: getattr(out, field) for head, field in (aux_heads or {}).items()}}


def run_golden(model, gold, *, train, dtype, activations, aux_heads=None, dropouts=(), backward=True):
    """Run ``model`` on the golden input with the deterministic weights, as tests/reference/generate.py ran the
    reference: forward in ``dtype`` (np.float32 or np.float64), forward hooks on the named modules, and (with
    ``backward``) the backward of the golden loss sum over heads h of sum(h * proj/h).

    model: a freshly built network in the reference's layout (float32; converted here with ``.double()``)
    gold: load_golden(...) of the same network; the rebuilt input must equal its stored input (or views) exactly
    activations: {golden activation name: our module path in model.named_modules()}
    aux_heads: {golden head name: field of the train-mode output}, e.g. {"aux": "aux_logits"}
    dropouts: our module paths of the Dropout modules the golden train mode disables; set to eval after
        model.train(train)
    Returns a GoldenRun; the heads and the input gradient must come out in ``dtype``.
    """
    x_array = golden_input(gold)
    assert_matches(x_array, gold, "input", rtol=0, atol=0)
    ti.interop.load_torch_state_dict(model, reference_state_dict(gold["meta"]["network"], gold["meta"]["seed"]))
    if dtype == np.float64:
        model.double()
    model.train(train)
    modules = dict(model.named_modules())
    for name in dropouts:
        modules[name].eval()
    acts = {}
    for golden_name, ours in activations.items():
        modules[ours].register_forward_hook(lambda m, i, out, name=golden_name: acts.__setitem__(name, out.numpy()))
    x = ti.Tensor(x_array.astype(dtype), requires_grad=backward)
    with ti.enable_grad() if backward else ti.no_grad():
        heads = _heads(model(x), aux_heads)
        loss = None
        for head, value in heads.items():
            term = (value * ti.Tensor(gold[f"proj/{head}"].astype(dtype))).sum()
            loss = term if loss is None else loss + term
    if backward:
        loss.backward()
    for head, value in heads.items():  # dtypes never change silently
        assert value.dtype == dtype, f"{head}: {value.dtype} from a {np.dtype(dtype).name} run"
    assert not backward or x.grad.dtype == dtype, f"input gradient: {x.grad.dtype} from a {np.dtype(dtype).name} run"
    return GoldenRun(heads={head: value.numpy() for head, value in heads.items()}, acts=acts,
                     grad_input=x.grad if backward else None, loss=loss.item(), input=x.numpy(), model=model)


# ----------------------------------------------------------------------------------------------------------------
# Comparisons with the golden file
# ----------------------------------------------------------------------------------------------------------------
def _views(ours, gold, key):
    """[(golden key, our array, golden array)]: the whole array when ``key`` is stored whole, else one entry per
    weights.digest view ("key/tl", "key/br", "key/poolB", "key/norm")."""
    if key in gold:
        return [(key, np.asarray(ours), gold[key])]
    return [(f"{key}/{view}", value, gold[f"{key}/{view}"]) for view, value in weights.digest(ours).items()]


def assert_matches(ours, gold, key, rtol=1e-4, atol=1e-4):
    """Fail unless |ours - ref| <= atol + rtol |ref| elementwise on every stored view of golden ``key``.
    The shapes must agree exactly (helpers.assert_close)."""
    for name, value, expected in _views(ours, gold, key):
        assert_close(value, expected, rtol=rtol, atol=atol, what=name)


def golden_heads(gold, mode):
    """The head names the golden file holds for ``mode`` ("eval" or "train"): "logits" and any aux heads."""
    return {key.split("/")[1] for key in gold if key.startswith("proj/") and f"{mode}/{key.split('/')[1]}" in gold}


def check_heads(run, gold, mode, rtol=1e-4, atol=1e-4):
    """Our heads are exactly the golden file's heads for ``mode``, and each matches (assert_matches)."""
    expected = golden_heads(gold, mode)
    assert set(run.heads) == expected, f"{mode} heads: {sorted(run.heads)} here, {sorted(expected)} in the golden file"
    for head, value in run.heads.items():
        assert_matches(value, gold, f"{mode}/{head}", rtol=rtol, atol=atol)


def golden_activations(gold, mode):
    """The activation names the golden file holds for ``mode`` (from its "<mode>/act/<name>[/view]" keys)."""
    prefix = f"{mode}/act/"
    return {key[len(prefix):].split("/")[0] for key in gold if key.startswith(prefix)}


def check_activations(run, gold, mode, rtol=1e-4, atol=1e-4):
    """Our hooked activations are exactly the golden file's for ``mode``, and each matches (assert_matches)."""
    expected = golden_activations(gold, mode)
    assert set(run.acts) == expected, f"{mode} activations: {sorted(run.acts)} hooked, {sorted(expected)} golden"
    for name, value in run.acts.items():
        assert_matches(value, gold, f"{mode}/act/{name}", rtol=rtol, atol=atol)


def relative_norm_error(actual, expected):
    """||actual - expected||_2 / ||expected||_2 over the whole array, in float64."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    return float(np.linalg.norm(actual - expected) / max(np.linalg.norm(expected), 1e-30))


def assert_gradient_matches(ours, gold, key, tol=1e-3):
    """Relative L2 error ||ours - ref|| / ||ref|| < tol on the whole array, or on each digest view separately
    (each view's error relative to that view's own norm; the 0-d "norm" view: the relative error of the norm)."""
    for name, value, expected in _views(ours, gold, key):
        error = relative_norm_error(value, expected)
        assert error < tol, f"{name}: relative L2 error {error:.2e} >= {tol}"


def whole_gradient_error(ours, gold, key):
    """The whole-array relative error ||ours - g|| / ||g|| of the golden gradient g at ``key``: exact when g is
    stored whole; from its sketch (``key/sketch``, `weights.sketch` of the float64 gradient) where the file has
    one, an estimate within a few percent of the error, wherever the differences lie; from the digest views alone
    (older files), only a lower bound. Where both are there the larger is returned (the bound is certain)."""
    if key in gold:
        return relative_norm_error(ours, gold[key])
    error = gradient_error_bound(ours, gold, key)
    if f"{key}/sketch" in gold:
        difference = weights.sketch(ours) - gold[f"{key}/sketch"]
        error = max(error, float(np.linalg.norm(difference)) / float(gold[f"{key}/norm"]))
    return error


def gradient_error_bound(ours, gold, key):
    """A lower bound of the whole-array relative error ||ours - g|| / ||g|| of the golden gradient g at ``key``
    (exactly that error when g is stored whole).

    From digest views each view bounds ||ours - g|| from below, and the largest bound is returned: the crops are
    subsets of the elements; for the B x B block means, sqrt(sum over blocks of count * mean(difference)^2) <=
    ||difference|| (Cauchy-Schwarz); and | ||ours|| - ||g|| | <= ||ours - g||. (The block means' own relative error
    is no bound: neighbouring gradient values of opposite sign cancel in a mean, so a tiny mean carries a large
    relative error; assert_gradient_matches, which asks each view's own relative error to be small, is stricter.)
    A gradient moved between two pixels of one block, away from the crops, changes none of these: see
    `whole_gradient_error`.
    """
    if key in gold:
        return relative_norm_error(ours, gold[key])
    reference_norm = float(gold[f"{key}/norm"])
    views = weights.digest(ours)
    bounds = [abs(float(views["norm"]) - reference_norm)]
    for view, value in views.items():
        expected = gold[f"{key}/{view}"].astype(np.float64)
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


def check_running_statistics(model, gold, rtol=1e-5, atol=1e-6):
    """Every running_mean / running_var the golden file tracked after its one train-mode forward
    ("train/state/<reference key>") against ours, under the reference's name. Returns the tracked reference keys
    (there must be some)."""
    ours = ti.interop.to_torch_state_dict(model)
    tracked = [key[len(STATE_PREFIX):] for key in gold if key.startswith(STATE_PREFIX)]
    assert tracked, "the golden file tracks no running statistics"
    for key in tracked:
        assert_close(ours[key], gold[STATE_PREFIX + key], rtol=rtol, atol=atol, what=STATE_PREFIX + key)
    return tracked


# ----------------------------------------------------------------------------------------------------------------
# Names and weight exchange
# ----------------------------------------------------------------------------------------------------------------
def check_reference_names(model, network):
    """ti.interop.to_torch_state_dict(model) has the reference's names and shapes in the reference's order, and
    the model the reference's parameter count. Returns the keys dict for network-specific checks."""
    keys = load_keys(network)
    exported = ti.interop.to_torch_state_dict(model)
    assert [(name, tuple(value.shape)) for name, value in exported.items()] == \
        [(entry["name"], tuple(entry["shape"])) for entry in keys["state_dict"]]
    assert keys["num_params"] == count(model)
    return keys


def shifted_state(model, shift):
    """The model's state under the reference's names with ``shift`` added to every float tensor, so every value
    differs from a freshly built model's."""
    exported = ti.interop.to_torch_state_dict(model)
    return {key: value + value.dtype.type(shift) if value.dtype.kind == "f" else value
            for key, value in exported.items()}


def load_error_message(model, mis_shaped, dropped):
    """The message of the KeyError (StateDictError) raised by loading the model's own export back with the
    tensor ``mis_shaped`` cut to its first row and the tensor ``dropped`` removed (reference names)."""
    state = ti.interop.to_torch_state_dict(model)
    state[mis_shaped] = state[mis_shaped][:1]
    del state[dropped]
    with pytest.raises(KeyError) as failure:
        ti.interop.load_torch_state_dict(model, state)
    return str(failure.value)


def check_round_trip(fresh, state):
    """Load ``state`` (reference names) into the freshly built ``fresh`` and export it again: the same keys in the
    same order and bit-identical arrays. Returns the loaded model."""
    ti.interop.load_torch_state_dict(fresh, state)
    back = ti.interop.to_torch_state_dict(fresh)
    assert list(back) == list(state)
    for key, value in state.items():
        np.testing.assert_array_equal(back[key], value, err_msg=key)
    return fresh


# ----------------------------------------------------------------------------------------------------------------
# Everything a golden run is compared on
# ----------------------------------------------------------------------------------------------------------------
def check_golden(run, gold, mode, *, whole_gradient=False, gradient_tol=1e-3):
    """Compare a run of ``mode`` ("eval" or "train") with the golden file, at the tolerances of
    tests/reference/README.md unless a network's test says otherwise:

    - heads (logits and aux logits): rtol 1e-4, atol 1e-4 (check_heads);
    - activations: rtol 1e-4, atol 1e-4 (check_activations);
    - the loss: rtol 1e-4;
    - the input gradient, when the run computed one: relative L2 error < ``gradient_tol`` (1e-3) on each stored
      view (assert_gradient_matches), or with ``whole_gradient`` on the whole array (whole_gradient_error: from
      the gradient's sketch where the golden file has one);
    - train mode: the tracked BatchNorm running statistics, rtol 1e-5, atol 1e-6 (check_running_statistics).
    """
    check_heads(run, gold, mode)
    check_activations(run, gold, mode)
    np.testing.assert_allclose(run.loss, gold[f"{mode}/loss"], rtol=1e-4, err_msg=f"{mode}/loss")
    if run.grad_input is not None and whole_gradient:
        error = whole_gradient_error(run.grad_input, gold, f"{mode}/grad_input")
        assert error < gradient_tol, f"{mode}/grad_input: relative L2 error {error:.2e} >= {gradient_tol}"
    elif run.grad_input is not None:
        assert_gradient_matches(run.grad_input, gold, f"{mode}/grad_input", tol=gradient_tol)
    if mode == "train":
        check_running_statistics(run.model, gold)
