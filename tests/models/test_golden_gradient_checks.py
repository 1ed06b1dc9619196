"""The golden files' whole-gradient check (golden.whole_gradient_error) on synthetic gradients: a value moved to a
neighbouring pixel, which the stored crops, block means and norm cannot see, is measured through the sketch."""
import numpy as np
import pytest

from golden import gradient_error_bound, relative_norm_error, weights, whole_gradient_error

SHAPE = (2, 3, 299, 299)  # Inception-v3's golden input: its gradient is stored as views and a sketch


def _gold(gradient, key="eval/grad_input"):
    gold = {f"{key}/{view}": value for view, value in weights.digest(gradient).items()}
    gold[f"{key}/sketch"] = weights.sketch(gradient)
    return gold


@pytest.fixture(scope="module")
def gradient():
    return np.random.default_rng(0).standard_normal(SHAPE)


def test_a_value_moved_to_the_neighbouring_pixel_is_measured(gradient):
    moved = gradient.copy()
    moved[1, 2, 150, [150, 151]] = moved[1, 2, 150, [151, 150]]  # inside one 9x9 block, away from the crops
    exact = relative_norm_error(moved, gradient)
    gold = _gold(gradient)
    assert gradient_error_bound(moved, gold, "eval/grad_input") < exact / 100  # the views alone miss it
    assert whole_gradient_error(moved, gold, "eval/grad_input") == pytest.approx(exact, rel=1e-6)  # one bucket each


@pytest.mark.parametrize("scale", [1e-9, 1e-4, 1e-1])
def test_spread_differences_are_estimated_within_a_few_percent(gradient, scale):
    noisy = gradient + scale * np.random.default_rng(1).standard_normal(SHAPE)
    exact = relative_norm_error(noisy, gradient)
    assert whole_gradient_error(noisy, _gold(gradient), "eval/grad_input") == pytest.approx(exact, rel=0.05)


def test_the_same_gradient_has_no_error_and_the_sketch_is_linear(gradient):
    assert whole_gradient_error(gradient, _gold(gradient), "eval/grad_input") < 1e-12
    other = np.random.default_rng(2).standard_normal(SHAPE)
    np.testing.assert_allclose(weights.sketch(gradient - other), weights.sketch(gradient) - weights.sketch(other),
                               rtol=1e-12, atol=1e-9)
