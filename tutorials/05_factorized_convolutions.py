"""
Factorised convolutions: the idea behind Inception-v2 and v3
============================================================

"Rethinking the Inception Architecture" (Szegedy et al. 2015, section 3) replaces a 5x5 convolution by two
stacked 3x3 convolutions, and an n x n convolution by a 1 x n followed by an n x 1. This page counts what that
saves from the real layers, shows that the receptive field stays the same, measures the time next to what the
multiply-adds predict, finds each trick in our Inception-v3, and checks a factorised block's gradients in
float64.

**Run time:** under a minute on 2 cores (``python tutorials/05_factorized_convolutions.py``); ``--quick``
times smaller batches (about 15 seconds). Figures are also saved to ``runs/tutorials/05_factorized_convolutions/``
under the current folder.
"""

# %%
import argparse
import importlib
import os
import time

import matplotlib.pyplot as plt
import numpy as np

import tinyinception as ti
from tinyinception import nn

v3 = importlib.import_module("tinyinception.models.inception_v3")  # the module; ti.models.inception_v3 is a builder

parser = argparse.ArgumentParser(description="Factorised convolutions")
parser.add_argument("--quick", action="store_true", help="smaller timing runs (what the tests and docs build run)")
args, _ = parser.parse_known_args()
OUT = os.path.join("runs", "tutorials", "05_factorized_convolutions")
os.makedirs(OUT, exist_ok=True)
ti.manual_seed(0)
channels = 32 if args.quick else 64


def weights_of(*layers):
    """Number of learned weights in some Conv2d layers (no biases here: Inception's convs have none, BN follows)."""
    return sum(int(layer.weight.data.size) for layer in layers)


def stack(*layers):
    """Run layers one after another (no nonlinearity: we look at the linear map itself)."""
    def run(x):
        for layer in layers:
            x = layer(x)
        return x
    return run


def conv_macs(layer, out_h, out_w):
    """Multiply-adds of one Conv2d producing an out_h x out_w map: in_channels * kh * kw per output value."""
    kh, kw = layer.kernel_size
    return layer.out_channels * out_h * out_w * layer.in_channels * kh * kw


# %% [markdown]
# 1. One 5x5 convolution, or two 3x3 convolutions stacked
# -------------------------------------------------------
# Per (input channel, output channel) pair: 25 weights versus 9 + 9 = 18.

# %%
five = nn.Conv2d(channels, channels, 5, padding=2, bias=False)
three_a = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
three_b = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
print(f"5x5 layer: weight {five.weight.shape} -> {weights_of(five):,} weights")
print(f"3x3 then 3x3: weights {three_a.weight.shape} and {three_b.weight.shape} -> "
      f"{weights_of(three_a, three_b):,} weights")
ratio = weights_of(three_a, three_b) / weights_of(five)
print(f"ratio {ratio:.2f}: {1 - ratio:.0%} fewer weights")
size = 35  # the grid Inception-v3's 35x35 blocks work on
macs_five = conv_macs(five, size, size)
macs_two = conv_macs(three_a, size, size) + conv_macs(three_b, size, size)
print(f"multiply-adds on a {size}x{size} map: {macs_five / 1e6:.1f} M versus {macs_two / 1e6:.1f} M "
      f"(the same {1 - macs_two / macs_five:.0%} saving: every weight is used once per output pixel)")
x = ti.Tensor(np.random.default_rng(0).standard_normal((1, channels, size, size)).astype(np.float32))
assert five(x).shape == stack(three_a, three_b)(x).shape
print(f"both map {tuple(x.shape)} to {tuple(five(x).shape)}: a drop-in replacement, shape-wise")

# %% [markdown]
# 2. The same receptive field
# ---------------------------
# Change one input pixel and see which outputs move (forward); ask ``backward()`` which inputs one output
# depends on (the reverse question). Positive weights make sure no accidental cancellation hides a connection.

# %%
size, centre = 11, 5
five_1 = nn.Conv2d(1, 1, 5, padding=2, bias=False)
three_1a = nn.Conv2d(1, 1, 3, padding=1, bias=False)
three_1b = nn.Conv2d(1, 1, 3, padding=1, bias=False)
one_three = nn.Conv2d(1, 1, 3, padding=1, bias=False)
for layer in (five_1, three_1a, three_1b, one_three):
    layer.weight.data[...] = np.abs(layer.weight.data) + np.float32(0.1)
