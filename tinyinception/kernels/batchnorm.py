"""Training-mode batch normalisation, forward and backward, plain and fused with ReLU.

Any ``x`` of shape (N, C, *spatial) is treated as (N, C, L) with L the product of the trailing
sizes; the statistics are per channel, over N and L (M = N*L values each):

    mean = sum(x) / M        var = sum((x - mean)**2) / M   (biased, what normalises the batch)
    inv_std = 1 / sqrt(var + eps)        x_hat = (x - mean) * inv_std
    y = weight * x_hat + bias            (fused variant: y = relu(weight * x_hat + bias))

Backward, through the batch statistics, with ``g`` = grad_y (0 where ``y <= 0`` when fused, as torch.relu):

    grad_bias = sum(g)       grad_weight = sum(g * x_hat)
    grad_x = weight * inv_std * (g - grad_bias / M - x_hat * grad_weight / M)

``weight``/``bias``: (C,) or None (no affine transform; then grad_weight and grad_bias are None).
``mean``, ``var``, ``inv_std``: (C,) in x's dtype; the sums behind them accumulate in float64.
"""
import numpy as np

from .. import backend
from . import layout
from ._checks import check_float, check_shape
from ._numba import njit, prange, threaded_when_large


def _as_ncl(array):
    """View (N, C, *spatial) as (N, C, L); (N, C) becomes (N, C, 1)."""
    return array.reshape(array.shape[0], array.shape[1], -1)


def _affine_or_default(xp, weight, bias, channels, dtype):
    weight = xp.ones(channels, dtype=dtype) if weight is None else weight
    bias = xp.zeros(channels, dtype=dtype) if bias is None else bias
    return weight, bias


# ----------------------------------------------------------------------------------------------
# NumPy reference (array expressions; the same code runs on CuPy arrays, see below)
# ----------------------------------------------------------------------------------------------
def _forward_array_expressions(xp, x, weight, bias, eps, relu):
    x3 = _as_ncl(x)
    dtype = x.dtype
    mean64 = x3.mean(axis=(0, 2), dtype=xp.float64)
    var64 = x3.var(axis=(0, 2), dtype=xp.float64)
    inv_std64 = 1.0 / xp.sqrt(var64 + eps)
    mean, var, inv_std = mean64.astype(dtype), var64.astype(dtype), inv_std64.astype(dtype)
    weight, bias = _affine_or_default(xp, weight, bias, x3.shape[1], dtype)
    y = (x3 - mean[:, None]) * (inv_std * weight)[:, None] + bias[:, None]
    if relu:
        xp.maximum(y, 0, out=y)
    return y.reshape(x.shape), mean, var, inv_std


def _backward_array_expressions(xp, grad_y, y, x, mean, inv_std, weight):
    x3, g = _as_ncl(x), _as_ncl(grad_y)
    dtype = x.dtype
    if y is not None:  # fused ReLU: no gradient where the output is <= 0 (a NaN output passes it, as torch.relu)
        g = xp.where(_as_ncl(y) <= 0, dtype.type(0), g)
    count = x3.shape[0] * x3.shape[2]
    x_hat = (x3 - mean[:, None]) * inv_std[:, None]
    sum_g = g.sum(axis=(0, 2), dtype=xp.float64)
    sum_g_x_hat = (g * x_hat).sum(axis=(0, 2), dtype=xp.float64)
    scale = inv_std if weight is None else weight * inv_std
    grad_x = scale[:, None] * (g - (sum_g / count).astype(dtype)[:, None]
                               - x_hat * (sum_g_x_hat / count).astype(dtype)[:, None])
    if weight is None:
        return grad_x.reshape(x.shape), None, None
    return grad_x.reshape(x.shape), sum_g_x_hat.astype(dtype), sum_g.astype(dtype)


def batch_norm_train_forward_numpy(x, weight, bias, eps):
    """NumPy reference. ``x``: (N, C, *) -> (y, mean, var, inv_std)."""
    return _forward_array_expressions(np, x, weight, bias, eps, relu=False)


def batch_norm_relu_train_forward_numpy(x, weight, bias, eps):
    """NumPy reference of ``relu(batch_norm(x))``. Returns (y, mean, var, inv_std)."""
    return _forward_array_expressions(np, x, weight, bias, eps, relu=True)


def batch_norm_backward_numpy(grad_y, x, mean, inv_std, weight):
    """NumPy reference. Returns (grad_x, grad_weight, grad_bias)."""
    return _backward_array_expressions(np, grad_y, None, x, mean, inv_std, weight)


def batch_norm_relu_backward_numpy(grad_y, y, x, mean, inv_std, weight):
    """NumPy reference of the fused backward (``y`` is the ReLU output). Returns grads."""
    return _backward_array_expressions(np, grad_y, y, x, mean, inv_std, weight)


