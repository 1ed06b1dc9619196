"""The hot loops: im2col/col2im, pooling, batch norm, ReLU and the residual add, in NumPy, Numba and CuPy.

Kernels take and return arrays and know nothing about autograd. Each family lives in one file
with its NumPy reference (``*_numpy``), Numba version (``*_numba``) and CuPy version (``*_cupy``)
side by side; the functions exported here pick one by ``tinyinception.backend.kernels_for``.

The CPU fast path of the convolution has modules of its own, used by `tinyinception.functional.conv`:
``shifted_conv`` and ``strided_conv`` (convolution as shifted per-tap products, no im2col), ``chunked_im2col``
(the few-channel stem: im2col and its product in cache-sized chunks), ``winograd``
(Winograd's F(2x2, 3x3)), ``blocked_weight_grad``, ``blas`` (direct BLAS calls), ``threaded_blas`` (products on
Numba's threads), ``layout`` (channel-major activations, tap-major weights), ``workspace`` (reusable scratch
buffers) and ``pairs`` (two float32 values per 8-byte store in the transposing copies).
"""
from .activation import relu_backward, relu_forward
from .batchnorm import (
    batch_norm_backward,
    batch_norm_relu_backward,
    batch_norm_relu_train_forward,
    batch_norm_train_forward,
)
from .im2col import col2im, col2im_channel_major, im2col, im2col_channel_major
from . import layout
from .pooling import (
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)
from .residual import residual_relu_backward, residual_relu_forward

__all__ = [
    "im2col", "col2im", "im2col_channel_major", "col2im_channel_major", "layout",
    "max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward",
    "batch_norm_train_forward", "batch_norm_backward",
    "batch_norm_relu_train_forward", "batch_norm_relu_backward", "relu_forward", "relu_backward",
    "residual_relu_forward", "residual_relu_backward",
]
