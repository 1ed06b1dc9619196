"""`Conv2d` with PyTorch's arguments, default initialisation and input checks."""
import math

import numpy as np

from .. import functional as F
from ..functional._windows import pair
from ..kernels import layout
from . import init
from .module import Module
from .parameter import Parameter


class Conv2d(Module):
    """in_channels -> out_channels; weight (out_channels, in_channels/groups, kh, kw), bias (out_channels,).

    Init as PyTorch: weight kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in)), bias the same bound.
    A k x k convolution computed as shifted products (`functional.conv.tap_products`) keeps its weight "tap-major"
    in memory (`tinyinception.kernels.layout`): the same (F, C, kh, kw) values, stored so that each kernel tap is
    one contiguous matrix.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, dtype=np.float32):
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv2d: in_channels {in_channels} and out_channels {out_channels} must be divisible "
                             f"by groups {groups}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = pair(kernel_size, "kernel_size", "Conv2d")
        self.stride, self.dilation = pair(stride, "stride", "Conv2d"), pair(dilation, "dilation", "Conv2d")
        self.padding = pair(padding, "padding", "Conv2d")
        weight_shape = (out_channels, in_channels // groups) + self.kernel_size
        if F.conv.tap_products(in_channels, self.kernel_size, self.stride, self.padding, self.dilation, groups):
            self.weight = Parameter(layout.empty_tap_major(weight_shape, dtype))
        else:
            self.weight = Parameter(np.empty(weight_shape, dtype=dtype))
        self.bias = Parameter(np.empty(out_channels, dtype=dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init.calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in)
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        if x.ndim != 4:
            raise ValueError(f"{self._name()} expects input (N, C, H, W), got shape {x.shape}")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"{self._name()} got input with {x.shape[1]} channels (shape {x.shape})")
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def _name(self):
        return f"Conv2d(in_channels={self.in_channels})"

    def extra_repr(self):
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        if self.dilation != (1, 1):
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        return text