# ----------------------------------------------------------------------------------------------
# Numba: statistics / reductions with prange over channels, elementwise passes over planes
# ----------------------------------------------------------------------------------------------
# Reassociation lets LLVM vectorise the float64 sums (several partial sums at once); no NaN/inf
# assumptions are made, so NaN inputs still give NaN statistics.
_REDUCTION_MATH = {"reassoc", "contract"}


@threaded_when_large
@njit(parallel=True, cache=True, fastmath=_REDUCTION_MATH)
def _channel_statistics(x3, mean64, var64):
    """x3: (N, C, L) -> mean64, var64: (C,) float64, filled in place, in ONE pass over x.

    Fast because: one thread per channel, each reading its N rows of L contiguous values once;
    sums are float64 and taken about a shift (the channel's first value), so the one-pass
    ``E[(x-K)^2] - E[x-K]^2`` formula keeps its accuracy without a second pass; reassociated
    (vectorised) float64 sums.
    """
    batch, channels, length = x3.shape
    count = batch * length
    for c in prange(channels):
        shift = np.float64(x3[0, c, 0])
        if not np.isfinite(shift):  # inf - inf would make NaN of an infinite mean
            shift = 0.0
        total = 0.0
        total_squares = 0.0
        for n in range(batch):
            x_row = x3[n, c]
            for k in range(length):
                centred = x_row[k] - shift
                total += centred
                total_squares += centred * centred
        mean_shifted = total / count
        mean64[c] = shift + mean_shifted
        var = total_squares / count - mean_shifted * mean_shifted
        var64[c] = 0.0 if var < 0.0 else var  # rounding below zero clipped; NaN stays NaN


@threaded_when_large
@njit(parallel=True, cache=True)
def _normalise(x3, mean, scale, bias, relu, y3):
    """y3 = (x3 - mean[c]) * scale[c] + bias[c] (then ReLU when ``relu``), one pass, in place.

    Fast because: prange over the N*C planes (balanced even for small C); the inner loop is a
    contiguous multiply-add on one plane with the channel's constants in registers.
    """
    batch, channels, length = x3.shape
    zero = np.zeros(1, dtype=y3.dtype)[0]
    for plane in prange(batch * channels):
        n, c = plane // channels, plane % channels
        m, a, b = mean[c], scale[c], bias[c]
        if relu:
            for k in range(length):
                value = (x3[n, c, k] - m) * a + b
                y3[n, c, k] = zero if value < zero else value  # NaN stays NaN, like torch.relu
        else:
            for k in range(length):
                y3[n, c, k] = (x3[n, c, k] - m) * a + b


@threaded_when_large
@njit(parallel=True, cache=True, fastmath=_REDUCTION_MATH)
def _gradient_sums(g3, x3, y3, mean, inv_std, relu, sum_g, sum_g_x_hat):
    """sum_g[c] = sum(g), sum_g_x_hat[c] = sum(g * x_hat): both reductions in ONE pass.

    ``g`` is 0 where ``y3 <= 0`` when ``relu``. Fast because: one thread per channel reading
    contiguous rows, x_hat recomputed on the fly instead of stored, float64 accumulators.
    """
    batch, channels, length = x3.shape
    for c in prange(channels):
        m, s = np.float64(mean[c]), np.float64(inv_std[c])
        total = 0.0
        total_x_hat = 0.0
        for n in range(batch):
            g_row, x_row, y_row = g3[n, c], x3[n, c], y3[n, c]
            for k in range(length):
                g = np.float64(g_row[k])
                if relu and y_row[k] <= 0:  # a NaN output passes its gradient, as torch.relu's
                    g = 0.0
                total += g
                total_x_hat += g * ((x_row[k] - m) * s)
        sum_g[c] = total
        sum_g_x_hat[c] = total_x_hat


@threaded_when_large
@njit(parallel=True, cache=True)
def _input_gradient(g3, x3, y3, mean, inv_std, scale, mean_g, mean_g_x_hat, relu, grad_x3):
    """grad_x = scale[c] * (g - mean_g[c] - x_hat * mean_g_x_hat[c]), one pass over planes.

    Fast because: prange over the N*C planes, contiguous inner loop, per-channel constants
    hoisted, the ReLU mask applied in the same pass (no masked copy of grad_y).
    """
    batch, channels, length = x3.shape
    zero = np.zeros(1, dtype=grad_x3.dtype)[0]
    for plane in prange(batch * channels):
        n, c = plane // channels, plane % channels
        m, s, a = mean[c], inv_std[c], scale[c]
        mg, mgx = mean_g[c], mean_g_x_hat[c]
        for k in range(length):
            g = g3[n, c, k]
            if relu and y3[n, c, k] <= 0:
                g = zero
            grad_x3[n, c, k] = a * (g - mg - (x3[n, c, k] - m) * s * mgx)


