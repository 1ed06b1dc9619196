"""`ti.gradcheck` passes correct backwards, catches wrong ones (full and fast mode) and explains the failure.

Also tests the shared parity helper (tests/helpers.py): it must fail loudly on a wrong forward or gradient.
"""
import numpy as np
import pytest
from helpers import assert_close, check_gradcheck, check_parity

import tinyinception as ti
import tinyinception.functional as F


class SquareWithWrongBackward(ti.Function):
    """x ** 2 whose backward forgets the factor 2 for one element only: a subtle bug."""

    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, grad_output):
        grad = 2 * self.x * grad_output
        grad.reshape(-1)[-1] /= 2
        return grad


class ScaleWithWrongSign(ti.Function):
    """x * w with the gradient for w negated (x is right)."""

    def forward(self, x, w):
        self.x, self.w = x, w
        return x * w

    def backward(self, grad_output):
        return grad_output * self.w, -(grad_output * self.x).sum(axis=0)


def float64_leaf(shape, seed=0):
    return ti.tensor(np.random.default_rng(seed).uniform(0.5, 1.5, shape), requires_grad=True)


@pytest.mark.parametrize("fast_mode", [False, True])
def test_passes_on_correct_operations(fast_mode):
    x, w = float64_leaf((3, 4)), float64_leaf((4, 2), seed=1)
    assert ti.gradcheck(lambda a, b: (a @ b).tanh(), (x, w), fast_mode=fast_mode)
    assert ti.gradcheck(lambda a: F.log_softmax(a, dim=1), x, fast_mode=fast_mode)


def test_fails_on_wrong_backward_and_names_the_element():
    x = float64_leaf((2, 3))
    with pytest.raises(ti.GradcheckError) as info:
        ti.gradcheck(SquareWithWrongBackward.apply, (x,))
    message = str(info.value)
    assert "input 0 (shape (2, 3))" in message
    assert "element (1, 2)" in message  # the last element is the wrong one
    assert "backward gives" in message and "finite differences give" in message
    assert "1 of 6 elements fail" in message


def test_names_the_failing_input_among_several():
    x, w = float64_leaf((3, 2)), float64_leaf((2,), seed=2)
    with pytest.raises(ti.GradcheckError, match=r"input 1 \(shape \(2,\)\)"):
        ti.gradcheck(ScaleWithWrongSign.apply, (x, w))


def test_fast_mode_catches_the_bug_too():
    x = float64_leaf((2, 3))
    with pytest.raises(ti.GradcheckError, match="fast mode.*input 0.*directional derivative"):
        ti.gradcheck(SquareWithWrongBackward.apply, (x,), fast_mode=True)
    with pytest.raises(ti.GradcheckError, match="fast mode.*input 1"):
        ti.gradcheck(ScaleWithWrongSign.apply, (float64_leaf((3, 2)), float64_leaf((2,))), fast_mode=True)


def test_gradcheck_error_is_an_assertion_error():
    assert issubclass(ti.GradcheckError, AssertionError)


def test_refuses_float32_inputs():
    with pytest.raises(TypeError, match="gradcheck: input 0 has dtype float32; use float64"):
        ti.gradcheck(lambda a: a * 2.0, (ti.tensor([1.0], requires_grad=True),))


def test_needs_an_input_that_requires_grad():
    with pytest.raises(ValueError, match="no input requires grad"):
        ti.gradcheck(lambda a: a * 2.0, (ti.tensor(np.ones(2)),))


def test_non_tensor_arguments_pass_through_and_inputs_are_restored():
    x = float64_leaf((2, 3))
    before = x.numpy().copy()
    assert ti.gradcheck(lambda a, dim: F.softmax(a, dim=dim), (x, 0))
    np.testing.assert_array_equal(x.numpy(), before)


