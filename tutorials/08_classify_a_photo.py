"""
Classify a photo
================

A real photograph -- Admiral Grace Hopper, the sample image that ships with matplotlib -- goes through the exact
preprocessing of GoogLeNet's published ImageNet weights, one step at a time, then through the network, and we
look at the four branches of one Inception block as activation maps for that photo.

The published weights (torchvision's ``IMAGENET1K_V1``, 50 MB) are used when they are in the cache
(``$TINYINCEPTION_HOME/weights``) or can be downloaded. Offline (as in CI) the tutorial trains a small GoogLeNet
on the built-in Shapes10 data instead and says plainly what that network can and cannot tell about a photo.

Run time: ``python tutorials/08_classify_a_photo.py`` takes about a minute with the weights cached (plus the
download the first time), one to two minutes offline on two cores. ``--quick`` is the fast mode (seconds: it
never downloads, and the offline stand-in trains on a few hundred images); ``--offline`` skips the download.
Figures are saved under ``runs/tutorials/08_classify_a_photo/``.
"""

# %% [markdown]
# Set-up: the photo, the options, the output folder.

# %%
import argparse
import os
import time

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.cbook import get_sample_data
from PIL import Image

import tinyinception as ti
from tinyinception.interop import WeightsDownloadError
from tinyinception.interop.hub import cached_path

parser = argparse.ArgumentParser()
parser.add_argument("--quick", action="store_true", help="seconds: no download, a tiny stand-in network")
parser.add_argument("--offline", action="store_true", help="do not try to download the published weights")
args, _ = parser.parse_known_args()

OUT = os.path.join("runs", "tutorials", "08_classify_a_photo")
os.makedirs(OUT, exist_ok=True)
PHOTO = get_sample_data("grace_hopper.jpg", asfileobj=False)
photo = Image.open(PHOTO).convert("RGB")
record = ti.models.get_weights("googlenet", "IMAGENET1K_V1")
print(f"photo: {PHOTO} ({photo.size[0]}x{photo.size[1]} pixels)")
print(f"weights: {record.source}\n  {record.url}\n  preprocessing: {record.transforms().describe()}")

# %% [markdown]
# Preprocessing, step by step
# ---------------------------
#
# Published weights only work with the preprocessing they were trained with. For torchvision's GoogLeNet:
# resize the shorter side to 256 pixels (bilinear), cut the central 224x224 square, scale to 0-1, then subtract
# ImageNet's per-channel mean and divide by its standard deviation. ``record.transforms()`` does all of it;
# here its three stages are called one by one so each can be looked at.

# %%
preprocess = record.transforms()
resized = preprocess.resize(photo)
cropped = preprocess.crop(resized)
x = preprocess.normalize(cropped)                    # (3, 224, 224) float32
print(f"resized to {resized.size[0]}x{resized.size[1]}, cropped to {cropped.size[0]}x{cropped.size[1]}, "
      f"tensor {x.shape}: per-channel mean {np.round(x.mean(axis=(1, 2)), 3)}, std {np.round(x.std(axis=(1, 2)), 3)}")

figure, axes = plt.subplots(1, 6, figsize=(18, 3.4))
for axis, image, title in zip(axes, (photo, resized, cropped),
                              (f"original {photo.size[0]}x{photo.size[1]}",
                               f"shorter side -> 256: {resized.size[0]}x{resized.size[1]}", "centre crop 224x224")):
    axis.imshow(image)
    axis.set_title(title, fontsize=9)
for channel, (axis, name) in enumerate(zip(axes[3:], ("R", "G", "B"))):
    shown = axis.imshow(x[channel], cmap="RdBu_r", vmin=-2.5, vmax=2.5)
    axis.set_title(f"{name} after (x - mean) / std", fontsize=9)
figure.colorbar(shown, ax=axes[3:], shrink=0.8)
for axis in axes:
    axis.axis("off")
figure.savefig(os.path.join(OUT, "preprocessing.png"), dpi=80)

# %% [markdown]
# The network: published weights, or an honest stand-in
# ------------------------------------------------------
#
# ``ti.models.googlenet(weights="IMAGENET1K_V1")`` downloads the file on first use (progress bar, checksum
# checked, renamed into the cache only when complete) and reads it with NumPy alone. The builder also turns on
# ``transform_input``, which torchvision's GoogLeNet weights need. Without network access the call fails with
# a message saying where to download the file by hand; the tutorial then falls back to a network it can train
# here.

# %%
def published_googlenet():
    """GoogLeNet with the published weights, or None (offline, --quick without a cached file, --offline)."""
    if (args.quick or args.offline) and not os.path.isfile(cached_path(record)):
        print("published weights not in the cache and downloads are off for this run")
        return None
    try:
        return ti.models.googlenet(weights="IMAGENET1K_V1")
    except WeightsDownloadError as error:
        print(f"published weights unavailable: {error}")
        return None


