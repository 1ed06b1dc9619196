"""Gradient utilities: clip_grad_norm_ (rescale all gradients together when their norm is too large)."""
import math

from tinyinception.backend import get_array_module


def _grad_norm(grad, norm_type):
    """The ``norm_type``-norm of one gradient array, as a 0-d array of its dtype."""
    xp = get_array_module(grad)
    if norm_type == math.inf:
        return xp.abs(grad).max() if grad.size else xp.zeros((), dtype=grad.dtype)
    if norm_type == 2.0:
        flat = grad.ravel()
        return xp.sqrt(xp.dot(flat, flat))
    return (xp.abs(grad) ** norm_type).sum() ** (1.0 / norm_type)


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale every gradient in place so that their joint norm is at most ``max_norm``; return that norm.

    The joint norm is the ``norm_type``-norm of all gradients concatenated (``inf`` for the largest absolute
    entry); parameters whose ``grad`` is None are ignored. When it exceeds ``max_norm`` every gradient is
    multiplied by ``max_norm / (total_norm + 1e-6)``, as in PyTorch.

    Args:
        parameters: a Parameter or an iterable of Parameters.
        max_norm: the largest joint norm allowed.
        norm_type: p of the p-norm (2.0 by default), or ``math.inf``.
        error_if_nonfinite: raise if the joint norm is nan or inf (otherwise the gradients become nan).

    Returns:
        the joint norm before clipping, a 0-d array of the gradients' dtype (``float(...)`` for a number).
        0.0 when no parameter has a gradient.
    """
    if hasattr(parameters, "grad") and hasattr(parameters, "data"):
        parameters = [parameters]
    grads = [param.grad for param in parameters if param.grad is not None]
    norm_type, max_norm = float(norm_type), float(max_norm)
    if not grads:
        return get_array_module().zeros((), dtype="float32")
    xp = get_array_module(grads[0])
    norms = xp.stack([_grad_norm(grad, norm_type) for grad in grads])
    total_norm = norms.max() if norm_type == math.inf else _grad_norm(norms, norm_type)
    if error_if_nonfinite and not bool(xp.isfinite(total_norm)):
        raise RuntimeError(
            f"clip_grad_norm_: the total {norm_type}-norm of the gradients is {float(total_norm)}; "
            "set error_if_nonfinite=False to clip anyway"
        )
    clip_coef = max_norm / (float(total_norm) + 1e-6)
    if clip_coef < 1.0 or math.isnan(clip_coef):
        for grad in grads:
            grad *= clip_coef
    return total_norm
