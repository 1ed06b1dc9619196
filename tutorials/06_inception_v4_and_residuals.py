"""
Inception-v4 and Inception-ResNet: the same kind of block with and without a residual connection
=================================================================================================

An Inception-v4 block (Inception-A, paper Fig. 4) next to Inception-ResNet-v2's 35x35 block (Fig. 16, timm's
Block35): what the residual version adds (a 1x1 "filter expansion" back to the input width, a scale, an
addition) and drops (the pool branch); what the identity path does to one feature map; why the residual is
scaled by 0.1 to 0.3 (a stack of real Block35s with random weights, measured); and the six networks side by side.

**Run time:** about a minute on 2 cores (``python tutorials/06_inception_v4_and_residuals.py``); ``--quick``
uses a shorter residual stack and fewer timing runs (about 30 seconds). Figures are also saved to
``runs/tutorials/06_inception_v4_and_residuals/`` under the current folder.
"""

# %%
import argparse
import os
import time

import matplotlib.pyplot as plt
import numpy as np

import tinyinception as ti
from tinyinception import nn
from tinyinception.models import inception_resnet as irn
from tinyinception.models.inception_v4 import INCEPTION_V4_BLOCKS, InceptionA

EXPECTED = ["googlenet", "bn_inception", "inception_v3", "inception_v4", "inception_resnet_v1", "inception_resnet_v2"]
NATIVE_SIZE = {"googlenet": 224, "bn_inception": 224}  # every other network: 299

parser = argparse.ArgumentParser(description="Inception-v4 and Inception-ResNet, step by step")
parser.add_argument("--quick", action="store_true", help="shorter residual stack, fewer and smaller timing runs")
args, _ = parser.parse_known_args()
OUT = os.path.join("runs", "tutorials", "06_inception_v4_and_residuals")
os.makedirs(OUT, exist_ok=True)
ti.manual_seed(0)


def rms(array):
    """Root mean square of an array (float64 accumulation): the typical magnitude of an activation."""
    return float(np.sqrt(np.mean(np.square(array, dtype=np.float64))))


def describe_convolutions(block):
    """One line per convolution of a block: its name, kernel, channels in -> out."""
    for name, module in block.named_modules():
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            bias = " + bias (no BatchNorm, no ReLU)" if module.bias is not None else ""
            print(f"    {name:28s} {kh}x{kw}  {module.in_channels:4d} -> {module.out_channels:4d}{bias}")


# %% [markdown]
# 1. Inception-v4's Inception-A versus Inception-ResNet-v2's 35x35 block
# ----------------------------------------------------------------------

# %%
v4_block = InceptionA(384, **INCEPTION_V4_BLOCKS[0][3])
ir_widths = irn.INCEPTION_RESNET_V2["blocks_a"]
ir_block = irn.InceptionResNetA(320, ir_widths, scale=ir_widths["scale"])
print("Inception-v4, Inception-A (384 channels in, concatenation out):")
describe_convolutions(v4_block)
print("    + a 3x3 average pool in front of branch_pool")
print("Inception-ResNet-v2, Inception-ResNet-A (320 channels in and out):")
describe_convolutions(ir_block)
print(f"    out = relu(x + {ir_block.scale} * expand_1x1(concat(branches)))")
size = 17 if args.quick else 35
print(f"\ncost at {size}x{size} (ti.summary, per image):")
for title, block, channels in [("Inception-A (v4)", v4_block, 384), ("Inception-ResNet-A (IR-v2)", ir_block, 320)]:
    result = ti.summary(block, (channels, size, size), batch_size=2, show=False)
    print(f"    {title:28s} {channels} -> {result.output_shape[1]} channels   {result.total_params:>9,} params   "
          f"{result.total_macs / 1e6:8.1f} M mult-adds")

# %% [markdown]
# The residual block keeps the same kind of towers (1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 -> 3x3), thinner, drops the
# pool branch, and must end where it started: ``expand_1x1`` maps the 128 concatenated channels back to 320 so
# the branch can be added to ``x``. That 1x1 has a bias and no BatchNorm or ReLU: the paper puts BatchNorm only
# on the traditional layers, not on top of the additions.
#
# 2. One block: ``x + scale * branch``, versus the branch alone
# -------------------------------------------------------------
# The cosine between the block's output and its input says how much of ``x`` survives.

