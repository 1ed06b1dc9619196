"""
The Inception module, and why GoogLeNet puts 1x1 convolutions in front of everything
====================================================================================

The naive Inception module (paper Figure 2a) runs 1x1, 3x3 and 5x5 convolutions and a 3x3 max pool side by side
on the same input and concatenates them on channels. Built for inception (3a)'s place in GoogLeNet (192 channels
in, 28x28), it is expensive; the module with 1x1 reductions (Figure 2b, the one GoogLeNet uses) gives the same
output sizes for a fraction of the work. Costs are measured from the real layers with ``ti.summary``.

**Run time:** about 20 to 40 seconds on 2 cores (``python tutorials/04_inception_v1_module.py``); ``--quick``
times a smaller batch and skips the paper-layout summary (about 10 seconds). Figures are also saved to
``runs/tutorials/04_inception_v1_module/`` under the current folder.
"""

# %%
import argparse
import os
import time

import matplotlib.pyplot as plt
import numpy as np

import tinyinception as ti
from tinyinception import nn
from tinyinception.models.common import ConvReLU
from tinyinception.models.inception_v1 import Inception

parser = argparse.ArgumentParser(description="The Inception module, step by step")
parser.add_argument("--quick", action="store_true", help="smaller timing runs, skip the paper-layout summary")
args, _ = parser.parse_known_args()
OUT = os.path.join("runs", "tutorials", "04_inception_v1_module")
os.makedirs(OUT, exist_ok=True)
ti.manual_seed(0)

IN_CHANNELS, SIZE = 192, 28                    # what inception (3a) receives at 224x224 input
CH1X1, CH3X3, CH5X5 = 64, 128, 32              # 3a's branch outputs (paper Table 1)
CH3X3_RED, CH5X5_RED, POOL_PROJ = 96, 16, 32   # 3a's 1x1 reductions and pool projection
BRANCHES = ("branch_1x1", "branch_3x3", "branch_5x5", "branch_pool")

# %% [markdown]
# 1. The naive Inception module: four branches on the same input
# ---------------------------------------------------------------
# GoogLeNet's idea: instead of choosing one filter size per layer, use several at once and let training decide
# which matters. Each branch keeps the 28x28 grid (padding 1 for 3x3, 2 for 5x5, a stride-1 pool), so their
# outputs can be stacked along the channel axis.

# %%
class NaiveInception(nn.Module):
    """Paper Figure 2(a): every branch reads all ``in_channels`` directly.

    x: (N, in_channels, H, W) -> (N, ch1x1 + ch3x3 + ch5x5 + in_channels, H, W): the pool branch passes its
    input channels straight through, so the output is always wider than the input.
    """

    def __init__(self, in_channels, ch1x1, ch3x3, ch5x5):
        super().__init__()
        self.branch_1x1 = ConvReLU(in_channels, ch1x1, 1)
        self.branch_3x3 = ConvReLU(in_channels, ch3x3, 3, padding=1)
        self.branch_5x5 = ConvReLU(in_channels, ch5x5, 5, padding=2)
        self.branch_pool = nn.MaxPool2d(3, stride=1, padding=1)

    def forward(self, x):
        branches = [self.branch_1x1(x), self.branch_3x3(x), self.branch_5x5(x), self.branch_pool(x)]
        return ti.concat(branches, dim=1)


naive = NaiveInception(IN_CHANNELS, CH1X1, CH3X3, CH5X5)
x = ti.tensor(np.random.default_rng(0).standard_normal((1, IN_CHANNELS, SIZE, SIZE)).astype(np.float32))
with ti.no_grad():
    y = naive(x)
print(f"input {x.shape} -> output {y.shape}: {CH1X1} + {CH3X3} + {CH5X5} + {IN_CHANNELS} (the pool passes all "
      f"{IN_CHANNELS} channels through) = {y.shape[1]} channels")

# %% [markdown]
# 2. What each naive branch costs
# -------------------------------
# A convolution's multiply-adds: one per weight per output position,
# ``out_channels * out_h * out_w * in_channels * kh * kw``. ``ti.summary`` counts exactly this from the hooked
# layers during one forward pass.

# %%
def branch_table(module, title):
    """Parameters and multiply-adds of each branch, read from ti.summary's rows (the real layers, hooked)."""
    result = ti.summary(module, (IN_CHANNELS, SIZE, SIZE), show=False)
    print(title)
    print(f"  {'branch':12s} {'output':>12s} {'params':>10s} {'mult-adds':>14s}")
    for name in BRANCHES:
        row = result.row(name)
        shape = "x".join(str(s) for s in row.output_shape[1:])
        print(f"  {name:12s} {shape:>12s} {row.params:>10,} {row.macs:>14,}")
    out = "x".join(str(s) for s in result.output_shape[1:])
    print(f"  {'total':12s} {out:>12s} {result.total_params:>10,} {result.total_macs:>14,}")
    return result


print(f"the 5x5 branch by hand: {CH5X5} * {SIZE} * {SIZE} * {IN_CHANNELS} * 5 * 5 = "
      f"{CH5X5 * SIZE * SIZE * IN_CHANNELS * 25:,}\n")
