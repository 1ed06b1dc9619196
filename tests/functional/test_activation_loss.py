"""Activations (relu, sigmoid, tanh, softmax, log_softmax), cross_entropy and dropout."""
import numpy as np
import pytest
from helpers import HYPOTHESIS_SETTINGS, check_gradcheck, check_parity
from hypothesis import given
from hypothesis import strategies as st

import tinyinception as ti
import tinyinception.functional as F


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


def away_from_zero(shape, seed=7):
    """relu is not differentiable at 0: keep finite differences away from the kink."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0.1, 2.0, shape) * rng.choice([-1.0, 1.0], shape)


TARGETS = np.array([0, 3, 4, 1, 3])

ACTIVATION_CASES = [
    ("relu", lambda x: F.relu(x), lambda x: x.relu(), [away_from_zero((3, 4))]),
    ("relu_method", lambda x: x.relu(), lambda x: x.relu(), [away_from_zero((2, 3, 2))]),
    ("sigmoid", lambda x: F.sigmoid(x), lambda x: x.sigmoid(), [(3, 4)]),
    ("tanh", lambda x: F.tanh(x), lambda x: x.tanh(), [(3, 4)]),
    ("softmax_dim1", lambda x: F.softmax(x, dim=1), lambda x: x.softmax(1), [(3, 4)]),
    ("softmax_dim0", lambda x: F.softmax(x, dim=0), lambda x: x.softmax(0), [(3, 4)]),
    ("softmax_dim_neg_3d", lambda x: x.softmax(-1), lambda x: x.softmax(-1), [(2, 3, 4)]),
    ("log_softmax_dim1", lambda x: F.log_softmax(x, dim=1), lambda x: x.log_softmax(1), [(3, 4)]),
    ("log_softmax_dim0_3d", lambda x: x.log_softmax(0), lambda x: x.log_softmax(0), [(2, 3, 4)]),
]


def _ids(cases):
    return [case[0] for case in cases]


@pytest.mark.torch
@pytest.mark.parametrize("name, ti_fn, torch_fn, inputs", ACTIVATION_CASES, ids=_ids(ACTIVATION_CASES))
def test_activation_parity(torch, name, ti_fn, torch_fn, inputs):
    check_parity(ti_fn, torch_fn, inputs)


@pytest.mark.parametrize("name, ti_fn, torch_fn, inputs", ACTIVATION_CASES, ids=_ids(ACTIVATION_CASES))
def test_activation_gradcheck(name, ti_fn, torch_fn, inputs):
    assert check_gradcheck(ti_fn, inputs)


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activations_stay_finite_on_huge_inputs(torch, dtype):
    x = np.array([[-1e4, -50.0, 0.0, 50.0, 1e4]])
    for name, ti_fn, torch_fn, _ in ACTIVATION_CASES[:-1]:
        outputs, _ = check_parity(ti_fn, torch_fn, [x], dtype=dtype)
        assert np.isfinite(outputs[0]).all(), name


def test_softmax_requires_dim():
    with pytest.raises(TypeError, match="softmax: pass dim explicitly"):
        F.softmax(ti.tensor([[1.0, 2.0]]))
    with pytest.raises(IndexError, match="log_softmax: dim 2 is out of range"):
        F.log_softmax(ti.tensor([[1.0, 2.0]]), dim=2)


# --------------------------------------------------------------------------------------------------------------
# cross_entropy
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.torch
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_cross_entropy_parity(torch, reduction, label_smoothing):
    check_parity(lambda x, t: F.cross_entropy(x, t, label_smoothing=label_smoothing, reduction=reduction),
                 lambda x, t: torch.nn.functional.cross_entropy(x, t, label_smoothing=label_smoothing,
                                                                reduction=reduction),
                 [(5, 6), TARGETS])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_cross_entropy_gradcheck(reduction, label_smoothing):
    assert check_gradcheck(lambda x, t: F.cross_entropy(x, t, label_smoothing=label_smoothing, reduction=reduction),
                           [(5, 6), TARGETS])


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_cross_entropy_extreme_logits_stay_finite(torch, dtype, label_smoothing):
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4], [0.0, 0.0, -1e4]])
    target = np.array([1, 2, 2])
    outputs, _ = check_parity(
        lambda x, t: F.cross_entropy(x, t, label_smoothing=label_smoothing, reduction="none"),
        lambda x, t: torch.nn.functional.cross_entropy(x, t, label_smoothing=label_smoothing, reduction="none"),
        [logits, target], dtype=dtype, rtol=1e-5)
    assert np.isfinite(outputs[0]).all()


def test_cross_entropy_accepts_array_targets_and_keeps_float32():
    logits = ti.tensor(np.zeros((2, 4), np.float32), requires_grad=True)
    loss = F.cross_entropy(logits, np.array([1, 3]))
    assert loss.dtype == np.float32 and loss.shape == ()
    assert loss.item() == pytest.approx(np.log(4.0), rel=1e-6)
    loss.backward()
    assert logits.grad.dtype == np.float32


@pytest.mark.parametrize("target, error, message", [
    (np.array([0, 1, 2]), ValueError, r"need a target of shape \(2,\)"),
    (np.array([0.0, 1.0]), TypeError, "target must hold integer class indices"),
    (np.array([0, 4]), ValueError, r"target values must be in \[0, 4\)"),
    (np.array([-1, 0]), ValueError, r"target values must be in \[0, 4\)"),
])
def test_cross_entropy_bad_targets(target, error, message):
    with pytest.raises(error, match=message):
        F.cross_entropy(ti.tensor(np.zeros((2, 4), np.float32)), target)


def test_cross_entropy_bad_options():
    logits = ti.tensor(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="expected logits of shape"):
        F.cross_entropy(ti.tensor(np.zeros(4, np.float32)), np.array([1]))
    with pytest.raises(ValueError, match="label_smoothing must be in"):
        F.cross_entropy(logits, np.array([0, 1]), label_smoothing=1.5)
    with pytest.raises(ValueError, match="reduction must be"):
        F.cross_entropy(logits, np.array([0, 1]), reduction="avg")


@pytest.mark.torch
@HYPOTHESIS_SETTINGS
@given(n=st.integers(1, 6), classes=st.integers(2, 7), smoothing=st.sampled_from([0.0, 0.1, 0.3]),
       seed=st.integers(0, 2**16))
def test_cross_entropy_shapes_match_torch(n, classes, smoothing, seed):
    torch = pytest.importorskip("torch")
    target = np.random.default_rng(seed).integers(0, classes, n)
    check_parity(lambda x, t: F.cross_entropy(x, t, label_smoothing=smoothing),
                 lambda x, t: torch.nn.functional.cross_entropy(x, t, label_smoothing=smoothing),
                 [(n, classes), target], seed=seed, high=5.0, low=-5.0)


# --------------------------------------------------------------------------------------------------------------
# dropout
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_mask_statistics_and_inverted_scaling(p):
    x = ti.tensor(np.ones((200, 500), np.float32), requires_grad=True)
    out = F.dropout(x, p=p, training=True)
    values = out.numpy()
    kept = values != 0
    n = values.size
    assert abs(1 - kept.mean() - p) < 4 * np.sqrt(p * (1 - p) / n)  # drop rate within 4 standard errors
    np.testing.assert_allclose(values[kept], 1.0 / (1.0 - p), rtol=1e-6)  # survivors scaled by 1/(1-p)
    assert abs(values.mean() - 1.0) < 0.02  # so the expectation is unchanged
    assert out.dtype == np.float32
    out.backward(np.ones_like(values))
    np.testing.assert_array_equal(x.grad, values)  # gradient flows through the same mask, same scale


def test_dropout_is_identity_in_eval_and_for_p_zero():
    x = ti.tensor(np.arange(6, dtype=np.float32).reshape(2, 3), requires_grad=True)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0, training=True) is x


def test_dropout_p_one_zeroes_everything():
    x = ti.tensor(np.ones((3, 4), np.float32), requires_grad=True)
    out = F.dropout(x, 1.0)
    assert not out.numpy().any() and np.isfinite(out.numpy()).all()


def test_dropout_is_repeatable_with_manual_seed():
    x = ti.tensor(np.ones((4, 5), np.float32))
    ti.manual_seed(3)
    first = F.dropout(x, 0.5).numpy()
    ti.manual_seed(3)
    np.testing.assert_array_equal(F.dropout(x, 0.5).numpy(), first)


def test_dropout_rejects_bad_probability():
    with pytest.raises(ValueError, match=r"dropout: probability must be in \[0, 1\], got 1.5"):
        F.dropout(ti.tensor([1.0]), 1.5)


def test_dropout_gradcheck_with_a_fixed_mask():
    """Reseeding before every call freezes the mask, so finite differences see a fixed linear map."""
    def fn(x):
        ti.manual_seed(11)
        return F.dropout(x, 0.4)
    assert check_gradcheck(fn, [(3, 4)])
