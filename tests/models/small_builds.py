"""Small-build checks shared by the network tests in tests/models (no reference files needed).

    from small_builds import check_training_step, output_sizes, random_batch   # tests/models is on sys.path

Tiny-width training steps, the input-size limits of a network (smallest accepted input, channel count,
small_input), and float64 gradient checks of single blocks with non-trivial BatchNorm statistics.
"""
import numpy as np
import pytest

import tinyinception as ti


# ----------------------------------------------------------------------------------------------------------------
# Training steps on tiny builds
# ----------------------------------------------------------------------------------------------------------------
def random_batch(shape=(2, 3, 32, 32), seed=0):
    """A float32 standard-normal input of ``shape`` (N, C, H, W) that records its gradient."""
    return ti.Tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32), requires_grad=True)


def output_sizes(model, names):
    """{module path: (H, W) of its last output}, filled in by forward hooks on the named modules of ``model``."""
    sizes, modules = {}, dict(model.named_modules())
    for name in names:
        modules[name].register_forward_hook(lambda m, i, out, name=name: sizes.__setitem__(name, out.shape[2:]))
    return sizes


def check_training_step(model, x, loss):
    """Backward of ``loss``: the input gradient has x's shape and is finite, and every parameter of ``model`` has a
    float32 gradient."""
    loss.backward()
    assert x.grad.shape == x.shape and np.isfinite(x.grad).all()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.dtype == np.float32, name


# ----------------------------------------------------------------------------------------------------------------
# Input sizes
# ----------------------------------------------------------------------------------------------------------------
def check_native_input_limits(model, name):
    """``model`` (native stem) refuses a 74x75 input, naming ``name`` and the 75x75 minimum, and a 1-channel
    input, naming the expected (N, 3, H, W)."""
    with pytest.raises(ValueError, match=rf"{name}: input 74x75 .* 75x75"):
        model(ti.Tensor(np.zeros((1, 3, 74, 75), np.float32)))
    with pytest.raises(ValueError, match=rf"{name}: expected input \(N, 3, H, W\)"):
        model(ti.Tensor(np.zeros((1, 1, 80, 80), np.float32)))


def check_small_input_minimum(model, name):
    """``model``, built with num_classes=3 and small_input=True, gives (1, 3) logits for a 13x13 input in eval mode
    and refuses 12x12, naming ``name`` (a regular expression) and the 13x13 minimum."""
    model.eval()
    assert model(ti.Tensor(np.zeros((1, 3, 13, 13), np.float32))).shape == (1, 3)
    with pytest.raises(ValueError, match=rf"{name}: input 12x12 .* 13x13"):
        model(ti.Tensor(np.zeros((1, 3, 12, 12), np.float32)))


def check_small_input_keeps_parameter_shapes(builder):
    """small_input changes strides and padding only: builder(num_classes=10, width=0.1) with and without it has
    the same state_dict keys and shapes."""
    native = ti.interop.to_torch_state_dict(builder(num_classes=10, width=0.1))
    small = ti.interop.to_torch_state_dict(builder(num_classes=10, width=0.1, small_input=True))
    assert {k: v.shape for k, v in native.items()} == {k: v.shape for k, v in small.items()}


# ----------------------------------------------------------------------------------------------------------------
# float64 gradient checks of single blocks
# ----------------------------------------------------------------------------------------------------------------
def set_batchnorm_state(block):
    """Non-trivial running statistics and affine parameters, so eval-mode BatchNorm is not the identity and no
    pre-activation sits exactly on the ReLU kink (a convolution over a window of ReLU zeros outputs exactly 0;
    with mean 0 and bias 0 that 0 would reach the ReLU, where finite differences see half a derivative)."""
    for module in block.modules():
        if isinstance(module, ti.nn.BatchNorm2d):
            module.running_mean.data[...] = np.linspace(-0.2, 0.3, module.num_features)
            module.running_var.data[...] = np.linspace(0.5, 1.5, module.num_features)
            module.bias.data[...] = np.linspace(0.15, -0.1, module.num_features)


def gradcheck_eval_block(block, shape, seed=3):
    """ti.gradcheck (fast mode) of the float64 ``block`` in eval mode (fixed BatchNorm statistics, so finite
    differences see the same function on every call, set by set_batchnorm_state), with respect to a
    standard-normal input of ``shape`` (N, C, H, W) and every parameter. Returns gradcheck's result."""
    block = block.double().eval()
    set_batchnorm_state(block)
    x = ti.Tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)
    return ti.gradcheck(lambda x, *p: block(x), (x, *block.parameters()), fast_mode=True)
