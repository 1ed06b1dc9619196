"""Inception-ResNet-v1 and Inception-ResNet-v2 (Szegedy, Ioffe, Vanhoucke, Alemi 2016, "Inception-v4,
Inception-ResNet and the Impact of Residual Connections on Learning", arXiv 1602.07261).

Each Inception-ResNet block is an Inception block whose concatenated branches go through a 1x1 "filter
expansion" convolution (bias, no BatchNorm, no ReLU) back to the block's input width, are scaled down and added to
the input, then pass a ReLU (paper Fig. 10-13, 16-19)::

    out = relu(x + scale * expand_1x1(concat(branches(x))))          (x, out: (N, C, H, W), same shape)

The scale (0.17 / 0.10 / 0.20 for the 35x35 / 17x17 / 8x8 blocks) is the paper's fix for the residual
variants "dying" early in training once a block has more than about 1000 filters (paper section 3.3, Fig. 20).

Numerically identical to the public PyTorch ports, whose weights load through ``ti.interop``:

* ``inception_resnet_v2`` = timm ``inception_resnet_v2`` (the TF-slim graph, 55,843,464 parameters): an
  Inception-v3-style stem and ``Mixed_5b`` (35x35x320), 10 x A (scale 0.17), Reduction-A, 20 x B (0.10),
  Reduction-B, 9 x C (0.20) + one C with scale 1.0 and no ReLU, a 1x1 convolution to 1536, average pool,
  classifier. TF-slim's widths (320 / 1088 / 2080) and repeats (10 / 20 / 9+1) differ from the paper's Fig. 15
  (384 / 1154 / 2048, 5 / 10 / 5).
* ``inception_resnet_v1`` = facenet-pytorch ``InceptionResnetV1``'s trunk (the paper's Fig. 14 stem, 5 x A,
  Reduction-A with k, l, m, n = 192, 192, 256, 384, 10 x B, Reduction-B, 5 x C + one C without ReLU). See
  `InceptionResNetV1` for its two heads.

All convolutions except ``expand_1x1`` are `BasicConv2d` (conv without bias, BatchNorm eps 1e-3, ReLU). Our names
say what a layer is (``branch_3x3dbl``, ``blocks_b``, ``expand_1x1``); ``tinyinception/interop/inception_resnet.py``
maps them to the references' (``branch2``, ``repeat_1``, ``conv2d``).

``small_input=True`` keeps every block and every parameter shape (weights are interchangeable) but removes the
stem's downsampling except one stride-2 step, so a 32x32 image reaches the 35x35-grid blocks at 16x16, the 17x17
blocks at 7x7 and the 8x8 blocks at 3x3.
"""
from collections import OrderedDict

from .. import functional as F
from .. import nn
from ..nn.fused import run_branches
from .common import BasicConv2d, check_input_size, scaled
from .registry import build, register

MAXPOOL = "maxpool"

# The stems, one row per layer, in order. (stride, padding) at the native resolution, then with small_input=True
# (None: the layer is skipped, an Identity, for 32x32 images). A MAXPOOL row is a 3x3 max pool.
IRV2_STEM = [
    # name          out      kernel  native   small_input
    ("conv2d_1a",   32,      3,      (2, 0),  (1, 1)),
    ("conv2d_2a",   32,      3,      (1, 0),  (1, 1)),
    ("conv2d_2b",   64,      3,      (1, 1),  (1, 1)),
    ("maxpool_3a",  MAXPOOL, 3,      (2, 0),  None),
    ("conv2d_3b",   80,      1,      (1, 0),  (1, 0)),
    ("conv2d_4a",   192,     3,      (1, 0),  (1, 1)),
    ("maxpool_5a",  MAXPOOL, 3,      (2, 0),  (2, 1)),
]
IRV1_STEM = IRV2_STEM[:-1] + [
    ("conv2d_4b",   256,     3,      (2, 0),  (2, 1)),
]

