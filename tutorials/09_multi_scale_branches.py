"""
Do parallel branches of different sizes serve objects of different scales?
==========================================================================

The Inception module runs 1x1, 3x3 and 5x5 convolutions and a pooled 1x1 side by side, so that "visual
information is processed at various scales and then aggregated" (Szegedy et al. 2014). Does a trained network
use them that way: do the wider branches matter more for large objects, the 1x1 for small ones? This page trains
a GoogLeNet on Shapes10, whose shapes have radii from about 4 to 14 pixels, and measures, for each Inception
block and each branch, how much that branch contributes, as a function of the object's radius. It reports what
the measurement shows, whichever way it comes out.

**Run time:** the full run (``python tutorials/09_multi_scale_branches.py``) trains for 3 epochs on 20,000
images, about as much work as ``tinyinception train`` does in its 2 epochs plus half again, then runs the 4,000
test images 37 times: about 3 to 4 minutes on 2 idle cores, longer on a busy machine (the page prints the
seconds of each part). ``--quick`` trains for one epoch on 256 images and measures three blocks on 160 test
images (well under a minute): a network that has barely learned, so its numbers show how the measurement works,
not what a trained network does. Figures are also saved to ``runs/tutorials/09_multi_scale_branches/`` under the
current folder.
"""

# %%
import argparse
import os
import time

import matplotlib.pyplot as plt
import numpy as np

import tinyinception as ti
from tinyinception.data import DataLoader, Shapes10
from tinyinception.models.common import BasicConv2d, init_trunc_normal

parser = argparse.ArgumentParser(description="Do parallel branches of different sizes serve different scales?")
parser.add_argument("--quick", action="store_true", help="a brief training and three blocks (for CI and the docs)")
args, _ = parser.parse_known_args()
OUT = os.path.join("runs", "tutorials", "09_multi_scale_branches")
os.makedirs(OUT, exist_ok=True)

FULL = dict(train_size=20000, test_size=4000, epochs=3, batch_size=64, width=0.25)
QUICK = dict(train_size=256, test_size=160, epochs=1, batch_size=32, width=0.125)
settings = QUICK if args.quick else FULL
SEED = 0
BLOCKS = ["inception3a", "inception3b", "inception4a", "inception4b", "inception4c", "inception4d",
          "inception4e", "inception5a", "inception5b"]
MEASURED = ["inception3a", "inception4c", "inception5b"] if args.quick else BLOCKS
BRANCHES = ["branch_1x1", "branch_3x3", "branch_5x5", "branch_pool"]
if args.quick:
    ti.set_kernels("numpy")   # tiny batches: the NumPy kernels avoid the thread start-up of Numba's per call

# %% [markdown]
# 1. A GoogLeNet whose "5x5" branches are 5x5
# -------------------------------------------
# torchvision's GoogLeNet layout (the default of ``ti.models.googlenet``) has a 3x3 convolution in its "5x5"
# branch, a slip carried over from its first port, so its 3x3 and "5x5" branches would have the same kernel.
# ``paper=True`` has true 5x5 kernels but no BatchNorm, which trains far less easily. Here the torchvision
# layout (with BatchNorm) gets a 5x5 Conv-BN-ReLU unit in each "5x5" branch, and the weights are drawn again
# from the same seed. The 32x32 stem (``small_input=True``) hands inception3a a 16x16 map, the 4x blocks 8x8
# and the 5x blocks 4x4.

# %%
def make_model():
    ti.manual_seed(SEED)
    model = ti.models.googlenet(num_classes=10, width=settings["width"], small_input=True, aux_logits=False)
    for name in BLOCKS:
        branch = getattr(model, name).branch_5x5
        branch.conv = BasicConv2d(branch.reduce.conv.out_channels, branch.conv.conv.out_channels, 5, padding=2)
    init_trunc_normal(model, std=0.01)
    return model


def branch_widths(block):
    """Output channels of the four branches of an Inception block, in concatenation order."""
    return [block.branch_1x1.conv.out_channels, block.branch_3x3.conv.conv.out_channels,
            block.branch_5x5.conv.conv.out_channels, block.branch_pool.proj.conv.out_channels]