def shapes10_googlenet():
    """A GoogLeNet at an eighth of the paper's widths, trained briefly on Shapes10 (32x32, ten shapes)."""
    size = 128 if args.quick else 2000
    ti.manual_seed(0)
    train_set = ti.data.Shapes10("train", size=size, seed=0)
    test_set = ti.data.Shapes10("test", size=256, seed=0)
    model = ti.models.googlenet(num_classes=10, width=0.125, small_input=True, aux_logits=False)
    optimizer = ti.optim.Adam(model.parameters(), lr=1e-3)
    loader = ti.data.DataLoader(train_set, 32, shuffle=True, drop_last=True, seed=0)
    started = time.perf_counter()
    result = ti.train.fit(model, loader, ti.data.DataLoader(test_set, 256), optimizer, 1, progress=False)
    print(f"trained on {size} Shapes10 images in {time.perf_counter() - started:.0f} s: "
          f"test accuracy {result.history[-1]['val_accuracy']:.3f}")
    return model, list(train_set.classes)


model = published_googlenet()
if model is not None:
    classes, batch = record.class_names(), x[None]
    label = "GoogLeNet, torchvision IMAGENET1K_V1"
else:
    model, classes = shapes10_googlenet()
    small = np.asarray(photo.resize((32, 32), Image.BILINEAR), dtype=np.float32).transpose(2, 0, 1) / 255.0
    batch, label = small[None], "stand-in: GoogLeNet trained on Shapes10 (ten shapes, no people)"
    print("This network knows ten drawn shapes and nothing else: whatever it answers for a photograph is one of\n"
          "those ten names, not a description of the photo. With the published ImageNet weights the answer is\n"
          "one of the 1000 ImageNet classes; for this photo TensorFlow's label_image example (Inception-v3 with\n"
          "the TF-Slim weights that timm's inception_v3.tf_in1k ports) reports 'military uniform' at 0.83.")

model.eval()
with ti.no_grad():
    logits = np.asarray(model(ti.tensor(batch)).data[0], dtype=np.float64)
probabilities = np.exp(logits - logits.max())
probabilities /= probabilities.sum()
top = np.argsort(-probabilities)[:5]
print(f"\n{label}: top 5")
for rank, index in enumerate(top, start=1):
    print(f"  {rank}. {classes[index]:28s} {probabilities[index]:.4f}")

figure, axis = plt.subplots(figsize=(7, 3))
axis.barh([classes[i] for i in top[::-1]], probabilities[top[::-1]], color="tab:blue")
axis.set_xlabel("probability")
axis.set_title(label, fontsize=10)
figure.tight_layout()
figure.savefig(os.path.join(OUT, "top5.png"), dpi=80)

# %% [markdown]
# Four branches of one Inception block
# ------------------------------------
#
# Every Inception block runs four branches on the same input -- a 1x1 convolution, a 1x1 reduction then a 3x3,
# a 1x1 reduction then a second 3x3 (a 5x5 in the paper), and a 3x3 max pool then a 1x1 projection -- and stacks
# their outputs on the channel axis. A forward hook catches the input of block ``inception3a`` for this photo;
# each branch is then run on it alone. Shown: for each branch, the mean over its output channels and its
# single most active channel.

# %%
block = model.inception3a
captured = {}


def keep_input(module, inputs, output):
    captured["input"] = inputs[0]                    # returns None: the block's output is left as it is


handle = block.register_forward_hook(keep_input)
with ti.no_grad():
    model(ti.tensor(batch))
handle.remove()
branches = {"1x1": block.branch_1x1, "1x1 -> 3x3": block.branch_3x3, "1x1 -> 3x3 (5x5 in the paper)":
            block.branch_5x5, "max pool -> 1x1": block.branch_pool}
with ti.no_grad():
    maps = {name: np.asarray(branch(captured["input"]).data[0]) for name, branch in branches.items()}

figure, axes = plt.subplots(2, 4, figsize=(13, 6.5))
for column, (name, activation) in enumerate(maps.items()):
    strongest = int(np.argmax(activation.mean(axis=(1, 2))))
    axes[0, column].imshow(activation.mean(axis=0), cmap="magma")
    axes[0, column].set_title(f"{name}\n{activation.shape[0]} channels: mean", fontsize=9)
    axes[1, column].imshow(activation[strongest], cmap="magma")
    axes[1, column].set_title(f"most active channel ({strongest})", fontsize=9)
    print(f"branch {name:32s} output {activation.shape}, mean activation {activation.mean():.4f}")
for axis in axes.ravel():
    axis.axis("off")
figure.suptitle(f"inception3a's four branches for the photo ({label})", fontsize=10)
figure.savefig(os.path.join(OUT, "inception3a_branches.png"), dpi=80)
print(f"figures in {OUT}")