# Channel counts of every block, per network (TF-slim / timm for v2, facenet-pytorch for v1). A tuple lists a
# tower's convolutions in order; "count" blocks of each residual kind are stacked.
INCEPTION_RESNET_V2 = {
    "stem": IRV2_STEM,
    "mixed_5b": {"branch_1x1": 96, "branch_5x5": (48, 64), "branch_3x3dbl": (64, 96, 96), "branch_pool": 64},
    "blocks_a": {"count": 10, "scale": 0.17, "branch_1x1": 32, "branch_3x3": (32, 32), "branch_3x3dbl": (32, 48, 64)},
    "reduction_a": {"branch_3x3": 384, "branch_3x3dbl": (256, 256, 384)},
    "blocks_b": {"count": 20, "scale": 0.10, "branch_1x1": 192, "branch_7x7": (128, 160, 192)},
    "reduction_b": {"branch_3x3a": (256, 384), "branch_3x3b": (256, 288), "branch_3x3dbl": (256, 288, 320)},
    "blocks_c": {"count": 9, "scale": 0.20, "branch_1x1": 192, "branch_3x3": (192, 224, 256)},
    "conv2d_7b": 1536,
}
INCEPTION_RESNET_V1 = {
    "stem": IRV1_STEM,
    "blocks_a": {"count": 5, "scale": 0.17, "branch_1x1": 32, "branch_3x3": (32, 32), "branch_3x3dbl": (32, 32, 32)},
    "reduction_a": {"branch_3x3": 384, "branch_3x3dbl": (192, 192, 256)},
    "blocks_b": {"count": 10, "scale": 0.10, "branch_1x1": 128, "branch_7x7": (128, 128, 128)},
    "reduction_b": {"branch_3x3a": (256, 384), "branch_3x3b": (256, 256), "branch_3x3dbl": (256, 256, 256)},
    "blocks_c": {"count": 5, "scale": 0.20, "branch_1x1": 192, "branch_3x3": (192, 192, 192)},
    "embedding": 512,
}

# Smallest input side each network accepts (the stride-2 layers without padding must still see a 3x3 window).
MIN_SIZE = 75
SMALL_INPUT_MIN_SIZE = 13


def _scaled_table(table, width):
    """Every channel count of a block table multiplied by ``width`` (see `scaled`); counts and scales kept."""
    out = {}
    for key, value in table.items():
        if key in ("count", "scale"):
            out[key] = value
        elif isinstance(value, tuple):
            out[key] = tuple(scaled(c, width) for c in value)
        else:
            out[key] = scaled(value, width)
    return out


def _tower(in_channels, layers):
    """A chain of BasicConv2d: ``layers`` = [(out_channels, kernel_size, stride, padding), ...]."""
    units = []
    for out_channels, kernel_size, stride, padding in layers:
        units.append(BasicConv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding))
        in_channels = out_channels
    return nn.Sequential(*units)


def _build_stem(rows, small_input, width):
    """The stem as a Sequential named like the reference (``conv2d_1a``, ``maxpool_3a``, ...)."""
    layers, channels = OrderedDict(), 3
    for name, out_channels, kernel_size, native, small in rows:
        geometry = small if small_input else native
        if geometry is None:
            layers[name] = nn.Identity()
        elif out_channels == MAXPOOL:
            layers[name] = nn.MaxPool2d(kernel_size, stride=geometry[0], padding=geometry[1])
        else:
            out_channels = scaled(out_channels, width)
            layers[name] = BasicConv2d(channels, out_channels, kernel_size, stride=geometry[0], padding=geometry[1])
            channels = out_channels
    return nn.Sequential(layers), channels


