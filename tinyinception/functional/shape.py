"""Operations that move data without changing it: reshape, permute/transpose, flatten, indexing, concat."""
import math
import operator

import numpy as np

from ..autograd import Function, Tensor
from .. import backend


def _axis(dim, ndim, op):
    """``dim`` as an axis in [0, ndim): an IndexError (as PyTorch's) unless -ndim <= dim < ndim."""
    dim = operator.index(dim)
    if not -ndim <= dim < ndim:
        raise IndexError(f"{op}: dimension out of range (expected to be in range of [{-ndim}, {ndim - 1}], "
                         f"but got {dim})")
    return dim % ndim


class Reshape(Function):
    def forward(self, x, shape):
        self.input_shape = x.shape
        return x.reshape(shape)

    def backward(self, grad_output):
        return grad_output.reshape(self.input_shape), None


class Permute(Function):
    def forward(self, x, dims):
        self.dims = dims
        return x.transpose(dims)

    def backward(self, grad_output):
        inverse = tuple(int(i) for i in np.argsort(self.dims))
        return grad_output.transpose(inverse), None


class GetItem(Function):
    """``x[index]`` for basic slices and integer (array) indices; repeated indices add up in backward."""

    def forward(self, x, index):
        self.input_shape, self.index = x.shape, index
        return x[index]

    def backward(self, grad_output):
        xp = backend.get_array_module(grad_output)
        grad = xp.zeros(self.input_shape, grad_output.dtype)
        if xp is np:
            np.add.at(grad, self.index, grad_output)
        else:
            import cupyx
            cupyx.scatter_add(grad, self.index, grad_output)
        return grad, None


class Concat(Function):
    """Join arrays along ``dim``; backward hands each input its slice of the gradient."""

    def forward(self, *arrays, dim):
        xp = backend.get_array_module(*arrays)
        self.dim = dim
        self.sizes = [a.shape[dim] for a in arrays]
        return xp.concatenate(arrays, axis=dim)

    def backward(self, grad_output):
        grads, start = [], 0
        for size, needed in zip(self.sizes, self.needs_input_grad):
            index = [slice(None)] * grad_output.ndim
            index[self.dim] = slice(start, start + size)
            grads.append(grad_output[tuple(index)].copy(order="K") if needed else None)
            start += size
        return tuple(grads)


def reshape(input, *shape):
    """input with a new shape holding the same elements (one dimension may be -1)."""
    shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else tuple(shape)
    known = math.prod(s for s in shape if s != -1)
    if shape.count(-1) > 1 or (-1 not in shape and known != input.numel()) or \
            (-1 in shape and (known == 0 or input.numel() % known)):
        raise ValueError(f"reshape: cannot reshape a tensor of shape {input.shape} ({input.numel()} elements) "
                         f"to {shape}")
    return Reshape.apply(input, shape)


def permute(input, *dims):
    """Reorder dimensions: ``x.permute(0, 2, 3, 1)`` turns NCHW into NHWC."""
    dims = tuple(dims[0]) if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else tuple(dims)
    axes = tuple(_axis(d, input.ndim, "permute") for d in dims)
    if sorted(axes) != list(range(input.ndim)):
        raise ValueError(f"permute: {dims} is not a permutation of the {input.ndim} dimensions of shape {input.shape}")
    return Permute.apply(input, axes)


def transpose(input, dim0, dim1):
    """Swap two dimensions."""
    dims = list(range(input.ndim))
    dim0, dim1 = _axis(dim0, input.ndim, "transpose"), _axis(dim1, input.ndim, "transpose")
    dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
    return Permute.apply(input, tuple(dims))


def flatten(input, start_dim=0, end_dim=-1):
    """Merge dimensions start_dim..end_dim into one (``torch.flatten`` semantics)."""
    if input.ndim == 0:
        return reshape(input, 1)
    start, end = _axis(start_dim, input.ndim, "flatten"), _axis(end_dim, input.ndim, "flatten")
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} for shape {input.shape}")
    shape = input.shape[:start] + (math.prod(input.shape[start:end + 1]),) + input.shape[end + 1:]
    return Reshape.apply(input, shape)


def _raw_index(index):
    """Tensors inside an index become their arrays."""
    if isinstance(index, tuple):
        return tuple(_raw_index(i) for i in index)
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, list):
        return np.asarray(index)
    return index


def getitem(input, index):
    return GetItem.apply(input, _raw_index(index))


def concat(tensors, dim=1):
    """Join tensors along ``dim`` (default 1: channels of NCHW, the Inception block's filter concatenation).

    Every other dimension must agree; the error names the first one that does not.
    """
    tensors = list(tensors)
    if not tensors:
        raise ValueError("concat: expected a non-empty list of tensors")
    first = tensors[0]
    dim = _axis(dim, first.ndim, "concat")
    for i, t in enumerate(tensors[1:], start=1):
        if t.ndim != first.ndim:
            raise ValueError(f"concat: tensor 0 has {first.ndim} dimensions but tensor {i} has {t.ndim}")
        if t.dtype != first.dtype:
            raise TypeError(f"concat: tensor 0 has dtype {first.dtype} but tensor {i} has {t.dtype}")
        for d in range(first.ndim):
            if d != dim and t.shape[d] != first.shape[d]:
                raise ValueError(
                    f"concat along dim {dim}: tensor 0 has shape {first.shape} but tensor {i} has shape {t.shape}; "
                    f"dimension {d} differs ({first.shape[d]} vs {t.shape[d]})"
                )
    return Concat.apply(*tensors, dim=dim)


cat = concat