nets = {"one 3x3": one_three, "one 5x5": five_1, "3x3 then 3x3": stack(three_1a, three_1b)}
base = np.zeros((1, 1, size, size), np.float32)
poked = base.copy()
poked[0, 0, centre, centre] = 1.0
reach, dependence = {}, {}
for name, net in nets.items():
    reach[name] = (net(ti.Tensor(poked)).numpy() != net(ti.Tensor(base)).numpy())[0, 0]
    x = ti.Tensor(np.random.default_rng(1).standard_normal((1, 1, size, size)).astype(np.float32),
                  requires_grad=True)
    net(x)[0, 0, centre, centre].backward()
    dependence[name] = np.abs(x.grad[0, 0])
    rows, cols = np.nonzero(dependence[name])
    print(f"{name:13s}: {int(reach[name].sum()):2d} outputs move when pixel ({centre}, {centre}) changes; output "
          f"({centre}, {centre}) depends on a {rows.max() - rows.min() + 1}x{cols.max() - cols.min() + 1} window")
assert (reach["one 5x5"] == reach["3x3 then 3x3"]).all()

fig, axes = plt.subplots(1, 3, figsize=(11, 3.8))
for axis, (name, weight_map) in zip(axes, dependence.items()):
    axis.imshow(weight_map / weight_map.max(), cmap="magma", vmin=0, vmax=1)
    axis.contour(weight_map > 0, levels=[0.5], colors="cyan", linewidths=1.5)
    axis.plot(centre, centre, "c+", markersize=12)
    rows, cols = np.nonzero(weight_map)
    axis.set_title(f"{name}: {rows.max() - rows.min() + 1}x{cols.max() - cols.min() + 1} receptive field")
    axis.set_xticks([])
    axis.set_yticks([])
fig.suptitle("|d output(5, 5) / d input|: where one output looks (brighter: larger weight in the linear map)")
fig.tight_layout()
fig.savefig(os.path.join(OUT, "receptive_fields.png"), dpi=100)

# %% [markdown]
# Stacking stride-1 layers with kernels ``k1, k2, ...`` sees ``1 + (k1 - 1) + (k2 - 1) + ...`` pixels:
# ``1 + 2 + 2 = 5`` for two 3x3; three 3x3 see 7x7 (Inception-v3's stem replaces a 7x7 by three 3x3 for the same
# reason). The stack weights its window unevenly (the centre is reached by more paths, the brighter middle of the
# figure), and in the real network it has a ReLU in the middle, so it is also *more* non-linear, for 72% of the
# weights and multiply-adds.
#
# 3. n x n versus 1 x n followed by n x 1 (asymmetric factorisation)
# ------------------------------------------------------------------