# ----------------------------------------------------------------------------------------------------------------
# Blocks
# ----------------------------------------------------------------------------------------------------------------
class Mixed5b(nn.Module):
    """Inception-ResNet-v2's (TF-slim's) last stem block, an Inception-v3-style 35x35 module without residual
    (timm ``Mixed_5b``): 1x1 | 1x1 -> 5x5 | 1x1 -> 3x3 -> 3x3 | 3x3 avg pool (padding not counted) -> 1x1.

    x: (N, in_channels, H, W) -> (N, out_channels, H, W), out_channels = the four branches' widths summed.
    """

    def __init__(self, in_channels, widths):
        super().__init__()
        self.branch_1x1 = BasicConv2d(in_channels, widths["branch_1x1"], 1)
        c5 = widths["branch_5x5"]
        self.branch_5x5 = _tower(in_channels, [(c5[0], 1, 1, 0), (c5[1], 5, 1, 2)])
        c3 = widths["branch_3x3dbl"]
        self.branch_3x3dbl = _tower(in_channels, [(c3[0], 1, 1, 0), (c3[1], 3, 1, 1), (c3[2], 3, 1, 1)])
        self.branch_pool = nn.Sequential(
            nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False),
            BasicConv2d(in_channels, widths["branch_pool"], 1),
        )
        self.out_channels = widths["branch_1x1"] + c5[1] + c3[2] + widths["branch_pool"]

    def forward(self, x):
        # the 1x1 convolutions on x run as one product, the pool after its 1x1 (see tinyinception.nn.fused)
        return F.concat(run_branches(x, [self.branch_1x1, self.branch_5x5, self.branch_3x3dbl], self.branch_pool),
                        dim=1)


class ScaledResidualBlock(nn.Module):
    """Base of the Inception-ResNet blocks: ``relu(x + scale * expand_1x1(concat(branches(x))))``.

    Subclasses create the branches named in ``branch_names`` (concatenated in that order) and call
    `_add_expansion`. ``activation=False`` drops the final ReLU (the network's last 8x8 block).
    x: (N, channels, H, W) -> (N, channels, H, W).
    """
    branch_names = ()

    def __init__(self, channels, scale, activation=True):
        super().__init__()
        self.channels, self.scale, self.activation = channels, scale, activation

    def _add_expansion(self, concat_channels):
        """The 1x1 "filter expansion" back to the input width: bias, no BatchNorm, no ReLU (paper section 3.2)."""
        self.expand_1x1 = nn.Conv2d(concat_channels, self.channels, 1, bias=True)

    def residual(self, x):
        """The scaled-down branch before the addition: expand_1x1(concat(branches(x))), unscaled."""
        branches = run_branches(x, [getattr(self, name) for name in self.branch_names])  # 1x1s as one product
        return self.expand_1x1(F.concat(branches, dim=1))

    def forward(self, x):
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise ValueError(f"{type(self).__name__}({self.channels}) expects input (N, {self.channels}, H, W), "
                             f"got shape {x.shape}")
        return F.residual_add(x, self.residual(x), self.scale, relu=self.activation)

    def extra_repr(self):
        return f"channels={self.channels}, scale={self.scale}, activation={self.activation}"


class InceptionResNetA(ScaledResidualBlock):
    """The 35x35 residual block (paper Fig. 10 for v1, Fig. 16 for v2; reference ``Block35``):
    1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 -> 3x3, concatenated, 1x1 expansion, scaled (0.17), added, ReLU."""
    branch_names = ("branch_1x1", "branch_3x3", "branch_3x3dbl")

    def __init__(self, channels, widths, scale, activation=True):
        super().__init__(channels, scale, activation)
        self.branch_1x1 = BasicConv2d(channels, widths["branch_1x1"], 1)
        c3 = widths["branch_3x3"]
        self.branch_3x3 = _tower(channels, [(c3[0], 1, 1, 0), (c3[1], 3, 1, 1)])
        cd = widths["branch_3x3dbl"]
        self.branch_3x3dbl = _tower(channels, [(cd[0], 1, 1, 0), (cd[1], 3, 1, 1), (cd[2], 3, 1, 1)])
        self._add_expansion(widths["branch_1x1"] + c3[1] + cd[2])