model = make_model()
for name in BLOCKS:
    block = getattr(model, name)
    print(f"{name}: branches 1x1 | 3x3 | 5x5 | pool = {' | '.join(str(w) for w in branch_widths(block))} channels;"
          f" 5x5 kernel {block.branch_5x5.conv.conv.kernel_size}")
print(f"{model.num_parameters():,} parameters")

# %% [markdown]
# 2. Training
# -----------
# Adam at 1e-3, a short linear warm-up, then cosine decay per step (as in tutorial 07).

# %%
train_set = Shapes10("train", size=settings["train_size"], seed=SEED)
test_set = Shapes10("test", size=settings["test_size"], seed=SEED)
train_loader = DataLoader(train_set, settings["batch_size"], shuffle=True, drop_last=True, seed=SEED)
optimizer = ti.optim.Adam(model.parameters(), lr=1e-3)
steps = settings["epochs"] * len(train_loader)
warmup = max(1, steps // 20)
scheduler = ti.optim.lr_scheduler.SequentialLR(optimizer, [
    ti.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.1, total_iters=warmup),
    ti.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, steps - warmup))], milestones=[warmup])
started = time.perf_counter()
result = ti.train.fit(model, train_loader, DataLoader(test_set, 256), optimizer, settings["epochs"],
                      scheduler=scheduler, scheduler_interval="step", out_dir=os.path.join(OUT, "run"))
print(f"{settings['epochs']} epoch(s) on {len(train_set):,} images in {time.perf_counter() - started:.0f} s: "
      f"test accuracy {result.history[-1]['val_accuracy']:.3f}")

# %% [markdown]
# 3. Two measures of a branch's contribution
# ------------------------------------------
# Every test image's shape radius is known (``test_set.geometry["radius"]``, pixels); the test images are split
# into four radius bins of equal width in log-radius.
#
# * **Share of the output energy.** A block's output is its four branches' outputs (each after its ReLU)
#   stacked on channels. For one image, a branch's share is the sum of squares of its slice divided by that of
#   the whole output. It says how loud a branch is, not whether the network needs it, and it depends on the
#   branch's width; what matters for the question is how it *changes* with the radius.
# * **What is lost when the branch is zeroed.** A forward hook sets the branch's slice of the block's output to
#   zero, and the test set runs again. The loss is measured as the drop in the log-probability of the true class
#   (averaged over the images of a bin; a smooth, per-image measure), and as the drop in accuracy. This is
#   causal: it asks whether the rest of the network uses what the branch computes.
#
# If wide branches served large objects, the 5x5 branch's share and its zeroing loss would grow with the radius,
# and the 1x1's would shrink.

# %%
radius = test_set.geometry["radius"]
edges = np.geomspace(radius.min(), radius.max() * (1 + 1e-9), 5)
bins = np.digitize(radius, edges[1:-1])             # 0 .. 3
centres = np.sqrt(edges[:-1] * edges[1:])
print("radius bins (pixels): " + ", ".join(f"{a:.1f}-{b:.1f} ({int((bins == i).sum())} images)"
                                          for i, (a, b) in enumerate(zip(edges[:-1], edges[1:]))))
images, labels = test_set.get_batch(np.arange(len(test_set)))


def run_test_set(hooks=()):
    """(log-probability of the true class (N,), predictions (N,)) over the test set, eval mode, with ``hooks``
    ((module, hook) pairs) registered for the pass."""
    handles = [module.register_forward_hook(hook) for module, hook in hooks]
    model.eval()
    log_probs, predictions = [], []
    try:
        with ti.no_grad():
            for start in range(0, len(images), 200):
                logits = model(ti.tensor(images[start:start + 200])).numpy().astype(np.float64)
                shifted = logits - logits.max(axis=1, keepdims=True)
                log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
                rows = np.arange(len(logits))
                log_probs.append(log_softmax[rows, labels[start:start + 200]])
                predictions.append(logits.argmax(axis=1))
    finally:
        for handle in handles:
            handle.remove()
    return np.concatenate(log_probs), np.concatenate(predictions)


def per_bin(values):
    return np.array([values[bins == i].mean() for i in range(len(centres))])


# %% [markdown]
# The baseline pass also records each block's output, from which the energy shares are computed.

