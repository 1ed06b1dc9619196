"""clip_grad_norm_: the total norm and the clipped gradients equal torch.nn.utils.clip_grad_norm_'s.

Tolerance: float32 norms summed in a different order differ by a few ulps: rtol=1e-5.
"""
import math

import numpy as np
import pytest

import tinyinception as ti
from tinyinception.nn.utils import clip_grad_norm_

SHAPES = [(4, 3), (7,), (2, 3, 2)]


def params_with_grads(dtype=np.float32, scale=10.0, seed=0):
    rng = np.random.default_rng(seed)
    params = [ti.nn.Parameter(np.zeros(shape, dtype)) for shape in SHAPES]
    for param in params:
        param.grad = (scale * rng.standard_normal(param.data.shape)).astype(dtype)
    return params


@pytest.mark.torch
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
@pytest.mark.parametrize("max_norm", [1.0, 1e4])
def test_matches_torch(norm_type, max_norm):
    torch = pytest.importorskip("torch")
    params = params_with_grads()
    tensors = [torch.zeros(p.data.shape, requires_grad=True) for p in params]
    for tensor, param in zip(tensors, params):
        tensor.grad = torch.from_numpy(param.grad.copy())
    total = clip_grad_norm_(params, max_norm, norm_type=norm_type)
    reference = torch.nn.utils.clip_grad_norm_(tensors, max_norm, norm_type=norm_type)
    assert total.dtype == np.float32
    np.testing.assert_allclose(float(total), reference.item(), rtol=1e-5)
    for param, tensor in zip(params, tensors):
        assert param.grad.dtype == np.float32
        np.testing.assert_allclose(param.grad, tensor.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_clips_to_max_norm_and_leaves_small_gradients_alone():
    params = params_with_grads()
    before = [p.grad.copy() for p in params]
    total = clip_grad_norm_(params, max_norm=1e6)
    for param, grad in zip(params, before):
        np.testing.assert_array_equal(param.grad, grad)
    total_after = clip_grad_norm_(params, max_norm=2.0)
    assert float(total_after) == pytest.approx(float(total), rel=1e-6)
    norm = math.sqrt(sum(float((p.grad.astype(np.float64) ** 2).sum()) for p in params))
    assert norm == pytest.approx(2.0, rel=1e-5)


def test_single_parameter_float64_and_missing_grads():
    param = ti.nn.Parameter(np.zeros(2, np.float64))
    param.grad = np.array([3.0, 4.0])
    skipped = ti.nn.Parameter(np.zeros(3, np.float64))
    assert float(clip_grad_norm_(param, 1.0)) == pytest.approx(5.0)
    np.testing.assert_allclose(param.grad, [0.6, 0.8], rtol=1e-6)
    assert param.grad.dtype == np.float64
    assert float(clip_grad_norm_([skipped], 1.0)) == 0.0 and skipped.grad is None


def test_nonfinite_norm():
    params = params_with_grads()
    params[1].grad[0] = np.nan
    with pytest.raises(RuntimeError, match="nan"):
        clip_grad_norm_(params, 1.0, error_if_nonfinite=True)
    assert math.isnan(float(clip_grad_norm_(params, 1.0)))
