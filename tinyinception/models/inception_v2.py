"""BN-Inception (Google's "Inception-v2"), Ioffe & Szegedy 2015, "Batch Normalization" (arXiv 1502.03167).

GoogLeNet plus BatchNorm before every ReLU, with the changes of the paper's appendix (Figure 5):

* every 5x5 convolution becomes two stacked 3x3 convolutions (``branch_3x3dbl``);
* three modules at 28x28 (3a, 3b, 3c) instead of two;
* no pooling layers between stages: the reduction modules 3c and 4e halve the grid themselves, with stride-2
  3x3 convolutions next to a stride-2 max pool whose output passes through unchanged;
* average or max pooling inside the modules (max only in 5b).

Numerically identical to Cadene's ``pretrainedmodels.bninception`` (the Caffe model of Xiong Yuanjun), whose
flat names (``inception_3a_double_3x3_1_bn``) ``ti.interop`` maps onto the nested names here. Details kept from
that reference: every convolution has a bias *and* a BatchNorm (eps 1e-5, PyTorch's default); max pools use
``ceil_mode=True``; the average pools of the pool branches are 3x3 stride 1 pad 1 with ``ceil_mode=True`` and
``count_include_pad=True`` (borders divide by 9); the first convolution is an ordinary 7x7 (the paper used a
separable one); no dropout. 4c and 4d output 608 channels and 4e 1056, as the filter numbers sum (the paper's
table prints 576 and 1024). The reference expects BGR images in [0, 255] minus (104, 117, 128); only the graph
matters for parity.

Difference: the reference ends in ``AvgPool2d(7, stride 1)``, so it accepts only inputs whose last map is 7x7
(224 does); this network averages globally, which is the same there and also works at other sizes.

Shapes at 224x224: conv1 64x112x112 -> pool1 64x56x56 -> conv2_reduce 64x56x56 -> conv2 192x56x56 -> pool2
192x28x28 -> 3a 256 -> 3b 320x28x28 -> 3c 576x14x14 -> 4a 576 -> 4b 576 -> 4c 608 -> 4d 608x14x14 -> 4e 1056x7x7
-> 5a 1024 -> 5b 1024x7x7 -> global average pool 1024 -> fc. 11,295,240 parameters at 1000 classes.

``small_input=True`` (32x32 images): conv1 becomes 3x3 stride 1 and pool1 is dropped, so 3a-3b run at 16x16,
4a-4d at 8x8 and 5a-5b at 4x4.
"""
from collections import OrderedDict

from .. import functional as F
from .. import nn
from ..nn.fold import conv_bn_relu
from ..nn.fused import run_branches
from .common import check_input_size, scaled
from .registry import build, register

BN_EPS = 1e-5

# Paper Figure 5: (name, #1x1, #3x3 reduce, #3x3, double #3x3 reduce, double #3x3, pool kind, pool proj).
# Reduction modules (3c, 4e) have no 1x1 branch (None), stride-2 convolutions, and a max pool whose output passes
# through without a projection (None). Input channels are not listed: the constructor walks the table summing
# each module's output channels.
BN_INCEPTION_BLOCKS = [
    ("inception3a", 64, 64, 64, 64, 96, "avg", 32),
    ("inception3b", 64, 64, 96, 64, 96, "avg", 64),
    ("inception3c", None, 128, 160, 64, 96, "max", None),
    ("inception4a", 224, 64, 96, 96, 128, "avg", 128),
    ("inception4b", 192, 96, 128, 96, 128, "avg", 128),
    ("inception4c", 160, 128, 160, 128, 160, "avg", 128),
    ("inception4d", 96, 128, 192, 160, 192, "avg", 128),
    ("inception4e", None, 128, 192, 192, 256, "max", None),
    ("inception5a", 352, 192, 320, 160, 224, "avg", 128),
    ("inception5b", 352, 192, 320, 192, 224, "max", 128),
]


