"""Optimizers: PyTorch parity over 20 steps, dtype and in-place rules, parameter groups, state_dict resume.

Parity tolerances (why): both sides compute in the parameters' dtype with the same formulas, but PyTorch fuses
some operations (``addcdiv_``, ``addcmul_``, ``lerp_``) and rounds in a slightly different order, so each
step may differ by a few units in the last place. In float32 (unit roundoff 6e-8) that grows to at most ~1e-6
relative over 20 steps: we allow rtol=1e-5, atol=1e-6. In float64 the same run must agree to rtol=1e-10,
which would expose any formula slip (eps inside vs outside the square root, a missing bias correction) that
float32 noise could hide: several cases use a large eps so its placement matters.
"""
import copy
import pickle

import numpy as np
import pytest

import tinyinception as ti
from tinyinception import optim

SHAPES = [(4, 3), (5,), (2, 2, 3)]
STEPS = 20

# (class name, options, parameter groups as (indices, extra options) or None for one group)
CASES = [
    ("SGD", dict(lr=0.1), None),
    ("SGD", dict(lr=0.1, momentum=0.9), None),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.5), None),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01), None),
    ("SGD", dict(lr=0.1, weight_decay=0.1), None),
    ("SGD", dict(lr=0.1, momentum=0.9), [([0, 1], {}), ([2], dict(lr=0.01, momentum=0.5))]),
    ("RMSprop", dict(lr=0.01), None),
    ("RMSprop", dict(lr=0.045, alpha=0.9, eps=1.0), None),  # the Inception-v3/v4 setting
    ("RMSprop", dict(lr=0.01, centered=True, momentum=0.9), None),
    ("RMSprop", dict(lr=0.01, weight_decay=0.1, momentum=0.5, eps=1e-3), None),
    ("RMSprop", dict(lr=0.01, centered=True, eps=0.1), None),
    ("RMSprop", dict(lr=0.01), [([0], dict(lr=0.1, centered=True)), ([1, 2], dict(momentum=0.9))]),
    ("Adam", dict(), None),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=0.1), None),
    ("Adam", dict(lr=0.01, weight_decay=0.1, amsgrad=True), None),
    ("Adam", dict(lr=0.01), [([0, 2], {}), ([1], dict(lr=0.1, amsgrad=True))]),
    ("AdamW", dict(), None),
    ("AdamW", dict(lr=0.01, weight_decay=0.5, amsgrad=True, eps=0.01), None),
    ("AdamW", dict(lr=0.01), [([0], dict(weight_decay=0.0)), ([1, 2], dict(lr=0.05))]),
]


def case_id(case):
    name, options, groups = case
    text = ",".join(f"{k}={v}" for k, v in options.items())
    return f"{name}({text}){'-groups' if groups else ''}"


def initial_arrays(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(dtype) for shape in SHAPES]


def gradient_sequence(dtype, steps=STEPS, seed=1):
    """Seeded random gradients; parameter 1 has no gradient on every third step (it must be skipped)."""
    rng = np.random.default_rng(seed)
    sequence = []
    for step in range(steps):
        grads = [rng.standard_normal(shape).astype(dtype) for shape in SHAPES]
        if step % 3 == 2:
            grads[1] = None
        sequence.append(grads)
    return sequence


def grouped(params, groups):
    if groups is None:
        return params
    return [dict(extra, params=[params[i] for i in indices]) for indices, extra in groups]


def run_ours(name, options, groups, arrays, grad_sequence):
    params = [ti.nn.Parameter(array.copy()) for array in arrays]
    opt = getattr(optim, name)(grouped(params, groups), **options)
    for grads in grad_sequence:
        for param, grad in zip(params, grads):
            param.grad = None if grad is None else grad.copy()
        opt.step()
    return [param.data for param in params], opt