# %%
def cosine(a, b):
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


size = 8 if args.quick else 17
x = ti.Tensor(np.maximum(np.random.default_rng(0).standard_normal((2, 320, size, size)), 0).astype(np.float32))
ir_block.train()  # BatchNorm with batch statistics, as during training
with ti.no_grad():
    branch = ir_block.residual(x)             # expand_1x1(concat(branches(x)))
    with_identity = ir_block(x)               # relu(x + 0.17 * branch)
    plain = ti.functional.relu(branch)        # the same branches, no identity path
print(f"rms(x) = {rms(x.numpy()):.3f}   rms(branch) = {rms(branch.numpy()):.3f}   "
      f"rms(0.17 * branch) = {rms(branch.numpy()) * 0.17:.3f}")
print(f"cosine(output, x): residual block {cosine(with_identity.numpy(), x.numpy()):.3f}, "
      f"plain block {cosine(plain.numpy(), x.numpy()):.3f}")

# %% [markdown]
# The residual block nudges ``x``; the plain block replaces it with a new map (the cosine it keeps is what any
# two non-negative maps share). A stack of residual blocks starts out close to the identity, which is what let
# the Inception-ResNets train faster than the plain Inception-v4 (the paper's main finding).
#
# 3. Why scale the residuals
# --------------------------
# A stack of real Block35s with random weights (the same weights for both runs), the residual scale set to 1.0
# and then to 0.17: the rms of the activation after each block, and the rms of the gradient of
# ``sum(output * projection)`` at the stack's input.

# %%
def measure_stack(blocks, x, scale):
    """Run the stack with every block's scale set to ``scale``: (rms after each block, rms of the input gradient)."""
    for block in blocks:
        block.scale = scale
    inputs = ti.Tensor(x.copy(), requires_grad=True)
    magnitudes, out = [rms(x)], inputs
    for block in blocks:
        out = block(out)
        magnitudes.append(rms(out.numpy()))
    projection = np.random.default_rng(1).standard_normal(out.shape).astype(np.float32)
    (out * ti.Tensor(projection)).sum().backward()
    return magnitudes, rms(inputs.grad)


depth = 10 if args.quick else 30
blocks = [irn.InceptionResNetA(320, ir_widths, scale=1.0).train() for _ in range(depth)]
x = np.maximum(np.random.default_rng(2).standard_normal((2, 320, size, size)), 0).astype(np.float32)
results = {scale: measure_stack(blocks, x, scale) for scale in (1.0, 0.17)}
print(f"rms of the activation after each block ({size}x{size}, batch 2, BatchNorm with batch statistics):")
print(f"    {'block':>5s}  {'scale 1.0':>10s}  {'scale 0.17':>10s}")
for i in range(depth + 1):
    if i <= 3 or i % max(1, depth // 5) == 0 or i == depth:
        print(f"    {i:5d}  {results[1.0][0][i]:10.3f}  {results[0.17][0][i]:10.3f}")
growth = {s: results[s][0][-1] / results[s][0][0] for s in results}
print(f"growth over {depth} blocks: x{growth[1.0]:.2f} with scale 1.0, x{growth[0.17]:.2f} with 0.17; rms of the "
      f"input gradient: {results[1.0][1]:.3g} vs {results[0.17][1]:.3g}")

fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [2, 1]})
for scale, (magnitudes, _) in results.items():
    left.plot(range(depth + 1), magnitudes, marker="o", markersize=3, label=f"residual scale {scale}")
left.set_xlabel("Block35s applied")
left.set_ylabel("rms of the activation")
left.set_title("Activation magnitude through the stack")
left.legend()
right.bar([str(scale) for scale in results], [results[scale][1] for scale in results], color=["tab:blue",
                                                                                             "tab:orange"])
right.set_xlabel("residual scale")
right.set_ylabel("rms of the input gradient")
right.set_title("Gradient at the stack's input")
fig.suptitle(f"{depth} Inception-ResNet-v2 Block35s, random weights, {size}x{size}")
fig.tight_layout()
fig.savefig(os.path.join(OUT, "residual_scaling.png"), dpi=100)