def _kernel_view(array):
    """``array`` as the (N, C, L) array the Numba kernels walk, in its own memory layout: a
    channel-major (N, C, H, W) array becomes its (1, C, N*H*W) view (one contiguous row per
    channel), anything else a C-contiguous (N, C, L) array (copied when it is not)."""
    if array.ndim == 4 and layout.is_channel_major(array) and not array.flags.c_contiguous:
        return layout.channel_rows(array)[None]
    return _as_ncl(np.ascontiguousarray(array))


def _in_layout_of(array, reference):
    """``array`` laid out like ``reference`` (so both walk the same (N, C, L) view)."""
    return layout.as_layout_of(array, reference) if array.ndim == 4 else np.ascontiguousarray(array)


def _empty_in_layout_of(x):
    return layout.empty_like_layout(x) if x.ndim == 4 else np.empty(x.shape, dtype=x.dtype)


def _forward_numba(x, weight, bias, eps, relu):
    if x.ndim != 4:
        x = np.ascontiguousarray(x)
    x3 = _kernel_view(x)
    channels = x3.shape[1]
    mean64 = np.empty(channels, dtype=np.float64)
    var64 = np.empty(channels, dtype=np.float64)
    if x.size:
        _channel_statistics(x3, mean64, var64)
    else:
        mean64[:], var64[:] = np.nan, np.nan
    inv_std64 = 1.0 / np.sqrt(var64 + eps)
    weight, bias = _affine_or_default(np, weight, bias, channels, x.dtype)
    y = _empty_in_layout_of(x)  # the output keeps x's layout (channel-major stays channel-major)
    if x.size:
        _normalise(x3, mean64.astype(x.dtype), (weight * inv_std64).astype(x.dtype), bias, relu,
                   _kernel_view(y))
    return y, mean64.astype(x.dtype), var64.astype(x.dtype), inv_std64.astype(x.dtype)


def _backward_numba(grad_y, y, x, mean, inv_std, weight):
    relu = y is not None
    if x.ndim != 4:
        x = np.ascontiguousarray(x)
    x3 = _kernel_view(x)
    g3 = _kernel_view(_in_layout_of(grad_y, x))
    y3 = _kernel_view(_in_layout_of(y, x)) if relu else x3  # x3 is a placeholder, never read
    channels = x3.shape[1]
    count = x.size // channels if channels else 0
    sum_g = np.zeros(channels, dtype=np.float64)
    sum_g_x_hat = np.zeros(channels, dtype=np.float64)
    grad_x = _empty_in_layout_of(x)
    if x.size:
        _gradient_sums(g3, x3, y3, mean, inv_std, relu, sum_g, sum_g_x_hat)
        scale = inv_std if weight is None else weight * inv_std
        dtype = x.dtype
        _input_gradient(g3, x3, y3, mean, inv_std, scale.astype(dtype), (sum_g / count).astype(dtype),
                        (sum_g_x_hat / count).astype(dtype), relu, _kernel_view(grad_x))
    if weight is None:
        return grad_x, None, None
    return grad_x, sum_g_x_hat.astype(x.dtype), sum_g.astype(x.dtype)


def batch_norm_train_forward_numba(x, weight, bias, eps):
    """Numba: one pass for the statistics, one for y. Returns (y, mean, var, inv_std)."""
    return _forward_numba(x, weight, bias, eps, relu=False)


def batch_norm_relu_train_forward_numba(x, weight, bias, eps):
    """Numba ``relu(batch_norm(x))``; the ReLU is applied in the output pass."""
    return _forward_numba(x, weight, bias, eps, relu=True)


def batch_norm_backward_numba(grad_y, x, mean, inv_std, weight):
    """Numba: one pass for both reductions, one for grad_x. Returns (grad_x, grad_w, grad_b)."""
    return _backward_numba(grad_y, None, x, mean, inv_std, weight)


def batch_norm_relu_backward_numba(grad_y, y, x, mean, inv_std, weight):
    """Numba fused backward: the ``y > 0`` mask is applied inside both passes."""
    return _backward_numba(grad_y, y, x, mean, inv_std, weight)


# ----------------------------------------------------------------------------------------------
# CuPy: the array expressions above, run by cupy's fused reductions and elementwise kernels
# ----------------------------------------------------------------------------------------------
def batch_norm_train_forward_cupy(x, weight, bias, eps):
    """CuPy: the reference's array expressions on GPU arrays."""
    return _forward_array_expressions(backend.cupy_module(), x, weight, bias, eps, relu=False)