class ConvBNReLU(nn.Module):
    """Conv2d(bias=True) -> BatchNorm2d(eps 1e-5) -> ReLU, the unit of the Caffe BN-Inception (submodules ``conv``,
    ``bn``). x: (N, in_channels, H, W) -> (N, out_channels, H', W')."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=True)
        self.bn = nn.BatchNorm2d(out_channels, eps=BN_EPS)

    def forward(self, x):
        return conv_bn_relu(self.conv, self.bn, x)


def _pool(kind):
    """The 3x3 stride-1 pool of a module's pool branch: Caffe rounding, zero padding counted in averages."""
    if kind == "avg":
        return nn.AvgPool2d(3, stride=1, padding=1, ceil_mode=True, count_include_pad=True)
    return nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True)


class InceptionBN(nn.Module):
    """A BN-Inception module (3a, 3b, 4a-4d, 5a, 5b): four branches, concatenated on channels in this order.

    x: (N, in_channels, H, W) -> (N, ch1x1 + ch3x3 + ch3x3dbl + pool_proj, H, W)

    * ``branch_1x1``:    1x1 -> ch1x1
    * ``branch_3x3``:    1x1 -> ch3x3red (``reduce``), 3x3 pad 1 -> ch3x3 (``conv``)
    * ``branch_3x3dbl``: 1x1 -> ch3x3dbl_red (``reduce``), 3x3 -> ch3x3dbl (``conv1``), 3x3 -> ch3x3dbl (``conv2``):
      two 3x3 convolutions see a 5x5 window with 18/25 of a 5x5's weights
    * ``branch_pool``:   3x3 stride-1 avg or max pool (``pool``), 1x1 -> pool_proj (``proj``)
    """

    def __init__(self, in_channels, ch1x1, ch3x3red, ch3x3, ch3x3dbl_red, ch3x3dbl, pool_kind, pool_proj):
        super().__init__()
        self.branch_1x1 = ConvBNReLU(in_channels, ch1x1, 1)
        self.branch_3x3 = nn.Sequential(OrderedDict(
            reduce=ConvBNReLU(in_channels, ch3x3red, 1),
            conv=ConvBNReLU(ch3x3red, ch3x3, 3, padding=1)))
        self.branch_3x3dbl = nn.Sequential(OrderedDict(
            reduce=ConvBNReLU(in_channels, ch3x3dbl_red, 1),
            conv1=ConvBNReLU(ch3x3dbl_red, ch3x3dbl, 3, padding=1),
            conv2=ConvBNReLU(ch3x3dbl, ch3x3dbl, 3, padding=1)))
        self.branch_pool = nn.Sequential(OrderedDict(
            pool=_pool(pool_kind),
            proj=ConvBNReLU(in_channels, pool_proj, 1)))
        self.out_channels = ch1x1 + ch3x3 + ch3x3dbl + pool_proj

    def forward(self, x):
        # the 1x1 convolutions on x run as one matrix product, an average pool after its 1x1 (same result as
        # calling the branches, within float32 rounding; see tinyinception.nn.fused)
        branches = run_branches(x, [self.branch_1x1, self.branch_3x3, self.branch_3x3dbl], self.branch_pool)
        return F.concat(branches, dim=1)


