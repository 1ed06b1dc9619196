"""RMSprop: divide each gradient by a running root-mean-square of its recent values.

For each parameter ``p`` with gradient ``g`` (PyTorch's algorithm, option names and defaults)::

    g   = g + weight_decay * p                       # L2 penalty, if weight_decay != 0
    v   = alpha * v + (1 - alpha) * g**2             # running mean of g**2, starts at 0
    m   = alpha * m + (1 - alpha) * g                # running mean of g, only if centered
    rms = sqrt(v - m**2) if centered else sqrt(v)
    b   = momentum * b + g / (rms + eps);  p = p - lr * b        if momentum > 0
    p   = p - lr * g / (rms + eps)                               otherwise

Where epsilon goes -- PyTorch versus TensorFlow
-----------------------------------------------
The Inception-v3 paper ("Rethinking the Inception Architecture", Szegedy et al. 2015, section 8) and the
Inception-v4 paper (Szegedy et al. 2016, section 4) trained with "RMSProp with decay 0.9 and epsilon = 1.0",
learning rate 0.045 decayed every two epochs by 0.94. Those runs used TensorFlow, whose RMSProp differs from
PyTorch's (and from this class) in three ways:

* eps inside the square root: TensorFlow's ``ApplyRMSProp`` kernel (behind TF1's ``tf.train.RMSPropOptimizer``)
  divides by ``sqrt(ms + epsilon)``; PyTorch divides by ``sqrt(v) + eps``. With eps = 1.0 both divide by
  about 1 while ``v`` is tiny, but at ``v = 1`` TensorFlow divides by sqrt(2) = 1.41 and PyTorch by 2.
* TF1's optimizer starts the mean square ``ms`` at ones, PyTorch at zeros.
* TensorFlow accumulates ``lr * g / sqrt(ms + eps)`` in its momentum buffer, PyTorch accumulates
  ``g / (rms + eps)`` and multiplies by lr afterwards (the same unless lr changes).

So ``RMSprop(params, lr=0.045, alpha=0.9, eps=1.0)`` (see :func:`inception_v3_rmsprop`) uses the papers'
numbers with PyTorch's formula -- the usual way to quote that setting in PyTorch -- not a bit-for-bit copy
of the TensorFlow optimizer.
"""
from tinyinception.backend import get_array_module
from tinyinception.optim.optimizer import Optimizer


class RMSprop(Optimizer):
    """RMSprop(params, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False).

    ``alpha`` is the decay of the running averages (TensorFlow calls it ``rho`` or ``decay``). The
    Inception-v3/v4 papers' setting is ``RMSprop(params, lr=0.045, alpha=0.9, eps=1.0)``; the module
    docstring explains how PyTorch's (and our) eps placement differs from TensorFlow's.

    State per parameter: ``'step'``, ``'square_avg'``, ``'momentum_buffer'`` (momentum > 0),
    ``'grad_avg'`` (centered).
    """

    def __init__(self, params, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False):
        for option, value in (("lr", lr), ("alpha", alpha), ("eps", eps), ("weight_decay", weight_decay),
                              ("momentum", momentum)):
            if value < 0:
                raise ValueError(f"RMSprop: invalid {option} {value} (expected >= 0)")
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                        centered=centered)
        super().__init__(params, defaults)

    def _update(self, param, grad, state, options):
        xp = get_array_module(param.data)
        alpha, momentum = options["alpha"], options["momentum"]
        if not state:
            state["step"] = 0
            state["square_avg"] = xp.zeros_like(param.data)
            if momentum > 0:
                state["momentum_buffer"] = xp.zeros_like(param.data)
            if options["centered"]:
                state["grad_avg"] = xp.zeros_like(param.data)
        state["step"] += 1
        if options["weight_decay"] != 0:
            grad = grad + options["weight_decay"] * param.data
        square_avg = state["square_avg"]
        square_avg *= alpha
        square_avg += (1.0 - alpha) * grad * grad
        if options["centered"]:
            grad_avg = state["grad_avg"]
            grad_avg += (1.0 - alpha) * (grad - grad_avg)   # = alpha * grad_avg + (1 - alpha) * grad
            rms = xp.sqrt(square_avg - grad_avg * grad_avg)
        else:
            rms = xp.sqrt(square_avg)
        rms += options["eps"]
        if momentum > 0:
            buffer = state["momentum_buffer"]
            buffer *= momentum
            buffer += grad / rms
            param.data -= options["lr"] * buffer
        else:
            param.data -= options["lr"] * (grad / rms)


def inception_v3_rmsprop(params, lr=0.045, alpha=0.9, eps=1.0, **options):
    """RMSprop with the Inception-v3 / Inception-v4 papers' numbers: decay 0.9, epsilon 1.0, lr 0.045.

    Pair it with :func:`tinyinception.optim.lr_scheduler.inception_schedule` (x0.94 every 2 epochs).
    PyTorch's eps placement (``sqrt(v) + eps``), not TensorFlow's (``sqrt(v + eps)``): see this module's docstring.
    """
    return RMSprop(params, lr=lr, alpha=alpha, eps=eps, **options)
