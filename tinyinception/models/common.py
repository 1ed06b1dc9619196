"""Pieces every Inception network shares: the Conv-BN-ReLU unit, width scaling and the input-size check."""

from .. import functional as F
from .. import nn
from ..nn.fold import conv_bn_relu


class BasicConv2d(nn.Module):
    """Conv2d(bias=False) -> BatchNorm2d(eps) -> ReLU, the unit of every Inception network since BN-Inception.

    Submodules are named ``conv`` and ``bn`` as in torchvision and timm, so state_dict keys read
    ``<unit>.conv.weight``, ``<unit>.bn.running_mean``. BatchNorm and ReLU run as one fused pass.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, eps=1e-3, **conv_kwargs):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False,
                              **conv_kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=eps)

    def forward(self, x):
        return conv_bn_relu(self.conv, self.bn, x)


class ConvReLU(nn.Module):
    """Conv2d(bias=True) -> ReLU: the unit of the original GoogLeNet paper (before BatchNorm existed)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=True)

    def forward(self, x):
        return F.relu(self.conv(x))


def scaled(channels, width):
    """Channel count scaled by the ``width`` multiplier: rounded, at least 8 (width 1.0 keeps the paper's count)."""
    if width == 1.0:
        return channels
    return max(8, int(round(channels * width)))


def scale_widths(widths, width):
    """A channel table row (ints or tuples of ints, by branch name) scaled by the width multiplier."""
    return {key: tuple(scaled(c, width) for c in value) if isinstance(value, tuple) else scaled(value, width)
            for key, value in widths.items()}


def check_input_size(network, x, min_size, channels=3):
    """Raise a clear error when ``x`` is not (N, channels, H, W) with H, W >= min_size."""
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"{network}: expected input (N, {channels}, H, W), got shape {x.shape}")
    if x.shape[2] < min_size or x.shape[3] < min_size:
        raise ValueError(f"{network}: input {x.shape[2]}x{x.shape[3]} is smaller than the smallest this network "
                         f"accepts, {min_size}x{min_size}")


def init_trunc_normal(model, std):
    """torchvision's init for GoogLeNet (std 0.01) and Inception-v3 (std 0.1): conv/linear weights ~ truncated
    normal in [-2, 2]; BatchNorm weight 1, bias 0."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(module.weight, mean=0.0, std=std, a=-2, b=2)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