class ReductionBN(nn.Module):
    """A BN-Inception reduction module (3c, 4e): halves H and W and widens the channels.

    x: (N, in_channels, H, W) -> (N, ch3x3 + ch3x3dbl + in_channels, ceil(H/2), ceil(W/2))

    * ``branch_3x3``:    1x1 -> ch3x3red (``reduce``), 3x3 **stride 2** pad 1 -> ch3x3 (``conv``)
    * ``branch_3x3dbl``: 1x1 -> ch3x3dbl_red (``reduce``), 3x3 pad 1 (``conv1``), 3x3 **stride 2** pad 1 (``conv2``)
    * ``branch_pool``:   3x3 stride-2 max pool (ceil mode), passed through without a projection
    """

    def __init__(self, in_channels, ch3x3red, ch3x3, ch3x3dbl_red, ch3x3dbl):
        super().__init__()
        self.branch_3x3 = nn.Sequential(OrderedDict(
            reduce=ConvBNReLU(in_channels, ch3x3red, 1),
            conv=ConvBNReLU(ch3x3red, ch3x3, 3, stride=2, padding=1)))
        self.branch_3x3dbl = nn.Sequential(OrderedDict(
            reduce=ConvBNReLU(in_channels, ch3x3dbl_red, 1),
            conv1=ConvBNReLU(ch3x3dbl_red, ch3x3dbl, 3, padding=1),
            conv2=ConvBNReLU(ch3x3dbl, ch3x3dbl, 3, stride=2, padding=1)))
        self.branch_pool = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.out_channels = ch3x3 + ch3x3dbl + in_channels

    def forward(self, x):
        if x.ndim == 4 and (x.shape[2] % 2 or x.shape[3] % 2):
            raise ValueError(f"BN-Inception reduction block: input map {x.shape[2]}x{x.shape[3]} must have even "
                             "sides (on odd sides the stride-2 convolutions and the ceil-mode pool disagree by one); "
                             "pick an input size whose map here is even, e.g. 224 (inputs 31-38, 63-70, ..., "
                             "223-230 work, 32x32 with small_input)")
        branches = [self.branch_3x3(x), self.branch_3x3dbl(x), self.branch_pool(x)]
        return F.concat(branches, dim=1)


class BNInception(nn.Module):
    """BN-Inception; layout, shapes and reference details in the module docstring.

    x: (N, 3, H, W), H and W >= ``min_size`` -> logits (N, num_classes), in train and eval mode alike.
    """

    def __init__(self, num_classes=1000, width=1.0, small_input=False):
        super().__init__()
        self.small_input = small_input
        self.min_size = 8 if small_input else 31
        c64, c192 = scaled(64, width), scaled(192, width)
        if small_input:
            self.conv1 = ConvBNReLU(3, c64, 3, padding=1)
            self.pool1 = nn.Identity()
        else:
            self.conv1 = ConvBNReLU(3, c64, 7, stride=2, padding=3)
            self.pool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2_reduce = ConvBNReLU(c64, c64, 1)
        self.conv2 = ConvBNReLU(c64, c192, 3, padding=1)
        self.pool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        channels = c192
        self.block_names = []
        for name, ch1x1, *rest, pool_kind, pool_proj in BN_INCEPTION_BLOCKS:
            rest = [scaled(c, width) for c in rest]
            if ch1x1 is None:
                block = ReductionBN(channels, *rest)
            else:
                block = InceptionBN(channels, scaled(ch1x1, width), *rest, pool_kind, scaled(pool_proj, width))
            setattr(self, name, block)
            self.block_names.append(name)
            channels = block.out_channels
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x):
        check_input_size("BNInception" + (" (small_input)" if self.small_input else ""), x, self.min_size)
        x = self.pool1(self.conv1(x))
        x = self.pool2(self.conv2(self.conv2_reduce(x)))
        for name in self.block_names:
            x = getattr(self, name)(x)
        return self.fc(F.global_avg_pool2d(x))


@register("bn_inception")
def bn_inception(num_classes=1000, width=1.0, small_input=False, weights=None):
    """BN-Inception equal to Cadene's ``bninception`` (11,295,240 parameters at 1000 classes). Init: PyTorch's
    defaults, as the reference. See the module docstring for the reference's details and ``small_input``.
    ``weights``: a published tag (``list_weights("bn_inception")``) or the path of a .pth/.pt/.safetensors file
    with Cadene's keys."""
    return build("bn_inception", BNInception, weights, dict(num_classes=num_classes, width=width,
                                                            small_input=small_input))
