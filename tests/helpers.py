"""Shared test helpers: PyTorch parity (forward and every gradient) and float64 gradient checks.

    from helpers import check_parity, check_gradcheck      # tests/ is on sys.path (tests/conftest.py lives there)

    check_parity(lambda x, w: x @ w, lambda x, w: x @ w, [(2, 3), (3, 4)])
    check_parity(lambda x, t: F.cross_entropy(x, t), torch.nn.functional.cross_entropy,
                 [(4, 5), np.array([0, 1, 4, 2])])
    check_gradcheck(lambda x: x.exp(), [(2, 3)])

Inputs are given as a list whose items are either a shape tuple (random floats of ``dtype`` drawn uniformly from
[low, high], differentiable) or an array (float arrays are cast to ``dtype`` and are differentiable; integer or bool
arrays, e.g. class targets, are passed as non-differentiable tensors). Non-tensor arguments (stride, dim, ...) go
into the lambdas. Both functions receive tensors in the same order: ``ti.Tensor`` here, ``torch.Tensor`` there.
"""
import numpy as np

import tinyinception as ti
from tinyinception import backend


# --------------------------------------------------------------------------------------------------------------
# Comparing arrays with a readable message
# --------------------------------------------------------------------------------------------------------------
def assert_close(actual, expected, rtol, atol, what="value"):
    """Fail unless |actual - expected| <= atol + rtol * |expected| everywhere, NaN only where expected is NaN and
    each infinity exactly where expected has it, with its sign.

    The message names ``what``, the shapes, the max absolute and relative errors, and the worst element.
    """
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    if actual.shape != expected.shape:
        raise AssertionError(f"{what}: shape {actual.shape} here, {expected.shape} expected")
    actual64, expected64 = actual.astype(np.float64), expected.astype(np.float64)
    nan_here, nan_there = np.isnan(actual64), np.isnan(expected64)
    if (nan_here != nan_there).any():
        where = tuple(int(i) for i in np.argwhere(nan_here != nan_there)[0])
        raise AssertionError(f"{what}: NaN mismatch at {where}: {actual64[where]} here, {expected64[where]} expected")
    actual64, expected64 = np.where(nan_here, 0.0, actual64), np.where(nan_there, 0.0, expected64)
    if actual64.size == 0:
        return
    infinite = np.isinf(expected64)
    with np.errstate(invalid="ignore"):  # inf - inf where both are the same infinity: counted as equal below
        error = np.where(infinite & (actual64 == expected64), 0.0, np.abs(actual64 - expected64))
    # an infinity must be matched exactly (an allowance of rtol * inf would accept anything, the other sign too)
    allowed = np.where(infinite, 0.0, atol + rtol * np.abs(np.where(infinite, 0.0, expected64)))
    failing = error > allowed
    if failing.any():
        worst = np.unravel_index(int(np.argmax(error - allowed)), error.shape)
        relative = error / np.maximum(np.abs(expected64), np.finfo(np.float64).tiny)
        raise AssertionError(
            f"{what} differs (shape {expected.shape}): {int(failing.sum())} of {error.size} elements out of "
            f"tolerance (rtol={rtol}, atol={atol}); max abs error {error.max():.3g}, max rel error "
            f"{relative.max():.3g}; worst at {tuple(int(i) for i in worst)}: {actual64[worst]!r} here, "
            f"{expected64[worst]!r} expected"
        )


# --------------------------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------------------------
def make_arrays(inputs, dtype=np.float32, seed=0, low=-2.0, high=2.0):
    """NumPy arrays from a list of shape tuples and/or arrays (see module docstring)."""
    rng = np.random.default_rng(seed)
    arrays = []
    for item in inputs:
        if isinstance(item, tuple) and all(isinstance(n, (int, np.integer)) for n in item):
            arrays.append(rng.uniform(low, high, size=item).astype(dtype))
        else:
            array = np.asarray(item)
            arrays.append(array.astype(dtype) if array.dtype.kind == "f" else array)
    return arrays


def _is_differentiable(array):
    return array.dtype.kind == "f"


def _to_device(array, device):
    return backend.to_device(array, device) if device != "cpu" else array


def _as_tuple(outputs):
    return tuple(outputs) if isinstance(outputs, (tuple, list)) else (outputs,)


def _torch_dtype_name(torch_tensor):
    return str(torch_tensor.dtype).replace("torch.", "")