def test_input_that_does_not_affect_the_output_gets_zero_gradient():
    x, unused = float64_leaf((2,)), float64_leaf((2,), seed=3)
    assert ti.gradcheck(lambda a, b: a * 3.0, (x, unused))


def test_check_gradcheck_helper_builds_float64_inputs():
    assert check_gradcheck(lambda a, t: F.cross_entropy(a, t), [(3, 4), np.array([0, 3, 1])])
    with pytest.raises(ti.GradcheckError):
        check_gradcheck(SquareWithWrongBackward.apply, [(2, 2)])


# --------------------------------------------------------------------------------------------------------------
# The parity helper itself
# --------------------------------------------------------------------------------------------------------------
def test_assert_close_reports_worst_element():
    expected = np.zeros((2, 3))
    actual = expected.copy()
    actual[1, 2] = 0.5
    message = r"output 0 differs.*1 of 6 elements.*max abs error 0.5.*worst at \(1, 2\)"
    with pytest.raises(AssertionError, match=message):
        assert_close(actual, expected, rtol=1e-4, atol=1e-5, what="output 0")
    with pytest.raises(AssertionError, match="shape"):
        assert_close(np.zeros(2), np.zeros(3), 1e-4, 1e-5)
    with pytest.raises(AssertionError, match="NaN mismatch"):
        assert_close(np.array([np.nan]), np.array([1.0]), 1e-4, 1e-5)
    assert_close(np.array([np.inf, 1.0]), np.array([np.inf, 1.0 + 1e-9]), 1e-4, 1e-5)


@pytest.mark.torch
def test_check_parity_catches_a_wrong_forward_and_a_wrong_gradient():
    pytest.importorskip("torch")
    with pytest.raises(AssertionError, match="output 0 differs"):
        check_parity(lambda x: x * 2.0, lambda x: x * 2.001, [(3, 3)])
    with pytest.raises(AssertionError, match="gradient of input 0 differs"):
        check_parity(SquareWithWrongBackward.apply, lambda x: x * x, [(2, 3)])
    with pytest.raises(AssertionError, match="gradient of input 1 differs"):
        check_parity(ScaleWithWrongSign.apply, lambda x, w: x * w, [(3, 2), (2,)])


@pytest.mark.torch
def test_check_parity_checks_output_dtype():
    pytest.importorskip("torch")
    with pytest.raises(AssertionError, match="dtype float64 here, float32 from torch"):
        check_parity(lambda x: x.double(), lambda x: x, [(2,)])


@pytest.mark.torch
def test_check_parity_handles_several_outputs_and_integer_inputs():
    torch = pytest.importorskip("torch")
    ours, theirs = check_parity(
        lambda x, t: (F.cross_entropy(x, t), x.softmax(1) * 2.0),
        lambda x, t: (torch.nn.functional.cross_entropy(x, t), x.softmax(1) * 2.0),
        [(4, 3), np.array([0, 2, 1, 2])])
    assert len(ours) == len(theirs) == 2


@pytest.mark.torch
def test_check_parity_in_float64():
    pytest.importorskip("torch")
    ours, _ = check_parity(lambda a, b: a @ b, lambda a, b: a @ b, [(2, 3), (3, 2)], dtype=np.float64,
                           rtol=1e-12, atol=1e-12)
    assert ours[0].dtype == np.float64


@pytest.mark.gpu
@pytest.mark.torch
def test_check_parity_on_the_gpu():
    torch = pytest.importorskip("torch")
    check_parity(lambda x, w: (x @ w).relu().sum(1), lambda x, w: (x @ w).relu().sum(1), [(4, 3), (3, 5)],
                 device="cuda", atol=1e-4, grad_atol=1e-4)
    check_parity(lambda x, t: F.cross_entropy(x, t, label_smoothing=0.1),
                 lambda x, t: torch.nn.functional.cross_entropy(x, t, label_smoothing=0.1),
                 [(4, 3), np.array([0, 2, 1, 2])], device="cuda")
