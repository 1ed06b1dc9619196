"""Differentiable operations, one `Function` each (``import tinyinception.functional as F``).

Argument names and defaults follow ``torch.nn.functional``.
"""
from .conv import conv2d
from .normalization import batch_norm, batch_norm_relu, local_response_norm, normalize
from .pooling import adaptive_avg_pool2d, avg_pool2d, global_avg_pool2d, max_pool2d
from .residual import residual_add
from .activation import log_softmax, relu, sigmoid, softmax, tanh
from .device import to_device
from .dropout import dropout
from .elementwise import add, cast, div, exp, log, mul, neg, pow, sqrt, sub
from .linalg import linear, matmul
from .loss import cross_entropy
from .reduction import argmax, max, mean, sum
from .shape import cat, concat, flatten, getitem, permute, reshape, transpose
from . import tensor_methods

tensor_methods.install()
