"""The engine: backpropagation order, accumulation, freeing the graph, no_grad, dtype rules and clear errors."""
import time

import numpy as np
import pytest

import tinyinception as ti
import tinyinception.functional as F
from tinyinception.autograd import GraphFreedError


def leaf(values, dtype=np.float32):
    return ti.tensor(np.asarray(values, dtype=dtype), requires_grad=True)


# --------------------------------------------------------------------------------------------------------------
# Graph shape
# --------------------------------------------------------------------------------------------------------------
def test_long_chain_backpropagates_without_recursion_error():
    x = leaf([1.0, 2.0, 3.0])
    y = x
    for _ in range(100_000):
        y = y * 1.0
    start = time.perf_counter()
    y.sum().backward()
    elapsed = time.perf_counter() - start
    np.testing.assert_array_equal(x.grad, [1.0, 1.0, 1.0])
    assert elapsed < 10.0, f"backward through 100,000 ops took {elapsed:.1f} s"


def test_long_chain_without_backward_is_freed_without_recursion_error():
    x = leaf([1.0])
    y = x
    for _ in range(100_000):
        y = y + 0.0
    del y  # deallocating a deep Tensor -> Function -> Tensor chain must not overflow the C stack


def test_tensor_used_twice_gets_summed_gradient():
    x = leaf([1.0, -2.0])
    y = x * x + x  # x used three times
    y.sum().backward()
    np.testing.assert_allclose(x.grad, 2 * x.numpy() + 1)


@pytest.mark.parametrize("producer_first", [True, False])
def test_diamond_is_processed_in_topological_order(producer_first):
    """b feeds both a and the sum; the sum's inputs in either order must give d/dx (2x + 6x) = 8.

    (Marking a function visited when pushed instead of when expanded got this wrong for one order.)
    """
    x = leaf([1.0, 2.0])
    b = x * 2.0
    a = b * 3.0
    out = F.add(b, a) if producer_first else F.add(a, b)
    out.sum().backward()
    np.testing.assert_array_equal(x.grad, [8.0, 8.0])


def test_nested_diamonds():
    x = leaf([0.5])
    h1 = x * 2.0
    h2 = h1 * h1          # 4x^2
    h3 = F.add(h1, h2)    # 2x + 4x^2
    out = F.add(h3, h1) * h2  # (4x + 4x^2) * 4x^2 = 16x^3 + 16x^4
    out.sum().backward()
    np.testing.assert_allclose(x.grad, [48 * 0.25 + 64 * 0.125])


def test_non_leaf_gradients_are_not_kept_unless_retained():
    x = leaf([1.0, 2.0])
    h = x * 3.0
    kept = (x * 2.0).retain_grad()
    (h * kept).sum().backward()
    assert h.grad is None
    np.testing.assert_allclose(kept.grad, [3.0, 6.0])  # d(h * kept)/d kept = h
    np.testing.assert_allclose(x.grad, [12.0, 24.0])  # d(6 x^2)/dx


def test_retain_grad_needs_requires_grad():
    with pytest.raises(RuntimeError, match="retain_grad: this tensor does not require grad"):
        ti.tensor([1.0]).retain_grad()


# --------------------------------------------------------------------------------------------------------------
# Accumulation and freeing
# --------------------------------------------------------------------------------------------------------------
def test_gradients_accumulate_across_backward_calls_until_zero_grad():
    x = leaf([1.0, 2.0])
    (x * 3.0).sum().backward()
    (x * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [6.0, 6.0])
    x.zero_grad()
    assert x.grad is None
    (x * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])


def test_leaf_gradients_do_not_alias_each_other():
    x, y = leaf([1.0]), leaf([2.0])
    (x + y).sum().backward()  # Add hands the same array to both inputs
    x.grad += 10.0
    assert y.grad[0] == 1.0


def test_second_backward_raises_clear_error():
    x = leaf([1.0, 2.0])
    loss = (x * x).sum()
    loss.backward()
    with pytest.raises(GraphFreedError, match="retain_graph=True"):
        loss.backward()


def test_graph_freed_error_is_a_runtime_error():
    assert issubclass(GraphFreedError, RuntimeError)


