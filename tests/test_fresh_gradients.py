"""Parameters keep a fresh gradient without copying it (Function.fresh_gradients); shared ones are still copied."""
import numpy as np

import tinyinception as ti
import tinyinception.functional as F
from tinyinception.functional import conv as conv_module


def test_conv_weight_gradient_is_kept_without_a_copy(monkeypatch):
    returned = {}
    original = conv_module.Conv2d.backward

    def spy(self, grad_output):
        grads = original(self, grad_output)
        returned["weight"] = grads[1]
        return grads

    monkeypatch.setattr(conv_module.Conv2d, "backward", spy)
    conv = ti.nn.Conv2d(3, 4, 3, padding=1)
    conv(ti.Tensor(np.ones((2, 3, 5, 5), np.float32))).sum().backward()
    assert conv.weight.grad is returned["weight"]


def test_a_gradient_shared_by_two_leaves_is_copied():
    a = ti.Tensor(np.ones(3, np.float32), requires_grad=True)
    b = ti.Tensor(np.ones(3, np.float32), requires_grad=True)
    (a + b).sum().backward()  # Add hands the same array to both inputs
    assert a.grad is not b.grad and not np.shares_memory(a.grad, b.grad)
    a.grad += 1
    np.testing.assert_array_equal(b.grad, np.ones(3, np.float32))


def test_fresh_gradients_accumulate_over_two_backward_calls():
    x = ti.Tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
    layer = ti.nn.Linear(3, 2)
    for _ in range(2):
        F.linear(x, layer.weight, layer.bias).sum().backward()
    np.testing.assert_allclose(layer.weight.grad, 2 * np.tile(x.data.sum(axis=0), (2, 1)))
    np.testing.assert_allclose(layer.bias.grad, [4.0, 4.0])