def run_torch(name, options, groups, arrays, grad_sequence):
    torch = pytest.importorskip("torch")
    params = [torch.tensor(array.copy(), requires_grad=True) for array in arrays]
    opt = getattr(torch.optim, name)(grouped(params, groups), **options)
    for grads in grad_sequence:
        for param, grad in zip(params, grads):
            param.grad = None if grad is None else torch.from_numpy(grad.copy())
        opt.step()
    return [param.detach().numpy() for param in params]


@pytest.mark.torch
@pytest.mark.parametrize("dtype, rtol, atol", [(np.float32, 1e-5, 1e-6), (np.float64, 1e-10, 1e-12)],
                         ids=["float32", "float64"])
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_matches_torch_over_20_steps(case, dtype, rtol, atol):
    name, options, groups = case
    arrays, grad_sequence = initial_arrays(dtype), gradient_sequence(dtype)
    ours, _ = run_ours(name, options, groups, arrays, grad_sequence)
    theirs = run_torch(name, options, groups, arrays, grad_sequence)
    for index, (mine, reference) in enumerate(zip(ours, theirs)):
        assert mine.dtype == dtype
        np.testing.assert_allclose(mine, reference, rtol=rtol, atol=atol, err_msg=f"parameter {index}")
        assert not np.allclose(mine, arrays[index]), "the parameter did not move"


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_float32_stays_float32_everywhere(case):
    name, options, groups = case
    arrays = initial_arrays(np.float32)
    ours, opt = run_ours(name, options, groups, arrays, gradient_sequence(np.float32, steps=3))
    assert all(data.dtype == np.float32 for data in ours)
    for buffers in opt.state.values():
        for key, value in buffers.items():
            assert key == "step" and isinstance(value, int) or value.dtype == np.float32, key


def test_numpy_float64_hyperparameters_do_not_upcast_float32_arithmetic():
    """An np.float64 lr would make ``lr * grad`` a float64 product; the optimizer uses Python floats."""
    arrays, grads = initial_arrays(np.float32), gradient_sequence(np.float32, steps=5)
    plain, _ = run_ours("Adam", dict(lr=0.01, betas=(0.9, 0.99), weight_decay=0.1), None, arrays, grads)
    numpy_scalars = dict(lr=np.float64(0.01), betas=(np.float64(0.9), np.float64(0.99)),
                         weight_decay=np.float64(0.1))
    from_numpy, _ = run_ours("Adam", numpy_scalars, None, arrays, grads)
    for a, b in zip(plain, from_numpy):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ["SGD", "RMSprop", "Adam", "AdamW"])
def test_update_is_in_place_and_skips_params_without_grad(name):
    used, unused = ti.nn.Parameter(np.ones((3, 2), np.float32)), ti.nn.Parameter(np.ones(4, np.float32))
    view = used.data[0]
    data_before = used.data
    opt = getattr(optim, name)([used, unused], lr=0.1)
    used.grad = np.full((3, 2), 0.5, np.float32)
    opt.step()
    assert used.data is data_before
    assert np.all(view == used.data[0]) and np.all(view != 1.0)
    np.testing.assert_array_equal(unused.data, np.ones(4, np.float32))
    assert unused not in opt.state and used in opt.state


def test_float64_parameters_work():
    param = ti.nn.Parameter(np.ones(3, np.float64))
    param.grad = np.array([1.0, -2.0, 3.0])
    opt = optim.SGD([param], lr=0.5, momentum=0.9)
    opt.step()
    assert param.data.dtype == np.float64
    np.testing.assert_array_equal(param.data, [0.5, 2.0, -0.5])


def test_zero_grad():
    param = ti.nn.Parameter(np.ones(3, np.float32))
    opt = optim.SGD([param], lr=0.1)
    param.grad = np.ones(3, np.float32)
    grad = param.grad
    opt.zero_grad(set_to_none=False)
    assert param.grad is grad and np.all(grad == 0)
    opt.zero_grad()
    assert param.grad is None
    opt.step()  # nothing to do
    np.testing.assert_array_equal(param.data, np.ones(3, np.float32))