# --------------------------------------------------------------------------------------------------------------
# PyTorch parity
# --------------------------------------------------------------------------------------------------------------
def check_parity(ti_fn, torch_fn, inputs, *, rtol=1e-4, atol=1e-5, grad_rtol=None, grad_atol=None,
                 dtype=np.float32, seed=0, low=-2.0, high=2.0, device="cpu", backward=True, check_dtype=True,
                 grad_outputs=None):
    """Run ``ti_fn`` and ``torch_fn`` on the same random inputs; compare every output and every input gradient.

    inputs: list of shape tuples / arrays (see module docstring). The same random upstream gradient (one per
    floating output) is fed to both backward passes. grad_rtol/grad_atol default to rtol/atol. device: "cpu" or
    "cuda" (tinyinception's tensors live there; torch runs on the CPU). With check_dtype each output must have the
    dtype torch gives, and each gradient its input's dtype (no silent upcasts). grad_outputs: the upstream
    gradients to use instead of random ones (one array per output, e.g. holding NaN or inf).
    Non-finite values compare exactly (`assert_close`): NaN where torch has NaN and nowhere else, each infinity
    with its sign. An output that torch can differentiate must be differentiable here too (not detached).
    Returns (ti_outputs, torch_outputs) as tuples of NumPy arrays, for extra checks.
    """
    import torch

    grad_rtol = rtol if grad_rtol is None else grad_rtol
    grad_atol = atol if grad_atol is None else grad_atol
    arrays = make_arrays(inputs, dtype, seed, low, high)

    ti_inputs = [ti.Tensor(_to_device(a.copy(), device), requires_grad=_is_differentiable(a)) for a in arrays]
    torch_inputs = [torch.tensor(a.copy(), requires_grad=_is_differentiable(a)) for a in arrays]

    ti_outputs = _as_tuple(ti_fn(*ti_inputs))
    torch_outputs = _as_tuple(torch_fn(*torch_inputs))
    if len(ti_outputs) != len(torch_outputs):
        raise AssertionError(f"{len(ti_outputs)} outputs here, {len(torch_outputs)} from torch")

    rng = np.random.default_rng(seed + 1)
    upstream = []
    for k, (mine, theirs) in enumerate(zip(ti_outputs, torch_outputs)):
        expected = theirs.detach().numpy()
        assert_close(mine.numpy(), expected, rtol, atol, what=f"output {k}")
        if check_dtype and str(mine.dtype) != _torch_dtype_name(theirs):
            raise AssertionError(f"output {k}: dtype {mine.dtype} here, {_torch_dtype_name(theirs)} from torch")
        if mine.device != device:
            raise AssertionError(f"output {k} is on {mine.device}, inputs were on {device}")
        if theirs.requires_grad and not mine.requires_grad:
            raise AssertionError(f"output {k} does not require grad here (detached from its inputs?), torch's does")
        differentiable = theirs.requires_grad
        random = rng.standard_normal(expected.shape).astype(expected.dtype)
        given = None if grad_outputs is None else grad_outputs[len(upstream)]
        upstream.append((random if given is None else np.asarray(given, expected.dtype)) if differentiable else None)

    if not backward or all(g is None for g in upstream):
        return tuple(o.numpy() for o in ti_outputs), tuple(o.detach().numpy() for o in torch_outputs)

    pairs = [(o, g) for o, g in zip(ti_outputs, upstream) if g is not None]
    for i, (output, grad) in enumerate(pairs):
        output.backward(_to_device(grad, device), retain_graph=i < len(pairs) - 1)
    torch.autograd.backward([o for o, g in zip(torch_outputs, upstream) if g is not None],
                            [torch.from_numpy(g) for g in upstream if g is not None])

    for k, (mine, theirs) in enumerate(zip(ti_inputs, torch_inputs)):
        if not theirs.requires_grad:
            continue
        if theirs.grad is None:
            if mine.grad is not None and np.any(mine.grad):
                raise AssertionError(f"gradient of input {k}: nonzero here, torch gives none")
            continue
        if mine.grad is None:
            raise AssertionError(f"gradient of input {k} (shape {mine.shape}): None here, torch computes one")
        grad = backend.to_device(mine.grad, "cpu")
        if check_dtype and grad.dtype != mine.dtype:
            raise AssertionError(f"gradient of input {k}: dtype {grad.dtype}, input dtype {mine.dtype}")
        assert_close(grad, theirs.grad.numpy(), grad_rtol, grad_atol, what=f"gradient of input {k}")
    return tuple(o.numpy() for o in ti_outputs), tuple(o.detach().numpy() for o in torch_outputs)


# --------------------------------------------------------------------------------------------------------------
# Float64 gradient checks
# --------------------------------------------------------------------------------------------------------------
def check_gradcheck(fn, inputs, *, seed=0, low=-2.0, high=2.0, eps=1e-6, atol=1e-5, rtol=1e-3, fast_mode=False,
                    device="cpu"):
    """``ti.gradcheck`` of ``fn`` on float64 inputs built like `check_parity`'s (integer arrays pass through).

    Returns True or raises ``ti.GradcheckError`` naming the input and the worst element.
    """
    arrays = make_arrays(inputs, np.float64, seed, low, high)
    tensors = [ti.Tensor(_to_device(a, device), requires_grad=_is_differentiable(a)) for a in arrays]
    return ti.gradcheck(fn, tuple(tensors), eps=eps, atol=atol, rtol=rtol, fast_mode=fast_mode, seed=seed)


# --------------------------------------------------------------------------------------------------------------
# Hypothesis: few examples, no deadline (first calls compile Numba kernels), and the autouse seeding fixture of
# conftest.py is harmless across examples
# --------------------------------------------------------------------------------------------------------------
try:
    from hypothesis import HealthCheck, settings

    HYPOTHESIS_SETTINGS = settings(max_examples=15, deadline=None,
                                   suppress_health_check=[HealthCheck.function_scoped_fixture])
except ImportError:  # hypothesis is a test extra; tests that use it import it themselves and fail clearly
    HYPOTHESIS_SETTINGS = None


def randomise_batch_norms(model, seed=0):
    """Every BatchNorm2d's running statistics and affine parameters set far from their defaults (in place), so
    that a wrong fold, eps or statistic shows in the output. Returns ``model``."""
    rng = np.random.default_rng(seed)
    for module in model.modules():
        if isinstance(module, ti.nn.BatchNorm2d):
            c = module.num_features
            module.running_mean.data[...] = rng.normal(0, 0.5, c)
            module.running_var.data[...] = rng.uniform(0.5, 2.0, c)
            module.weight.data[...] = rng.uniform(0.5, 1.5, c)
            module.bias.data[...] = rng.normal(0, 0.2, c)
    return model
