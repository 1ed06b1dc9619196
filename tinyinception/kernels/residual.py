"""Inception-ResNet's residual connection with its ReLU, forward and backward: NumPy reference, Numba and CuPy, one
signature.

    y = relu(x + scale * branch)                      (NaN stays NaN, as torch.relu)
    grad_x = 0 where y <= 0, else grad_y;  grad_branch = scale * grad_x

The Numba kernels do in one pass over memory what NumPy does in three (``branch * scale``, ``+ x``, then the
ReLU), each of which reads and writes a whole activation. They walk the arrays' memory in order, so channel-major
arrays stay channel-major. The products and sums are the same float operations in the same order as NumPy's, so
the results are equal bit for bit.
"""
import numpy as np

from .. import backend
from . import layout
from ._numba import njit, prange, threaded_when_large


def residual_relu_forward_numpy(x, branch, scale):
    """The reference, three array expressions (CuPy runs the same ones on the GPU)."""
    y = branch * scale + x
    return backend.get_array_module(y).maximum(y, 0, out=y)


def residual_relu_backward_numpy(grad_y, y, scale):
    grad_x = backend.get_array_module(y).where(y <= 0, 0, grad_y).astype(grad_y.dtype, copy=False)
    return grad_x, grad_x * scale


@threaded_when_large(serial_below=1 << 18)
@njit(parallel=True, cache=True)
def _residual_relu_flat(x_flat, branch_flat, scale, y_flat):
    zero = y_flat.dtype.type(0)
    for i in prange(y_flat.size):
        value = branch_flat[i] * scale + x_flat[i]
        y_flat[i] = zero if value <= zero else value  # NaN <= 0 is False: NaN passes through


@threaded_when_large(serial_below=1 << 18)
@njit(parallel=True, cache=True)
def _residual_relu_backward_flat(grad_flat, y_flat, scale, grad_x_flat, grad_branch_flat):
    zero = grad_flat.dtype.type(0)
    for i in prange(grad_flat.size):
        grad = zero if y_flat[i] <= zero else grad_flat[i]
        grad_x_flat[i] = grad
        grad_branch_flat[i] = grad * scale


def residual_relu_forward_numba(x, branch, scale):
    y = np.empty_like(branch)  # order "K": branch's layout
    flats = layout.memory_orders(x, branch, y)
    if flats is None:
        return residual_relu_forward_numpy(x, branch, scale)
    _residual_relu_flat(flats[0], flats[1], scale, flats[2])
    return y


def residual_relu_backward_numba(grad_y, y, scale):
    grad_x, grad_branch = np.empty_like(y), np.empty_like(y)
    flats = layout.memory_orders(grad_y, y, grad_x, grad_branch)
    if flats is None:
        return residual_relu_backward_numpy(grad_y, y, scale)
    _residual_relu_backward_flat(flats[0], flats[1], scale, flats[2], flats[3])
    return grad_x, grad_branch


_FORWARD = {"numpy": residual_relu_forward_numpy, "numba": residual_relu_forward_numba,
            "cupy": residual_relu_forward_numpy}
_BACKWARD = {"numpy": residual_relu_backward_numpy, "numba": residual_relu_backward_numba,
             "cupy": residual_relu_backward_numpy}


def residual_relu_forward(x, branch, scale):
    """x, branch: same shape and dtype, scale: a scalar of that dtype -> y = relu(x + scale * branch), in branch's
    memory layout."""
    return _FORWARD[backend.kernels_for(branch)](x, branch, scale)


def residual_relu_backward(grad_y, y, scale):
    """grad_y, y (the forward's output): same shape -> (grad_x, grad_branch)."""
    return _BACKWARD[backend.kernels_for(y)](grad_y, y, scale)