def test_usual_training_loop_reduces_the_loss():
    """The loop of the docstrings, on a real model: zero_grad, forward, backward, step."""
    ti.manual_seed(0)
    rng = np.random.default_rng(0)
    inputs = rng.standard_normal((32, 3)).astype(np.float32)
    targets = inputs @ np.array([[1.0], [-2.0], [0.5]], np.float32) + 0.3
    x, y = ti.tensor(inputs), ti.tensor(targets)
    model = ti.nn.Linear(3, 1)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]
    assert all(p.data.dtype == np.float32 for p in model.parameters())


def test_parameter_groups_and_add_param_group():
    a, b, c = (ti.nn.Parameter(np.zeros(2, np.float32)) for _ in range(3))
    opt = optim.SGD([{"params": [a]}, {"params": b, "lr": 1.0}], lr=0.1, momentum=0.9)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 1.0]
    assert opt.param_groups[1]["momentum"] == 0.9
    opt.add_param_group({"params": [c], "lr": 0.5, "momentum": 0.0})
    for param in (a, b, c):
        param.grad = np.ones(2, np.float32)
    opt.step()
    np.testing.assert_allclose([a.data[0], b.data[0], c.data[0]], [-0.1, -1.0, -0.5], rtol=1e-6)
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})
    text = repr(opt)
    assert text.startswith("SGD (") and "Parameter Group 2" in text and "lr: 0.5" in text


@pytest.mark.parametrize("make, error, pattern", [
    (lambda p: optim.SGD([], lr=0.1), ValueError, "empty parameter list"),
    (lambda p: optim.SGD(p, lr=0.1), TypeError, "single Parameter"),
    (lambda p: optim.SGD([p, p], lr=0.1), ValueError, "twice"),
    (lambda p: optim.SGD({p}, lr=0.1), TypeError, "set"),
    (lambda p: optim.SGD([p], lr=-1.0), ValueError, "learning rate"),
    (lambda p: optim.SGD([p], lr=0.1, nesterov=True), ValueError, "Nesterov"),
    (lambda p: optim.SGD([p, 3.0], lr=0.1), TypeError, r"params\[1\] is a float"),
    (lambda p: optim.RMSprop([p], eps=-1.0), ValueError, "eps"),
    (lambda p: optim.Adam([p], betas=(0.9, 1.0)), ValueError, "betas"),
])
def test_bad_arguments_are_named(make, error, pattern):
    with pytest.raises(error, match=pattern):
        make(ti.nn.Parameter(np.zeros(2, np.float32)))


def test_bad_gradients_are_named():
    param = ti.nn.Parameter(np.zeros((2, 3), np.float32))
    opt = optim.Adam([param])
    param.grad = np.zeros((3, 2), np.float32)
    with pytest.raises(ValueError, match=r"shape \(2, 3\) has a gradient of shape \(3, 2\)"):
        opt.step()
    param.grad = np.zeros((2, 3), np.float64)
    with pytest.raises(TypeError, match="float32 parameter .* float64 gradient"):
        opt.step()


def make_resumable(name, options, groups, arrays):
    params = [ti.nn.Parameter(array.copy()) for array in arrays]
    return params, getattr(optim, name)(grouped(params, groups), **options)


def take_steps(params, opt, grad_sequence):
    for grads in grad_sequence:
        for param, grad in zip(params, grads):
            param.grad = None if grad is None else grad.copy()
        opt.step()


