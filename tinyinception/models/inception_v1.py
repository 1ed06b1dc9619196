"""GoogLeNet (Inception-v1), Szegedy et al. 2014, "Going Deeper with Convolutions" (arXiv 1409.4842).

Two layouts of the same network, chosen by ``paper``:

* ``paper=False`` (default): torchvision's ``googlenet``, numerically identical to it (weights load by name
  through ``ti.interop``). Its convolutions are Conv-BN-ReLU units, because the weights were ported from a
  batch-normalised TensorFlow model.
* ``paper=True``: the network of the paper's Figure 3 and Table 1 (and of Caffe's bvlc_googlenet).

How the two differ (torchvision's deviations from the paper):

=============================  ===================================  =======================================
piece                          paper (``paper=True``)               torchvision (``paper=False``)
=============================  ===================================  =======================================
convolution unit               Conv2d(bias) -> ReLU                 Conv2d(no bias) -> BatchNorm(eps 1e-3)
                                                                    -> ReLU
"5x5" branch                   1x1 reduce -> 5x5, padding 2         1x1 reduce -> **3x3**, padding 1 (a bug
                                                                    kept for the weights, vision#906)
LocalResponseNorm              after maxpool1 and after conv3       none
                               (size 5, alpha 1e-4, beta 0.75,
                               k 1)
maxpool4                       3x3 stride 2                         2x2 stride 2
aux heads' pooling             AvgPool 5x5 stride 3 (14 -> 4;       adaptive average pool to 4x4 (windows
                               needs ~224 inputs)                   of 4 at offsets 0, 3, 7, 10)
final dropout                  40 % (pass ``dropout=0.4``)          20 % (``dropout`` default)
parameters (1000 classes)      6,998,552; 13,378,280 with aux       6,624,904; 13,004,888 with aux
multiply-adds at 224           1.583 G                              1.498 G
=============================  ===================================  =======================================

Shared by both: the channel table below (paper Table 1), max pools with ``ceil_mode=True`` (Caffe's rounding,
needed for 112 -> 56 -> 28 -> 14 -> 7), two auxiliary classifiers after 4a and 4d that run only in training, and
``transform_input`` (torchvision's conversion of an ImageNet-normalised input to the (x - 0.5) / 0.5 range that
the ported weights expect).

Shapes at 224x224 (eval): conv1 64x112x112 -> maxpool1 64x56x56 -> conv2 64x56x56 -> conv3 192x56x56 ->
maxpool2 192x28x28 -> 3a 256 -> 3b 480x28x28 -> maxpool3 480x14x14 -> 4a 512 -> 4b 512 -> 4c 512 -> 4d 528 ->
4e 832x14x14 -> maxpool4 832x7x7 -> 5a 832 -> 5b 1024x7x7 -> global average pool 1024 -> dropout -> fc.

``small_input=True`` swaps the stem for 32x32 images (CIFAR): conv1 becomes a 3x3 stride-1 convolution and
maxpool1 is dropped, so 32x32 reaches inception3a at 16x16, 4a-4e at 8x8 and 5a-5b at 4x4, the same
8x / 16x / 32x ladder as 224 -> 28 -> 14 -> 7 halved once less. The aux heads then pool adaptively to 4x4 in
both layouts.
"""
from collections import OrderedDict, namedtuple

import numpy as np

from .. import backend
from .. import functional as F
from .. import nn
from ..nn.fused import run_branches
from .common import BasicConv2d, ConvReLU, check_input_size, init_trunc_normal, scaled
from .registry import build, register

GoogLeNetOutputs = namedtuple("GoogLeNetOutputs", ["logits", "aux_logits2", "aux_logits1"])
GoogLeNetOutputs.__doc__ = "Train-mode output with aux heads, torchvision's order: (logits, aux_logits2, aux_logits1)."

# Paper Table 1: block name -> (#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj). Concatenated output
# channels = #1x1 + #3x3 + #5x5 + pool proj. "pool" rows are the max pools between stages.
GOOGLENET_STAGES = [
    ("inception3a", (64, 96, 128, 16, 32, 32)),
    ("inception3b", (128, 128, 192, 32, 96, 64)),
    ("maxpool3", "pool"),
    ("inception4a", (192, 96, 208, 16, 48, 64)),
    ("inception4b", (160, 112, 224, 24, 64, 64)),
    ("inception4c", (128, 128, 256, 24, 64, 64)),
    ("inception4d", (112, 144, 288, 32, 64, 64)),
    ("inception4e", (256, 160, 320, 32, 128, 128)),
    ("maxpool4", "pool"),
    ("inception5a", (256, 160, 320, 32, 128, 128)),
    ("inception5b", (384, 192, 384, 48, 128, 128)),
]
AUX_AFTER = {"inception4a": "aux1", "inception4d": "aux2"}  # the auxiliary classifiers read these blocks' outputs

