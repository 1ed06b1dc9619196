"""nn.Conv2d keeps a stride-1 k x k weight tap-major (kernels/layout.py): same values, same API, no transposes."""
import io

import numpy as np
import pytest

import tinyinception as ti
from tinyinception.kernels import blas


def _is_tap_major(array):
    return array.transpose(2, 3, 0, 1).flags.c_contiguous and not array.flags.c_contiguous


def test_stride_1_kxk_weights_are_tap_major_others_plain():
    assert _is_tap_major(ti.nn.Conv2d(4, 6, 3, padding=1).weight.data)
    assert _is_tap_major(ti.nn.Conv2d(4, 6, (1, 7), padding=(0, 3)).weight.data)
    assert ti.nn.Conv2d(4, 6, 3, stride=2).weight.data.flags.c_contiguous  # im2col path: plain layout
    assert ti.nn.Conv2d(4, 6, 1).weight.data.flags.c_contiguous
    assert ti.nn.Conv2d(4, 6, 3, padding=1, groups=2).weight.data.flags.c_contiguous


@pytest.mark.skipif(not blas.available(), reason="no direct BLAS found in this process")
def test_gradient_and_momentum_keep_the_weight_layout():
    conv = ti.nn.Conv2d(3, 5, 3, padding=1)
    optimizer = ti.optim.SGD(conv.parameters(), lr=0.1, momentum=0.9)
    x = ti.Tensor(np.random.default_rng(0).standard_normal((2, 3, 6, 6)).astype(np.float32))
    for _ in range(2):
        optimizer.zero_grad()
        conv(x).sum().backward()
        assert conv.weight.grad.strides == conv.weight.data.strides
        optimizer.step()
    assert _is_tap_major(conv.weight.data)
    assert optimizer.state[conv.weight]["momentum_buffer"].strides == conv.weight.data.strides


def test_state_dict_values_and_round_trip_are_layout_independent():
    conv = ti.nn.Conv2d(3, 5, 3, padding=1)
    weight = conv.state_dict()["weight"]
    buffer = io.BytesIO()
    np.save(buffer, weight)
    buffer.seek(0)
    np.testing.assert_array_equal(np.load(buffer), weight)
    other = ti.nn.Conv2d(3, 5, 3, padding=1)
    other.load_state_dict({"weight": np.ascontiguousarray(weight), "bias": conv.bias.data})
    assert _is_tap_major(other.weight.data)
    np.testing.assert_array_equal(other.weight.data, weight)


@pytest.mark.torch
def test_tap_major_conv_matches_torch_forward_and_backward():
    torch = pytest.importorskip("torch")
    conv = ti.nn.Conv2d(4, 6, (3, 2), padding=(1, 1), dilation=(1, 2))
    reference = torch.nn.Conv2d(4, 6, (3, 2), padding=(1, 1), dilation=(1, 2))
    reference.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in conv.state_dict().items()})
    x = np.random.default_rng(1).standard_normal((2, 4, 7, 6)).astype(np.float32)
    out = conv(ti.Tensor(x))
    expected = reference(torch.from_numpy(x))
    np.testing.assert_allclose(out.data, expected.detach().numpy(), rtol=1e-4, atol=1e-5)
    grad = np.random.default_rng(2).standard_normal(out.shape).astype(np.float32)
    out.backward(grad)
    expected.backward(torch.from_numpy(grad))
    np.testing.assert_allclose(conv.weight.grad, reference.weight.grad.numpy(), rtol=1e-4, atol=1e-4)
