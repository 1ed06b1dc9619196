"""SGD's fused Numba update (``optim._sgd_kernel``) against its NumPy definition (``SGD._update_numpy``).

Both do the same IEEE operations in the same order with scalars in the arrays' dtype, so they must agree bit
for bit (``assert_array_equal``), in float32 and float64, for every option combination, from the first step on.
Both paths are also checked against references that share no code with ``optim.SGD``: the formula of PyTorch's
documentation written out here in float64, and ``torch.optim.SGD`` itself.
The tests also check which path runs: the fused one for dense arrays with equal strides, the NumPy one otherwise.
"""
import importlib
import itertools

import numpy as np
import pytest

import tinyinception as ti
from tinyinception import optim
from tinyinception.kernels._numba import NUMBA_AVAILABLE
from tinyinception.optim import _sgd_kernel

needs_numba = pytest.mark.skipif(not NUMBA_AVAILABLE, reason="the fused SGD kernel needs Numba")

STEPS = 4


class NumpySGD(optim.SGD):
    """SGD that always runs the readable NumPy definition: the reference."""

    def _update(self, param, grad, state, options):
        self._update_numpy(param, grad, state, options)


def option_combinations():
    """Every valid mix of momentum, dampening, weight decay and Nesterov (Nesterov needs dampening 0)."""
    combos = []
    for momentum, dampening, weight_decay, nesterov in itertools.product(
            (0.0, 0.9), (0.0, 0.3), (0.0, 0.01), (False, True)):
        if nesterov and (momentum == 0 or dampening != 0):
            continue
        combos.append(dict(lr=0.1, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                           nesterov=nesterov))
    return combos


def combo_id(options):
    return ",".join(f"{key}={value}" for key, value in options.items() if key != "lr")


def channel_major(shape, rng, dtype):
    """A random (N, C, H, W) array laid out as a C-contiguous (C, N, H, W) one (dense, not C-contiguous)."""
    n, c, h, w = shape
    return rng.standard_normal((c, n, h, w)).astype(dtype).transpose(1, 0, 2, 3)


def like(array, values):
    """``values`` copied into a new array with ``array``'s memory layout."""
    out = np.empty_like(array)
    out[...] = values
    return out


def run(optimizer_class, initial, grads, options):
    """``STEPS`` steps from ``initial`` with the gradients ``grads[step]``; returns (param data, momentum buffer)."""
    param = ti.nn.Parameter(like(initial, initial))
    opt = optimizer_class([param], **options)
    for grad in grads:
        param.grad = like(initial, grad)
        opt.step()
    return param.data, opt.state[param].get("momentum_buffer")


def random_case(dtype, make_param=None, shape=(3, 4, 5, 2), seed=0):
    rng = np.random.default_rng(seed)
    initial = make_param(shape, rng, dtype) if make_param else rng.standard_normal(shape).astype(dtype)
    grads = [rng.standard_normal(shape).astype(dtype) for _ in range(STEPS)]
    return initial, grads