naive_result = branch_table(naive, "Naive module at inception (3a): 192 x 28 x 28 in")

# %% [markdown]
# The 3x3 and 5x5 branches dominate because each of their weights touches all 192 input channels. Worse,
# stacking such modules makes every layer wider (the pool branch alone forwards all channels), so the cost would
# grow module after module.
#
# 3. The same module with 1x1 reductions (what GoogLeNet uses)
# ------------------------------------------------------------
# A 1x1 convolution first squeezes the 192 channels to 96 (before the 3x3) and to 16 (before the 5x5); a 1x1
# projection after the pool brings its 192 channels down to 32. The 3x3 and 5x5 convolutions then work on far
# fewer input channels (``paper=True``: a true 5x5, as in the paper).

# %%
reduced = Inception(IN_CHANNELS, CH1X1, CH3X3_RED, CH3X3, CH5X5_RED, CH5X5, POOL_PROJ, paper=True)
reduced_result = branch_table(reduced, "Module with reductions (paper Figure 2b) at inception (3a)")
five_naive, five_reduced = naive_result.row("branch_5x5").macs, reduced_result.row("branch_5x5").macs
print(f"\nthe 5x5 branch: {five_naive:,} -> {five_reduced:,} multiply-adds ({five_naive / five_reduced:.1f}x "
      f"fewer), with the same {CH5X5} x {SIZE} x {SIZE} output")
print(f"the whole module: {naive_result.total_macs:,} -> {reduced_result.total_macs:,} multiply-adds "
      f"({naive_result.total_macs / reduced_result.total_macs:.1f}x fewer); output "
      f"{reduced_result.output_shape[1]} channels instead of {naive_result.output_shape[1]}")

fig, axes = plt.subplots(1, 2, figsize=(11, 4))
positions = np.arange(len(BRANCHES))
for axis, field, unit, scale in ((axes[0], "macs", "M multiply-adds per image", 1e6),
                                 (axes[1], "params", "thousand parameters", 1e3)):
    naive_values = [getattr(naive_result.row(name), field) / scale for name in BRANCHES]
    reduced_values = [getattr(reduced_result.row(name), field) / scale for name in BRANCHES]
    axis.bar(positions - 0.2, naive_values, 0.4, label="naive (Fig. 2a)", color="tab:red")
    axis.bar(positions + 0.2, reduced_values, 0.4, label="with 1x1 reductions (Fig. 2b)", color="tab:green")
    axis.set_xticks(positions)
    axis.set_xticklabels([name.replace("branch_", "") for name in BRANCHES])
    axis.set_ylabel(unit)
    axis.legend()
axes[0].set_title("multiply-adds per branch")
axes[1].set_title("parameters per branch")
fig.suptitle("inception (3a), 192 x 28 x 28 in: naive versus reduced module (counted by ti.summary)")
fig.tight_layout()
fig.savefig(os.path.join(OUT, "naive_vs_reduced_cost.png"), dpi=100)

# %% [markdown]
# The price: the 3x3 and 5x5 now see a compressed input. The paper's bet (borne out by its results) is that
# nearby channels are correlated enough that a 1x1 "embedding" loses little. Each 1x1 is also followed by a ReLU,
# so the reductions add depth and nonlinearity.
#
# 4. Timing each branch
# ---------------------
# Forward passes only, best of a few runs, on the machine that runs this page, each next to its multiply-adds.
# The multiply-adds are what the 1x1 reductions save, on any machine; the times also hold memory traffic (a max
# pool costs no multiply-adds yet reads every input value), fixed costs per call and, on a busy machine, other
# programs' work, so they move from run to run.

# %%
def time_call(module, x, repeats):
    """Best-of-``repeats`` seconds of one forward pass (no graph recorded), after a warm-up pass."""
    best = float("inf")
    with ti.no_grad():
        module(x)
        for _ in range(repeats):
            start = time.perf_counter()
            module(x)
            best = min(best, time.perf_counter() - start)
    return best


batch, repeats = (2, 2) if args.quick else (8, 3)
x = ti.tensor(np.random.default_rng(1).standard_normal((batch, IN_CHANNELS, SIZE, SIZE)).astype(np.float32))
print(f"batch {batch} x {IN_CHANNELS} x {SIZE} x {SIZE}, milliseconds (and M multiply-adds per batch)")
print(f"  {'branch':12s} {'naive':>18s} {'reduced':>18s}")
for name in BRANCHES + ("module",):
    naive_part = naive if name == "module" else getattr(naive, name)
    reduced_part = reduced if name == "module" else getattr(reduced, name)
    macs_naive = (naive_result.total_macs if name == "module" else naive_result.row(name).macs) * batch / 1e6
    macs_reduced = (reduced_result.total_macs if name == "module" else reduced_result.row(name).macs) * batch / 1e6
    t_naive, t_reduced = time_call(naive_part, x, repeats), time_call(reduced_part, x, repeats)
    print(f"  {name:12s} {1e3 * t_naive:7.1f} ({macs_naive:7.0f}) {1e3 * t_reduced:7.1f} ({macs_reduced:7.0f})")

