"""Inception-v4, Szegedy et al. 2016, "Inception-v4, Inception-ResNet and the Impact of Residual Connections on
Learning" (arXiv 1602.07261), numerically identical to timm's ``inception_v4`` (= Cadene's ``inceptionv4``, the
port of Google's TF-slim model).

A block class per figure of the paper: ``Stem`` (Figure 3), ``InceptionA`` (Figure 4), ``ReductionA`` (Figure 7,
with k, l, m, n = 192, 224, 256, 384), ``InceptionB`` (Figure 5), ``ReductionB`` (Figure 8), ``InceptionC``
(Figure 6). The reference keeps everything in one ``nn.Sequential`` (state_dict keys ``features.0`` ..
``features.21``, ``features.6.branch1.0.conv.weight``); here every block and branch has a readable name
(``inception_a1.branch3x3_1.conv.weight``) and `tinyinception.interop.inception_v4` maps the two.

Details that decide numerical parity with the reference:

* every convolution is Conv2d(bias=False) -> BatchNorm2d(eps=0.001) -> ReLU;
* "V" (valid) convolutions have padding 0, stride-2 convolutions and max pools (3x3) are all valid;
* the pool branches of blocks A, B, C average over 3x3 (stride 1, pad 1) with ``count_include_pad=False``
  (TensorFlow's SAME pooling: border outputs divide by the 4 or 6 real pixels, not 9);
* in ``mixed_3a`` the max pool comes first in the concatenation, in ``mixed_5a`` the convolution does;
* in ``InceptionC`` the double branch is 1x1 -> 3x1 -> 1x3, then 1x3 and 3x1 side by side;
* head: global average pool -> dropout (timm's ``drop_rate``, default 0; the paper keeps 0.8) -> linear ``fc``
  (the reference's ``last_linear``). No auxiliary classifier (TF-slim has one; timm and Cadene do not).

Shapes at 299x299: stem 384x35x35 -> 4x InceptionA 384x35x35 -> ReductionA 1024x17x17 -> 7x InceptionB
1024x17x17 -> ReductionB 1536x8x8 -> 3x InceptionC 1536x8x8 -> pool 1536 -> fc. 42,679,816 parameters
(1000 classes); 12.25 G multiply-adds (timm reports 12.28 G, also counting BatchNorm and pooling). Smallest
input 75x75.

``small_input=True`` (32x32 images): the stem's three convolutions run at stride 1 with padding 1, ``mixed_3a``
halves with padding 1 (32 -> 16), ``mixed_4a``'s 3x3 convolutions are padded and ``mixed_5a`` runs at stride 1
with padding 1, so 32x32 reaches the 35x35-grid blocks at 16x16, the 17x17-grid blocks at 7x7 and the 8x8-grid
blocks at 3x3 (blocks unchanged, parameter shapes as at full size). Smallest input 13x13.
"""
from .. import functional as F
from .. import nn
from ..nn.fused import stacked_pointwise
from .common import BasicConv2d, check_input_size, scale_widths
from .inception_v3 import InceptionC as _InceptionV3C
from .inception_v3 import InceptionD as _InceptionV3D
from .registry import build, register

# The stem (paper Figure 3): output channels of each layer.
STEM_WIDTHS = dict(conv=(32, 32, 64), mixed_3a=96, mixed_4a_branch3x3=(64, 96), mixed_4a_branch7x7x3=(64, 64, 64, 96),
                   mixed_5a=192)

# The body: (name, block class name, how many in a row, output channels of each layer of each branch). Repeated
# blocks are named name1, name2, ... . A tuple lists a branch's layers first to last (kernels in the docstrings).
INCEPTION_V4_BLOCKS = [
    ("inception_a", "InceptionA", 4, dict(branch1x1=96, branch3x3=(64, 96), branch3x3dbl=(64, 96, 96),
                                          branch_pool=96)),
    ("reduction_a", "ReductionA", 1, dict(branch3x3=384, branch3x3dbl=(192, 224, 256))),  # n; k, l, m
    ("inception_b", "InceptionB", 7, dict(branch1x1=384, branch7x7=(192, 224, 256),
                                          branch7x7dbl=(192, 192, 224, 224, 256), branch_pool=128)),
    ("reduction_b", "ReductionB", 1, dict(branch3x3=(192, 192), branch7x7x3=(256, 256, 320, 320))),
    ("inception_c", "InceptionC", 3, dict(branch1x1=256, branch3x3=(384, 256), branch3x3dbl=(384, 448, 512, 256),
                                          branch_pool=256)),
]


# The pool branches' 3x3 stride-1 average pool over real pixels only (TensorFlow's SAME pooling), as
# F.avg_pool2d's arguments
POOL_3X3 = dict(kernel_size=3, stride=1, padding=1, count_include_pad=False)


