"""
Data parallelism: one model, several processes, one all-reduce
==============================================================

Inception-v3 was trained on 50 replicas. Each replica holds the whole network, takes its own slice of the batch,
and after backward the replicas average their gradients, so every replica takes the same step. This tutorial
builds that idea up from nothing:

1. two "ranks" simulated in one process: the mean of their gradients is the gradient of the whole batch;
2. the ring all-reduce that averages them, step by step, and the bytes each rank sends;
3. ``ti.distributed.DataParallel`` for real, under ``mpiexec -n 2`` when MPI is installed;
4. why BatchNorm breaks the equality, how ``SyncBatchNorm`` restores it, and why Inception's BatchNorm needs it at
   small per-rank batches.

Run time: about a minute on 2 cores as ``python tutorials/12_data_parallel.py``, seconds with ``--quick``.
It needs no MPI: part 3 starts ``mpiexec -n 2`` on this same file when mpi4py and mpiexec are installed
(``pip install 'tinyinception[mpi]'``) and says so when they are not. Figures go to
``runs/tutorials/12_data_parallel/``.
"""
import argparse
import importlib.util
import os
import pathlib
import shutil
import subprocess
import sys

import matplotlib.pyplot as plt
import numpy as np

import tinyinception as ti
from tinyinception import nn

parser = argparse.ArgumentParser()
parser.add_argument("--quick", action="store_true", help="smaller everything: seconds")
parser.add_argument("--mpi-worker", action="store_true", help="(used by part 3 under mpiexec)")
args, _ = parser.parse_known_args()
OUT = pathlib.Path(os.path.join("runs", "tutorials", "12_data_parallel"))
STEPS = 5 if args.quick else 20


class SmallNet(nn.Module):
    """conv 3x3 -> (BatchNorm) -> ReLU -> global average -> linear: small, but with the BatchNorm that matters."""

    def __init__(self, batchnorm=True):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=not batchnorm)
        self.bn = nn.BatchNorm2d(8) if batchnorm else nn.Identity()
        self.fc = nn.Linear(8, 4)
        self.double()

    def forward(self, x):
        return self.fc(self.bn(self.conv(x)).relu().mean(axis=(2, 3)))


def make_model(batchnorm=True):
    ti.manual_seed(0)
    return SmallNet(batchnorm)