def test_retain_graph_allows_a_second_backward():
    x = leaf([1.0, 2.0])
    loss = (x * x).sum()
    loss.backward(retain_graph=True)
    loss.backward()
    np.testing.assert_array_equal(x.grad, [4.0, 8.0])


def test_saved_arrays_are_released_after_backward():
    x = leaf(np.ones((3, 3)))
    h = x * x
    h.sum().backward()
    assert not hasattr(h.grad_fn, "a") and getattr(h.grad_fn, "_released", False)


def test_backward_with_explicit_grad():
    x = leaf([1.0, 2.0, 3.0])
    (x * 2.0).backward(np.array([1.0, 0.0, -1.0], np.float32))
    np.testing.assert_array_equal(x.grad, [2.0, 0.0, -2.0])


def test_backward_on_a_leaf():
    x = leaf([1.0, 2.0])
    x.backward(np.array([3.0, 4.0], np.float32))
    np.testing.assert_array_equal(x.grad, [3.0, 4.0])


# --------------------------------------------------------------------------------------------------------------
# Recording
# --------------------------------------------------------------------------------------------------------------
def test_no_grad_records_nothing():
    x = leaf([1.0, 2.0])
    with ti.no_grad():
        y = x * 2.0 + 1.0
        assert not ti.is_grad_enabled()
    assert ti.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None and y.is_leaf


def test_enable_grad_inside_no_grad():
    x = leaf([1.0])
    with ti.no_grad():
        with ti.enable_grad():
            y = x * 2.0
        z = x * 2.0
    assert y.requires_grad and not z.requires_grad


def test_no_grad_restores_state_after_an_exception():
    with pytest.raises(ValueError), ti.no_grad():
        raise ValueError("boom")
    assert ti.is_grad_enabled()


def test_ops_on_tensors_without_grad_record_nothing():
    y = ti.tensor([1.0]) * 2.0
    assert not y.requires_grad and y.grad_fn is None


def test_detach_cuts_the_graph_and_shares_data():
    x = leaf([1.0, 2.0])
    h = x * 2.0
    d = h.detach()
    assert d.is_leaf and not d.requires_grad and d.data is h.data
    (d * x).sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 4.0])  # only the direct path


def test_requires_grad_only_for_float_and_leaves():
    with pytest.raises(TypeError, match="only floating point tensors can require gradients"):
        ti.tensor([1, 2], requires_grad=True)
    h = leaf([1.0]) * 2.0
    with pytest.raises(RuntimeError, match="leaf"):
        h.requires_grad_(False)


# --------------------------------------------------------------------------------------------------------------
# dtype rules
# --------------------------------------------------------------------------------------------------------------
def test_python_floats_give_float32_and_ints_int64():
    assert ti.tensor([1.0, 2.0]).dtype == np.float32
    assert ti.tensor(3.5).dtype == np.float32
    assert ti.tensor([1, 2]).dtype == np.int64


def test_numpy_arrays_keep_their_dtype():
    assert ti.tensor(np.zeros(2)).dtype == np.float64
    assert ti.tensor(np.zeros(2, np.float32)).dtype == np.float32
    assert ti.tensor([1.0], dtype=np.float64).dtype == np.float64


def test_tensor_copies_its_input():
    array = np.zeros(2, np.float32)
    t = ti.tensor(array)
    array[0] = 5.0
    assert t.numpy()[0] == 0.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_python_scalars_do_not_change_the_dtype(dtype):
    x = leaf([1.0, 2.0], dtype)
    for out in (x + 1.5, 2.5 * x, x / 3.0, 1.0 - x, x ** 2.0, x + np.float64(1.0), x * np.float32(2.0)):
        assert out.dtype == dtype


def test_mixing_float32_and_float64_raises():
    a, b = leaf([1.0], np.float32), leaf([1.0], np.float64)
    for op in (lambda: a + b, lambda: b * a, lambda: a - b, lambda: a / b):
        with pytest.raises(TypeError, match="never upcasts silently"):
            op()
    with pytest.raises(TypeError, match="matmul: operands have dtypes float32 and float64"):
        ti.tensor(np.ones((2, 2), np.float32)) @ ti.tensor(np.ones((2, 2)))