class InceptionResNetB(ScaledResidualBlock):
    """The 17x17 residual block (paper Fig. 11 / Fig. 17; reference ``Block17``): 1x1 | 1x1 -> 1x7 -> 7x1,
    concatenated, 1x1 expansion, scaled (0.10), added, ReLU. The 7x7 is factorised into 1x7 then 7x1."""
    branch_names = ("branch_1x1", "branch_7x7")

    def __init__(self, channels, widths, scale, activation=True):
        super().__init__(channels, scale, activation)
        self.branch_1x1 = BasicConv2d(channels, widths["branch_1x1"], 1)
        c7 = widths["branch_7x7"]
        self.branch_7x7 = _tower(channels, [(c7[0], 1, 1, 0), (c7[1], (1, 7), 1, (0, 3)), (c7[2], (7, 1), 1, (3, 0))])
        self._add_expansion(widths["branch_1x1"] + c7[2])


class InceptionResNetC(ScaledResidualBlock):
    """The 8x8 residual block (paper Fig. 13 / Fig. 19; reference ``Block8``): 1x1 | 1x1 -> 1x3 -> 3x1,
    concatenated, 1x1 expansion, scaled (0.20), added, ReLU (the network's last one: scale 1.0, no ReLU)."""
    branch_names = ("branch_1x1", "branch_3x3")

    def __init__(self, channels, widths, scale, activation=True):
        super().__init__(channels, scale, activation)
        self.branch_1x1 = BasicConv2d(channels, widths["branch_1x1"], 1)
        c3 = widths["branch_3x3"]
        self.branch_3x3 = _tower(channels, [(c3[0], 1, 1, 0), (c3[1], (1, 3), 1, (0, 1)), (c3[2], (3, 1), 1, (1, 0))])
        self._add_expansion(widths["branch_1x1"] + c3[2])


class ReductionA(nn.Module):
    """35x35 -> 17x17 (paper Fig. 7 with Table 1's k, l, m, n; reference ``Mixed_6a``):
    3x3/2 -> n | 1x1 -> k, 3x3 -> l, 3x3/2 -> m | 3x3/2 max pool (passes the input's channels).

    x: (N, C, H, W) -> (N, n + m + C, (H - 3) // 2 + 1, same for W).
    """

    def __init__(self, in_channels, widths):
        super().__init__()
        self.branch_3x3 = BasicConv2d(in_channels, widths["branch_3x3"], 3, stride=2)
        cd = widths["branch_3x3dbl"]
        self.branch_3x3dbl = _tower(in_channels, [(cd[0], 1, 1, 0), (cd[1], 3, 1, 1), (cd[2], 3, 2, 0)])
        self.branch_pool = nn.MaxPool2d(3, stride=2)
        self.out_channels = widths["branch_3x3"] + cd[2] + in_channels

    def forward(self, x):
        return F.concat([self.branch_3x3(x), self.branch_3x3dbl(x), self.branch_pool(x)], dim=1)


class ReductionB(nn.Module):
    """17x17 -> 8x8 (paper Fig. 12 for v1, Fig. 18 for v2; reference ``Mixed_7a``): three towers ending in a
    3x3/2 convolution (1x1 -> 3x3/2 | 1x1 -> 3x3/2 | 1x1 -> 3x3 -> 3x3/2) and a 3x3/2 max pool.

    x: (N, C, H, W) -> (N, sum of the towers' outputs + C, (H - 3) // 2 + 1, same for W).
    """

    def __init__(self, in_channels, widths):
        super().__init__()
        ca, cb, cd = widths["branch_3x3a"], widths["branch_3x3b"], widths["branch_3x3dbl"]
        self.branch_3x3a = _tower(in_channels, [(ca[0], 1, 1, 0), (ca[1], 3, 2, 0)])
        self.branch_3x3b = _tower(in_channels, [(cb[0], 1, 1, 0), (cb[1], 3, 2, 0)])
        self.branch_3x3dbl = _tower(in_channels, [(cd[0], 1, 1, 0), (cd[1], 3, 1, 1), (cd[2], 3, 2, 0)])
        self.branch_pool = nn.MaxPool2d(3, stride=2)
        self.out_channels = ca[1] + cb[1] + cd[2] + in_channels

    def forward(self, x):
        branches = run_branches(x, [self.branch_3x3a, self.branch_3x3b, self.branch_3x3dbl]) + [self.branch_pool(x)]
        return F.concat(branches, dim=1)