class Mixed3a(nn.Module):
    """Stem part 1 (Figure 3): [3x3 max pool stride 2 ‖ ``branch3x3`` 3x3 conv stride 2], pool first.
    x: (N, C, H, W) -> (N, C + branch3x3, H', W') with H' = (H + 2 padding - 3) // 2 + 1."""

    def __init__(self, in_channels, branch3x3, padding=0):
        super().__init__()
        self.padding = padding
        self.branch3x3 = BasicConv2d(in_channels, branch3x3, 3, stride=2, padding=padding)
        self.out_channels = in_channels + branch3x3

    def forward(self, x):
        branch_pool = F.max_pool2d(x, kernel_size=3, stride=2, padding=self.padding)
        return F.concat([branch_pool, self.branch3x3(x)], dim=1)


class Mixed4a(nn.Module):
    """Stem part 2 (Figure 3). x: (N, C, H, W) -> (N, branch3x3[-1] + branch7x7x3[-1], H - 2, W - 2) (padding 0).

    * ``branch3x3_1``, ``_2``: 1x1, 3x3 valid
    * ``branch7x7x3_1`` .. ``_4``: 1x1, 1x7 pad (0, 3), 7x1 pad (3, 0), 3x3 valid
    """

    def __init__(self, in_channels, branch3x3, branch7x7x3, padding=0):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, branch3x3[0], 1)
        self.branch3x3_2 = BasicConv2d(branch3x3[0], branch3x3[1], 3, padding=padding)
        self.branch7x7x3_1 = BasicConv2d(in_channels, branch7x7x3[0], 1)
        self.branch7x7x3_2 = BasicConv2d(branch7x7x3[0], branch7x7x3[1], (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(branch7x7x3[1], branch7x7x3[2], (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(branch7x7x3[2], branch7x7x3[3], 3, padding=padding)
        self.out_channels = branch3x3[1] + branch7x7x3[3]

    def forward(self, x):
        reduced_3x3, branch7x7x3 = stacked_pointwise(x, [self.branch3x3_1, self.branch7x7x3_1])  # one product
        branch3x3 = self.branch3x3_2(reduced_3x3)
        for layer in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            branch7x7x3 = layer(branch7x7x3)
        return F.concat([branch3x3, branch7x7x3], dim=1)


class Mixed5a(nn.Module):
    """Stem part 3 (Figure 3): [``branch3x3`` 3x3 conv ‖ 3x3 max pool], convolution first; stride 2 valid
    (stride 1 pad 1 for small_input). x: (N, C, H, W) -> (N, branch3x3 + C, H', W')."""

    def __init__(self, in_channels, branch3x3, stride=2, padding=0):
        super().__init__()
        self.stride, self.padding = stride, padding
        self.branch3x3 = BasicConv2d(in_channels, branch3x3, 3, stride=stride, padding=padding)
        self.out_channels = branch3x3 + in_channels

    def forward(self, x):
        branch_pool = F.max_pool2d(x, kernel_size=3, stride=self.stride, padding=self.padding)
        return F.concat([self.branch3x3(x), branch_pool], dim=1)


class Stem(nn.Module):
    """The Inception-v4 stem (paper Figure 3). x: (N, 3, 299, 299) -> (N, 384, 35, 35).

    ``conv2d_1a_3x3`` 3x3 stride 2 -> 32x149x149, ``conv2d_2a_3x3`` 3x3 -> 32x147x147, ``conv2d_2b_3x3`` 3x3 pad 1
    -> 64x147x147, ``mixed_3a`` -> 160x73x73, ``mixed_4a`` -> 192x71x71, ``mixed_5a`` -> 384x35x35.
    ``small_input``: (N, 3, 32, 32) -> (N, 384, 16, 16) (module docstring).
    """

    def __init__(self, in_channels, conv, mixed_3a, mixed_4a_branch3x3, mixed_4a_branch7x7x3, mixed_5a,
                 small_input=False):
        super().__init__()
        first_stride, pad = (1, 1) if small_input else (2, 0)
        self.conv2d_1a_3x3 = BasicConv2d(in_channels, conv[0], 3, stride=first_stride, padding=pad)
        self.conv2d_2a_3x3 = BasicConv2d(conv[0], conv[1], 3, padding=pad)
        self.conv2d_2b_3x3 = BasicConv2d(conv[1], conv[2], 3, padding=1)
        self.mixed_3a = Mixed3a(conv[2], mixed_3a, padding=pad)
        self.mixed_4a = Mixed4a(self.mixed_3a.out_channels, mixed_4a_branch3x3, mixed_4a_branch7x7x3, padding=pad)
        self.mixed_5a = Mixed5a(self.mixed_4a.out_channels, mixed_5a, stride=first_stride, padding=pad)
        self.out_channels = self.mixed_5a.out_channels

    def forward(self, x):
        for layer in (self.conv2d_1a_3x3, self.conv2d_2a_3x3, self.conv2d_2b_3x3, self.mixed_3a, self.mixed_4a,
                      self.mixed_5a):
            x = layer(x)
        return x


class InceptionA(nn.Module):
    """35x35 block (paper Figure 4). x: (N, C, H, W) -> (N, out_channels, H, W).

    * ``branch1x1``: 1x1
    * ``branch3x3_1``, ``_2``: 1x1, 3x3 pad 1
    * ``branch3x3dbl_1`` .. ``_3``: 1x1, 3x3 pad 1, 3x3 pad 1 (two 3x3 in place of a 5x5)
    * ``branch_pool``: 3x3 average pool (padding not counted), 1x1
    """

    def __init__(self, in_channels, branch1x1, branch3x3, branch3x3dbl, branch_pool):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, branch1x1, 1)
        self.branch3x3_1 = BasicConv2d(in_channels, branch3x3[0], 1)
        self.branch3x3_2 = BasicConv2d(branch3x3[0], branch3x3[1], 3, padding=1)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, branch3x3dbl[0], 1)
        self.branch3x3dbl_2 = BasicConv2d(branch3x3dbl[0], branch3x3dbl[1], 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(branch3x3dbl[1], branch3x3dbl[2], 3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, branch_pool, 1)
        self.out_channels = branch1x1 + branch3x3[1] + branch3x3dbl[2] + branch_pool

    def forward(self, x):
        # the four 1x1 convolutions on x run as one matrix product, the pool branch's pool after its 1x1 (same
        # result as the branches as written, within float32 rounding; see tinyinception.nn.fused)
        branch1x1, reduced_3x3, reduced_dbl, branch_pool = stacked_pointwise(
            x, [self.branch1x1, self.branch3x3_1, self.branch3x3dbl_1], self.branch_pool, POOL_3X3)
        branch3x3 = self.branch3x3_2(reduced_3x3)
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(reduced_dbl))
        return F.concat([branch1x1, branch3x3, branch3x3dbl, branch_pool], dim=1)


class ReductionA(nn.Module):
    """35x35 -> 17x17 (paper Figure 7; k, l, m, n = branch3x3dbl and branch3x3).
    x: (N, C, H, W) -> (N, branch3x3 + branch3x3dbl[-1] + C, (H-3)//2+1, same).

    * ``branch3x3``: 3x3 stride 2 (n)
    * ``branch3x3dbl_1`` .. ``_3``: 1x1 (k), 3x3 pad 1 (l), 3x3 stride 2 (m)
    * pool: 3x3 max pool stride 2
    """

    def __init__(self, in_channels, branch3x3, branch3x3dbl):
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, branch3x3, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, branch3x3dbl[0], 1)
        self.branch3x3dbl_2 = BasicConv2d(branch3x3dbl[0], branch3x3dbl[1], 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(branch3x3dbl[1], branch3x3dbl[2], 3, stride=2)
        self.out_channels = branch3x3 + branch3x3dbl[2] + in_channels

    def forward(self, x):
        branch3x3 = self.branch3x3(x)
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        branch_pool = F.max_pool2d(x, kernel_size=3, stride=2)
        return F.concat([branch3x3, branch3x3dbl, branch_pool], dim=1)


class InceptionB(_InceptionV3C):
    """17x17 block (paper Figure 5): 7x7 factorised into 1x7 and 7x1. x: (N, C, H, W) -> (N, out_channels, H, W).

    The same branches as Inception-v3's InceptionC (`tinyinception.models.inception_v3`):

    * ``branch1x1``: 1x1
    * ``branch7x7_1`` .. ``_3``: 1x1, 1x7 pad (0, 3), 7x1 pad (3, 0)
    * ``branch7x7dbl_1`` .. ``_5``: 1x1, 7x1, 1x7, 7x1, 1x7
    * ``branch_pool``: 3x3 average pool with padding NOT counted (TF-slim's SAME pooling), 1x1
    """

    pool_count_include_pad = False


class ReductionB(_InceptionV3D):
    """17x17 -> 8x8 (paper Figure 8), the same branches as Inception-v3's grid reduction InceptionD.
    x: (N, C, H, W) -> (N, branch3x3[-1] + branch7x7x3[-1] + C, (H-3)//2+1, same).

    * ``branch3x3_1``, ``_2``: 1x1, 3x3 stride 2
    * ``branch7x7x3_1`` .. ``_4``: 1x1, 1x7 pad (0, 3), 7x1 pad (3, 0), 3x3 stride 2
    * pool: 3x3 max pool stride 2
    """


class InceptionC(nn.Module):
    """8x8 block (paper Figure 6): expanded filter banks, 1x3 and 3x1 side by side.
    x: (N, C, H, W) -> (N, out_channels, H, W).

    * ``branch1x1``: 1x1
    * ``branch3x3_1`` 1x1, then ``branch3x3_2a`` 1x3 pad (0, 1) and ``branch3x3_2b`` 3x1 pad (1, 0) concatenated
    * ``branch3x3dbl_1`` 1x1, ``_2`` 3x1, ``_3`` 1x3, then ``_4a`` 1x3 and ``_4b`` 3x1 concatenated
    * ``branch_pool``: 3x3 average pool (padding not counted), 1x1
    """

    def __init__(self, in_channels, branch1x1, branch3x3, branch3x3dbl, branch_pool):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, branch1x1, 1)
        self.branch3x3_1 = BasicConv2d(in_channels, branch3x3[0], 1)
        self.branch3x3_2a = BasicConv2d(branch3x3[0], branch3x3[1], (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(branch3x3[0], branch3x3[1], (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, branch3x3dbl[0], 1)
        self.branch3x3dbl_2 = BasicConv2d(branch3x3dbl[0], branch3x3dbl[1], (3, 1), padding=(1, 0))
        self.branch3x3dbl_3 = BasicConv2d(branch3x3dbl[1], branch3x3dbl[2], (1, 3), padding=(0, 1))
        self.branch3x3dbl_4a = BasicConv2d(branch3x3dbl[2], branch3x3dbl[3], (1, 3), padding=(0, 1))
        self.branch3x3dbl_4b = BasicConv2d(branch3x3dbl[2], branch3x3dbl[3], (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, branch_pool, 1)
        self.out_channels = branch1x1 + 2 * branch3x3[1] + 2 * branch3x3dbl[3] + branch_pool

    def forward(self, x):
        branch1x1, reduced, reduced_dbl, branch_pool = stacked_pointwise(  # the 1x1s on x as one product
            x, [self.branch1x1, self.branch3x3_1, self.branch3x3dbl_1], self.branch_pool, POOL_3X3)
        branch3x3 = F.concat([self.branch3x3_2a(reduced), self.branch3x3_2b(reduced)], dim=1)
        reduced_dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(reduced_dbl))
        branch3x3dbl = F.concat([self.branch3x3dbl_4a(reduced_dbl), self.branch3x3dbl_4b(reduced_dbl)], dim=1)
        return F.concat([branch1x1, branch3x3, branch3x3dbl, branch_pool], dim=1)


_BLOCK_CLASSES = {cls.__name__: cls for cls in (InceptionA, ReductionA, InceptionB, ReductionB, InceptionC)}


def block_names():
    """The body's module names in order, as INCEPTION_V4_BLOCKS names them (inception_a1 .. inception_c3)."""
    names = []
    for name, _, count, _ in INCEPTION_V4_BLOCKS:
        names += [name] if count == 1 else [f"{name}{i}" for i in range(1, count + 1)]
    return names


class InceptionV4(nn.Module):
    """Inception-v4; see the module docstring. x: (N, 3, H, W), H, W >= ``min_size`` -> logits (N, num_classes)."""

    def __init__(self, num_classes=1000, width=1.0, small_input=False, dropout=0.0):
        super().__init__()
        self.small_input = small_input
        self.min_size = 13 if small_input else 75
        self.stem = Stem(3, **scale_widths(STEM_WIDTHS, width), small_input=small_input)
        channels = self.stem.out_channels
        self.block_names = block_names()
        names = iter(self.block_names)
        for _, block_name, count, widths in INCEPTION_V4_BLOCKS:
            for _ in range(count):
                block = _BLOCK_CLASSES[block_name](channels, **scale_widths(widths, width))
                setattr(self, next(names), block)
                channels = block.out_channels
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x):
        check_input_size("inception_v4" + (" (small_input)" if self.small_input else ""), x, self.min_size)
        x = self.stem(x)
        for name in self.block_names:
            x = getattr(self, name)(x)
        return self.fc(self.dropout(F.global_avg_pool2d(x)))


@register("inception_v4")
def inception_v4(num_classes=1000, width=1.0, small_input=False, dropout=0.0, weights=None):
    """Inception-v4 as timm builds it: 42,679,816 parameters at 1000 classes. Init: PyTorch's defaults (timm
    keeps them). ``width`` scales every channel count (at least 8 each); ``small_input`` adapts the stem to 32x32
    images; ``dropout`` before the classifier (timm's ``drop_rate``, default 0). ``weights``: a published tag
    (``list_weights("inception_v4")``) or the path of a .pth/.pt/.safetensors file with timm's keys."""
    return build("inception_v4", InceptionV4, weights, dict(num_classes=num_classes, width=width,
                                                            small_input=small_input, dropout=dropout))