# %% [markdown]
# Each BatchNorm inside a branch renormalises, so every block adds a branch of roughly the same size whatever
# ``x`` is: the sum grows with depth (its variance adds up block after block), and so do the gradients flowing
# back. Szegedy et al. (Inception-v4 paper, section 3.3) saw the residual variants with more than about 1000
# filters in a block "die" early in training (the layer before the pool started giving only zeros), and a lower
# learning rate or extra BatchNorm did not prevent it. Multiplying each residual by a factor between 0.1 and 0.3
# before the addition did: IR-v2 uses 0.17 (35x35), 0.10 (17x17, 1088 filters) and 0.20 (8x8, 2080 filters),
# and its last block 1.0.
#
# 4. The six networks side by side
# --------------------------------
# Parameters (at 1000 classes) and multiply-adds per image at each network's native size, counted by
# ``ti.summary``; and the measured time of an eval forward pass of a 32x32 image through each network's
# ``small_input`` stem on this machine. The multiply-adds are the machine-independent figure; the times move with
# the machine and its load.

# %%
def time_per_image(name, batch, repeats):
    """Seconds per image of an eval-mode forward pass on (batch, 3, 32, 32) with the network's small_input stem
    (after one warm-up pass, which also compiles the Numba kernels it needs); the best of ``repeats``."""
    model = ti.models.create(name, num_classes=10, small_input=True).eval()
    x = ti.Tensor(np.random.default_rng(0).standard_normal((batch, 3, 32, 32)).astype(np.float32))
    best = float("inf")
    with ti.no_grad():
        model(x)
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            best = min(best, time.perf_counter() - start)
    return best / batch


batch, repeats = (1, 1) if args.quick else (2, 3)
names = ti.models.list_models()
ordered = [name for name in EXPECTED if name in names] + [name for name in names if name not in EXPECTED]
rows = []
print(f"{'network':22s} {'input':>7s} {'params':>12s} {'used (eval)':>12s} {'mult-adds':>11s} {'ms / image':>11s}")
for name in ordered:
    native = NATIVE_SIZE.get(name, 299)
    result = ti.summary(ti.models.create(name), (3, native, native), show=False)
    seconds = time_per_image(name, batch, repeats)
    rows.append((name, result.total_params, result.used_params, result.total_macs, seconds))
    print(f"{name:22s} {native:>3d}x{native:<3d} {result.total_params:>12,} {result.used_params:>12,} "
          f"{result.total_macs / 1e9:>9.2f} G {seconds * 1e3:>11.1f}", flush=True)
print(f"(time: eval forward of 32x32 images through the small_input stem, batch {batch}, best of {repeats})")
macs = {row[0]: row[3] for row in rows}
if all(name in macs for name in EXPECTED):
    print(f"multiply-adds: IR-v1 / v3 = {macs['inception_resnet_v1'] / macs['inception_v3']:.2f}, "
          f"IR-v2 / v4 = {macs['inception_resnet_v2'] / macs['inception_v4']:.2f}")

fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
panels = [("parameters used in eval (millions)", [row[2] / 1e6 for row in rows]),
          ("mult-adds per image at native size (G)", [row[3] / 1e9 for row in rows]),
          ("ms per 32x32 image (small_input stem, measured)", [row[4] * 1e3 for row in rows])]
for axis, (title, values) in zip(axes, panels):
    axis.bar(range(len(rows)), values, color="tab:blue")
    axis.set_xticks(range(len(rows)))
    axis.set_xticklabels([row[0] for row in rows], rotation=35, ha="right", fontsize=8)
    axis.set_title(title, fontsize=10)
fig.suptitle("The Inception family side by side")
fig.tight_layout()
fig.savefig(os.path.join(OUT, "inception_family.png"), dpi=100)

# %% [markdown]
# The paper designed Inception-ResNet-v1 to cost about what Inception-v3 does and Inception-ResNet-v2 about what
# Inception-v4 does (the two ratios printed above); the residual versions reached the same accuracy in fewer
# training steps. GoogLeNet's total includes its two auxiliary classifiers, which only run in training
# ("used (eval)" leaves them out).
