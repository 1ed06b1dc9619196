"""Normalisation: batch_norm (optionally fused with the ReLU that follows it) and local_response_norm.

BatchNorm, PyTorch's semantics: training normalises with the batch mean and BIASED variance and updates the running
statistics with the UNBIASED variance, ``running = (1 - momentum) * running + momentum * batch``; evaluation uses the
running statistics. Works for (N, C) and (N, C, H, W).
"""
from ..autograd import Function, Tensor
from .. import backend, kernels


def _raw(value):
    return value.data if isinstance(value, Tensor) else value


class BatchNorm(Function):
    """y = weight * (x - mean) / sqrt(var + eps) + bias, then ReLU when ``relu`` (the Conv-BN-ReLU unit)."""

    fresh_gradients = True  # every gradient is a new array (see Function)

    def forward(self, x, weight, bias, running_mean, running_var, training, momentum, eps, relu):
        self.training, self.relu, self.has_weight = training, relu, weight is not None
        self.empty = training and x.size == 0  # an empty batch: nothing to normalise, the running statistics stay
        if self.empty:
            self.x_shape = x.shape
            return backend.get_array_module(x).empty_like(x)
        if training:
            forward = kernels.batch_norm_relu_train_forward if relu else kernels.batch_norm_train_forward
            y, mean, var, inv_std = forward(x, weight, bias, eps)
            if running_mean is not None:
                _update_running_stats(running_mean, running_var, mean, var, x, momentum)
        else:
            xp = backend.get_array_module(x)
            mean, inv_std = running_mean, (1 / xp.sqrt(running_var + x.dtype.type(eps))).astype(x.dtype)
            scale = inv_std if weight is None else inv_std * weight
            shift = -mean * scale if bias is None else bias - mean * scale
            shape = (1, -1) + (1,) * (x.ndim - 2)
            y = x * scale.reshape(shape) + shift.reshape(shape)
            if relu:
                xp.maximum(y, 0, out=y)
            self.scale, self.shape = scale, shape
        self.x, self.weight, self.mean, self.inv_std = x, weight, mean, inv_std
        self.y = y if relu else None
        return y

    def backward(self, grad_output):
        if self.empty:
            xp = backend.get_array_module(grad_output)
            shapes = (self.x_shape, self.x_shape[1:2], self.x_shape[1:2])  # x, weight, bias
            return tuple(xp.zeros(shape, grad_output.dtype) if needed else None
                         for shape, needed in zip(shapes, self.needs_input_grad[:3])) + (None,) * 6
        if self.training:
            if self.relu:
                grads = kernels.batch_norm_relu_backward(grad_output, self.y, self.x, self.mean, self.inv_std,
                                                         self.weight)
            else:
                grads = kernels.batch_norm_backward(grad_output, self.x, self.mean, self.inv_std, self.weight)
            grad_x, grad_weight, grad_bias = grads
        else:
            grad_x, grad_weight, grad_bias = self._eval_backward(grad_output)
        return (grad_x, grad_weight, grad_bias) + (None,) * 6

    def _eval_backward(self, grad_output):
        """With fixed statistics the layer is affine per channel: y = x * scale + shift."""
        if self.relu:  # no gradient where the output is <= 0; a NaN output passes it, as torch.relu's
            grad_output = backend.get_array_module(grad_output).where(self.y <= 0, grad_output.dtype.type(0),
                                                                       grad_output)
        grad_x = grad_output * self.scale.reshape(self.shape)
        reduce_axes = (0,) + tuple(range(2, grad_output.ndim))
        grad_bias = grad_output.sum(axis=reduce_axes) if self.needs_input_grad[2] else None
        grad_weight = None
        if self.needs_input_grad[1]:
            # sum(g * (x - mean)) * inv_std, scaled after the sum as PyTorch does (x_hat of an input near float32's
            # max would overflow before a small gradient brings it back)
            centred = self.x - self.mean.reshape(self.shape)
            grad_weight = (grad_output * centred).sum(axis=reduce_axes) * self.inv_std
        return grad_x, grad_weight, grad_bias


def _update_running_stats(running_mean, running_var, mean, var, x, momentum):
    """In place: running = (1 - momentum) * running + momentum * batch (the variance unbiased: var * n/(n-1))."""
    count = x.size // x.shape[1]
    unbiased = var * var.dtype.type(count / max(count - 1, 1))
    m = running_mean.dtype.type(momentum)
    running_mean *= 1 - m
    running_mean += m * mean.astype(running_mean.dtype)
    running_var *= 1 - m
    running_var += m * unbiased.astype(running_var.dtype)


def _check_batch_norm(x, running_mean, running_var, weight, bias, training, op):
    if x.ndim < 2:
        raise ValueError(f"{op}: expected input of shape (N, C) or (N, C, H, W), got {x.shape}")
    channels = x.shape[1]
    for name, value in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight),
                        ("bias", bias)):
        if value is not None and tuple(value.shape) != (channels,):
            raise ValueError(f"{op}: input has {channels} channels (shape {x.shape}) but {name} has shape "
                             f"{tuple(value.shape)}")
    for name, value in (("running_mean", running_mean), ("running_var", running_var)):
        if value is not None and value.dtype.kind != "f":  # an integer array could not take the update in place
            raise TypeError(f"{op}: {name} must hold floating-point values, got dtype {value.dtype}")
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: input must be a floating-point tensor, got dtype {x.dtype}")
    if training and channels and x.numel() == channels:  # one value per channel (none is an empty batch)
        raise ValueError(f"{op}: expected more than 1 value per channel when training, got input of shape {x.shape}")
    if not training and (running_mean is None or running_var is None):
        raise ValueError(f"{op}: evaluation needs running_mean and running_var")


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """``torch.nn.functional.batch_norm``; running_mean/running_var (C,) arrays or tensors, updated in place when
    training (pass None to use batch statistics only)."""
    return _batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps, relu=False,
                       op="batch_norm")


