"""Inception-v3, Szegedy et al. 2015, "Rethinking the Inception Architecture for Computer Vision"
(arXiv 1512.00567), built exactly as torchvision's ``inception_v3`` (the port of Google's TensorFlow model).

Every module carries torchvision's name (``Conv2d_1a_3x3``, ``Mixed_5b.branch5x5_1``, ``AuxLogits.fc``), so
torchvision and timm state_dicts load by name (``ti.interop``, an identity table).

The paper's ideas, block by block (section numbers of the paper):

* factorise big filters into small ones (section 3.1): the 35x35 blocks (``InceptionA``) replace GoogLeNet's
  5x5 by two stacked 3x3 (``branch3x3dbl``); the TensorFlow code kept one real 5x5 branch too (``branch5x5``).
* factorise n x n into 1 x n followed by n x 1 (section 3.2): the 17x17 blocks (``InceptionC``) use 1x7 and 7x1.
* expanded filter banks on the coarsest grid (``InceptionE``, paper Figure 7): 1x3 and 3x1 side by side.
* efficient grid reduction (section 5, Figure 10): stride-2 convolutions in parallel with a stride-2 pool
  (``InceptionB`` 35 -> 17, ``InceptionD`` 17 -> 8).
* one auxiliary classifier on the 17x17 grid (section 4), batch-normalised, used in training only.

Shapes at 299x299: stem 192x35x35 -> Mixed_5b 256 -> 5c 288 -> 5d 288x35x35 -> Mixed_6a 768x17x17 -> 6b..6e
768x17x17 (AuxLogits reads 6e) -> Mixed_7a 1280x8x8 -> 7b 2048 -> 7c 2048x8x8 -> global average pool 2048 ->
dropout -> fc. Parameters: 27,161,264 with the aux head, 23,834,568 without; 5.713 G multiply-adds (eval).

Smallest input: 75x75 in eval mode (torchvision's min_size); in training mode the aux head needs Mixed_6e to be
at least 17x17, i.e. a 299x299 input.

``small_input=True`` (32x32 images, e.g. CIFAR): the stem's convolutions become stride 1 with padding 1 and only
maxpool1 (3x3 stride 2, padding 1) downsamples, so 32x32 reaches the 35x35-grid blocks at 16x16, the 17x17-grid
blocks at 7x7 and the 8x8-grid blocks at 3x3 (every block unchanged). The aux head then pools adaptively to 5x5
(instead of a 5x5 stride-3 average pool that needs 17x17) so its 5x5 convolution still sees a 5x5 map. Smallest
input 13x13. Parameter shapes are the same as at full size.
"""
from collections import namedtuple

import numpy as np

from .. import backend
from .. import functional as F
from .. import nn
from ..nn.fused import stacked_pointwise
from .common import BasicConv2d, check_input_size, init_trunc_normal, scale_widths, scaled
from .registry import build, register

InceptionOutputs = namedtuple("InceptionOutputs", ["logits", "aux_logits"])
InceptionOutputs.__doc__ = "Train-mode output with the aux head, torchvision's order: (logits, aux_logits)."

# The stem (paper Table 1, TensorFlow's widths): (name, out_channels, kernel, stride, padding) for a BasicConv2d,
# or (name, "maxpool", kernel, stride, padding). Output sizes are for a 299x299 input.
STEM = [
    ("Conv2d_1a_3x3", 32, 3, 2, 0),         # 32x149x149
    ("Conv2d_2a_3x3", 32, 3, 1, 0),         # 32x147x147
    ("Conv2d_2b_3x3", 64, 3, 1, 1),         # 64x147x147
    ("maxpool1", "maxpool", 3, 2, 0),       # 64x73x73
    ("Conv2d_3b_1x1", 80, 1, 1, 0),         # 80x73x73
    ("Conv2d_4a_3x3", 192, 3, 1, 0),        # 192x71x71
    ("maxpool2", "maxpool", 3, 2, 0),       # 192x35x35
]
# small_input: output sizes for a 32x32 input.
SMALL_INPUT_STEM = [
    ("Conv2d_1a_3x3", 32, 3, 1, 1),         # 32x32x32
    ("Conv2d_2a_3x3", 32, 3, 1, 1),         # 32x32x32
    ("Conv2d_2b_3x3", 64, 3, 1, 1),         # 64x32x32
    ("maxpool1", "maxpool", 3, 2, 1),       # 64x16x16
    ("Conv2d_3b_1x1", 80, 1, 1, 0),         # 80x16x16
    ("Conv2d_4a_3x3", 192, 3, 1, 1),        # 192x16x16
]

