"""
Train a small GoogLeNet, and see what its auxiliary classifiers do
==================================================================

GoogLeNet trained for real on Shapes10 (ten classes of procedurally drawn shapes, no download) with
``ti.train.fit``: progress, metrics, curves, checkpoints; the network's predictions on test images; what each
branch of its first Inception block computes for one image; and the same run again without the auxiliary
classifiers.

**Run time:** minutes. The full run (``python tutorials/07_train_an_inception_network.py``) trains twice for
2 epochs over 12,000 images: about a minute on 2 idle cores, longer on a busy machine (the page prints the
seconds each run took). ``--quick`` trains on 128 images for one epoch (tens of seconds): the
numbers it prints show that the pipeline runs, not what the network can learn. Everything is
written to ``runs/tutorials/07_train_an_inception_network/`` under the current folder.
"""

# %%
import argparse
import os
import time

import matplotlib.pyplot as plt
import numpy as np

import tinyinception as ti
from tinyinception.data import DataLoader, Shapes10

parser = argparse.ArgumentParser(description="Train a small GoogLeNet")
parser.add_argument("--quick", action="store_true", help="tiny data and one epoch (tens of seconds), for CI")
args, _ = parser.parse_known_args()
OUT = os.path.join("runs", "tutorials", "07_train_an_inception_network")
os.makedirs(OUT, exist_ok=True)

FULL = dict(train_size=12000, test_size=1000, epochs=2, batch_size=64, width=0.125)
QUICK = dict(train_size=128, test_size=64, epochs=1, batch_size=32, width=0.125)
SEED = 0
settings = QUICK if args.quick else FULL
if args.quick:
    # Tiny batches: the NumPy kernels beat Numba's parallel ones, whose thread start-up per call dominates.
    ti.set_kernels("numpy")

# %% [markdown]
# 1. The data: Shapes10
# ---------------------
# Ten classes of procedurally drawn shapes at many scales, colours and positions. Train and test are
# independent random draws: a test image is never a copy of a training one.

# %%
train_set = Shapes10("train", size=settings["train_size"], seed=SEED)
test_set = Shapes10("test", size=settings["test_size"], seed=SEED)
print(f"{len(train_set)} training and {len(test_set)} test images of shape {train_set.image_shape}")
print("classes:", ", ".join(train_set.classes))

# %% [markdown]
# 2. The model and the training run
# ---------------------------------
# GoogLeNet with the 32x32 stem (``small_input=True``) and an eighth of the paper's channels. Adam at 1e-3 with
# a linear warm-up and cosine decay per step. Why Adam and not SGD at 0.1: GoogLeNet's weights start tiny
# (torchvision's truncated normal, std 0.01) and BatchNorm makes each layer blind to its weights' scale, so a
# gradient step is large *relative* to those weights; large SGD learning rates kept this network at chance
# level on Shapes10.

# %%
def make_model(aux_logits):
    """GoogLeNet for 32x32 inputs. The seed is set first, so both experiments start from the same draws."""
    ti.manual_seed(SEED)
    return ti.models.googlenet(num_classes=10, width=settings["width"], small_input=True, aux_logits=aux_logits)


def train(model, out_dir):
    """Adam, warm-up then cosine decay per step; returns ti.train.fit's result."""
    train_loader = DataLoader(train_set, settings["batch_size"], shuffle=True, drop_last=True, seed=SEED)
    test_loader = DataLoader(test_set, 256)
    optimizer = ti.optim.Adam(model.parameters(), lr=1e-3)
    steps = settings["epochs"] * len(train_loader)
    warmup = max(1, steps // 20)
    scheduler = ti.optim.lr_scheduler.SequentialLR(optimizer, [
        ti.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.1, total_iters=warmup),
        ti.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps - warmup)], milestones=[warmup])
    return ti.train.fit(model, train_loader, test_loader, optimizer, settings["epochs"], scheduler=scheduler,
                        scheduler_interval="step", out_dir=out_dir, progress=True)


model = make_model(aux_logits=True)
print(f"GoogLeNet at width {settings['width']}: {model.num_parameters():,} parameters (the two auxiliary heads "
      f"included); auxiliary loss weight used by ti.train.fit: {ti.train.aux_weight_for(model)}")
started = time.perf_counter()
with_aux = train(model, os.path.join(OUT, "with_aux"))
seconds_with_aux = time.perf_counter() - started
last = with_aux.history[-1]
print(f"\n{len(with_aux.history)} epochs, {with_aux.global_step} steps in {seconds_with_aux:.0f} s: "
      f"test accuracy {last['val_accuracy']:.3f}")
print(f"metrics (one JSON object per epoch): {with_aux.metrics_path}")
print(f"checkpoints: {with_aux.last_checkpoint}, {with_aux.best_checkpoint}")

# %% [markdown]
# ``ti.train.fit`` also wrote ``curves.png`` next to the metrics; here are the same curves. To continue later,
# ``ti.train.fit(..., epochs=more, resume=result.last_checkpoint)`` with fresh objects built the same way
# carries on exactly where this run stopped.

# %%
curves = ti.viz.curves_figure(with_aux.history, title="GoogLeNet (width 1/8) on Shapes10")
curves.savefig(os.path.join(OUT, "curves.png"), dpi=100)

# %% [markdown]
# 3. Some test images and what the network says they are
# ------------------------------------------------------
# Titles in red show the prediction and (the true class).

