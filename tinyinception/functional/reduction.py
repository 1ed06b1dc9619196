"""Reductions: sum, mean and max over one or more dimensions.

PyTorch's names (``dim``, ``keepdim``) and NumPy's (``axis``, ``keepdims``) are both accepted.
"""
import builtins
import math

from ..autograd import Function
from .. import backend


def _normalize_dims(dim, ndim, op_name):
    """``dim`` (None, int or tuple) as a sorted tuple of non-negative axes."""
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    normalized = []
    for d in dims:
        if not -ndim <= d < builtins.max(ndim, 1):
            raise IndexError(f"{op_name}: dim {d} is out of range for a tensor with {ndim} dimensions")
        normalized.append(d % builtins.max(ndim, 1))
    return tuple(sorted(set(normalized)))


def _expand_back(grad_output, input_shape, dims, keepdim):
    """Reshape a reduced gradient so it broadcasts against the input again."""
    if not keepdim:
        shape = list(input_shape)
        for d in dims:
            shape[d] = 1
        grad_output = grad_output.reshape(shape)
    return grad_output


class Sum(Function):
    def forward(self, x, dims, keepdim):
        self.input_shape, self.dims, self.keepdim = x.shape, dims, keepdim
        return x.sum(axis=dims, keepdims=keepdim)

    def backward(self, grad_output):
        xp = backend.get_array_module(grad_output)
        grad = _expand_back(grad_output, self.input_shape, self.dims, self.keepdim)
        return xp.broadcast_to(grad, self.input_shape).copy(), None, None


class Mean(Function):
    def forward(self, x, dims, keepdim):
        self.input_shape, self.dims, self.keepdim = x.shape, dims, keepdim
        self.count = 1
        for d in dims:
            self.count *= x.shape[d]
        return x.mean(axis=dims, keepdims=keepdim)

    def backward(self, grad_output):
        xp = backend.get_array_module(grad_output)
        grad = _expand_back(grad_output, self.input_shape, self.dims, self.keepdim) / grad_output.dtype.type(self.count)
        return xp.broadcast_to(grad, self.input_shape).copy(), None, None


class Max(Function):
    """Maximum over one dimension (or all); the gradient goes to the first maximal element, like ``torch.max(dim)``."""

    def forward(self, x, dim, keepdim):
        xp = backend.get_array_module(x)
        self.input_shape, self.dim, self.keepdim = x.shape, dim, keepdim
        flat = x.reshape(-1) if dim is None else x
        self.index = xp.expand_dims(flat.argmax(axis=0 if dim is None else dim), axis=0 if dim is None else dim)
        values = xp.take_along_axis(flat, self.index, axis=0 if dim is None else dim)
        if dim is None:
            return values.reshape(()) if not keepdim else values.reshape((1,) * x.ndim)
        return values if keepdim else values.squeeze(dim)

    def backward(self, grad_output):
        xp = backend.get_array_module(grad_output)
        if self.dim is None:
            grad = xp.zeros(math.prod(self.input_shape), grad_output.dtype)
            xp.put_along_axis(grad, self.index, grad_output.reshape(1), axis=0)
            return grad.reshape(self.input_shape), None, None
        grad = xp.zeros(self.input_shape, grad_output.dtype)
        values = grad_output if self.keepdim else xp.expand_dims(grad_output, self.dim)
        xp.put_along_axis(grad, self.index, values, axis=self.dim)
        return grad, None, None


def _dims_and_keep(dim, keepdim, axis, keepdims):
    return (axis if dim is None else dim), bool(keepdims if keepdims is not None else keepdim)


def sum(input, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """Sum over ``dim`` (an int, a tuple, or None for all): input (..) -> reduced."""
    dim, keepdim = _dims_and_keep(dim, keepdim, axis, keepdims)
    return Sum.apply(input, _normalize_dims(dim, input.ndim, "sum"), keepdim)


def mean(input, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """Mean over ``dim`` (an int, a tuple, or None for all)."""
    dim, keepdim = _dims_and_keep(dim, keepdim, axis, keepdims)
    return Mean.apply(input, _normalize_dims(dim, input.ndim, "mean"), keepdim)


def max(input, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """Largest value over one dimension ``dim`` (or over everything when None).

    Unlike ``torch.max(x, dim)``, which returns (values, indices), this returns the values; use ``argmax`` for the
    indices.
    """
    dim, keepdim = _dims_and_keep(dim, keepdim, axis, keepdims)
    if dim is not None:
        if not isinstance(dim, int):
            raise TypeError(f"max: reduces over one dimension (an int) or all (None), got {dim!r}")
        dim = _normalize_dims(dim, input.ndim, "max")[0]
    return Max.apply(input, dim, keepdim)


def argmax(input, dim=None, keepdim=False):
    """Index of the largest value along ``dim`` (not differentiable): an int64 tensor."""
    from ..autograd import Tensor
    xp = backend.get_array_module(input.data)
    if dim is None:
        return Tensor(xp.asarray(input.data.argmax(), dtype=xp.int64))
    index = input.data.argmax(axis=dim).astype(xp.int64)
    return Tensor(xp.expand_dims(index, dim) if keepdim else index)
