"""Adam and AdamW: momentum on the gradient, divided by a running RMS, both bias-corrected.

For each parameter ``p`` with gradient ``g`` at step ``t = 1, 2, ...`` (PyTorch's algorithm)::

    p = p * (1 - lr * weight_decay)          # AdamW only: decoupled weight decay, applied to p itself
    g = g + weight_decay * p                 # Adam only: L2 penalty folded into the gradient
    m = beta1 * m + (1 - beta1) * g          # first moment, starts at 0
    v = beta2 * v + (1 - beta2) * g**2       # second moment, starts at 0
    v_max = max(v_max, v);  v_used = v_max if amsgrad else v
    p = p - lr / (1 - beta1**t) * m / (sqrt(v_used) / sqrt(1 - beta2**t) + eps)

eps is added *after* the square root and after the bias correction of ``v``, as in PyTorch (and the
"epsilon hat" of Kingma & Ba, not the epsilon of their Algorithm 1).
"""
import math

from tinyinception.backend import get_array_module
from tinyinception.optim.optimizer import Optimizer


class Adam(Optimizer):
    """Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False).

    ``decoupled_weight_decay=True`` turns it into AdamW (as in PyTorch). State per parameter: ``'step'``,
    ``'exp_avg'`` (m), ``'exp_avg_sq'`` (v), ``'max_exp_avg_sq'`` (amsgrad).
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
                 decoupled_weight_decay=False):
        name = type(self).__name__
        for option, value in (("lr", lr), ("eps", eps), ("weight_decay", weight_decay)):
            if value < 0:
                raise ValueError(f"{name}: invalid {option} {value} (expected >= 0)")
        if len(betas) != 2 or not all(0.0 <= beta < 1.0 for beta in betas):
            raise ValueError(f"{name}: betas must be two numbers in [0, 1), got {betas}")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)

    def _update(self, param, grad, state, options):
        xp = get_array_module(param.data)
        lr, (beta1, beta2), weight_decay = options["lr"], options["betas"], options["weight_decay"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = xp.zeros_like(param.data)
            state["exp_avg_sq"] = xp.zeros_like(param.data)
            if options["amsgrad"]:
                state["max_exp_avg_sq"] = xp.zeros_like(param.data)
        state["step"] += 1
        step = int(state["step"])
        if weight_decay != 0:
            if options["decoupled_weight_decay"]:
                param.data *= 1.0 - lr * weight_decay
            else:
                grad = grad + weight_decay * param.data
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg += (1.0 - beta1) * (grad - exp_avg)       # = beta1 * m + (1 - beta1) * g
        exp_avg_sq *= beta2
        exp_avg_sq += (1.0 - beta2) * grad * grad
        second_moment = exp_avg_sq
        if options["amsgrad"]:
            second_moment = state["max_exp_avg_sq"]
            xp.maximum(second_moment, exp_avg_sq, out=second_moment)
        step_size = lr / (1.0 - beta1 ** step)
        denom = xp.sqrt(second_moment) / math.sqrt(1.0 - beta2 ** step)
        denom += options["eps"]
        param.data -= step_size * (exp_avg / denom)


class AdamW(Adam):
    """AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False).

    Adam with decoupled weight decay (Loshchilov & Hutter): each step first shrinks the parameter,
    ``p *= 1 - lr * weight_decay``, instead of adding ``weight_decay * p`` to the gradient, so the decay
    is not divided by the RMS of the gradient.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                         decoupled_weight_decay=True)