# Smallest input side for which every pool still has a window (PyTorch's ceil-mode output-size rule), keyed by
# (paper, small_input). torchvision states 15 for its layout; the paper's 3x3 maxpool4 needs 31. (The paper's aux
# heads need more, see InceptionAux.)
MIN_SIZES = {(False, False): 15, (True, False): 31, (False, True): 4, (True, True): 8}

# torchvision's transform_input: x_c * (std_c / 0.5) + (mean_c - 0.5) / 0.5 with ImageNet's mean and std.
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def _unit(paper):
    """The convolution unit: Conv(bias)+ReLU in the paper, Conv+BN(eps 1e-3)+ReLU in torchvision."""
    return ConvReLU if paper else BasicConv2d


def _init_caffe(model):
    """bvlc_googlenet's init for the paper layout (no BatchNorm to rescue small weights): Xavier-uniform
    weights, convolution biases 0.2, linear biases 0."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(module.weight)
            nn.init.constant_(module.bias, 0.2 if isinstance(module, nn.Conv2d) else 0.0)


class Inception(nn.Module):
    """The Inception module of paper Figure 2(b): four branches on the same input, concatenated on channels.

    x: (N, in_channels, H, W) -> (N, ch1x1 + ch3x3 + ch5x5 + pool_proj, H, W), branches in this order:

    * ``branch_1x1``:  1x1 conv -> ch1x1
    * ``branch_3x3``:  1x1 conv -> ch3x3red (``reduce``), 3x3 conv pad 1 -> ch3x3 (``conv``)
    * ``branch_5x5``:  1x1 conv -> ch5x5red (``reduce``), 5x5 conv pad 2 -> ch5x5 (``conv``); torchvision uses a
      3x3 conv pad 1 here (``paper=False``)
    * ``branch_pool``: 3x3 max pool stride 1 pad 1 (``pool``), 1x1 conv -> pool_proj (``proj``)

    The 1x1 ``reduce`` convolutions are the point of the design: they shrink the channels before the expensive
    3x3 and 5x5 convolutions (see tutorials/04_inception_v1_module.py).
    """

    def __init__(self, in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj, paper=False):
        super().__init__()
        unit = _unit(paper)
        five = 5 if paper else 3
        self.branch_1x1 = unit(in_channels, ch1x1, 1)
        self.branch_3x3 = nn.Sequential(OrderedDict(
            reduce=unit(in_channels, ch3x3red, 1),
            conv=unit(ch3x3red, ch3x3, 3, padding=1)))
        self.branch_5x5 = nn.Sequential(OrderedDict(
            reduce=unit(in_channels, ch5x5red, 1),
            conv=unit(ch5x5red, ch5x5, five, padding=five // 2)))
        self.branch_pool = nn.Sequential(OrderedDict(
            pool=nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
            proj=unit(in_channels, pool_proj, 1)))
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x):
        # the three 1x1 convolutions on x run as one matrix product (same result as calling the branches)
        branches = run_branches(x, [self.branch_1x1, self.branch_3x3, self.branch_5x5])
        return F.concat(branches + [self.branch_pool(x)], dim=1)


class InceptionAux(nn.Module):
    """Auxiliary classifier (paper section 5), used in training only.

    x: (N, in_channels, 14, 14) -> pool to (N, in_channels, 4, 4) -> 1x1 conv -> (N, 128, 4, 4) -> flatten 2048
    -> ``fc1`` 1024 + ReLU -> dropout -> ``fc2`` num_classes. Pooling: torchvision's adaptive 4x4 (any map
    size), or the paper's 5x5 stride-3 average pool (``paper=True``), which gives 4x4 only from 14x14-16x16
    maps (inputs of about 209-256 pixels, 224 in the paper); ``small_input`` uses the adaptive pool in both layouts.
    """

    def __init__(self, in_channels, num_classes, dropout=0.7, paper=False, conv_channels=128, hidden=1024,
                 adaptive_pool=None):
        super().__init__()
        adaptive_pool = not paper if adaptive_pool is None else adaptive_pool
        self.pool = nn.AdaptiveAvgPool2d((4, 4)) if adaptive_pool else nn.AvgPool2d(5, stride=3)
        self.conv = _unit(paper)(in_channels, conv_channels, 1)
        self.fc1 = nn.Linear(conv_channels * 4 * 4, hidden)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x):
        x = self.pool(x)
        if x.shape[2:] != (4, 4):
            raise ValueError(f"InceptionAux (paper layout): its 5x5 stride-3 average pool must give a 4x4 map, got "
                             f"{x.shape[2]}x{x.shape[3]}; it needs a 14x14 to 16x16 map after inception4a/4d "
                             "(224x224 inputs); use aux_logits=False, small_input=True or the torchvision layout")
        x = F.flatten(self.conv(x), 1)
        return self.fc2(self.dropout(F.relu(self.fc1(x))))


class GoogLeNet(nn.Module):
    """GoogLeNet; see the module docstring for the two layouts and their shapes.

    x: (N, 3, H, W), H and W >= ``min_size`` -> eval: logits (N, num_classes); train with aux heads:
    ``GoogLeNetOutputs(logits, aux_logits2, aux_logits1)``.
    """

    def __init__(self, num_classes=1000, aux_logits=True, transform_input=False, dropout=0.2, dropout_aux=0.7,
                 paper=False, width=1.0, small_input=False):
        super().__init__()
        self.aux_logits, self.transform_input = aux_logits, transform_input
        self.paper, self.small_input = paper, small_input
        self.min_size = MIN_SIZES[(paper, small_input)]
        unit = _unit(paper)
        c64, c192 = scaled(64, width), scaled(192, width)
        if small_input:
            self.conv1 = unit(3, c64, 3, padding=1)
            self.maxpool1 = nn.Identity()
        else:
            self.conv1 = unit(3, c64, 7, stride=2, padding=3)
            self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        if paper:
            self.lrn1 = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)
        self.conv2 = unit(c64, c64, 1)
        self.conv3 = unit(c64, c192, 3, padding=1)
        if paper:
            self.lrn2 = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self._build_stages(c192, num_classes, width, dropout_aux)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(self.inception5b.out_channels, num_classes)
        if paper:
            _init_caffe(self)
        else:
            init_trunc_normal(self, std=0.01)

    def _build_stages(self, channels, num_classes, width, dropout_aux):
        """Walk GOOGLENET_STAGES creating each block, then the aux heads on the blocks AUX_AFTER names
        (registered after 5b, so the state_dict order is torchvision's)."""
        self.stage_names, aux_heads = [], {}
        for name, spec in GOOGLENET_STAGES:
            if spec == "pool":
                kernel = 2 if name == "maxpool4" and not self.paper else 3
                setattr(self, name, nn.MaxPool2d(kernel, stride=2, ceil_mode=True))
            else:
                block = Inception(channels, *(scaled(c, width) for c in spec), paper=self.paper)
                setattr(self, name, block)
                channels = block.out_channels
            self.stage_names.append(name)
            if name in AUX_AFTER and self.aux_logits:
                aux_heads[AUX_AFTER[name]] = InceptionAux(
                    channels, num_classes, dropout_aux, self.paper, conv_channels=scaled(128, width),
                    hidden=scaled(1024, width), adaptive_pool=not self.paper or self.small_input)
        for name, head in aux_heads.items():
            setattr(self, name, head)

    def _label(self):
        options = [name for name, on in (("paper", self.paper), ("small_input", self.small_input)) if on]
        return "GoogLeNet" + (f" ({', '.join(options)})" if options else "")

    def _transform_input(self, x):
        """torchvision's input conversion: ImageNet-normalised -> (x - 0.5) / 0.5 scaling, per channel."""
        xp = backend.get_array_module(x.data)
        scale = xp.asarray(np.array(_IMAGENET_STD) / 0.5, dtype=x.dtype).reshape(1, 3, 1, 1)
        shift = xp.asarray((np.array(_IMAGENET_MEAN) - 0.5) / 0.5, dtype=x.dtype).reshape(1, 3, 1, 1)
        return x * scale + shift

    def _stem(self, x):
        x = self.maxpool1(self.conv1(x))
        if self.paper:
            x = self.lrn1(x)
        x = self.conv3(self.conv2(x))
        if self.paper:
            x = self.lrn2(x)
        return self.maxpool2(x)

    def forward(self, x):
        check_input_size(self._label(), x, self.min_size)
        if self.transform_input:
            x = self._transform_input(x)
        x = self._stem(x)
        aux_outputs = {}
        for name in self.stage_names:
            x = getattr(self, name)(x)
            if name in AUX_AFTER and self.aux_logits and self.training:
                aux_outputs[AUX_AFTER[name]] = getattr(self, AUX_AFTER[name])(x)
        x = F.flatten(self.avgpool(x), 1)
        logits = self.fc(self.dropout(x))
        if self.training and self.aux_logits:
            return GoogLeNetOutputs(logits, aux_outputs["aux2"], aux_outputs["aux1"])
        return logits


@register("googlenet")
def googlenet(num_classes=1000, aux_logits=None, transform_input=None, dropout=0.2, dropout_aux=0.7, paper=False,
              width=1.0, small_input=False, weights=None):
    """GoogLeNet: torchvision's layout (``paper=False``, 13,004,888 parameters with the aux heads, 6,624,904
    without) or the paper's (``paper=True``, 13,378,280 / 6,998,552). Init: truncated normal std 0.01 like
    torchvision; Xavier weights and conv bias 0.2 like Caffe for ``paper=True``. See the module docstring for
    every difference and for ``small_input``.

    ``aux_logits`` and ``transform_input`` left at None mean True and False, or with published weights what they
    need (as torchvision: ``transform_input=True``, aux heads dropped). ``weights``: a published tag
    (``list_weights("googlenet")``) or the path of a .pth/.pt/.safetensors file with torchvision's keys."""
    return build("googlenet", GoogLeNet, weights, dict(
        num_classes=num_classes, aux_logits=aux_logits, transform_input=transform_input, dropout=dropout,
        dropout_aux=dropout_aux, paper=paper, width=width, small_input=small_input))
