"""
The 1x1 convolution, Inception's bottleneck
===========================================

A 1x1 convolution mixes channels and never looks at neighbours: a matrix product over channels at every pixel.
Put in front of a 5x5 convolution, it cuts the work that convolution does; this page counts by how much, from the
real layers, and times it.

**Run time:** about 10 to 20 seconds on 2 cores (``python tutorials/03_one_by_one_convolution.py``);
``--quick`` times smaller inputs (a few seconds). The figure is also saved to
``runs/tutorials/03_one_by_one_convolution/`` under the current folder.
"""

# %%
import argparse
import os
import time

import matplotlib.pyplot as plt
import numpy as np

import tinyinception as ti
from tinyinception import nn

parser = argparse.ArgumentParser(description="The 1x1 convolution, Inception's bottleneck")
parser.add_argument("--quick", action="store_true", help="smaller inputs (used by the tests and the docs build)")
args, _ = parser.parse_known_args()
OUT = os.path.join("runs", "tutorials", "03_one_by_one_convolution")
os.makedirs(OUT, exist_ok=True)


def weights_of(*layers):
    """Weights of convolutions (biases left out, as the usual arithmetic leaves them out)."""
    return sum(layer.weight.numel() for layer in layers)


def multiply_adds(layer, out_h, out_w):
    """One multiply-add per weight per output pixel."""
    return layer.weight.numel() * out_h * out_w


def timed(fn, repeats=3):
    """Seconds per call of ``fn`` (no graph recorded), after one warm-up call."""
    with ti.no_grad():
        fn()
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
    return (time.perf_counter() - start) / repeats


# %% [markdown]
# 1. A 1x1 convolution is a matrix product over channels
# ------------------------------------------------------
# Every pixel's channel vector is multiplied by the same ``(out, in)`` matrix. That is why it is cheap, and why
# tinyinception runs it as one matrix product without im2col.

# %%
rng = np.random.default_rng(0)
x = rng.standard_normal((2, 6, 4, 5)).astype(np.float32)
layer = nn.Conv2d(6, 3, kernel_size=1, bias=False)
by_conv = layer(ti.tensor(x)).numpy()
by_matmul = layer.weight.numpy().reshape(3, 6) @ x.reshape(2, 6, 4 * 5)  # (3, 6) @ (N, 6, H*W)
print(f"x {x.shape}, weight {layer.weight.shape}: conv2d and weight @ x.reshape(N, C, H*W) differ by "
      f"{np.abs(by_conv - by_matmul.reshape(by_conv.shape)).max():.1e}")

# %% [markdown]
# 2. The textbook example: 128 -> 256 channels through a 5x5, with and without a 1x1 reduction to 32
# ----------------------------------------------------------------------------------------------------
# Weights and multiply-adds are counted from the layers themselves. Popular write-ups often quote only the
# 204,800 weights of the 5x5 after the reduction and forget the 4,096 of the 1x1 that makes it possible: the
# reduced pair holds 208,896.

# %%
size = 20 if args.quick else 100
direct = nn.Conv2d(128, 256, kernel_size=5, padding=2, bias=False)
reduce = nn.Conv2d(128, 32, kernel_size=1, bias=False)
after = nn.Conv2d(32, 256, kernel_size=5, padding=2, bias=False)
w_direct, w_reduced = weights_of(direct), weights_of(reduce, after)
print(f"weights, 5x5 directly        : 5*5*128*256 = {w_direct:,}")
print(f"weights, 1x1 to 32, then 5x5 : 1*1*128*32 + 5*5*32*256 = {weights_of(reduce):,} + {weights_of(after):,}"
      f" = {w_reduced:,}  ({w_direct / w_reduced:.1f}x fewer)")
assert (w_direct, weights_of(reduce), weights_of(after)) == (819_200, 4_096, 204_800)

macs_direct = multiply_adds(direct, 100, 100)
macs_reduced = multiply_adds(reduce, 100, 100) + multiply_adds(after, 100, 100)
print(f"multiply-adds at 100x100     : {macs_direct / 1e9:.2f} G versus {macs_reduced / 1e9:.2f} G "
      f"({macs_direct / macs_reduced:.1f}x fewer)")

x = ti.tensor(np.random.default_rng(1).standard_normal((1, 128, size, size)).astype(np.float32))
t_direct = timed(lambda: direct(x))
t_reduced = timed(lambda: after(reduce(x)))
print(f"measured at {size}x{size}, batch 1: {t_direct * 1e3:.1f} ms versus {t_reduced * 1e3:.1f} ms "
      f"(time ratio {t_direct / t_reduced:.1f} on this run)")

# %% [markdown]
# The 32-channel bottleneck squeezes what the 5x5 sees. It works because neighbouring channels are highly
# correlated: the network learns a compact summary before the expensive spatial filter.
#
# 3. GoogLeNet's inception (3a) 5x5 branch: 192 channels in, 32 out, at 28x28
# ---------------------------------------------------------------------------

# %%
batch = 2 if args.quick else 8
naive = nn.Conv2d(192, 32, kernel_size=5, padding=2, bias=False)
reduce = nn.Conv2d(192, 16, kernel_size=1, bias=False)
after = nn.Conv2d(16, 32, kernel_size=5, padding=2, bias=False)
naive_macs = multiply_adds(naive, 28, 28)
reduced_macs = multiply_adds(reduce, 28, 28) + multiply_adds(after, 28, 28)
print(f"without reduction: {weights_of(naive):,} weights, {naive_macs / 1e6:.1f} M multiply-adds per image")
print(f"with 1x1 to 16   : {weights_of(reduce, after):,} weights, {reduced_macs / 1e6:.1f} M multiply-adds "
      f"per image")
x = ti.tensor(np.random.default_rng(2).standard_normal((batch, 192, 28, 28)).astype(np.float32))
t_naive = timed(lambda: naive(x))
t_reduced = timed(lambda: after(reduce(x)))
print(f"measured, batch {batch}: {t_naive * 1e3:.1f} ms versus {t_reduced * 1e3:.1f} ms")

fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
labels = ["5x5 directly", "1x1 to 16, then 5x5"]
axes[0].bar(labels, [naive_macs / 1e6, reduced_macs / 1e6], color=["tab:red", "tab:green"])
axes[0].set_ylabel("M multiply-adds per image")
axes[0].set_title("counted (machine-independent)")
axes[1].bar(labels, [t_naive * 1e3, t_reduced * 1e3], color=["tab:red", "tab:green"])
axes[1].set_ylabel(f"ms per batch of {batch}")
axes[1].set_title("measured on this run")
fig.suptitle("inception (3a)'s 5x5 branch, 192 -> 32 channels at 28x28")
fig.tight_layout()
fig.savefig(os.path.join(OUT, "bottleneck_cost.png"), dpi=100)

# %% [markdown]
# torchvision's GoogLeNet actually uses a 3x3 here, a known slip carried over from its first port;
# ``ti.models.googlenet(paper=True)`` has the paper's 5x5.