def make_batch(count, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((count, 3, 8, 8)) + np.array([2.0, -1.0, 0.5])[None, :, None, None]
    return images, rng.integers(0, 4, count)


def gradients(model, images, labels):
    """{name: gradient} of the mean cross-entropy over this batch."""
    model.zero_grad()
    ti.functional.cross_entropy(model(ti.Tensor(images)), labels).backward()
    return {name: p.grad.copy() for name, p in model.named_parameters()}


def worker():
    """Part 3, inside `mpiexec -n 2`: DataParallel (with and without SyncBatchNorm) against one process."""
    world = ti.distributed.init(timeout=120)
    images, labels = make_batch(16 * STEPS, seed=1)
    results = {}
    for sync in (False, True):
        model = make_model()
        if sync:
            model = ti.distributed.SyncBatchNorm.convert_sync_batchnorm(model, world)
        replica = ti.distributed.DataParallel(model, world)        # broadcasts rank 0's weights
        optimizer = ti.optim.SGD(model.parameters(), lr=0.1)
        half = 16 // world.size
        for step in range(STEPS):
            start = 16 * step + half * world.rank                   # this rank's slice of batch `step`
            loss = ti.functional.cross_entropy(replica(ti.Tensor(images[start:start + half])),
                                               labels[start:start + half])
            optimizer.zero_grad()
            loss.backward()                                         # buckets start all-reducing from the hooks
            replica.synchronize()                                   # wait, divide by the number of ranks
            optimizer.step()
        results[sync] = {n: p.data.copy() for n, p in model.named_parameters()}
    if world.rank == 0:
        alone = make_model()
        optimizer = ti.optim.SGD(alone.parameters(), lr=0.1)
        for step in range(STEPS):
            loss = ti.functional.cross_entropy(alone(ti.Tensor(images[16 * step:16 * step + 16])),
                                               labels[16 * step:16 * step + 16])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        for sync, weights in results.items():
            worst = max(float(np.max(np.abs(weights[n] - p.data))) for n, p in alone.named_parameters())
            label = "DataParallel + SyncBatchNorm" if sync else "DataParallel, plain BatchNorm"
            print(f"  {label:30s}: largest weight difference to one process at batch 16: {worst:.2e}")


if args.mpi_worker:
    worker()
    sys.exit(0)

OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# 1. Data parallelism by hand: two ranks in one process
# -----------------------------------------------------
#
# The loss of a batch is the mean of the examples' losses, so its gradient is the mean of the examples'
# gradients. Split a batch of 16 into two halves of 8: the gradient of the whole batch is the mean of the two
# halves' gradients. Two replicas of the network (same weights), one half each, then ONE all-reduce (sum, then
# divide by 2) give every replica the gradient one process would have computed. Without BatchNorm this is exact
# up to rounding.

# %%
images, labels = make_batch(16)
whole = gradients(make_model(batchnorm=False), images, labels)
rank_gradients = [gradients(make_model(batchnorm=False), images[8 * r:8 * r + 8], labels[8 * r:8 * r + 8])
                  for r in range(2)]
averaged = {name: (rank_gradients[0][name] + rank_gradients[1][name]) / 2 for name in whole}
difference = max(float(np.max(np.abs(averaged[n] - whole[n]))) for n in whole)
print(f"no BatchNorm: mean of the two halves' gradients vs the whole batch's: largest difference {difference:.1e}")

# %% [markdown]
# With BatchNorm the equality breaks: each half is normalised with its own mean and variance, so the two
# replicas compute a different function from the one-process network, not just a different split of the sum.

# %%
whole_bn = gradients(make_model(), images, labels)
halves_bn = [gradients(make_model(), images[8 * r:8 * r + 8], labels[8 * r:8 * r + 8]) for r in range(2)]
difference_bn = max(float(np.max(np.abs((halves_bn[0][n] + halves_bn[1][n]) / 2 - whole_bn[n]))) for n in whole_bn)
print(f"with BatchNorm: the same comparison differs by {difference_bn:.1e} (the statistics differ)")

# %% [markdown]
# 2. The ring all-reduce
# ----------------------
#
# K ranks in a ring, each gradient cut into K chunks. Reduce-scatter: in K - 1 steps every rank passes one chunk
# to its right neighbour, which adds it to its own; afterwards rank r holds the full sum of chunk r + 1. All-gather:
# K - 1 more steps pass the finished chunks around. Each rank sends 2 (K - 1) chunks of G / K bytes:
# 2 (K - 1) / K x G in all, almost independent of K. That is why the time of an all-reduce is
# ``2 (K - 1) / K x G / bandwidth + 2 (K - 1) x latency`` (docs/distributed.md turns it into scaling tables).

# %%
def ring_allreduce(arrays):
    """Sum of the K arrays, computed the way K ranks in a ring do; returns (results per rank, floats sent)."""
    k = len(arrays)
    chunks = [np.array_split(a.astype(np.float64).copy(), k) for a in arrays]
    sent = 0
    for step in range(k - 1):                                   # reduce-scatter
        outgoing = [chunks[r][(r - step) % k].copy() for r in range(k)]
        for r in range(k):
            chunks[(r + 1) % k][(r - step) % k] += outgoing[r]
            sent += outgoing[r].size
    for step in range(k - 1):                                   # all-gather
        outgoing = [chunks[r][(r + 1 - step) % k].copy() for r in range(k)]
        for r in range(k):
            chunks[(r + 1) % k][(r + 1 - step) % k] = outgoing[r]
            sent += outgoing[r].size
    return [np.concatenate(c) for c in chunks], sent


for k in (2, 4, 8):
    vectors = [np.random.default_rng(r).standard_normal(1000) for r in range(k)]
    results, sent = ring_allreduce(vectors)
    assert all(np.allclose(result, np.sum(vectors, axis=0)) for result in results)
    print(f"K={k}: every rank holds the sum; each sent {sent // k} floats = {sent / k / 1000:.2f} x the gradient "
          f"(2 (K-1)/K = {2 * (k - 1) / k:.2f})")

# %% [markdown]
# 3. DataParallel for real, over MPI
# ----------------------------------
#
# ``ti.distributed.DataParallel(model)`` does part 1 across processes: rank 0's weights are broadcast, and during
# backward each parameter's post-accumulate-grad hook tells it when a gradient is final. Gradients travel in flat
# buckets (1 MB first, then 25 MB, like PyTorch's DDP); each bucket's non-blocking all-reduce starts as soon as its
# last gradient arrives, while backward is still computing the earlier layers. ``synchronize()`` waits for the last
# ones and divides by the number of ranks. Here this file runs itself under ``mpiexec -n 2`` (when MPI is
# installed): both ranks train the BatchNorm network for a few steps on their halves of each batch of 16,
# first with plain BatchNorm, then with SyncBatchNorm, and rank 0 compares with one process at batch 16.

# %%
launcher = shutil.which("mpiexec")
beside = pathlib.Path(sys.executable).parent / "mpiexec"
launcher = str(beside) if beside.exists() else launcher
if launcher and importlib.util.find_spec("mpi4py"):
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(ti.__file__)))   # the same tinyinception
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", NUMBA_NUM_THREADS="1",
               PYTHONPATH=package_root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    command = [launcher, "-n", "2", sys.executable, os.path.abspath(__file__), "--mpi-worker"]
    command += ["--quick"] if args.quick else []
    print(f"running: mpiexec -n 2 python {os.path.basename(__file__)} --mpi-worker")
    finished = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    print(finished.stdout.rstrip() or finished.stderr[-2000:])
