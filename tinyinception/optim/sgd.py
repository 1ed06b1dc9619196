"""Stochastic gradient descent, with optional (Nesterov) momentum and L2 weight decay.

For each parameter ``p`` with gradient ``g`` (PyTorch's algorithm, option names and defaults)::

    g = g + weight_decay * p                        # L2 penalty, if weight_decay != 0
    b = g                           at the first step   (momentum buffer, if momentum != 0)
    b = momentum * b + (1 - dampening) * g   afterwards
    g = g + momentum * b   if nesterov   else   b
    p = p - lr * g

The first step copies ``g`` into the buffer without dampening, as PyTorch does.
"""
from tinyinception.optim.optimizer import Optimizer


class SGD(Optimizer):
    """SGD(params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False).

    The GoogLeNet paper (Inception-v1) trained with momentum 0.9 and a learning rate decreased by 4% every
    8 epochs: ``SGD(params, lr=..., momentum=0.9)`` with ``StepLR(opt, step_size=8, gamma=0.96)``.

    State per parameter: ``'momentum_buffer'`` (only when momentum != 0).
    """

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False):
        if lr < 0:
            raise ValueError(f"SGD: invalid learning rate {lr} (expected >= 0)")
        if momentum < 0:
            raise ValueError(f"SGD: invalid momentum {momentum} (expected >= 0)")
        if weight_decay < 0:
            raise ValueError(f"SGD: invalid weight_decay {weight_decay} (expected >= 0)")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError(
                f"SGD: Nesterov momentum requires momentum > 0 and dampening = 0, "
                f"got momentum={momentum}, dampening={dampening}"
            )
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov)
        super().__init__(params, defaults)

    def _update(self, param, grad, state, options):
        momentum = options["momentum"]
        if options["weight_decay"] != 0:
            grad = grad + options["weight_decay"] * param.data
        if momentum != 0:
            buffer = state.get("momentum_buffer")
            if buffer is None:
                buffer = state["momentum_buffer"] = grad.copy()
            else:
                buffer *= momentum
                buffer += (1.0 - options["dampening"]) * grad
            grad = grad + momentum * buffer if options["nesterov"] else buffer
        param.data -= options["lr"] * grad