# The Inception blocks: (name, block class name, output channels of each layer of each branch, in order).
# A tuple lists a branch's layers first to last; the block docstrings give the kernel of each layer.
INCEPTION_V3_BLOCKS = [
    ("Mixed_5b", "InceptionA", dict(branch1x1=64, branch5x5=(48, 64), branch3x3dbl=(64, 96, 96), branch_pool=32)),
    ("Mixed_5c", "InceptionA", dict(branch1x1=64, branch5x5=(48, 64), branch3x3dbl=(64, 96, 96), branch_pool=64)),
    ("Mixed_5d", "InceptionA", dict(branch1x1=64, branch5x5=(48, 64), branch3x3dbl=(64, 96, 96), branch_pool=64)),
    ("Mixed_6a", "InceptionB", dict(branch3x3=384, branch3x3dbl=(64, 96, 96))),
    ("Mixed_6b", "InceptionC", dict(branch1x1=192, branch7x7=(128, 128, 192), branch7x7dbl=(128, 128, 128, 128, 192),
                                    branch_pool=192)),
    ("Mixed_6c", "InceptionC", dict(branch1x1=192, branch7x7=(160, 160, 192), branch7x7dbl=(160, 160, 160, 160, 192),
                                    branch_pool=192)),
    ("Mixed_6d", "InceptionC", dict(branch1x1=192, branch7x7=(160, 160, 192), branch7x7dbl=(160, 160, 160, 160, 192),
                                    branch_pool=192)),
    ("Mixed_6e", "InceptionC", dict(branch1x1=192, branch7x7=(192, 192, 192), branch7x7dbl=(192, 192, 192, 192, 192),
                                    branch_pool=192)),
    ("Mixed_7a", "InceptionD", dict(branch3x3=(192, 320), branch7x7x3=(192, 192, 192, 192))),
    ("Mixed_7b", "InceptionE", dict(branch1x1=320, branch3x3=(384, 384), branch3x3dbl=(448, 384, 384),
                                    branch_pool=192)),
    ("Mixed_7c", "InceptionE", dict(branch1x1=320, branch3x3=(384, 384), branch3x3dbl=(448, 384, 384),
                                    branch_pool=192)),
]
AUX_AFTER = "Mixed_6e"                  # the auxiliary classifier reads this block's output
AUX_CHANNELS = dict(conv0=128, conv1=768)

# torchvision's transform_input: x_c * (std_c / 0.5) + (mean_c - 0.5) / 0.5 with ImageNet's mean and std, which
# turns an ImageNet-normalised image into the (x - 0.5) / 0.5 range the TensorFlow weights expect.
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


# The pool branches' 3x3 stride-1 average pool (F.avg_pool2d's arguments); torchvision keeps count_include_pad=True.
POOL_3X3 = dict(kernel_size=3, stride=1, padding=1, count_include_pad=True)


class InceptionA(nn.Module):
    """35x35 block (paper Figure 5 as TensorFlow built it). x: (N, in_channels, H, W) -> (N, out_channels, H, W).

    * ``branch1x1``:  1x1
    * ``branch5x5_1``, ``_2``: 1x1, 5x5 pad 2 (a real 5x5: the TensorFlow model kept one; the paper's figure has
      only the two-3x3 branch)
    * ``branch3x3dbl_1``, ``_2``, ``_3``: 1x1, 3x3 pad 1, 3x3 pad 1 (a 5x5 receptive field, 28% cheaper)
    * ``branch_pool``: 3x3 average pool (stride 1, pad 1, padding counted), 1x1
    """

    def __init__(self, in_channels, branch1x1, branch5x5, branch3x3dbl, branch_pool):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, branch1x1, 1)
        self.branch5x5_1 = BasicConv2d(in_channels, branch5x5[0], 1)
        self.branch5x5_2 = BasicConv2d(branch5x5[0], branch5x5[1], 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, branch3x3dbl[0], 1)
        self.branch3x3dbl_2 = BasicConv2d(branch3x3dbl[0], branch3x3dbl[1], 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(branch3x3dbl[1], branch3x3dbl[2], 3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, branch_pool, 1)
        self.out_channels = branch1x1 + branch5x5[1] + branch3x3dbl[2] + branch_pool

    def forward(self, x):
        # the four 1x1 convolutions on x run as one matrix product, the pool branch's pool after its 1x1 (same
        # result as the branches as written, within float32 rounding; see tinyinception.nn.fused)
        branch1x1, reduced_5x5, reduced_3x3dbl, branch_pool = stacked_pointwise(
            x, [self.branch1x1, self.branch5x5_1, self.branch3x3dbl_1], self.branch_pool, POOL_3X3)
        branch5x5 = self.branch5x5_2(reduced_5x5)
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(reduced_3x3dbl))
        return F.concat([branch1x1, branch5x5, branch3x3dbl, branch_pool], dim=1)