def _residual_stack(block_class, channels, widths):
    """``widths["count"]`` blocks of ``block_class``, each with residual scale ``widths["scale"]``."""
    return nn.Sequential(*[block_class(channels, widths, widths["scale"]) for _ in range(widths["count"])])


class _InceptionResNetTrunk(nn.Module):
    """What both networks share: stem, [Mixed_5b], A blocks, Reduction-A, B blocks, Reduction-B, C blocks and a last
    C block (scale 1.0, no ReLU). Subclasses add what follows (v2: conv2d_7b; both: the head)."""
    name = "inception_resnet"

    def _build_trunk(self, table, width, small_input):
        self.small_input = small_input
        self.min_size = SMALL_INPUT_MIN_SIZE if small_input else MIN_SIZE
        self.stem, channels = _build_stem(table["stem"], small_input, width)
        widths = {key: _scaled_table(value, width) for key, value in table.items() if isinstance(value, dict)}
        if "mixed_5b" in widths:
            self.mixed_5b = Mixed5b(channels, widths["mixed_5b"])
            channels = self.mixed_5b.out_channels
        self.blocks_a = _residual_stack(InceptionResNetA, channels, widths["blocks_a"])
        self.reduction_a = ReductionA(channels, widths["reduction_a"])
        channels = self.reduction_a.out_channels
        self.blocks_b = _residual_stack(InceptionResNetB, channels, widths["blocks_b"])
        self.reduction_b = ReductionB(channels, widths["reduction_b"])
        channels = self.reduction_b.out_channels
        self.blocks_c = _residual_stack(InceptionResNetC, channels, widths["blocks_c"])
        self.last_block_c = InceptionResNetC(channels, widths["blocks_c"], scale=1.0, activation=False)
        return channels

    def trunk(self, x):
        """x: (N, 3, H, W) -> (N, C, h, w), the output of the last C block (h = w = 8 for a 299x299 input)."""
        check_input_size(self.name, x, self.min_size)
        x = self.stem(x)
        if hasattr(self, "mixed_5b"):
            x = self.mixed_5b(x)
        x = self.reduction_a(self.blocks_a(x))
        x = self.reduction_b(self.blocks_b(x))
        return self.last_block_c(self.blocks_c(x))