@pytest.mark.parametrize("case", [c for c in CASES if c[0] != "SGD" or "momentum" in c[1]], ids=case_id)
def test_state_dict_round_trip_resumes_identically(case):
    """Run 10 steps, save, restore into a fresh optimizer over fresh parameters, run 10 more == run 20."""
    name, options, groups = case
    arrays, grad_sequence = initial_arrays(np.float32), gradient_sequence(np.float32)
    params, opt = make_resumable(name, options, groups, arrays)
    take_steps(params, opt, grad_sequence)

    first_params, first_opt = make_resumable(name, options, groups, arrays)
    take_steps(first_params, first_opt, grad_sequence[:10])
    saved = pickle.loads(pickle.dumps(first_opt.state_dict()))  # as a checkpoint file would hold it
    data_at_10 = [param.data.copy() for param in first_params]
    saved_copy = copy.deepcopy(saved)
    take_steps(first_params, first_opt, grad_sequence[10:12])  # later steps must not leak into the saved state
    for index, buffers in saved_copy["state"].items():
        for key, value in buffers.items():
            np.testing.assert_array_equal(saved["state"][index][key], value)

    # A fresh optimizer built with another default lr: load_state_dict must bring the saved options back.
    resumed_params, resumed_opt = make_resumable(name, {**options, "lr": 123.0}, groups, data_at_10)
    resumed_opt.load_state_dict(saved)
    assert [g["lr"] for g in resumed_opt.param_groups] == [g["lr"] for g in opt.param_groups]
    take_steps(resumed_params, resumed_opt, grad_sequence[10:])
    for mine, reference in zip(resumed_params, params):
        np.testing.assert_array_equal(mine.data, reference.data)


def test_load_state_dict_checks_the_groups():
    a, b = ti.nn.Parameter(np.zeros(2, np.float32)), ti.nn.Parameter(np.zeros(2, np.float32))
    saved = optim.SGD([a, b], lr=0.1).state_dict()
    with pytest.raises(ValueError, match="2 parameters in the saved state and 1 here"):
        optim.SGD([a], lr=0.1).load_state_dict(saved)
    with pytest.raises(ValueError, match="1 parameter groups, this optimizer has 2"):
        optim.SGD([{"params": [a]}, {"params": [b]}], lr=0.1).load_state_dict(saved)


@pytest.mark.torch
def test_state_dict_layout_matches_torch():
    torch = pytest.importorskip("torch")
    arrays, grads = initial_arrays(np.float32), gradient_sequence(np.float32, steps=2)
    groups = [([0, 1], {}), ([2], dict(lr=0.1))]
    _, ours = run_ours("Adam", dict(amsgrad=True), groups, arrays, grads)
    params = [torch.tensor(a, requires_grad=True) for a in arrays]
    theirs = torch.optim.Adam(grouped(params, groups), amsgrad=True)
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = None if g is None else torch.from_numpy(g)
        theirs.step()
    mine, reference = ours.state_dict(), theirs.state_dict()
    assert [g["params"] for g in mine["param_groups"]] == [g["params"] for g in reference["param_groups"]]
    assert sorted(mine["state"]) == sorted(reference["state"])
    for index, buffers in reference["state"].items():
        assert set(mine["state"][index]) == set(buffers)
        assert mine["state"][index]["step"] == int(buffers["step"])
        np.testing.assert_allclose(mine["state"][index]["exp_avg"], buffers["exp_avg"].numpy(), rtol=1e-6)


@pytest.mark.gpu
@pytest.mark.parametrize("case", [CASES[1], CASES[8], CASES[14], CASES[17]], ids=case_id)
def test_cupy_parameters_match_numpy(case):
    from tinyinception.backend import gpu_available
    if not gpu_available():
        pytest.skip("needs a CUDA device")
    import cupy
    name, options, groups = case
    arrays, grad_sequence = initial_arrays(np.float32), gradient_sequence(np.float32, steps=5)
    expected, _ = run_ours(name, options, groups, arrays, grad_sequence)
    params = [ti.nn.Parameter(cupy.asarray(array)) for array in arrays]
    opt = getattr(optim, name)(grouped(params, groups), **options)
    for grads in grad_sequence:
        for param, grad in zip(params, grads):
            param.grad = None if grad is None else cupy.asarray(grad)
        opt.step()
    for param, reference in zip(params, expected):
        assert isinstance(param.data, cupy.ndarray) and param.data.dtype == np.float32
        np.testing.assert_allclose(cupy.asnumpy(param.data), reference, rtol=1e-5, atol=1e-6)