# %%
energy = {name: np.zeros((len(images), 4)) for name in BLOCKS}
offset = {"start": 0}


def recorder(name):
    bounds = np.cumsum([0] + branch_widths(getattr(model, name)))

    def hook(module, inputs, output):
        squares = output.numpy().astype(np.float64) ** 2          # (n, C, H, W)
        start = offset["start"]
        for b in range(4):
            energy[name][start:start + len(squares), b] = squares[:, bounds[b]:bounds[b + 1]].sum(axis=(1, 2, 3))
        if name == BLOCKS[-1]:
            offset["start"] += len(squares)
    return hook


started = time.perf_counter()
base_log_prob, base_prediction = run_test_set([(getattr(model, name), recorder(name)) for name in BLOCKS])
base_correct = base_prediction == labels
print(f"test accuracy per radius bin: {np.round(per_bin(base_correct), 3)}")
share = {name: energy[name] / np.maximum(energy[name].sum(axis=1, keepdims=True), 1e-30) for name in BLOCKS}
share_per_bin = {name: np.stack([per_bin(share[name][:, b]) for b in range(4)]) for name in BLOCKS}  # (4, bins)

# %% [markdown]
# Now each measured block's four branches are zeroed one at a time.

# %%
def zeroing(block, branch_index):
    """A forward hook that multiplies the block's output by a 0/1 channel mask (the branch's channels 0)."""
    bounds = np.cumsum([0] + branch_widths(block))
    mask = np.ones((1, int(bounds[-1]), 1, 1), dtype=np.float32)
    mask[:, bounds[branch_index]:bounds[branch_index + 1]] = 0.0
    mask = ti.tensor(mask)
    return lambda module, inputs, output: output * mask


logprob_drop, accuracy_drop = {}, {}
for name in MEASURED:
    block = getattr(model, name)
    logprob_drop[name] = np.zeros((4, len(centres)))
    accuracy_drop[name] = np.zeros((4, len(centres)))
    for b in range(4):
        log_prob, prediction = run_test_set([(block, zeroing(block, b))])
        logprob_drop[name][b] = per_bin(base_log_prob - log_prob)
        accuracy_drop[name][b] = per_bin(base_correct.astype(float) - (prediction == labels))
print(f"{1 + 4 * len(MEASURED)} passes over {len(images)} test images in {time.perf_counter() - started:.0f} s")

# %% [markdown]
# 4. The measurements
# -------------------
# Energy shares per block (one panel each), then the drop in the true class's log-probability when a branch is
# zeroed, both against the radius (log scale; one point per bin, at the bin's geometric centre).

# %%
colours = {"branch_1x1": "tab:blue", "branch_3x3": "tab:orange", "branch_5x5": "tab:green", "branch_pool": "tab:gray"}


def grid_of_blocks(names, values, ylabel, title, filename):
    columns = 3
    rows = -(-len(names) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(12, 3.1 * rows), squeeze=False, sharex=True)
    for axis in axes.flat[len(names):]:
        axis.axis("off")
    for axis, name in zip(axes.flat, names):
        for b, branch in enumerate(BRANCHES):
            axis.plot(centres, values[name][b], "o-", color=colours[branch], label=branch.replace("branch_", ""))
        axis.set_xscale("log")
        axis.set_xticks(np.round(centres, 1))
        axis.set_xticklabels([f"{c:.1f}" for c in centres])
        axis.minorticks_off()
        axis.set_title(name, fontsize=9)
        axis.grid(True, alpha=0.3)
    for axis in axes[-1]:
        axis.set_xlabel("shape radius (pixels)")
    for axis in axes[:, 0]:
        axis.set_ylabel(ylabel, fontsize=8)
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(os.path.join(OUT, filename), dpi=100)
    return fig


share_figure = grid_of_blocks(BLOCKS, share_per_bin, "share of output energy",
                              "How loud each branch is, by object size", "energy_share.png")

# %%
cost_figure = grid_of_blocks(MEASURED, logprob_drop, "drop in log p(true class)",
                             "What zeroing each branch costs, by object size", "zeroing_cost.png")

# %% [markdown]
# 5. What the numbers say
# -----------------------
# For each block and branch: the change from the smallest-object bin to the largest, of the energy share (in
# percentage points) and of the zeroing cost. Positive: the branch matters more for large objects.