def test_explicit_casts_are_differentiable():
    x = leaf([1.0, 2.0], np.float32)
    y = x.double()
    assert y.dtype == np.float64
    (y * y).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad, [2.0, 4.0])
    assert x.float() is x


# --------------------------------------------------------------------------------------------------------------
# Clear errors
# --------------------------------------------------------------------------------------------------------------
def test_matmul_inner_dimension_error():
    a, b = ti.tensor(np.ones((3, 4), np.float32)), ti.tensor(np.ones((5, 2), np.float32))
    with pytest.raises(ValueError) as info:
        a @ b
    assert str(info.value) == "matmul: (3, 4) @ (5, 2): inner dimensions 4 and 5 differ"


def test_matmul_needs_two_dimensions():
    with pytest.raises(ValueError, match="both operands need at least 2 dimensions"):
        ti.tensor([1.0, 2.0]) @ ti.tensor(np.ones((2, 2), np.float32))


def test_backward_on_non_scalar_needs_grad():
    y = leaf([1.0, 2.0]) * 2.0
    with pytest.raises(RuntimeError, match=r"implicitly created only for scalar outputs.*shape \(2,\)"):
        y.backward()


def test_backward_grad_shape_must_match():
    y = leaf([1.0, 2.0]) * 2.0
    with pytest.raises(ValueError, match=r"grad has shape \(3,\) but the output has shape \(2,\)"):
        y.backward(np.ones(3, np.float32))


def test_backward_on_tensor_without_grad():
    with pytest.raises(RuntimeError, match="does not require grad"):
        ti.tensor([1.0, 2.0]).sum().backward()


def test_wrong_gradient_shape_from_a_function_is_reported():
    class BadShape(ti.Function):
        def forward(self, x):
            return x * 2

        def backward(self, grad_output):
            return grad_output[:1]

    x = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match=r"BadShape.backward returned a gradient of shape \(1,\)"):
        BadShape.apply(x).sum().backward()


def test_wrong_number_of_gradients_is_reported():
    class TwoGrads(ti.Function):
        def forward(self, x):
            return x * 2

        def backward(self, grad_output):
            return grad_output, grad_output

    with pytest.raises(RuntimeError, match="TwoGrads.backward returned 2 gradients for 1 inputs"):
        TwoGrads.apply(leaf([1.0])).sum().backward()


# --------------------------------------------------------------------------------------------------------------
# Conversions
# --------------------------------------------------------------------------------------------------------------
def test_item_and_numpy_and_tolist():
    x = leaf([[2.5]])
    assert x.item() == 2.5 and isinstance(x.item(), float)
    assert isinstance(x.numpy(), np.ndarray) and x.numpy().dtype == np.float32
    assert x.tolist() == [[2.5]]
    with pytest.raises(ValueError, match=r"item\(\): only one-element tensors.*\(2,\)"):
        leaf([1.0, 2.0]).item()


def test_shape_properties_and_repr():
    x = leaf(np.zeros((2, 3)))
    assert x.shape == (2, 3) and x.ndim == 2 and x.dim() == 2 and x.numel() == 6 and len(x) == 2
    assert x.size() == (2, 3) and x.size(1) == 3 and x.device == "cpu"
    assert "requires_grad=True" in repr(x)
    assert "grad_fn=<MulBackward>" in repr(x * 2.0)
    assert "dtype=float64" in repr(ti.tensor(np.zeros(2)))


def test_comparisons_give_boolean_tensors_without_graph():
    x = leaf([1.0, 3.0])
    mask = x > 2.0
    assert mask.dtype == np.bool_ and mask.tolist() == [False, True] and not mask.requires_grad


def test_to_cpu_is_the_same_tensor():
    x = leaf([1.0])
    assert x.to("cpu") is x and x.cpu() is x


def test_to_cuda_without_gpu_raises_clear_error():
    from tinyinception.backend import gpu_available
    if gpu_available():
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match="no CUDA device is available"):
        leaf([1.0]).to("cuda")


@pytest.mark.gpu
def test_to_cuda_and_back_is_differentiable():
    x = leaf([1.0, 2.0])
    y = (x.to("cuda") * 3.0).to("cpu")
    assert y.device == "cpu"
    y.sum().backward()
    assert x.device == "cpu"
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])
