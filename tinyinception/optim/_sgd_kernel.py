"""SGD's whole update for one parameter in one pass over memory (Numba, CPU).

Written as NumPy expressions (``SGD._update``, the readable definition) one step with weight decay, momentum
and Nesterov reads and writes the parameter, the gradient and the momentum buffer four or five times and
allocates two temporaries of the parameter's size; over GoogLeNet's parameters that is ~10 ms a step on 2 cores,
all of it memory traffic. This kernel walks flat views of the three arrays once: each element is loaded once,
updated in registers and stored once, with no temporaries.

What makes it fast, and still equal to the NumPy definition bit for bit:

* one loop over contiguous memory, split over Numba's threads only for large parameters (`threaded_when_large`:
  most parameters are a few microseconds of work, less than starting threads; a 384x384x3x3 weight is not);
* the scalars arrive already in the arrays' dtype, so float32 stays float32 (no float64 upcast);
* every operation is the same IEEE operation in the same order as the NumPy expressions (``fastmath`` is off,
  so LLVM does not fuse ``a * b + c`` into one rounding), hence the same results.
"""
from tinyinception.kernels._numba import njit, prange, threaded_when_large


@threaded_when_large
@njit(parallel=True, cache=True)
def sgd_update_flat(param, grad, buffer, lr, momentum, dampening_complement, weight_decay,
                    use_momentum, first_step, nesterov):
    """One SGD step in place, element by element (PyTorch's algorithm)::

        g = grad + weight_decay * param                      # when weight_decay != 0
        buffer = g                                           # first step (no dampening)
        buffer = momentum * buffer + (1 - dampening) * g     # later steps
        g = g + momentum * buffer  if nesterov  else  buffer
        param = param - lr * g

    Args:
        param: (n,) flat view of the parameter's data, updated in place.
        grad: (n,) flat view of its gradient, same dtype and element order; not modified.
        buffer: (n,) flat momentum buffer, updated in place (ignored when ``use_momentum`` is False).
        lr, momentum, dampening_complement (= 1 - dampening), weight_decay: scalars of the arrays' dtype.
        use_momentum: momentum != 0. first_step: the buffer holds nothing yet (it is overwritten with g).
        nesterov: look ahead along the buffer.
    """
    use_weight_decay = weight_decay != 0
    for i in prange(param.shape[0]):
        g = grad[i]
        if use_weight_decay:
            g = g + weight_decay * param[i]
        if use_momentum:
            if first_step:
                b = g
            else:
                b = buffer[i] * momentum + dampening_complement * g
            buffer[i] = b
            if nesterov:
                g = g + momentum * b
            else:
                g = b
        param[i] = param[i] - lr * g