# %%
share_change = np.array([[share_per_bin[name][b, -1] - share_per_bin[name][b, 0] for b in range(4)]
                         for name in BLOCKS]) * 100
cost_change = np.array([[logprob_drop[name][b, -1] - logprob_drop[name][b, 0] for b in range(4)]
                        for name in MEASURED])
header = "".join(f"{branch.replace('branch_', ''):>9s}" for branch in BRANCHES)
print(f"{'energy share, large - small (points)':40s}{header}")
for name, row in zip(BLOCKS, share_change):
    print(f"  {name:38s}" + "".join(f"{value:9.2f}" for value in row))
print(f"\n{'zeroing cost, large - small (log-prob)':40s}{header}")
for name, row in zip(MEASURED, cost_change):
    print(f"  {name:38s}" + "".join(f"{value:9.3f}" for value in row))

fig, axes = plt.subplots(1, 2, figsize=(11, 0.45 * len(BLOCKS) + 1.8))
for axis, values, names, title in ((axes[0], share_change, BLOCKS, "energy share: large - small (points)"),
                                   (axes[1], cost_change, MEASURED, "zeroing cost: large - small")):
    limit = max(np.abs(values).max(), 1e-9)
    image = axis.imshow(values, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    axis.set_xticks(range(4))
    axis.set_xticklabels([branch.replace("branch_", "") for branch in BRANCHES])
    axis.set_yticks(range(len(names)))
    axis.set_yticklabels(names, fontsize=8)
    axis.set_title(title, fontsize=10)
    fig.colorbar(image, ax=axis)
fig.suptitle("Red: the branch matters more for large objects; blue: for small ones")
fig.tight_layout()
fig.savefig(os.path.join(OUT, "scale_preference.png"), dpi=100)

# %% [markdown]
# The verdict below is computed from the two tables above, for the 1x1 and 5x5 branches: the hypothesis predicts
# that the 5x5's numbers rise with the radius (positive) and the 1x1's fall (negative). A change of less than 0.5
# points of share or 0.02 of log-probability counts as flat.

# %%
def tally(values, threshold):
    up, down = int((values > threshold).sum()), int((values < -threshold).sum())
    return f"rises in {up}, falls in {down}, flat in {len(values) - up - down} of {len(values)} blocks"


for label, values, threshold in (("energy share", share_change, 0.5), ("zeroing cost", cost_change, 0.02)):
    print(f"{label}: 5x5 branch {tally(values[:, 2], threshold)}; 1x1 branch {tally(values[:, 0], threshold)}")
for label, values, threshold in (("energy share", share_change, 0.5), ("zeroing cost", cost_change, 0.02)):
    predicted = int((values[:, 2] > threshold).sum() + (values[:, 0] < -threshold).sum())
    against = int((values[:, 2] < -threshold).sum() + (values[:, 0] > threshold).sum())
    possible = 2 * len(values)
    flat = possible - predicted - against
    if flat > possible / 2:
        verdict = "mostly flat: no measurable preference for either size"
    elif predicted >= 2 * against and predicted >= possible / 2:
        verdict = "mostly as the hypothesis predicts"
    elif against >= 2 * predicted and against >= possible / 2:
        verdict = "mostly against the hypothesis"
    else:
        verdict = "mixed: no consistent preference"
    print(f"{label}: of {possible} (block, 1x1 or 5x5) changes, {predicted} go the predicted way, {against} the "
          f"other way, {flat} are flat -> {verdict}")
if args.quick:
    print("(--quick: a network trained for a few steps; run without --quick for a trained network)")

# %% [markdown]
# Reading the result: at inception3a a 5x5 kernel spans 5 of the 16x16 map's pixels, 10 image pixels, while the
# largest shapes are 28 pixels across; deeper blocks see the whole 32x32 image through the stem and the earlier
# blocks anyway. So the *kernel* size of a branch is only part of its receptive field, and a trained network is
# free to spread scale across every branch. The energy share and the zeroing cost can also disagree: a loud
# branch need not be one the network relies on. Whatever the verdict above, it is one network, one seed and one
# dataset; repeat with other seeds (``SEED``) before generalising.
