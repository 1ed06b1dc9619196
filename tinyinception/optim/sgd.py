"""Stochastic gradient descent, with optional (Nesterov) momentum and L2 weight decay.

For each parameter ``p`` with gradient ``g`` (PyTorch's algorithm, option names and defaults)::

    g = g + weight_decay * p                        # L2 penalty, if weight_decay != 0
    b = g                           at the first step   (momentum buffer, if momentum != 0)
    b = momentum * b + (1 - dampening) * g   afterwards
    g = g + momentum * b   if nesterov   else   b
    p = p - lr * g

The first step copies ``g`` into the buffer without dampening, as PyTorch does.

``_update_numpy`` is the readable definition, written as array expressions (NumPy or CuPy). For NumPy arrays
that lie densely in memory with the same strides (parameter, gradient and buffer) the same update runs as one
fused Numba loop (``_sgd_kernel.sgd_update_flat``): one pass over memory instead of four or five, with equal
results.
"""
import numpy as np

from tinyinception.kernels import layout
from tinyinception.kernels._numba import NUMBA_AVAILABLE
from tinyinception.optim import _sgd_kernel
from tinyinception.optim.optimizer import Optimizer

_FUSED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _fusable(data, grad, buffer):
    """Whether the fused kernel may run: Numba present, NumPy float32/float64 arrays, all dense in memory with
    identical strides (so their flat views list the same elements in the same order)."""
    if not NUMBA_AVAILABLE or type(data) is not np.ndarray or type(grad) is not np.ndarray:
        return False
    if data.dtype not in _FUSED_DTYPES or not data.flags.writeable:
        return False
    arrays = (data, grad) if buffer is None else (data, grad, buffer)
    if any(a.strides != data.strides for a in arrays) or not layout.is_dense(data):
        return False
    return buffer is None or (type(buffer) is np.ndarray and buffer.dtype == data.dtype)


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
        buffer = state.get("momentum_buffer") if options["momentum"] != 0 else None
        if _fusable(param.data, grad, buffer):
            self._update_fused(param, grad, state, options)
        else:
            self._update_numpy(param, grad, state, options)

    def _update_fused(self, param, grad, state, options):
        """The update of ``_update_numpy`` as one Numba loop over flat views; scalars in the data's dtype."""
        data = param.data
        scalar = data.dtype.type
        use_momentum = options["momentum"] != 0
        buffer = state.get("momentum_buffer") if use_momentum else None
        first_step = use_momentum and buffer is None
        if first_step:
            buffer = state["momentum_buffer"] = np.empty_like(data)  # same layout as data (order='K')
        flat_data, flat_grad = layout.memory_order(data), layout.memory_order(grad)
        flat_buffer = layout.memory_order(buffer) if use_momentum else flat_data  # an unused stand-in without momentum
        _sgd_kernel.sgd_update_flat(
            flat_data, flat_grad, flat_buffer, scalar(options["lr"]), scalar(options["momentum"]),
            scalar(1.0 - options["dampening"]), scalar(options["weight_decay"]),
            use_momentum, first_step, bool(options["nesterov"]),
        )

    def _update_numpy(self, param, grad, state, options):
        """The definition, as array expressions (NumPy or CuPy, any layout)."""
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