@needs_numba
@pytest.mark.parametrize("layout", [None, channel_major], ids=["c_contiguous", "channel_major"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("options", option_combinations(), ids=combo_id)
def test_fused_equals_numpy_definition(options, dtype, layout):
    initial, grads = random_case(dtype, layout)
    data, buffer = run(optim.SGD, initial, grads, options)
    data_ref, buffer_ref = run(NumpySGD, initial, grads, options)
    assert data.dtype == dtype
    assert data.strides == initial.strides, "the parameter's layout must not change"
    np.testing.assert_array_equal(data, data_ref)
    assert not np.array_equal(data, initial), "the parameter did not move"
    if options["momentum"]:
        assert buffer.dtype == dtype
        np.testing.assert_array_equal(buffer, buffer_ref)
    else:
        assert buffer is None and buffer_ref is None


def plain_sgd(initial, grads, lr, momentum, dampening, weight_decay, nesterov):
    """PyTorch's SGD, step by step as its documentation writes it, in float64: (parameter, momentum buffer)."""
    param, buffer = initial.astype(np.float64), None
    for grad in grads:
        grad = grad.astype(np.float64)
        if weight_decay != 0:
            grad = grad + weight_decay * param
        if momentum != 0:
            buffer = grad.copy() if buffer is None else momentum * buffer + (1 - dampening) * grad
            grad = grad + momentum * buffer if nesterov else buffer
        param = param - lr * grad
    return param, buffer


def _tolerance(dtype):
    """float32 steps against the float64 formula: a few roundings of values of order 1 per step."""
    return dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("optimizer_class", [pytest.param(optim.SGD, marks=needs_numba, id="fused"),
                                             pytest.param(NumpySGD, id="numpy")])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("options", option_combinations(), ids=combo_id)
def test_both_paths_follow_the_documented_formula(options, dtype, optimizer_class):
    initial, grads = random_case(dtype, seed=3)
    data, buffer = run(optimizer_class, initial, grads, options)
    expected_data, expected_buffer = plain_sgd(initial, grads, **options)
    np.testing.assert_allclose(data, expected_data, **_tolerance(dtype))
    if options["momentum"]:
        np.testing.assert_allclose(buffer, expected_buffer, **_tolerance(dtype))


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("options", option_combinations(), ids=combo_id)
def test_matches_torch_optim_sgd(options, dtype):
    torch = pytest.importorskip("torch")
    initial, grads = random_case(dtype, seed=4)
    data, buffer = run(optim.SGD, initial, grads, options)
    param = torch.nn.Parameter(torch.from_numpy(initial.copy()))
    reference = torch.optim.SGD([param], **options)
    for grad in grads:
        param.grad = torch.from_numpy(grad.copy())
        reference.step()
    # torch rounds the same operations, possibly fused differently: a rounding or two apart
    tolerance = dict(rtol=2e-6, atol=1e-7) if dtype == np.float32 else dict(rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(data, param.detach().numpy(), **tolerance)
    if options["momentum"]:
        np.testing.assert_allclose(buffer, reference.state[param]["momentum_buffer"].numpy(), **tolerance)


@needs_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_first_step_copies_the_gradient_into_the_buffer_without_dampening(dtype):
    param = ti.nn.Parameter(np.ones(6, dtype=dtype))
    opt = optim.SGD([param], lr=0.5, momentum=0.9, dampening=0.5, weight_decay=0.25)
    param.grad = np.arange(6, dtype=dtype)
    opt.step()
    expected_grad = np.arange(6, dtype=dtype) + dtype(0.25)  # g + weight_decay * p, p = 1
    np.testing.assert_array_equal(opt.state[param]["momentum_buffer"], expected_grad)
    np.testing.assert_array_equal(param.data, 1 - dtype(0.5) * expected_grad)


class KernelRecorder:
    """Stands in for ``sgd_update_flat``: counts the calls and runs the real kernel."""

    def __init__(self):
        self.calls = 0
        self.kernel = _sgd_kernel.sgd_update_flat

    def __call__(self, *args):
        self.calls += 1
        return self.kernel(*args)


@pytest.fixture
def recorder(monkeypatch):
    record = KernelRecorder()
    monkeypatch.setattr(_sgd_kernel, "sgd_update_flat", record)
    return record


def step_once(param, grad, **options):
    param.grad = grad
    opt = optim.SGD([param], **dict(dict(lr=0.1, momentum=0.9), **options))
    opt.step()
    opt.step()
    return opt


@needs_numba
def test_fused_path_runs_for_a_plain_float32_parameter(recorder):
    rng = np.random.default_rng(0)
    param = ti.nn.Parameter(rng.standard_normal((8, 3, 3, 3)).astype(np.float32))
    opt = step_once(param, rng.standard_normal((8, 3, 3, 3)).astype(np.float32), weight_decay=1e-4)
    assert recorder.calls == 2
    assert opt.state[param]["momentum_buffer"].dtype == np.float32


@needs_numba
def test_fused_path_runs_for_a_channel_major_parameter(recorder):
    rng = np.random.default_rng(0)
    initial = channel_major((2, 3, 4, 4), rng, np.float32)
    param = ti.nn.Parameter(like(initial, initial))
    opt = step_once(param, like(initial, rng.standard_normal(initial.shape).astype(np.float32)))
    assert recorder.calls == 2
    assert opt.state[param]["momentum_buffer"].strides == initial.strides


def test_strided_or_mismatched_layouts_use_the_numpy_path(recorder):
    """A non-dense parameter, or a gradient laid out differently, must not be flattened: NumPy path, same result."""
    rng = np.random.default_rng(0)
    base = rng.standard_normal((4, 6, 3)).astype(np.float32)
    grad = rng.standard_normal((4, 3, 3)).astype(np.float32)
    sliced = ti.nn.Parameter(base.copy()[:, ::2])  # every other row: gaps in memory
    reference = ti.nn.Parameter(base.copy()[:, ::2])
    step_once(sliced, grad.copy())
    reference.grad = grad.copy()
    ref_opt = NumpySGD([reference], lr=0.1, momentum=0.9)
    ref_opt.step()
    ref_opt.step()
    np.testing.assert_array_equal(sliced.data, reference.data)

    initial = channel_major((2, 3, 4, 4), rng, np.float32)
    mismatched = ti.nn.Parameter(like(initial, initial))
    step_once(mismatched, np.ascontiguousarray(rng.standard_normal(initial.shape).astype(np.float32)))
    assert recorder.calls == 0


def test_float16_parameters_are_not_fused(recorder):
    param = ti.nn.Parameter(np.ones(4, dtype=np.float16))
    step_once(param, np.ones(4, dtype=np.float16))
    assert recorder.calls == 0 and param.data.dtype == np.float16


def test_without_numba_the_numpy_path_runs(recorder, monkeypatch):
    sgd_module = importlib.import_module("tinyinception.optim.sgd")
    monkeypatch.setattr(sgd_module, "NUMBA_AVAILABLE", False)
    param = ti.nn.Parameter(np.ones(4, dtype=np.float32))
    step_once(param, np.ones(4, dtype=np.float32))
    assert recorder.calls == 0
    np.testing.assert_allclose(param.data, 1 - 0.1 * (1 + (0.9 * 1 + 1)), rtol=1e-6)  # steps: g=1, then b=1.9