# %%
print(f"{channels} channels in and out:")
for n in (3, 5, 7):
    square = nn.Conv2d(channels, channels, n, padding=n // 2, bias=False)
    row = nn.Conv2d(channels, channels, (1, n), padding=(0, n // 2), bias=False)
    column = nn.Conv2d(channels, channels, (n, 1), padding=(n // 2, 0), bias=False)
    saving = 1 - weights_of(row, column) / weights_of(square)
    print(f"  {n}x{n}: {weights_of(square):>7,} weights;  1x{n} then {n}x1: {weights_of(row, column):>7,} "
          f"({n * n} versus {2 * n} per channel pair): {saving:.0%} fewer")

# %% [markdown]
# The paper's numbers: 33% cheaper for a 3x3 (section 3.2); for 7x7 the saving is ``1 - 14/49 = 71%``.
# The price: with one channel and nothing in between, 1x7 then 7x1 is a 7x7 filter whose kernel is an outer
# product (rank 1, "separable"). Check it on real layers:

# %%
row = nn.Conv2d(1, 1, (1, 7), padding=(0, 3), bias=False)
column = nn.Conv2d(1, 1, (7, 1), padding=(3, 0), bias=False)
square = nn.Conv2d(1, 1, 7, padding=3, bias=False)
square.weight.data[0, 0] = np.outer(column.weight.data[0, 0, :, 0], row.weight.data[0, 0, 0, :])
x = ti.Tensor(np.random.default_rng(2).standard_normal((1, 1, 17, 17)).astype(np.float32))
difference = np.abs(stack(row, column)(x).numpy() - square(x).numpy()).max()
print(f"max |(1x7 then 7x1)(x) - (7x7 with kernel column (x) row)(x)| = {difference:.2g}")

# %% [markdown]
# With many channels, each output channel mixes many rank-1 kernels, and Inception puts BatchNorm and a ReLU
# between the 1x7 and the 7x1, so the pair is far richer than one separable filter. The paper found it works
# poorly on early layers and well on grids of about 12 to 20 pixels: Inception-v3 uses it on the 17x17 grid
# (InceptionC, n = 7) and, as parallel 1x3 / 3x1, on the 8x8 grid (InceptionE).
#
# 4. Does it save time? Measured forward + backward
# -------------------------------------------------
# The paper's argument is about multiply-adds and parameters; the column "predicted" below is the ratio of
# multiply-adds (factorised / one layer), "measured" the ratio of the times of this run. The factorised pair
# also runs two convolutions instead of one, writes and reads an intermediate map and has two backward passes;
# those costs do not shrink with the kernel, so they weigh most on small maps and batches. On a shared machine
# the measured ratios move from run to run.

# %%
def time_call(fn, x, repeats):
    """Best wall-clock time of forward + backward over ``repeats`` runs (after one warm-up run)."""
    best = float("inf")
    for attempt in range(repeats + 1):
        x.grad = None
        start = time.perf_counter()
        fn(x).sum().backward()
        if attempt:
            best = min(best, time.perf_counter() - start)
    return best


batch, repeats = (2, 2) if args.quick else (8, 3)
rng = np.random.default_rng(3)
cases = [
    ("5x5 vs 3x3 + 3x3, 64 ch, 35x35", 64, 35,
     lambda c: [nn.Conv2d(c, c, 5, padding=2, bias=False)],
     lambda c: [nn.Conv2d(c, c, 3, padding=1, bias=False), nn.Conv2d(c, c, 3, padding=1, bias=False)]),
    ("7x7 vs 1x7 + 7x1, 128 ch, 17x17", 128, 17,
     lambda c: [nn.Conv2d(c, c, 7, padding=3, bias=False)],
     lambda c: [nn.Conv2d(c, c, (1, 7), padding=(0, 3), bias=False),
                nn.Conv2d(c, c, (7, 1), padding=(3, 0), bias=False)]),
    ("3x3 vs 1x3 + 3x1, 192 ch, 8x8", 192, 8,
     lambda c: [nn.Conv2d(c, c, 3, padding=1, bias=False)],
     lambda c: [nn.Conv2d(c, c, (1, 3), padding=(0, 1), bias=False),
                nn.Conv2d(c, c, (3, 1), padding=(1, 0), bias=False)]),
]
print(f"batch {batch}, best of {repeats}\n")
print(f"{'case':34s} {'one layer':>10s} {'factorised':>11s} {'measured':>9s} {'predicted':>10s}")
measured_ratios, predicted_ratios = [], []
for name, case_channels, case_size, build_one, build_factorised in cases:
    one, factorised = build_one(case_channels), build_factorised(case_channels)
    x = ti.Tensor(rng.standard_normal((batch, case_channels, case_size, case_size)).astype(np.float32),
                  requires_grad=True)
    t_one = time_call(stack(*one), x, repeats)
    t_factorised = time_call(stack(*factorised), x, repeats)
    predicted = sum(conv_macs(layer, case_size, case_size) for layer in factorised) / conv_macs(
        one[0], case_size, case_size)
    measured_ratios.append(t_factorised / t_one)
    predicted_ratios.append(predicted)
    print(f"{name:34s} {t_one * 1e3:8.1f}ms {t_factorised * 1e3:9.1f}ms {t_factorised / t_one:9.2f} "
          f"{predicted:10.2f}")

fig, axis = plt.subplots(figsize=(8, 3.8))
positions = np.arange(len(cases))
axis.bar(positions - 0.2, predicted_ratios, 0.4, label="multiply-adds (counted)", color="tab:green")
axis.bar(positions + 0.2, measured_ratios, 0.4, label="time (measured on this run)", color="tab:gray")
axis.axhline(1.0, color="black", linewidth=0.8)
axis.set_xticks(positions)
axis.set_xticklabels([case[0] for case in cases], fontsize=8)
axis.set_ylabel("factorised / one layer")
axis.set_title(f"Factorised over one layer: below 1 means cheaper (batch {batch}, forward + backward)")
axis.legend()
fig.tight_layout()
fig.savefig(os.path.join(OUT, "factorised_cost.png"), dpi=100)

# %% [markdown]
# 5. Where Inception-v3 uses each trick, and a float64 gradient check through a factorised block
# -----------------------------------------------------------------------------------------------

# %%
model = ti.models.inception_v3(aux_logits=False)
a, c, e = model.Mixed_5b, model.Mixed_6b, model.Mixed_7b
print(f"Mixed_5b (InceptionA, 35x35): branch3x3dbl = 1x1, {a.branch3x3dbl_2.conv.kernel_size}, "
      f"{a.branch3x3dbl_3.conv.kernel_size}  <- two 3x3 where GoogLeNet had a 5x5")
print(f"    (it also keeps a real 5x5: branch5x5_2 {a.branch5x5_2.conv.kernel_size}; Google's TensorFlow model"
      " did, the paper's Figure 5 does not)")
print(f"Mixed_6b (InceptionC, 17x17): branch7x7 = 1x1, {c.branch7x7_2.conv.kernel_size}, "
      f"{c.branch7x7_3.conv.kernel_size}  <- a 7x7 as 1x7 then 7x1")
print("    branch7x7dbl = 1x1, " + ", ".join(str(getattr(c, f'branch7x7dbl_{i}').conv.kernel_size)
                                         for i in range(2, 6)) + "  <- two factorised 7x7 in a row")
print(f"Mixed_7b (InceptionE, 8x8): branch3x3_1 1x1, then {e.branch3x3_2a.conv.kernel_size} and "
      f"{e.branch3x3_2b.conv.kernel_size} side by side  <- 'expanded filter bank' (paper Figure 7)")
seven = weights_of(c.branch7x7_2.conv, c.branch7x7_3.conv)
as_square = c.branch7x7_2.conv.in_channels * c.branch7x7_3.conv.out_channels * 49
print(f"Mixed_6b's branch7x7 factorised pair holds {seven:,} weights; one 7x7 in its place would hold {as_square:,}")

# %% [markdown]
# Gradient check: a tiny InceptionC (3 channels in, 2-3 per branch, 5x5 map) in float64, in eval mode so
# BatchNorm uses fixed (non-trivial) statistics. Float64 because float32 rounding (about 1e-7) divided by
# ``eps = 1e-6`` would swamp the comparison.

# %%
block = v3.InceptionC(3, branch1x1=2, branch7x7=(2, 2, 3), branch7x7dbl=(2, 2, 2, 2, 3), branch_pool=2)
block = block.double().eval()
for module in block.modules():
    if isinstance(module, nn.BatchNorm2d):
        module.running_mean.data[...] = np.linspace(-0.2, 0.3, module.num_features)
        module.running_var.data[...] = np.linspace(0.5, 1.5, module.num_features)
        module.bias.data[...] = np.linspace(0.15, -0.1, module.num_features)
x = ti.Tensor(np.random.default_rng(4).standard_normal((2, 3, 5, 5)), requires_grad=True)
print(f"input {tuple(x.shape)} -> output {tuple(block(x).shape)}; checking d<v, block(x)>/dx element by "
      f"element ({x.data.size} inputs, central differences, eps 1e-6)...")
ti.gradcheck(lambda x: block(x), (x,))
print("input gradient: backward agrees with finite differences (rtol 1e-3, atol 1e-5)")
params = list(block.parameters())
ti.gradcheck(lambda x, *p: block(x), (x, *params), fast_mode=True)
print(f"all {len(params)} parameter tensors (1x7 and 7x1 weights, BatchNorm scales and shifts) agree too "
      "(fast mode: one random direction each)")

# %% [markdown]
# 6. Reading other write-ups: the direction of the factorisation, and the name "Inception-v2"
# -------------------------------------------------------------------------------------------
# The paper replaces ONE 5x5 by TWO 3x3 (fewer weights, same reach). Some popular summaries say it backwards
# ("a 3x3 replaced by two 5x5"): that would cost 50/9 = 5.6 times as much and see 9x9, the opposite of the point.
# Check any claim with step 1's arithmetic: 9 + 9 = 18 < 25.
#
# Likewise n x n becomes 1 x n THEN n x 1 (a chain: 2n weights instead of n*n, same n x n reach). The
# side-by-side 1x3 and 3x1 of the 8x8 blocks (step 5) is a different idea: it widens the output (two sets of
# channels concatenated) rather than replacing one 3x3.
#
# "Inception-v2" means two things: in the Rethinking paper (section 6) it is the factorised network of this
# page, and Inception-v3 is that plus RMSProp, label smoothing, a factorised 7x7 stem and a batch-normalised
# auxiliary classifier; in Google's code and the Inception-v4 paper, "Inception-v2" is BN-Inception (Ioffe &
# Szegedy 2015), which already used two 3x3 instead of a 5x5. tinyinception avoids the ambiguity:
# ``bn_inception`` and ``inception_v3``.