def batch_norm_relu(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1,
                    eps=1e-5):
    """``relu(batch_norm(...))`` in one pass over the data (the Inception networks' Conv-BN-ReLU unit)."""
    return _batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps, relu=True,
                       op="batch_norm_relu")


def _batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps, relu, op):
    running_mean, running_var = _raw(running_mean), _raw(running_var)
    _check_batch_norm(input, running_mean, running_var, weight, bias, training, op)
    return BatchNorm.apply(input, weight, bias, running_mean, running_var, bool(training), float(momentum),
                           float(eps), relu)


# ---------------------------------------------------------------------------------------------------------------
# Local response normalisation (GoogLeNet as published)
# ---------------------------------------------------------------------------------------------------------------
def _channel_window_sum(a, before, after):
    """s[:, c] = sum of a[:, c - before .. c + after] over channels, zero beyond the edges: one shifted add per
    offset, so each sum holds only its window's values (a running cumulative sum would carry every earlier
    channel's rounding, and a NaN or inf, into every later channel)."""
    channels = a.shape[1]
    total = a.copy()
    for shift in range(1, max(before, after) + 1):
        if shift >= channels:
            break
        if shift <= before:  # channel c - shift into c
            total[:, shift:] += a[:, :channels - shift]
        if shift <= after:  # channel c + shift into c
            total[:, :channels - shift] += a[:, shift:]
    return total


class LocalResponseNorm(Function):
    """y_c = x_c / (k + alpha/size * sum_{c' near c} x_{c'}^2) ** beta, the neighbourhood being channels
    c - size//2 .. c + (size-1)//2 (PyTorch's convention)."""

    def forward(self, x, size, alpha, beta, k):
        self.before, self.after = size // 2, (size - 1) // 2
        dtype = x.dtype.type
        self.coefficient = dtype(alpha / size)
        self.scale = dtype(k) + self.coefficient * _channel_window_sum(x * x, self.before, self.after)
        self.x, self.beta = x, dtype(beta)
        self.y = x * self.scale ** -self.beta
        return self.y

    def backward(self, grad_output):
        # d y_c / d x_j = [c == j] s_c^-beta - 2 beta (alpha/size) x_c x_j s_c^(-beta-1) for j in window(c)
        ratio = grad_output * self.y / self.scale  # g_c x_c s_c^(-beta-1)
        gathered = _channel_window_sum(ratio, self.after, self.before)  # sum over c whose window contains j
        grad_x = grad_output * self.scale ** -self.beta - 2 * self.beta * self.coefficient * self.x * gathered
        return grad_x, None, None, None, None


def local_response_norm(input, size, alpha=1e-4, beta=0.75, k=1.0):
    """``torch.nn.functional.local_response_norm`` across channels of (N, C, ...)."""
    if input.ndim < 3:
        raise ValueError(f"local_response_norm: expected input with at least 3 dimensions (N, C, ...), "
                         f"got {input.shape}")
    if size < 1:
        raise ValueError(f"local_response_norm: size must be positive, got {size}")
    if input.dtype.kind != "f":
        raise TypeError(f"local_response_norm: input must be a floating-point tensor, got dtype {input.dtype}")
    return LocalResponseNorm.apply(input, int(size), float(alpha), float(beta), float(k))


class Normalize(Function):
    """y = x / max(||x||_p, eps), the norm taken along ``dim`` (kept for broadcasting).

    Backward, with s = sum(grad * x) along dim and d = max(||x||_p, eps):
    grad_x = grad / d - [||x||_p > eps] * s / d^2 * sign(x) |x|^(p-1) / ||x||_p^(p-1)
    (the second term is the norm's own gradient; below eps the denominator is the constant eps).
    """

    def forward(self, x, p, dim, eps):
        xp = backend.get_array_module(x)
        self.x, self.p, self.dim = x, x.dtype.type(p), dim
        self.norm = (xp.abs(x) ** self.p).sum(axis=dim, keepdims=True) ** (1 / self.p)
        self.denominator = xp.maximum(self.norm, x.dtype.type(eps))
        return x / self.denominator

    def backward(self, grad_output):
        xp = backend.get_array_module(grad_output)
        x, p, norm, denominator = self.x, self.p, self.norm, self.denominator
        projection = (grad_output * x).sum(axis=self.dim, keepdims=True)
        safe_norm = xp.where(norm > 0, norm, 1).astype(x.dtype)
        norm_grad = xp.sign(x) * xp.abs(x) ** (p - 1) / safe_norm ** (p - 1)  # d ||x||_p / dx
        active = (norm >= denominator).astype(x.dtype)  # 1 where the norm, not eps, is the denominator
        return grad_output / denominator - active * projection / denominator ** 2 * norm_grad, None, None, None


def normalize(input, p=2.0, dim=1, eps=1e-12):
    """``torch.nn.functional.normalize``: input / max(||input||_p, eps) along ``dim`` (p > 0, any dim).

    Inception-ResNet-v1's face embedding (facenet) is ``normalize(embedding, p=2, dim=1)``.
    """
    if not isinstance(input, Tensor):
        raise TypeError(f"normalize: input must be a Tensor, got {type(input).__name__}")
    if p <= 0:
        raise ValueError(f"normalize: p must be positive, got {p}")
    if not -input.ndim <= dim < input.ndim:
        raise IndexError(f"normalize: dim {dim} is out of range for an input of shape {input.shape}")
    return Normalize.apply(input, float(p), dim % input.ndim, float(eps))