# %% [markdown]
# 5. The same block from ``ti.nn`` pieces, and ``ti.optimize``
# -------------------------------------------------------------
# Every Inception network after the first puts a BatchNorm between each convolution and its ReLU. Written the way
# one writes it in PyTorch, a unit is ``Sequential(Conv2d, BatchNorm2d, ReLU)`` and the block concatenates four
# branches of such units. ``ti.models``' own block computes exactly this but runs BatchNorm and ReLU in one pass
# and the three 1x1 convolutions that read the block's input as one matrix product. ``ti.optimize(block)`` gives
# a block of your own the same treatment, in place: the printout below shows the Sequentials it fused, and the
# output before and after agrees to float32 rounding.

# %%
def unit(c_in, c_out, k, padding=0):
    """Conv -> BatchNorm -> ReLU, the way one writes it in PyTorch."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, padding=padding, bias=False), nn.BatchNorm2d(c_out, eps=1e-3),
                         nn.ReLU())


class MyInception(nn.Module):
    """GoogLeNet's block as torchvision builds it (BatchNorm after every convolution), from ti.nn pieces."""

    def __init__(self):
        super().__init__()
        self.branch_1x1 = unit(IN_CHANNELS, CH1X1, 1)
        self.branch_3x3 = nn.Sequential(unit(IN_CHANNELS, CH3X3_RED, 1), unit(CH3X3_RED, CH3X3, 3, padding=1))
        self.branch_5x5 = nn.Sequential(unit(IN_CHANNELS, CH5X5_RED, 1), unit(CH5X5_RED, CH5X5, 3, padding=1))
        self.branch_pool = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
                                         unit(IN_CHANNELS, POOL_PROJ, 1))

    def forward(self, x):
        return ti.functional.concat([self.branch_1x1(x), self.branch_3x3(x), self.branch_5x5(x),
                                     self.branch_pool(x)], dim=1)


mine = MyInception()
with ti.no_grad():
    before = mine(x).numpy()
mine = ti.optimize(mine)           # the same model, changed in place
with ti.no_grad():
    after = mine(x).numpy()
print(mine.branch_3x3)
print(f"\nlargest difference before/after ti.optimize: {np.abs(after - before).max():.2e} "
      f"(outputs up to {np.abs(before).max():.1f})")

# %% [markdown]
# One training step's forward and backward, timed for the block as written, after ``ti.optimize``, and for
# ``ti.models``' block (torchvision's layout); all three do the same multiply-adds, printed beside them, so the
# times differ only by how the work is arranged (and, on a busy machine, by what else runs).

# %%
def time_train_step(module, x, repeats):
    """Best-of-``repeats`` seconds of forward + backward of ``module(x).sum()``, after a warm-up step."""
    best = float("inf")
    for step in range(repeats + 1):
        start = time.perf_counter()
        module(x).sum().backward()
        if step:
            best = min(best, time.perf_counter() - start)
        module.zero_grad()
    return best


written = MyInception()
library = Inception(IN_CHANNELS, CH1X1, CH3X3_RED, CH3X3, CH5X5_RED, CH5X5, POOL_PROJ)
macs = ti.summary(written, (IN_CHANNELS, SIZE, SIZE), show=False).total_macs * batch / 1e6
for title, module in [("as written", written), ("ti.optimize", ti.optimize(MyInception())),
                      ("ti.models block", library)]:
    print(f"  {title:16s} {1e3 * time_train_step(module, x, repeats):7.1f} ms  ({macs:.0f} M multiply-adds "
          f"forward)")

# %% [markdown]
# 6. GoogLeNet, block by block
# ----------------------------
# Nine such modules (3a ... 5b), a stem of ordinary convolutions in front, max pools between stages and one
# linear classifier. torchvision's layout (the default), in eval mode at 224 x 224:

# %%
net = ti.models.googlenet()
result = ti.summary(net, (3, 224, 224), max_depth=1)
print(f"\ntorchvision publishes 1.498 GFLOPS (multiply-adds) for this network: {result.total_macs / 1e9:.3f} G here")

# %% [markdown]
# The auxiliary classifiers ``aux1`` and ``aux2`` (after 4a and 4d) only run in training, where their losses
# (weighted 0.3 in the paper) push gradient into the middle of the network; eval skips them. The paper's own
# layout (``paper=True``: true 5x5 branches, LocalResponseNorm, biases instead of BatchNorm, a 3x3 fourth max
# pool) differs in every row; see the table in ``tinyinception/models/inception_v1.py``.

# %%
if not args.quick:
    paper = ti.summary(ti.models.googlenet(paper=True), (3, 224, 224), show=False)
    print(f"paper=True: {paper.total_macs / 1e9:.3f} G multiply-adds, {paper.total_params:,} parameters "
          f"(torchvision layout: {result.total_macs / 1e9:.3f} G, {result.total_params:,})")