else:
    print("mpiexec or mpi4py is not installed (pip install 'tinyinception[mpi]'), so part 3 is skipped; in a "
          "world of one process ti.distributed.init() gives rank 0 of 1 and DataParallel changes nothing:",
          ti.distributed.init())

# %% [markdown]
# 4. SyncBatchNorm: the statistics of the whole batch
# ---------------------------------------------------
#
# SyncBatchNorm all-reduces, per channel, the sum and the sum of squares of its input (and the count) in the
# forward pass, and the two sums of the gradient in backward. The mean and variance are then those of all ranks'
# images together: the sums of two shards add up to the sums of the whole batch, exactly.

# %%
x = np.random.default_rng(3).standard_normal((16, 8)) * 2 + 5
shards = [x[:8], x[8:]]
sums = sum(np.stack([s.sum(axis=0), (s * s).sum(axis=0)]) for s in shards)     # what the all-reduce adds up
mean, variance = sums[0] / 16, sums[1] / 16 - (sums[0] / 16) ** 2
print(f"mean and variance from the shards' summed sums vs the whole batch: "
      f"{np.max(np.abs(mean - x.mean(axis=0))):.1e}, {np.max(np.abs(variance - x.var(axis=0))):.1e}")

# %% [markdown]
# Why Inception needs it at small per-rank batches. Each BatchNorm layer normalises with a batch estimate of its
# channel's mean. The noise of that estimate falls like 1 / sqrt(per-rank batch): at 2 or 4 images per rank
# (Inception-v3 at 299x299 on a memory-limited GPU) each replica trains a visibly different, noisier network, and
# its running statistics disagree with what evaluation will use. Measured below on the first Conv-BN unit of a
# GoogLeNet, on Shapes10 images: the spread of the batch mean around the mean over 512 images.

# %%
images_all = ti.data.Shapes10("train", size=256 if args.quick else 512, seed=0).get_batch(np.arange(256 if args.quick
                                                                                                    else 512))[0]
googlenet = ti.models.googlenet(num_classes=10, width=0.125, small_input=True)
with ti.no_grad():
    activations = googlenet.conv1.conv(ti.Tensor(images_all)).numpy()          # (N, C, H, W) before BatchNorm
channel_means = activations.mean(axis=(2, 3))                                    # per image and channel
reference = channel_means.mean(axis=0)
batch_sizes = [1, 2, 4, 8, 16, 32, 64]
spread = []
for b in batch_sizes:
    estimates = channel_means[: (len(channel_means) // b) * b].reshape(-1, b, channel_means.shape[1]).mean(axis=1)
    spread.append(float(np.sqrt(((estimates - reference) ** 2).mean()) / (np.abs(reference).mean() + 1e-12)))
for b, s in zip(batch_sizes, spread):
    print(f"per-rank batch {b:3d}: batch mean off by {s:.1%} of the channel mean (root mean square)")
figure, axis = plt.subplots(figsize=(5, 3.5))
axis.loglog(batch_sizes, spread, "o-", label="measured (GoogLeNet conv1)")
axis.loglog(batch_sizes, spread[0] / np.sqrt(batch_sizes), "--", label="1 / sqrt(batch)")
axis.set_xlabel("images per rank")
axis.set_ylabel("relative error of the batch mean")
axis.set_title("BatchNorm's statistics at small per-rank batches")
axis.legend()
figure.tight_layout()
figure.savefig(OUT / "batch_statistics_noise.png", dpi=100)
print(f"figure: {OUT / 'batch_statistics_noise.png'}")

# %% [markdown]
# What to take away: ``mpirun -n K python -m tinyinception train --sync-batchnorm`` with ``--batch-size`` the global
# batch trains the same network as one process at that batch (tests/distributed checks it to 1e-10 in float64);
# without ``--sync-batchnorm`` each rank normalises its own B / K images, which is fine from about 16-32 images per
# rank and a different (noisier) training below that.
