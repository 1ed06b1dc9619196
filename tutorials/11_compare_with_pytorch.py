"""
Compare with PyTorch, layer by layer
====================================

You wrote an Inception block, PyTorch computes the same block, and the two answers differ in the seventh digit.
Is that a bug or rounding? And when it *is* a bug, where is it? ``ti.interop.compare`` answers both questions:
it runs our model and a PyTorch model on the same input, records every module's output and the gradient that
flows into it on both sides, and measures, module by module, how far apart they are, against a *yardstick*:
how far PyTorch's own float32 result lies from its float64 result at that module.

This page builds one block in both frameworks, compares them, plants the three classic bugs of Inception
write-ups and watches the tool name the layer each time, then runs a whole small network in float32 and looks at
the places where the two sides legitimately disagree: near-ties at ReLUs and max pools.

Run time: about a minute on two idle cores (``--quick``: a smaller input and batch, about half of that). Needs
PyTorch. Run it with ``python tutorials/11_compare_with_pytorch.py [--quick]``.
"""
# %%
import argparse
import os

import matplotlib.pyplot as plt
import numpy as np

import tinyinception as ti
import tinyinception.functional as F
from tinyinception import nn
from tinyinception.models.common import BasicConv2d

parser = argparse.ArgumentParser()
parser.add_argument("--quick", action="store_true", help="a smaller input, for a quick check")
QUICK = parser.parse_known_args()[0].quick
OUT = os.path.join("runs", "tutorials", "11_compare_with_pytorch")
os.makedirs(OUT, exist_ok=True)
try:
    import torch
    from torch import nn as tnn
except ImportError:
    raise SystemExit("This tutorial compares with PyTorch: pip install torch (the CPU build is enough).")
torch.manual_seed(0)

# %% [markdown]
# One block, twice
# ----------------
# An Inception block as GoogLeNet draws it, with BatchNorm after every convolution (as torchvision's GoogLeNet
# has it) and, in the pool branch, a 3x3 *average* pool that does not count the padding (as Inception-v4 has
# it): four branches read the same input and their outputs are concatenated on the channel axis. The PyTorch
# version uses the same module names, so the two can be paired by name.

# %%
class Block(nn.Module):
    """x: (N, cin, H, W) -> (N, 16 + 24 + 12 + 8, H, W)."""

    def __init__(self, cin=32, pad_5x5=2, count_include_pad=False, eps_5x5=1e-3):
        super().__init__()
        self.branch1 = BasicConv2d(cin, 16, 1)
        self.branch3 = nn.Sequential(BasicConv2d(cin, 16, 1), BasicConv2d(16, 24, 3, padding=1))
        self.branch5 = nn.Sequential(BasicConv2d(cin, 8, 1), BasicConv2d(8, 12, 5, padding=pad_5x5, eps=eps_5x5))
        self.branch_pool = nn.Sequential(nn.AvgPool2d(3, 1, 1, count_include_pad=count_include_pad),
                                         BasicConv2d(cin, 8, 1))

    def forward(self, x):
        return F.concat([self.branch1(x), self.branch3(x), self.branch5(x), self.branch_pool(x)], dim=1)


class TorchUnit(tnn.Module):
    """conv -> BatchNorm -> ReLU, as torchvision's BasicConv2d."""

    def __init__(self, cin, cout, k, padding=0):
        super().__init__()
        self.conv = tnn.Conv2d(cin, cout, k, padding=padding, bias=False)
        self.bn = tnn.BatchNorm2d(cout, eps=1e-3)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)))


class TorchBlock(tnn.Module):
    def __init__(self, cin=32):
        super().__init__()
        self.branch1 = TorchUnit(cin, 16, 1)
        self.branch3 = tnn.Sequential(TorchUnit(cin, 16, 1), TorchUnit(16, 24, 3, padding=1))
        self.branch5 = tnn.Sequential(TorchUnit(cin, 8, 1), TorchUnit(8, 12, 5, padding=2))
        self.branch_pool = tnn.Sequential(tnn.AvgPool2d(3, 1, 1, count_include_pad=False), TorchUnit(cin, 8, 1))

    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch3(x), self.branch5(x), self.branch_pool(x)], 1)


