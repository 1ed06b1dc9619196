"""`SyncBatchNorm`: batch normalisation whose statistics are those of the whole batch, over every rank.

Plain BatchNorm under data parallelism normalises each rank's shard with the shard's own mean and variance. At a
per-rank batch of 4 or 8 those are noisy estimates, and training behaves like small-batch training (Inception's
BatchNorm was tuned at 32 per replica and more). SyncBatchNorm all-reduces, per channel, in float64:

    forward   S1 = sum x,  S2 = sum x^2,  M = count        mean = S1 / M,  var = S2 / M - mean^2   (biased)
    backward  Sg = sum g,  Sgx = sum g * x_hat                                  (g = dL/dy, x_hat = normalised x)
              grad_x = weight * inv_std * (g - Sg / M - x_hat * Sgx / M)

exactly the single-process formulas with the sums taken over all ranks: K ranks at batch B / K compute what one
process computes at batch B. ``grad_weight`` and ``grad_bias`` stay the rank's own sums (``sum g * x_hat``,
``sum g``); `DataParallel` averages them like every other gradient. Two small all-reduces per layer per direction
(2C + 1 and 2C numbers) on their own communicator, so they never interleave with the gradient buckets in flight.

In evaluation mode (running statistics) and in a world of one process it is plain BatchNorm.
"""
import numpy as np

from .. import backend
from .. import functional as F
from ..autograd import Function
from ..nn.normalization import _BatchNorm
from .world import World, get_world


class SyncBatchNormFunction(Function):
    """Training-mode batch norm (optionally followed by ReLU) with statistics summed over ``world``'s ranks."""

    fresh_gradients = True

    def forward(self, x, weight, bias, running_mean, running_var, momentum, eps, relu, world):
        xp = backend.get_array_module(x)
        channels = x.shape[1]
        x3 = x.reshape(x.shape[0], channels, -1)
        sums = xp.empty(2 * channels + 1, dtype=xp.float64)
        sums[:channels] = x3.sum(axis=(0, 2), dtype=xp.float64)
        x64 = x3.astype(xp.float64)
        sums[channels:2 * channels] = (x64 * x64).sum(axis=(0, 2))
        sums[-1] = x3.shape[0] * x3.shape[2]
        world.allreduce(sums, "SyncBatchNorm forward (sum and sum of squares)")
        count = float(sums[-1])
        mean64 = sums[:channels] / count
        var64 = xp.maximum(sums[channels:2 * channels] / count - mean64 * mean64, 0.0)
        mean, inv_std = mean64.astype(x.dtype), (1.0 / xp.sqrt(var64 + eps)).astype(x.dtype)
        scale = inv_std if weight is None else inv_std * weight
        y = (x3 - mean[:, None]) * scale[:, None]
        if bias is not None:
            y += bias[:, None]
        if relu:
            xp.maximum(y, 0, out=y)
        if running_mean is not None:
            _update_running_stats(running_mean, running_var, mean64, var64, count, momentum)
        self.x3, self.mean, self.inv_std, self.weight, self.world, self.count = x3, mean, inv_std, weight, world, count
        self.y = y if relu else None
        return y.reshape(x.shape)

    def backward(self, grad_output):
        xp = backend.get_array_module(grad_output)
        g = grad_output.reshape(self.x3.shape)
        if self.y is not None:
            g = g * (self.y > 0)
        channels = g.shape[1]
        x_hat = (self.x3 - self.mean[:, None]) * self.inv_std[:, None]
        local = xp.empty(2 * channels, dtype=xp.float64)
        local[:channels] = g.sum(axis=(0, 2), dtype=xp.float64)
        local[channels:] = (g * x_hat).sum(axis=(0, 2), dtype=xp.float64)
        total = self.world.allreduce(local.copy(), "SyncBatchNorm backward (gradient sums)")
        dtype = g.dtype
        scale = self.inv_std if self.weight is None else self.weight * self.inv_std
        grad_x = scale[:, None] * (g - (total[:channels] / self.count).astype(dtype)[:, None]
                                   - x_hat * (total[channels:] / self.count).astype(dtype)[:, None])
        grad_x = grad_x.reshape(grad_output.shape)
        if self.weight is None:
            return (grad_x,) + (None,) * 8
        return (grad_x, local[channels:].astype(dtype), local[:channels].astype(dtype)) + (None,) * 6


def _update_running_stats(running_mean, running_var, mean64, var64, count, momentum):
    """running = (1 - momentum) * running + momentum * batch, the variance unbiased (times M / (M - 1))."""
    unbiased = var64 * (count / max(count - 1.0, 1.0))
    m = running_mean.dtype.type(momentum)
    running_mean *= 1 - m
    running_mean += m * mean64.astype(running_mean.dtype)
    running_var *= 1 - m
    running_var += m * unbiased.astype(running_var.dtype)


def _raw(tensor):
    return None if tensor is None else tensor.data


class SyncBatchNorm(_BatchNorm):
    """BatchNorm over (N, C, *) whose training statistics are summed over every rank of ``world``.

    Same parameters, buffers and state_dict keys as BatchNorm1d/2d, so checkpoints move between the two. Build one
    from a network with ``SyncBatchNorm.convert_sync_batchnorm(model)``.
    """
    expected_ndim = (2, 3, 4, 5)

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 dtype=np.float32, world=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, dtype)
        object.__setattr__(self, "world", world)

    def _world(self):
        return self.world or get_world()

    def _forward(self, x, relu):
        world = self._world()
        x, running_mean, running_var, weight, bias, use_batch_stats, momentum, eps = self._arguments(x)
        if not (self.training and world.size > 1):
            plain = F.batch_norm_relu if relu else F.batch_norm
            return plain(x, running_mean, running_var, weight, bias, use_batch_stats, momentum, eps)
        return SyncBatchNormFunction.apply(x, weight, bias, _raw(running_mean), _raw(running_var), float(momentum),
                                           float(eps), bool(relu), _batchnorm_world(world))

    def forward(self, x):
        return self._forward(x, relu=False)

    def forward_relu(self, x):
        return self._forward(x, relu=True)

    @classmethod
    def convert_sync_batchnorm(cls, module, world=None):
        """Replace every BatchNorm1d/2d in ``module`` (or ``module`` itself) by a SyncBatchNorm that shares its
        parameters and buffers; returns the converted module (like ``torch.nn.SyncBatchNorm``'s)."""
        if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
            converted = cls(module.num_features, module.eps, module.momentum, module.affine,
                            module.track_running_stats, world=world)
            for name, value in module._parameters.items():
                converted._parameters[name] = value
            for name, value in module._buffers.items():
                converted._buffers[name] = value
            converted.training = module.training
            return converted
        for name, child in list(module._modules.items()):
            if child is not None:
                module._modules[name] = cls.convert_sync_batchnorm(child, world)
        return module


_batchnorm_worlds = {}


def _batchnorm_world(world):
    """A World on a duplicate of ``world``'s communicator, kept for SyncBatchNorm's all-reduces (created once, on
    every rank at the same first forward)."""
    key = id(world)
    if key not in _batchnorm_worlds:
        _batchnorm_worlds[key] = World(world.comm.Dup(), world.timeout)
    return _batchnorm_worlds[key]
