"""Argument checks shared by the kernel families: clear errors that name the op."""
import numpy as np

from .. import backend

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def pair(op, name, value, minimum):
    """``value`` as a pair of ints ``(along H, along W)``; an int means the same for both."""
    if isinstance(value, (int, np.integer)):
        value = (int(value), int(value))
    try:
        first, second = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{op}: {name} must be an int or a pair of ints, got {value!r}") from None
    if first < minimum or second < minimum:
        raise ValueError(f"{op}: {name} must be >= {minimum} in both dimensions, got {(first, second)}")
    return first, second


def check_float(op, name, array):
    """Only float32 and float64 arrays have compiled kernels."""
    if np.dtype(array.dtype) not in FLOAT_DTYPES:
        raise TypeError(f"{op}: {name} must be float32 or float64, got {array.dtype}")


def check_ndim(op, name, array, ndim, layout):
    if array.ndim != ndim:
        raise ValueError(f"{op}: {name} must be {ndim}-D {layout}, got shape {tuple(array.shape)}")


def check_shape(op, name, array, expected):
    if tuple(array.shape) != tuple(expected):
        raise ValueError(f"{op}: {name} must have shape {tuple(expected)}, got {tuple(array.shape)}")


def all_finite(array):
    """True when no element of ``array`` is NaN or infinite: one sum, no temporary array (a sum that overflows
    answers False too, which sends the caller to its exact path: never wrong, only slower)."""
    if not array.size:
        return True
    return bool(backend.get_array_module(array).isfinite(array.sum()))
