"""The foundation's operations: arithmetic, reductions, shape ops, matmul and linear.

Each operation gets a float64 gradient check on small shapes and a PyTorch parity test (forward and every gradient);
Hypothesis draws broadcasting shape combinations for the binary ops, matmul and linear.
"""
import numpy as np
import pytest
from helpers import HYPOTHESIS_SETTINGS, check_gradcheck, check_parity
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

import tinyinception as ti
import tinyinception.functional as F


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


def away_from_zero(shape, seed=3):
    """Values in +-[0.5, 2]: safe denominators and well-conditioned finite differences."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0.5, 2.0, shape) * rng.choice([-1.0, 1.0], shape)


def positive(shape, seed=4):
    return np.random.default_rng(seed).uniform(0.2, 3.0, shape)


def distinct(shape, seed=5):
    """A random permutation of well separated values: no ties for max, stable finite differences."""
    return np.random.default_rng(seed).permutation(np.prod(shape)).reshape(shape) * 0.1 - 1.0


# --------------------------------------------------------------------------------------------------------------
# One table: (id, function applied to ti and torch alike, inputs). Functions use syntax both libraries share.
# --------------------------------------------------------------------------------------------------------------
SHARED_CASES = [
    ("add", lambda a, b: a + b, [(3, 4), (3, 4)]),
    ("add_broadcast", lambda a, b: a + b, [(2, 3, 4), (4,)]),
    ("add_scalar_right", lambda a: a + 2.5, [(3, 4)]),
    ("add_scalar_left", lambda a: 2.5 + a, [(3, 4)]),
    ("sub", lambda a, b: a - b, [(2, 1, 4), (3, 1)]),
    ("sub_scalar_right", lambda a: a - 1.5, [(3, 4)]),
    ("sub_scalar_left", lambda a: 1.5 - a, [(3, 4)]),
    ("mul", lambda a, b: a * b, [(2, 3, 1), (1, 4)]),
    ("mul_scalar_right", lambda a: a * -3.0, [(3, 4)]),
    ("mul_scalar_left", lambda a: -3.0 * a, [(3, 4)]),
    ("div", lambda a, b: a / b, [(3, 4), away_from_zero((4,))]),
    ("div_scalar_right", lambda a: a / 4.0, [(3, 4)]),
    ("div_scalar_left", lambda a: 4.0 / a, [away_from_zero((3, 4))]),
    ("neg", lambda a: -a, [(3, 4)]),
    ("pow_2", lambda a: a ** 2, [(3, 4)]),
    ("pow_3", lambda a: a ** 3, [(3, 4)]),
    ("pow_half", lambda a: a ** 0.5, [positive((3, 4))]),
    ("pow_minus_1", lambda a: a ** -1, [away_from_zero((3, 4))]),
    ("exp", lambda a: a.exp(), [(3, 4)]),
    ("log", lambda a: a.log(), [positive((3, 4))]),
    ("sqrt", lambda a: a.sqrt(), [positive((3, 4))]),
    ("sum_all", lambda a: a.sum(), [(2, 3, 4)]),
    ("sum_dim0", lambda a: a.sum(0), [(2, 3, 4)]),
    ("sum_dim_neg", lambda a: a.sum(-1), [(2, 3, 4)]),
    ("sum_dims_keepdim", lambda a: a.sum((0, 2), keepdim=True), [(2, 3, 4)]),
    ("mean_all", lambda a: a.mean(), [(2, 3, 4)]),
    ("mean_dim1", lambda a: a.mean(1), [(2, 3, 4)]),
    ("mean_dims_keepdim", lambda a: a.mean((1, 2), keepdim=True), [(2, 3, 4)]),
    ("reshape", lambda a: a.reshape(4, -1), [(2, 3, 4)]),
    ("reshape_tuple", lambda a: a.reshape((6, 4)), [(2, 3, 4)]),
    ("view", lambda a: a.view(24), [(2, 3, 4)]),
    ("transpose", lambda a: a.transpose(0, 2), [(2, 3, 4)]),
    ("transpose_neg", lambda a: a.transpose(-1, -2), [(2, 3, 4)]),
    ("permute", lambda a: a.permute(2, 0, 1), [(2, 3, 4)]),
    ("T", lambda a: a.T, [(3, 4)]),
    ("flatten_all", lambda a: a.flatten(), [(2, 3, 4)]),
    ("flatten_from_1", lambda a: a.flatten(1), [(2, 3, 4, 2)]),
    ("flatten_middle", lambda a: a.flatten(1, 2), [(2, 3, 4, 2)]),
    ("getitem_slices", lambda a: a[1:, ::2], [(3, 5)]),
    ("getitem_int", lambda a: a[:, 1], [(3, 5)]),
    ("getitem_ellipsis", lambda a: a[..., 1:3], [(2, 3, 5)]),
    ("getitem_int_tensor", lambda a, i: a[i], [(4, 3), np.array([0, 2, 3])]),
    ("getitem_repeated", lambda a, i: a[i], [(4, 3), np.array([1, 1, 3, 1])]),
    ("getitem_2d_index", lambda a, i: a[i], [(4, 3), np.array([[0, 1], [1, 1]])]),
    ("getitem_column_index", lambda a, i: a[:, i], [(4, 3), np.array([2, 2, 0])]),
    ("getitem_pair_index", lambda a, i, j: a[i, j], [(4, 3), np.array([0, 0, 3]), np.array([1, 1, 2])]),
    ("matmul_2d", lambda a, b: a @ b, [(3, 4), (4, 2)]),
    ("matmul_batched", lambda a, b: a @ b, [(5, 3, 4), (5, 4, 2)]),
    ("matmul_broadcast_right", lambda a, b: a @ b, [(5, 3, 4), (4, 2)]),
    ("matmul_broadcast_left", lambda a, b: a @ b, [(3, 4), (2, 4, 2)]),
    ("matmul_broadcast_both", lambda a, b: a @ b, [(2, 1, 3, 4), (5, 4, 2)]),
    ("matmul_method", lambda a, b: a.matmul(b), [(3, 4), (4, 2)]),
    ("chain", lambda a, b: ((a * b + a).exp() / (1.0 + (b * b))).sum(1), [(3, 4), (3, 4)]),
    ("diamond", lambda a: (a * 2.0) + (a * 2.0) * 3.0 + a, [(3, 4)]),
]

MAX_CASES = [
    ("max_all", lambda x: F.max(x), lambda x: x.max(), [distinct((3, 4))]),
    ("max_dim0", lambda x: F.max(x, 0), lambda x: x.max(0).values, [distinct((3, 4))]),
    ("max_dim1_keepdim", lambda x: F.max(x, 1, keepdim=True), lambda x: x.max(1, keepdim=True).values,
     [distinct((3, 4))]),
    ("max_dim_neg_3d", lambda x: x.max(-1), lambda x: x.max(-1).values, [distinct((2, 3, 4))]),
    ("max_axis_keepdims", lambda x: F.max(x, axis=1, keepdims=True), lambda x: x.amax(1, keepdim=True),
     [distinct((2, 3, 4))]),
]


def _ids(cases):
    return [case[0] for case in cases]


@pytest.mark.torch
@pytest.mark.parametrize("name, fn, inputs", SHARED_CASES, ids=_ids(SHARED_CASES))
def test_parity_with_torch(torch, name, fn, inputs):
    atol = 1e-4 if name.startswith(("matmul", "chain")) else 1e-5
    check_parity(fn, fn, inputs, atol=atol, grad_atol=atol)


@pytest.mark.parametrize("name, fn, inputs", SHARED_CASES, ids=_ids(SHARED_CASES))
def test_gradcheck(name, fn, inputs):
    assert check_gradcheck(fn, inputs, low=-1.5, high=1.5)


@pytest.mark.torch
@pytest.mark.parametrize("name, ti_fn, torch_fn, inputs", MAX_CASES, ids=_ids(MAX_CASES))
def test_max_parity(torch, name, ti_fn, torch_fn, inputs):
    check_parity(ti_fn, torch_fn, inputs)


@pytest.mark.parametrize("name, ti_fn, torch_fn, inputs", MAX_CASES, ids=_ids(MAX_CASES))
def test_max_gradcheck(name, ti_fn, torch_fn, inputs):
    assert check_gradcheck(ti_fn, inputs)


def test_max_gradient_goes_to_one_element_on_ties():
    x = ti.tensor([[1.0, 3.0, 3.0]], requires_grad=True)
    F.max(x, 1).sum().backward()
    assert x.grad.sum() == 1.0 and x.grad[0, 0] == 0.0


def test_argmax_is_int64_and_not_differentiable():
    x = ti.tensor([[1.0, 5.0, 3.0], [7.0, 0.0, 2.0]], requires_grad=True)
    index = x.argmax(1)
    assert index.dtype == np.int64 and index.tolist() == [1, 0] and not index.requires_grad


# --------------------------------------------------------------------------------------------------------------
# Linear
# --------------------------------------------------------------------------------------------------------------
LINEAR_CASES = [
    ("with_bias", lambda x, w, b: F.linear(x, w, b), [(4, 3), (5, 3), (5,)]),
    ("without_bias", lambda x, w: F.linear(x, w), [(4, 3), (5, 3)]),
    ("3d_input", lambda x, w, b: F.linear(x, w, b), [(2, 4, 3), (5, 3), (5,)]),
]


@pytest.mark.torch
@pytest.mark.parametrize("name, fn, inputs", LINEAR_CASES, ids=_ids(LINEAR_CASES))
def test_linear_parity(torch, name, fn, inputs):
    torch_fn = lambda *args: torch.nn.functional.linear(*args)
    check_parity(fn, torch_fn, inputs, atol=1e-4, grad_atol=1e-4)


@pytest.mark.parametrize("name, fn, inputs", LINEAR_CASES, ids=_ids(LINEAR_CASES))
def test_linear_gradcheck(name, fn, inputs):
    assert check_gradcheck(fn, inputs)


def test_linear_refuses_mixed_dtypes_and_wrong_features():
    w = ti.tensor(np.ones((2, 3), np.float32), requires_grad=True)
    with pytest.raises(TypeError, match="linear: input has dtype float64 but weight has dtype float32"):
        F.linear(ti.tensor(np.ones((4, 3))), w)
    with pytest.raises(ValueError, match="linear: input has 4 features"):
        F.linear(ti.tensor(np.ones((2, 4), np.float32)), w)


# --------------------------------------------------------------------------------------------------------------
# Hypothesis: shapes and broadcasting combinations
# --------------------------------------------------------------------------------------------------------------
BINARY_OPS = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b}


@pytest.mark.torch
@HYPOTHESIS_SETTINGS
@given(shapes=mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=3),
       op=st.sampled_from(sorted(BINARY_OPS)), seed=st.integers(0, 2**16))
def test_broadcasting_binary_ops_match_torch(shapes, op, seed):
    pytest.importorskip("torch")
    a_shape, b_shape = shapes.input_shapes
    check_parity(BINARY_OPS[op], BINARY_OPS[op], [a_shape, b_shape], seed=seed)


@pytest.mark.torch
@HYPOTHESIS_SETTINGS
@given(shapes=mutually_broadcastable_shapes(num_shapes=2, min_dims=1, max_dims=3, max_side=3), seed=st.integers(0, 99))
def test_broadcasting_division_matches_torch(shapes, seed):
    pytest.importorskip("torch")
    a_shape, b_shape = shapes.input_shapes
    check_parity(lambda a, b: a / b, lambda a, b: a / b, [a_shape, away_from_zero(b_shape, seed)], seed=seed,
                 rtol=1e-4, atol=1e-5)


@HYPOTHESIS_SETTINGS
@given(shapes=mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3),
       op=st.sampled_from(sorted(BINARY_OPS)))
def test_broadcasting_binary_ops_gradcheck(shapes, op):
    assert check_gradcheck(BINARY_OPS[op], list(shapes.input_shapes))


@st.composite
def matmul_shapes(draw):
    """(..., n, k) and (..., k, m) with broadcastable batch dimensions (possibly none on either side)."""
    n, k, m = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    batch = draw(mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2, max_side=3))
    a_batch, b_batch = batch.input_shapes
    return a_batch + (n, k), b_batch + (k, m)


@pytest.mark.torch
@HYPOTHESIS_SETTINGS
@given(shapes=matmul_shapes(), seed=st.integers(0, 2**16))
def test_matmul_shapes_match_torch(shapes, seed):
    pytest.importorskip("torch")
    check_parity(lambda a, b: a @ b, lambda a, b: a @ b, list(shapes), seed=seed, atol=1e-4, grad_atol=1e-4)


@HYPOTHESIS_SETTINGS
@given(shapes=matmul_shapes())
def test_matmul_shapes_gradcheck(shapes):
    assert check_gradcheck(lambda a, b: a @ b, list(shapes))


@pytest.mark.torch
@HYPOTHESIS_SETTINGS
@given(batch=st.lists(st.integers(1, 3), min_size=1, max_size=3), in_features=st.integers(1, 5),
       out_features=st.integers(1, 5), bias=st.booleans(), seed=st.integers(0, 2**16))
def test_linear_shapes_match_torch(batch, in_features, out_features, bias, seed):
    torch = pytest.importorskip("torch")
    inputs = [tuple(batch) + (in_features,), (out_features, in_features)] + ([(out_features,)] if bias else [])
    check_parity(lambda *t: F.linear(*t), lambda *t: torch.nn.functional.linear(*t), inputs, seed=seed,
                 atol=1e-4, grad_atol=1e-4)


@HYPOTHESIS_SETTINGS
@given(shape=st.lists(st.integers(1, 3), min_size=1, max_size=4), data=st.data())
def test_reductions_over_random_dims_match_numpy(shape, data):
    shape = tuple(shape)
    dims = tuple(data.draw(st.sets(st.integers(0, len(shape) - 1), min_size=1)))
    keepdim = data.draw(st.booleans())
    for op, numpy_op in ((F.sum, np.sum), (F.mean, np.mean)):
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        out = op(ti.tensor(x), dims, keepdim)
        expected = numpy_op(x, axis=dims, keepdims=keepdim)
        assert out.dtype == np.float32 and out.shape == expected.shape
        np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-6)
        assert check_gradcheck(lambda t, op=op: op(t, dims, keepdim), [shape])


# --------------------------------------------------------------------------------------------------------------
# dtypes and clear errors
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fn", [lambda a: a + 2.5, lambda a: 2.5 - a, lambda a: a * 3, lambda a: 1.0 / a,
                                lambda a: a ** 2, lambda a: a.exp().sum(), lambda a: a.mean(0),
                                lambda a: a + np.float64(1.0), lambda a: a * np.float64(2.0)])
def test_ops_keep_the_input_dtype(dtype, fn):
    x = ti.tensor(np.full((2, 3), 0.5, dtype), requires_grad=True)
    out = fn(x)
    assert out.dtype == dtype
    out.sum().backward()
    assert x.grad.dtype == dtype


def test_integer_operand_takes_the_float_dtype():
    floats, ints = ti.tensor([1.0, 2.0]), ti.tensor([3, 4])
    assert (floats * ints).dtype == np.float32 and (ints + floats).dtype == np.float32
    assert (floats - np.array([1, 2])).dtype == np.float32


def test_pow_zero_exponent_has_zero_gradient_everywhere():
    x = ti.tensor([0.0, 2.0], requires_grad=True)
    (x ** 0).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0]


def test_pow_refuses_tensor_exponent():
    with pytest.raises(TypeError, match="pow: only a scalar exponent"):
        ti.tensor([1.0]) ** ti.tensor([2.0])


def test_broadcast_error_names_op_and_shapes():
    with pytest.raises(ValueError, match=r"add: shapes \(2, 3\) and \(4,\) cannot be broadcast together"):
        ti.tensor(np.ones((2, 3), np.float32)) + ti.tensor(np.ones(4, np.float32))


def test_reshape_error_names_shapes():
    with pytest.raises(ValueError, match=r"reshape: cannot reshape a tensor of shape \(2, 3\)"):
        ti.tensor(np.ones((2, 3), np.float32)).reshape(4, 2)


def test_permute_error():
    with pytest.raises(ValueError, match="permute"):
        ti.tensor(np.ones((2, 3), np.float32)).permute(0, 0)


def test_reduction_dim_out_of_range():
    with pytest.raises(IndexError, match="sum: dim 3 is out of range"):
        ti.tensor(np.ones((2, 3), np.float32)).sum(3)


def test_ndarray_on_the_left_gives_a_tensor():
    x = ti.tensor([1.0, 2.0], requires_grad=True)
    out = np.array([3.0, 4.0], np.float32) * x
    assert isinstance(out, ti.Tensor)
    out.sum().backward()
    assert x.grad.tolist() == [3.0, 4.0]
