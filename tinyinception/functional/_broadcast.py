"""Helpers shared by the binary operations: operands to arrays, and gradients back to an input's shape."""
import numpy as np

from ..autograd import Tensor
from .. import backend


def as_operand(value, like, op_name):
    """``value`` as something a binary op can take next to the tensor ``like``.

    Python numbers become 0-d arrays of ``like``'s dtype (so float32 stays float32); tensors and arrays must already
    have ``like``'s floating dtype: mixing float32 and float64 is refused rather than silently upcast.
    """
    if isinstance(value, (int, float, bool, np.integer, np.floating)) and not isinstance(value, np.ndarray):
        xp = backend.get_array_module(like.data if isinstance(like, Tensor) else like)
        dtype = like.dtype if like.dtype.kind == "f" else np.result_type(like.dtype, type(value))
        return xp.asarray(value, dtype=dtype)
    if not isinstance(value, Tensor):
        value = Tensor(value)
    if value.dtype.kind in "iub" and like.dtype.kind == "f":  # integers join the float operand (torch does too)
        value = Tensor(value.data.astype(like.dtype))
    if value.dtype != like.dtype and value.dtype.kind == "f" and like.dtype.kind == "f":
        raise TypeError(
            f"{op_name}: operands have dtypes {like.dtype} and {value.dtype}; tinyinception never upcasts silently. "
            f"Convert one explicitly (x.float() or x.double())."
        )
    return value


def broadcast_shape(shape_a, shape_b, op_name):
    """The broadcast result of two shapes, or a ValueError naming the operation and both shapes."""
    try:
        return np.broadcast_shapes(shape_a, shape_b)
    except ValueError:
        raise ValueError(f"{op_name}: shapes {tuple(shape_a)} and {tuple(shape_b)} cannot be broadcast "
                         "together") from None


def unbroadcast(grad, shape):
    """Sum ``grad`` over the dimensions that broadcasting added or stretched, giving an array of ``shape``."""
    if grad.shape == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad.reshape(shape)