class InceptionB(nn.Module):
    """Grid reduction 35x35 -> 17x17 (paper Figure 10). x: (N, C, H, W) -> (N, out_channels, (H-3)//2+1, same).

    * ``branch3x3``: 3x3 stride 2
    * ``branch3x3dbl_1``, ``_2``, ``_3``: 1x1, 3x3 pad 1, 3x3 stride 2
    * pool: 3x3 max pool stride 2 (no parameters; passes the in_channels through)
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


class InceptionC(nn.Module):
    """17x17 block with 7x7 filters factorised into 1x7 and 7x1 (paper Figure 6, n = 7).
    x: (N, in_channels, H, W) -> (N, out_channels, H, W).

    * ``branch1x1``: 1x1
    * ``branch7x7_1``, ``_2``, ``_3``: 1x1, 1x7 pad (0, 3), 7x1 pad (3, 0)  (one factorised 7x7)
    * ``branch7x7dbl_1`` .. ``_5``: 1x1, 7x1, 1x7, 7x1, 1x7  (two factorised 7x7 in a row)
    * ``branch_pool``: 3x3 average pool (stride 1, pad 1, padding counted), 1x1

    Inception-v4's 17x17 block is this block with the pool counting real pixels only
    (`tinyinception.models.inception_v4.InceptionB` sets ``pool_count_include_pad = False``).
    """

    pool_count_include_pad = True

    def __init__(self, in_channels, branch1x1, branch7x7, branch7x7dbl, branch_pool):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, branch1x1, 1)
        self.branch7x7_1 = BasicConv2d(in_channels, branch7x7[0], 1)
        self.branch7x7_2 = BasicConv2d(branch7x7[0], branch7x7[1], (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(branch7x7[1], branch7x7[2], (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, branch7x7dbl[0], 1)
        self.branch7x7dbl_2 = BasicConv2d(branch7x7dbl[0], branch7x7dbl[1], (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(branch7x7dbl[1], branch7x7dbl[2], (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(branch7x7dbl[2], branch7x7dbl[3], (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(branch7x7dbl[3], branch7x7dbl[4], (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, branch_pool, 1)
        self.out_channels = branch1x1 + branch7x7[2] + branch7x7dbl[4] + branch_pool

    def forward(self, x):
        pool = dict(POOL_3X3, count_include_pad=self.pool_count_include_pad)
        branch1x1, reduced_7x7, branch7x7dbl, branch_pool = stacked_pointwise(  # the 1x1s on x as one product
            x, [self.branch1x1, self.branch7x7_1, self.branch7x7dbl_1], self.branch_pool, pool)
        branch7x7 = self.branch7x7_3(self.branch7x7_2(reduced_7x7))
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                      self.branch7x7dbl_5):
            branch7x7dbl = layer(branch7x7dbl)
        return F.concat([branch1x1, branch7x7, branch7x7dbl, branch_pool], dim=1)


class InceptionD(nn.Module):
    """Grid reduction 17x17 -> 8x8. x: (N, C, H, W) -> (N, out_channels, (H-3)//2+1, same).

    * ``branch3x3_1``, ``_2``: 1x1, 3x3 stride 2
    * ``branch7x7x3_1`` .. ``_4``: 1x1, 1x7 pad (0, 3), 7x1 pad (3, 0), 3x3 stride 2
    * pool: 3x3 max pool stride 2 (passes the in_channels through)
    """

    def __init__(self, in_channels, branch3x3, branch7x7x3):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, branch3x3[0], 1)
        self.branch3x3_2 = BasicConv2d(branch3x3[0], branch3x3[1], 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, branch7x7x3[0], 1)
        self.branch7x7x3_2 = BasicConv2d(branch7x7x3[0], branch7x7x3[1], (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(branch7x7x3[1], branch7x7x3[2], (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(branch7x7x3[2], branch7x7x3[3], 3, stride=2)
        self.out_channels = branch3x3[1] + branch7x7x3[3] + in_channels

    def forward(self, x):
        reduced_3x3, branch7x7x3 = stacked_pointwise(x, [self.branch3x3_1, self.branch7x7x3_1])  # one product
        branch3x3 = self.branch3x3_2(reduced_3x3)
        for layer in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            branch7x7x3 = layer(branch7x7x3)
        branch_pool = F.max_pool2d(x, kernel_size=3, stride=2)
        return F.concat([branch3x3, branch7x7x3, branch_pool], dim=1)


class InceptionE(nn.Module):
    """8x8 block with expanded filter banks (paper Figure 7): the 3x3s end in 1x3 and 3x1 side by side.
    x: (N, in_channels, H, W) -> (N, out_channels, H, W).

    * ``branch1x1``: 1x1
    * ``branch3x3_1``, then ``branch3x3_2a`` (1x3 pad (0, 1)) and ``branch3x3_2b`` (3x1 pad (1, 0)) concatenated
    * ``branch3x3dbl_1``, ``_2`` (1x1, 3x3 pad 1), then ``branch3x3dbl_3a`` (1x3) and ``_3b`` (3x1) concatenated
    * ``branch_pool``: 3x3 average pool (stride 1, pad 1, padding counted), 1x1
    """

    def __init__(self, in_channels, branch1x1, branch3x3, branch3x3dbl, branch_pool):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, branch1x1, 1)
        self.branch3x3_1 = BasicConv2d(in_channels, branch3x3[0], 1)
        self.branch3x3_2a = BasicConv2d(branch3x3[0], branch3x3[1], (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(branch3x3[0], branch3x3[1], (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, branch3x3dbl[0], 1)
        self.branch3x3dbl_2 = BasicConv2d(branch3x3dbl[0], branch3x3dbl[1], 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(branch3x3dbl[1], branch3x3dbl[2], (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(branch3x3dbl[1], branch3x3dbl[2], (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, branch_pool, 1)
        self.out_channels = branch1x1 + 2 * branch3x3[1] + 2 * branch3x3dbl[2] + branch_pool

    def forward(self, x):
        branch1x1, reduced, reduced_dbl, branch_pool = stacked_pointwise(  # the 1x1s on x as one product
            x, [self.branch1x1, self.branch3x3_1, self.branch3x3dbl_1], self.branch_pool, POOL_3X3)
        branch3x3 = F.concat([self.branch3x3_2a(reduced), self.branch3x3_2b(reduced)], dim=1)
        reduced_dbl = self.branch3x3dbl_2(reduced_dbl)
        branch3x3dbl = F.concat([self.branch3x3dbl_3a(reduced_dbl), self.branch3x3dbl_3b(reduced_dbl)], dim=1)
        return F.concat([branch1x1, branch3x3, branch3x3dbl, branch_pool], dim=1)


class InceptionAux(nn.Module):
    """Auxiliary classifier on the 17x17 grid (paper section 4; training only).

    x: (N, in_channels, 17, 17) -> 5x5 average pool stride 3 -> (N, in_channels, 5, 5) -> ``conv0`` 1x1 ->
    ``conv1`` 5x5 -> (N, conv1, 1, 1) -> global average pool -> ``fc`` -> (N, num_classes).
    ``adaptive_pool=True`` (small_input) pools adaptively to 5x5 instead, so any grid size works.
    """

    def __init__(self, in_channels, num_classes, conv0=128, conv1=768, adaptive_pool=False):
        super().__init__()
        self.adaptive_pool = adaptive_pool
        self.conv0 = BasicConv2d(in_channels, conv0, 1)
        self.conv1 = BasicConv2d(conv0, conv1, 5)
        self.fc = nn.Linear(conv1, num_classes)

    def forward(self, x):
        x = F.adaptive_avg_pool2d(x, 5) if self.adaptive_pool else F.avg_pool2d(x, kernel_size=5, stride=3)
        x = self.conv1(self.conv0(x))
        return self.fc(F.global_avg_pool2d(x))


_BLOCK_CLASSES = {cls.__name__: cls for cls in (InceptionA, InceptionB, InceptionC, InceptionD, InceptionE)}


class InceptionV3(nn.Module):
    """Inception-v3 (torchvision's ``Inception3``); see the module docstring for shapes and ``small_input``.

    x: (N, 3, H, W) -> eval (or aux_logits=False): logits (N, num_classes); train with the aux head:
    ``InceptionOutputs(logits, aux_logits)``.
    """

    def __init__(self, num_classes=1000, aux_logits=True, transform_input=False, dropout=0.5, width=1.0,
                 small_input=False):
        super().__init__()
        self.aux_logits, self.transform_input, self.small_input = aux_logits, transform_input, small_input
        self.min_size = 13 if small_input else 75
        channels = self._build_stem(SMALL_INPUT_STEM if small_input else STEM, width)
        channels = self._build_blocks(channels, num_classes, width)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, num_classes)
        self._init_weights()

    def _build_stem(self, table, width):
        """Create the stem's layers from ``table``; returns the channels it outputs."""
        self.stem_names, channels = [], 3
        for name, out_channels, kernel, stride, padding in table:
            if out_channels == "maxpool":
                setattr(self, name, nn.MaxPool2d(kernel, stride=stride, padding=padding))
            else:
                setattr(self, name, BasicConv2d(channels, scaled(out_channels, width), kernel, stride, padding))
                channels = scaled(out_channels, width)
            self.stem_names.append(name)
        return channels

    def _build_blocks(self, channels, num_classes, width):
        """Walk INCEPTION_V3_BLOCKS (creating AuxLogits right after AUX_AFTER, torchvision's order)."""
        self.block_names = []
        for name, block_name, widths in INCEPTION_V3_BLOCKS:
            block = _BLOCK_CLASSES[block_name](channels, **scale_widths(widths, width))
            setattr(self, name, block)
            self.block_names.append(name)
            channels = block.out_channels
            if name == AUX_AFTER:
                self.AuxLogits = (InceptionAux(channels, num_classes, adaptive_pool=self.small_input,
                                               **scale_widths(AUX_CHANNELS, width))
                                  if self.aux_logits else None)
        return channels

    def _init_weights(self):
        """torchvision's init: truncated normal (cut at +-2) std 0.1, the aux head's conv1 std 0.01 and fc 0.001."""
        init_trunc_normal(self, std=0.1)
        if self.AuxLogits is not None:
            nn.init.trunc_normal_(self.AuxLogits.conv1.conv.weight, std=0.01, a=-2, b=2)
            nn.init.trunc_normal_(self.AuxLogits.fc.weight, std=0.001, a=-2, b=2)

    def _transform_input(self, x):
        """torchvision's conversion of an ImageNet-normalised input to the (x - 0.5) / 0.5 range, per channel."""
        xp = backend.get_array_module(x.data)
        scale = xp.asarray(np.array(_IMAGENET_STD) / 0.5, dtype=x.dtype).reshape(1, 3, 1, 1)
        shift = xp.asarray((np.array(_IMAGENET_MEAN) - 0.5) / 0.5, dtype=x.dtype).reshape(1, 3, 1, 1)
        return x * scale + shift

    def _check_input(self, x):
        name = "inception_v3" + (" (small_input)" if self.small_input else "")
        if self.training and self.AuxLogits is not None and not self.small_input:
            check_input_size(name + " in training mode with aux_logits (AuxLogits needs Mixed_6e >= 17x17)", x, 299)
        check_input_size(name, x, self.min_size)

    def forward(self, x):
        self._check_input(x)
        if self.transform_input:
            x = self._transform_input(x)
        for name in self.stem_names:
            x = getattr(self, name)(x)
        aux = None
        for name in self.block_names:
            x = getattr(self, name)(x)
            if name == AUX_AFTER and self.AuxLogits is not None and self.training:
                aux = self.AuxLogits(x)
        logits = self.fc(self.dropout(F.global_avg_pool2d(x)))
        if self.training and self.AuxLogits is not None:
            return InceptionOutputs(logits, aux)
        return logits


@register("inception_v3")
def inception_v3(num_classes=1000, aux_logits=None, transform_input=None, dropout=0.5, width=1.0,
                 small_input=False, weights=None):
    """Inception-v3 as torchvision builds it: 27,161,264 parameters with the aux head, 23,834,568 without.

    ``transform_input=True`` converts ImageNet-normalised inputs for the ported TensorFlow weights (torchvision
    turns it on with its pretrained weights). ``width`` scales every channel count (at least 8 each);
    ``small_input`` adapts the stem to 32x32 images (module docstring).

    ``aux_logits`` and ``transform_input`` left at None mean True and False, or with published weights what they
    need. ``weights``: a published tag (``list_weights("inception_v3")``: torchvision's and timm's) or the path of
    a .pth/.pt/.safetensors file with torchvision's (= timm's) keys."""
    return build("inception_v3", InceptionV3, weights, dict(
        num_classes=num_classes, aux_logits=aux_logits, transform_input=transform_input, dropout=dropout,
        width=width, small_input=small_input))
