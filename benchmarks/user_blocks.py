"""Blocks as a user writes them from ``ti.nn`` layers (the way tutorial 04 teaches), for the blocks suite.

`UserInception` is GoogLeNet's inception (3a) (torchvision's layout: a 3x3 where the paper has a 5x5) built from
``Sequential(Conv2d, BatchNorm2d, ReLU)`` units and a forward that concatenates the branches. The blocks suite
times it as written, after ``ti.optimize``, and next to the same block from ``ti.models``.
"""
import tinyinception as ti
from tinyinception import nn


def unit(in_channels, out_channels, kernel_size, padding=0):
    """Conv2d(bias=False) -> BatchNorm2d(eps=1e-3) -> ReLU, as three layers."""
    return [nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, bias=False),
            nn.BatchNorm2d(out_channels, eps=1e-3), nn.ReLU()]


class UserInception(nn.Module):
    """x: (N, in_channels, H, W) -> (N, ch1x1 + ch3x3 + ch5x5 + pool_proj, H, W)."""

    def __init__(self, in_channels=192, ch1x1=64, ch3x3red=96, ch3x3=128, ch5x5red=16, ch5x5=32, pool_proj=32):
        super().__init__()
        self.branch_1x1 = nn.Sequential(*unit(in_channels, ch1x1, 1))
        self.branch_3x3 = nn.Sequential(*unit(in_channels, ch3x3red, 1), *unit(ch3x3red, ch3x3, 3, padding=1))
        self.branch_5x5 = nn.Sequential(*unit(in_channels, ch5x5red, 1), *unit(ch5x5red, ch5x5, 3, padding=1))
        self.branch_pool = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
                                         *unit(in_channels, pool_proj, 1))

    def forward(self, x):
        return ti.concat([self.branch_1x1(x), self.branch_3x3(x), self.branch_5x5(x), self.branch_pool(x)], dim=1)