def give_batchnorm_statistics(model):
    """Running statistics far from the defaults (mean 0, variance 1), as a trained network has them."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, tnn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.001, 0.05)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return model


reference = give_batchnorm_statistics(TorchBlock()).eval()
size = 14 if QUICK else 28
x = np.random.default_rng(0).standard_normal((4, 32, size, size)).astype(np.float32)

# %% [markdown]
# The comparison
# --------------
# ``load_weights=True`` copies PyTorch's weights into ours first (by equal names here; our published networks
# use their interop name tables). Every row is one module, in the order the modules ran; ``out diff`` is the
# largest absolute difference of the outputs, ``grad diff`` that of the gradients flowing into them, each next
# to its yardstick.

# %%
ours = Block().eval()
result = ti.interop.compare(ours, reference, x, load_weights=True)
print(result.table())
print("\nfirst divergence:", result.first_divergence)

# %% [markdown]
# The difference of every convolution is of the size of its yardstick: the two frameworks add the same products
# in other orders, and PyTorch's own float32 result is that far from exact. The same comparison in float64
# (``ours.double()``) shrinks every column by about nine orders of magnitude, which is what rounding does and a
# bug would not.

# %%
ours64 = Block().eval().double()
result64 = ti.interop.compare(ours64, reference, x, load_weights=True)
for name in ("branch3.1.conv", "branch5.1.bn", ""):
    row32, row64 = result.row(name), result64.row(name)
    print(f"{row32.label:16s} float32 diff {row32.output.abs:.1e} (yardstick {row32.output_yardstick:.1e})   "
          f"float64 diff {row64.output.abs:.1e} (yardstick {row64.output_yardstick:.1e})")
print("float64 first divergence:", result64.first_divergence)

# %% [markdown]
# Three classic bugs
# ------------------
# Each of these appears in published re-implementations of Inception. We plant one at a time in *our* block and
# let the comparison find it.
#
# 1. The 5x5 branch padded by 1 instead of 2: its output is 2 pixels smaller, and the concatenation fails. The
#    comparison does not stop there: it reports the row whose shape differs and where the forward pass raised.
# 2. ``count_include_pad`` the wrong way: the average pool divides border windows by 9 instead of by the number
#    of real pixels, so only the border differs, by a lot.
# 3. BatchNorm's eps at PyTorch's default 1e-5 where the reference (like every Inception network) has 1e-3: a
#    small difference, but hundreds of yardsticks large once the running variance is small.

# %%
bugs = {"5x5 padded 1": dict(pad_5x5=1), "count_include_pad=True": dict(count_include_pad=True),
        "eps 1e-5 in one BatchNorm": dict(eps_5x5=1e-5)}
for title, planted in bugs.items():
    found = ti.interop.compare(Block(**planted).eval(), reference, x, load_weights=True)
    print(f"\n--- {title} ---\nfirst divergence: {found.first_divergence}\n{found.summary()}")

# %% [markdown]
# The table of the last one shows the whole story: everything before the bad BatchNorm agrees, the modules after
# it diverge, and the convolution in front of it still computes the right output but receives a wrong gradient
# (``affected``): the error comes back through the BatchNorm's backward.

# %%
print(found.table())

# %% [markdown]
# A whole network, in float32
# ---------------------------
# Now a small Inception network, the same in both frameworks: a stem, two blocks, a max pool, two more blocks,
# global average pooling and a classifier. With correct code, are there differences beyond rounding?

# %%
class Network(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = BasicConv2d(3, 32, 3, padding=1)
        self.block1, self.block2 = Block(32), Block(60)
        self.pool = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.block3, self.block4 = Block(60), Block(60)
        self.fc = nn.Linear(60, 10)

    def forward(self, x):
        x = self.block2(self.block1(self.stem(x)))
        x = self.block4(self.block3(self.pool(x)))
        return self.fc(x.mean(dim=(2, 3)))


class TorchNetwork(tnn.Module):
    def __init__(self):
        super().__init__()
        self.stem = TorchUnit(3, 32, 3, padding=1)
        self.block1, self.block2 = TorchBlock(32), TorchBlock(60)
        self.pool = tnn.MaxPool2d(3, 2, ceil_mode=True)
        self.block3, self.block4 = TorchBlock(60), TorchBlock(60)
        self.fc = tnn.Linear(60, 10)

    def forward(self, x):
        x = self.block2(self.block1(self.stem(x)))
        x = self.block4(self.block3(self.pool(x)))
        return self.fc(x.mean(dim=(2, 3)))


images = np.random.default_rng(1).standard_normal((8 if QUICK else 16, 3, 32, 32)).astype(np.float32)
network = ti.interop.compare(Network().eval(), give_batchnorm_statistics(TorchNetwork()).eval(), images,
                             load_weights=True)
print(network.summary())
ties = network.near_ties()
print(f"modules with near-ties: {len(ties)}")
for row in ties[:8]:
    print(f"  {row.label:28s} {row.note}")

# %% [markdown]
# A near-tie, where the run above finds any, is a ReLU input within rounding of zero, or a max-pool window whose
# two largest values lie within rounding of each other: the forward outputs still agree to rounding there (the
# values involved are tiny or nearly equal), but the gradient of that element goes another way. Gradients further
# back that differ because of such a place are marked ``explained`` rather than ``diverges``. How many there are
# depends on the input and on the order in which each library adds: the count printed above is this run's. The
# plot shows every module's difference next to its yardstick along the depth of the network; marks at the bottom
# show the near-ties.

# %%
figure = network.plot()
figure.savefig(os.path.join(OUT, "network_differences.png"), dpi=100)
plt.show()

# %% [markdown]
# And the eps bug, planted in one BatchNorm of the third block, in the same network:

# %%
network_bug = Network().eval()
network_bug.block3.branch5[1].bn.eps = 1e-5
found = ti.interop.compare(network_bug, give_batchnorm_statistics(TorchNetwork()).eval(), images,
                           load_weights=True)
print(found.summary())
figure = found.plot()
figure.savefig(os.path.join(OUT, "network_with_bug.png"), dpi=100)
plt.show()