# %%
images, labels = test_set.get_batch(np.arange(min(32, len(test_set))))
predictions = ti.train.predict(model, images)
grid = ti.viz.predictions_figure(images, labels, predictions, test_set.classes)
grid.savefig(os.path.join(OUT, "predictions.png"), dpi=100)
print(f"{int((predictions == labels).sum())} of {len(labels)} right")
confused = [(test_set.classes[t], test_set.classes[p]) for t, p in zip(labels, predictions) if t != p]
if confused:
    print("mistakes (true -> predicted):", ", ".join(f"{t} -> {p}" for t, p in confused[:6]))

# %% [markdown]
# 4. What each branch of an Inception block computes for one image
# ----------------------------------------------------------------
# A forward hook catches the input of ``inception3a`` (16x16 maps after the small-input stem); each of its four
# branches is then run on it. Per branch, the four channels whose maps vary most across the image are shown (after
# the branch's final ReLU; each map scaled from its own minimum, dark, to its maximum, bright; a map that is zero
# everywhere stays dark). After ``--quick``'s few steps the network has barely learned, and the maps show
# little more than the padding at the borders; after the full run they pick out the shape.

# %%
block = model.inception3a
caught = {}


def catch_input(module, inputs, output):
    caught["input"] = inputs[0]   # returns None: the block's output is left as it is


handle = block.register_forward_hook(catch_input)
image_index = 0
image = images[image_index:image_index + 1]
model.eval()
with ti.no_grad():
    model(ti.tensor(image))
    branch_maps = {name: getattr(block, name)(caught["input"]).numpy()[0]
                   for name in ("branch_1x1", "branch_3x3", "branch_5x5", "branch_pool")}
handle.remove()

shown = 4
fig, axes = plt.subplots(len(branch_maps), shown + 1, figsize=(1.8 * (shown + 1), 1.9 * len(branch_maps)))
picture = np.transpose(image[0], (1, 2, 0))
for row, (name, maps) in enumerate(branch_maps.items()):
    axes[row, 0].imshow(picture, interpolation="nearest")
    axes[row, 0].set_ylabel(f"{name}\n{maps.shape[0]} channels", fontsize=8)
    strongest = np.argsort(maps.std(axis=(1, 2)))[::-1][:shown]
    for column, channel in enumerate(strongest, start=1):
        low = maps[channel].min()
        axes[row, column].imshow(maps[channel], cmap="viridis", vmin=low, vmax=max(maps[channel].max(), low + 1e-6),
                                 interpolation="nearest")
        axes[row, column].set_title(f"channel {channel}", fontsize=7)
    for axis in axes[row]:
        axis.set_xticks([])
        axis.set_yticks([])
fig.suptitle(f"inception3a's branches on one test image ({test_set.classes[labels[image_index]]})")
fig.tight_layout()
fig.savefig(os.path.join(OUT, "branch_feature_maps.png"), dpi=100)
for name, maps in branch_maps.items():
    print(f"{name:12s} {maps.shape[0]:3d} channels of {maps.shape[1]}x{maps.shape[2]}, mean activation "
          f"{maps.mean():.3f}, zero (after ReLU) at {np.mean(maps == 0):.0%} of positions")

# %% [markdown]
# 5. What do the auxiliary classifiers do?
# ----------------------------------------
# GoogLeNet attaches two small classifiers to the outputs of inception4a and inception4d. In training their
# losses are added to the main loss with weight 0.3 each; at test time they are thrown away. The paper's
# motivation: a gradient signal injected half-way up a deep network, and some regularisation. Here the same
# network trains again on the same batches for the same number of steps, without them. The heads draw random
# numbers when they are built, so the two networks' other layers start from different draws; one seed per arm
# is a small experiment, and the difference printed below is within run-to-run noise unless it is large.

# %%
model_without = make_model(aux_logits=False)
started = time.perf_counter()
without = train(model_without, os.path.join(OUT, "without_aux"))
seconds_without = time.perf_counter() - started
print(f"\n{'':30s} {'test accuracy':>14s} {'train loss':>11s} {'seconds':>8s}")
for name, result, seconds in (("with aux heads (weight 0.3)", with_aux, seconds_with_aux),
                              ("without", without, seconds_without)):
    print(f"{name:30s} {result.history[-1]['val_accuracy']:14.3f} {result.history[-1]['train_loss']:11.3f} "
          f"{seconds:8.0f}")
gap = with_aux.history[-1]["val_accuracy"] - without.history[-1]["val_accuracy"]
print(f"\ndifference in test accuracy (with - without): {gap:+.3f}")

fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
for result, label in ((with_aux, "with aux heads"), (without, "without")):
    epochs = [record["epoch"] for record in result.history]
    axes[0].plot(epochs, [record["train_loss"] for record in result.history], "o-", label=label)
    axes[1].plot(epochs, [record["val_accuracy"] for record in result.history], "o-", label=label)
for axis, ylabel in zip(axes, ("train loss (main + weighted aux for the first)", "test accuracy")):
    axis.set_xlabel("epoch")
    axis.set_ylabel(ylabel, fontsize=8)
    axis.xaxis.set_major_locator(plt.MaxNLocator(integer=True, min_n_ticks=1))
    axis.legend()
fig.tight_layout()
fig.savefig(os.path.join(OUT, "aux_comparison.png"), dpi=100)

# %% [markdown]
# For context: the Inception-v3 paper (section 4) found that auxiliary heads did not speed up early training
# and acted mainly as a regulariser near its end; with BatchNorm in every unit the gradient reaches the lower
# layers well without them.