def batch_norm_relu_train_forward_cupy(x, weight, bias, eps):
    return _forward_array_expressions(backend.cupy_module(), x, weight, bias, eps, relu=True)


def batch_norm_backward_cupy(grad_y, x, mean, inv_std, weight):
    return _backward_array_expressions(backend.cupy_module(), grad_y, None, x, mean, inv_std,
                                       weight)


def batch_norm_relu_backward_cupy(grad_y, y, x, mean, inv_std, weight):
    return _backward_array_expressions(backend.cupy_module(), grad_y, y, x, mean, inv_std, weight)


# ----------------------------------------------------------------------------------------------
# Dispatch
# ----------------------------------------------------------------------------------------------
_FORWARD = {"numpy": batch_norm_train_forward_numpy, "numba": batch_norm_train_forward_numba,
            "cupy": batch_norm_train_forward_cupy}
_RELU_FORWARD = {"numpy": batch_norm_relu_train_forward_numpy,
                 "numba": batch_norm_relu_train_forward_numba,
                 "cupy": batch_norm_relu_train_forward_cupy}
_BACKWARD = {"numpy": batch_norm_backward_numpy, "numba": batch_norm_backward_numba,
             "cupy": batch_norm_backward_cupy}
_RELU_BACKWARD = {"numpy": batch_norm_relu_backward_numpy, "numba": batch_norm_relu_backward_numba,
                  "cupy": batch_norm_relu_backward_cupy}


def _check_input(op, x):
    if x.ndim < 2:
        raise ValueError(f"{op}: x must be (N, C) or (N, C, *spatial), got shape {tuple(x.shape)}")
    check_float(op, "x", x)


def _check_channel_vector(op, name, vector, x):
    if vector is None:
        return
    check_shape(op, name, vector, (x.shape[1],))
    if vector.dtype != x.dtype:
        raise TypeError(f"{op}: {name} dtype {vector.dtype} differs from x dtype {x.dtype}")


def _check_forward(op, x, weight, bias, eps):
    _check_input(op, x)
    _check_channel_vector(op, "weight", weight, x)
    _check_channel_vector(op, "bias", bias, x)
    if not eps > 0:
        raise ValueError(f"{op}: eps must be positive, got {eps}")


def _check_backward(op, grad_y, x, mean, inv_std, weight, y=None):
    _check_input(op, x)
    check_shape(op, "grad_y", grad_y, x.shape)
    if y is not None:
        check_shape(op, "y", y, x.shape)
    for name, vector in (("mean", mean), ("inv_std", inv_std), ("weight", weight)):
        _check_channel_vector(op, name, vector, x)
    if grad_y.dtype != x.dtype:
        raise TypeError(f"{op}: grad_y dtype {grad_y.dtype} differs from x dtype {x.dtype}")


def batch_norm_train_forward(x, weight, bias, eps):
    """Training-mode batch norm of ``x`` (N, C, *). Returns ``(y, mean, var, inv_std)``:
    ``y`` like ``x``; ``mean``, biased ``var``, ``inv_std = 1/sqrt(var + eps)``: (C,)."""
    _check_forward("batch_norm", x, weight, bias, eps)
    return _FORWARD[backend.kernels_for(x)](x, weight, bias, float(eps))


def batch_norm_relu_train_forward(x, weight, bias, eps):
    """``relu(batch_norm(x))`` in one go. Returns ``(y, mean, var, inv_std)`` like
    :func:`batch_norm_train_forward`, with ``y`` the ReLU output."""
    _check_forward("batch_norm_relu", x, weight, bias, eps)
    return _RELU_FORWARD[backend.kernels_for(x)](x, weight, bias, float(eps))


def batch_norm_backward(grad_y, x, mean, inv_std, weight):
    """Gradient of training-mode batch norm. ``grad_y``, ``x``: (N, C, *); ``mean``,
    ``inv_std``: (C,) from the forward. Returns ``(grad_x, grad_weight, grad_bias)``."""
    _check_backward("batch_norm_backward", grad_y, x, mean, inv_std, weight)
    return _BACKWARD[backend.kernels_for(x)](grad_y, x, mean, inv_std, weight)


def batch_norm_relu_backward(grad_y, y, x, mean, inv_std, weight):
    """Gradient of ``relu(batch_norm(x))``; ``y`` is the forward's (ReLU) output, whose
    ``y > 0`` mask is applied in the same pass. Returns ``(grad_x, grad_weight, grad_bias)``."""
    _check_backward("batch_norm_relu_backward", grad_y, x, mean, inv_std, weight, y)
    return _RELU_BACKWARD[backend.kernels_for(x)](grad_y, y, x, mean, inv_std, weight)