# ----------------------------------------------------------------------------------------------------------------
# Networks
# ----------------------------------------------------------------------------------------------------------------
class InceptionResNetV2(_InceptionResNetTrunk):
    """Inception-ResNet-v2 as in TF-slim and timm: trunk, conv2d_7b (1x1 -> 1536), global average pool,
    dropout (timm's default 0), ``fc`` (timm ``classif``).

    x: (N, 3, H, W), H, W >= 75 (>= 13 with small_input) -> logits (N, num_classes), in train and eval mode.
    """
    name = "inception_resnet_v2"

    def __init__(self, num_classes=1000, width=1.0, small_input=False, dropout=0.0):
        super().__init__()
        table = INCEPTION_RESNET_V2
        channels = self._build_trunk(table, width, small_input)
        self.conv2d_7b = BasicConv2d(channels, scaled(table["conv2d_7b"], width), 1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(self.conv2d_7b.conv.out_channels, num_classes)

    def features(self, x):
        """x: (N, 3, H, W) -> (N, 1536, h, w), before the pool."""
        return self.conv2d_7b(self.trunk(x))

    def classifier(self, features):
        """features: (N, 1536, h, w) -> logits (N, num_classes): global average pool, dropout, fc."""
        return self.fc(self.dropout(F.global_avg_pool2d(features)))

    def forward(self, x):
        return self.classifier(self.features(x))


HEADS = ("plain", "facenet")


class InceptionResNetV1(_InceptionResNetTrunk):
    """Inception-ResNet-v1: facenet-pytorch's ``InceptionResnetV1`` trunk with one of two heads.

    * ``head="plain"`` (an ImageNet-style classifier; no public reference has one): global average pool ->
      dropout -> ``fc`` Linear(1792, num_classes). 24,357,096 parameters at 1000 classes. Default dropout 0.2,
      the paper's keep probability 0.8.
    * ``head="facenet"``: exactly ``InceptionResnetV1(classify=True, num_classes=...)``: global average pool ->
      dropout (facenet's default 0.6) -> ``embedding`` Linear(1792, 512, bias=False) (facenet ``last_linear``) ->
      ``embedding_bn`` BatchNorm1d(512, eps 1e-3, momentum 0.1) (``last_bn``) -> ``fc`` Linear(512, num_classes)
      (``logits``). In classify mode facenet does NOT L2-normalise before the logits (it normalises only the 512-d
      embedding it returns when classify=False), and neither do we. 23,995,624 parameters at 1000 classes.

    x: (N, 3, H, W), H, W >= 75 (>= 13 with small_input; facenet's native size is 160) -> logits (N, num_classes),
    in train and eval mode; ``embed(x)`` gives facenet's L2-normalised 512-d embeddings instead.
    """
    name = "inception_resnet_v1"

    def __init__(self, num_classes=1000, head="plain", width=1.0, small_input=False, dropout=None):
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"inception_resnet_v1: head must be one of {HEADS}, got {head!r}")
        self.head = head
        table = INCEPTION_RESNET_V1
        channels = self._build_trunk(table, width, small_input)
        self.dropout = nn.Dropout((0.2 if head == "plain" else 0.6) if dropout is None else dropout)
        if head == "facenet":
            embedding = scaled(table["embedding"], width)
            self.embedding = nn.Linear(channels, embedding, bias=False)
            self.embedding_bn = nn.BatchNorm1d(embedding, eps=1e-3, momentum=0.1)
            channels = embedding
        self.fc = nn.Linear(channels, num_classes)

    def classifier(self, features):
        """features: (N, 1792, h, w) -> logits (N, num_classes) through the chosen head."""
        x = self.dropout(F.global_avg_pool2d(features))
        if self.head == "facenet":
            x = self.embedding_bn(self.embedding(x))
        return self.fc(x)

    def forward(self, x):
        return self.classifier(self.trunk(x))

    def embed(self, x):
        """facenet's ``classify=False`` output (``head="facenet"`` only): x (N, 3, H, W) -> (N, 512) face embeddings
        of unit length: global average pool, dropout, ``embedding``, ``embedding_bn``, then L2 normalisation.
        Two faces are compared by the distance between their embeddings (the logits are not used)."""
        if self.head != "facenet":
            raise ValueError(f"{type(self).__name__}.embed: needs head='facenet' (this model has head={self.head!r},"
                             " which has no embedding layer)")
        features = self.dropout(F.global_avg_pool2d(self.trunk(x)))
        return F.normalize(self.embedding_bn(self.embedding(features)), p=2, dim=1)


@register("inception_resnet_v2")
def inception_resnet_v2(num_classes=1000, width=1.0, small_input=False, dropout=0.0, weights=None):
    """Inception-ResNet-v2 (timm ``inception_resnet_v2``): 55,843,464 parameters at 1000 classes. ``weights``: a
    published tag (``list_weights("inception_resnet_v2")``) or the path of a .pth/.pt/.safetensors file with timm's
    keys."""
    return build("inception_resnet_v2", InceptionResNetV2, weights, dict(
        num_classes=num_classes, width=width, small_input=small_input, dropout=dropout))


@register("inception_resnet_v1")
def inception_resnet_v1(num_classes=1000, head="plain", width=1.0, small_input=False, dropout=None, weights=None):
    """Inception-ResNet-v1 (facenet-pytorch trunk): 24,357,096 parameters at 1000 classes with the plain head,
    23,995,624 with ``head="facenet"`` (see `InceptionResNetV1`). ``weights``: a published tag
    (``list_weights("inception_resnet_v1")``: facenet's "vggface2", "casia-webface"; they set ``head="facenet"``
    and their class count) or the path of a .pth/.pt/.safetensors file with facenet-pytorch's keys."""
    return build("inception_resnet_v1", InceptionResNetV1, weights, dict(
        num_classes=num_classes, head=head, width=width, small_input=small_input, dropout=dropout))
