"""Check analytic gradients against finite differences (``ti.gradcheck``).

For a function ``fn(*inputs) -> Tensor`` we fix a random projection ``v`` of its output and compare, for every input
that requires grad, the gradient of ``<v, fn(inputs)>`` computed by backward with central differences

    (<v, fn(x + eps e_k)> - <v, fn(x - eps e_k)>) / (2 eps)          for every element k of the input.

Run it in float64: float32 rounding (~1e-7 relative) divided by eps swamps the comparison.
``fast_mode=True`` checks one random direction u per input instead of every element (a directional derivative),
which costs two evaluations whatever the input size.
"""
import numpy as np

from .autograd import Tensor, no_grad
from . import backend


class GradcheckError(AssertionError):
    """Raised when an analytic gradient disagrees with its numerical estimate."""


def _scalar_objective(fn, inputs, projection):
    """<projection, fn(*inputs)> as a Python float."""
    with no_grad():
        out = fn(*inputs)
    return float((out.data * projection).sum())


def _check_inputs(inputs):
    for i, x in enumerate(inputs):
        if isinstance(x, Tensor) and x.requires_grad and x.dtype != np.float64:
            raise TypeError(
                f"gradcheck: input {i} has dtype {x.dtype}; use float64 inputs (x.double() or dtype=np.float64), "
                "float32 rounding makes finite differences meaningless"
            )


def _analytic_gradients(fn, inputs, projection):
    for x in inputs:
        if isinstance(x, Tensor):
            x.grad = None
    out = fn(*inputs)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    out.backward(projection)
    xp = backend.get_array_module(projection)
    return [x.grad if x.grad is not None else xp.zeros_like(x.data) for x in inputs
            if isinstance(x, Tensor) and x.requires_grad]


def _numeric_gradient(fn, inputs, x, projection, eps):
    """Central differences of <v, fn> for every element of ``x`` (perturbed in place, then restored)."""
    if not x.data.flags.c_contiguous:
        x.data = backend.get_array_module(x.data).ascontiguousarray(x.data)
    flat = x.data.reshape(-1)  # a view: writing into it perturbs x
    grad = np.zeros(flat.size, dtype=np.float64)
    for k in range(flat.size):
        original = float(flat[k])
        flat[k] = original + eps
        plus = _scalar_objective(fn, inputs, projection)
        flat[k] = original - eps
        minus = _scalar_objective(fn, inputs, projection)
        flat[k] = original
        grad[k] = (plus - minus) / (2 * eps)
    return grad.reshape(x.shape)


def _directional(fn, inputs, x, projection, direction, eps):
    original = x.data.copy()
    x.data[...] = original + eps * direction
    plus = _scalar_objective(fn, inputs, projection)
    x.data[...] = original - eps * direction
    minus = _scalar_objective(fn, inputs, projection)
    x.data[...] = original
    return (plus - minus) / (2 * eps)


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, fast_mode=False, seed=0):
    """True if backward agrees with finite differences for every input of ``fn`` that requires grad.

    fn: callable taking ``*inputs`` and returning a Tensor. inputs: a Tensor or a tuple (non-tensors passed through).
    An element passes when |analytic - numeric| <= atol + rtol * |numeric|. On failure raises `GradcheckError`
    naming the input, the worst element, both values and the error.
    """
    inputs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    _check_inputs(inputs)
    checked = [(i, x) for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad; nothing to check")
    rng = np.random.default_rng(seed)
    with no_grad():
        out = fn(*inputs)
    xp = backend.get_array_module(out.data)
    projection = xp.asarray(rng.standard_normal(out.shape), dtype=out.dtype)
    analytic = _analytic_gradients(fn, inputs, projection)
    for (index, x), grad in zip(checked, analytic):
        grad = backend.to_device(grad, "cpu").astype(np.float64)
        if fast_mode:
            direction = xp.asarray(rng.standard_normal(x.shape))
            numeric = _directional(fn, inputs, x, projection, direction, eps)
            estimate = float((grad * backend.to_device(direction, "cpu")).sum())
            error = abs(estimate - numeric)
            if error > atol + rtol * abs(numeric):
                raise GradcheckError(
                    f"gradcheck (fast mode): input {index} (shape {x.shape}): directional derivative from backward "
                    f"{estimate:.8g} vs numerical {numeric:.8g} (error {error:.3g}, "
                    f"allowed {atol + rtol * abs(numeric):.3g})"
                )
            continue
        numeric = _numeric_gradient(fn, inputs, x, projection, eps)
        excess = np.abs(grad - numeric) - (atol + rtol * np.abs(numeric))
        if (excess > 0).any():
            worst = np.unravel_index(int(np.argmax(excess)), numeric.shape)
            raise GradcheckError(
                f"gradcheck: input {index} (shape {x.shape}), element {tuple(int(i) for i in worst)}: "
                f"backward gives {grad[worst]:.8g}, finite differences give {numeric[worst]:.8g} "
                f"(error {abs(grad[worst] - numeric[worst]):.3g}; atol={atol}, rtol={rtol}); "
                f"{int((excess > 0).sum())} of {numeric.size} elements fail"
            )
    return True
