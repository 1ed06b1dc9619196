"""
A convolution three ways: loops, im2col + one matrix product, shifted products
==============================================================================

The same 2-D convolution written as six nested loops (the definition), as im2col followed by ONE matrix
product (in NumPy and compiled by Numba), as nine shifted 1x1 products without im2col, and with Winograd's
F(2x2, 3x3), which needs 16 multiplications per 2x2 block of outputs instead of 36.

**Run time:** about 10 to 30 seconds on 2 cores (``python tutorials/02_im2col_convolution.py``); ``--quick``
uses smaller inputs (a few seconds; what the tests and the documentation build run). The figure is also saved to
``runs/tutorials/02_im2col_convolution/`` under the current folder.

Timings are measured on whatever machine runs the page and change with its load; the multiply-adds printed next
to them are the machine-independent figure.
"""

# %%
import argparse
import os
import time

import matplotlib.pyplot as plt
import numpy as np

import tinyinception as ti
import tinyinception.functional as F
from tinyinception.kernels import layout, shifted_conv, threaded_blas, winograd
from tinyinception.kernels.im2col import im2col_numba, im2col_numpy

parser = argparse.ArgumentParser(description="A convolution three ways")
parser.add_argument("--quick", action="store_true", help="smaller inputs (used by the tests and the docs build)")
args, _ = parser.parse_known_args()
OUT = os.path.join("runs", "tutorials", "02_im2col_convolution")
os.makedirs(OUT, exist_ok=True)

# %% [markdown]
# 1. The definition: six nested loops
# -----------------------------------
# ``out[n, f, i, j] = sum over c, u, v of x_padded[n, c, i*s + u, j*s + v] * weight[f, c, u, v]``:
# slow, but obviously right.

# %%
def conv2d_loops(x, weight, stride=1, padding=0):
    """x: (N, C, H, W), weight: (F, C, kh, kw) -> (N, F, out_h, out_w), by the definition."""
    n, c, h, w = x.shape
    f, _, kh, kw = weight.shape
    x_padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    out_h = (h + 2 * padding - kh) // stride + 1
    out_w = (w + 2 * padding - kw) // stride + 1
    out = np.zeros((n, f, out_h, out_w), dtype=x.dtype)
    for b in range(n):
        for k in range(f):
            for i in range(out_h):
                for j in range(out_w):
                    total = 0.0
                    for ch in range(c):
                        for u in range(kh):
                            for v in range(kw):
                                total += x_padded[b, ch, i * stride + u, j * stride + v] * weight[k, ch, u, v]
                    out[b, k, i, j] = total
    return out


# %% [markdown]
# 2. im2col: every receptive field copied into a column
# -----------------------------------------------------
# im2col turns ``x (N, C, H, W)`` into ``cols (N, C*kh*kw, out_h*out_w)``; then the whole convolution is
# ``out[n] = W (F, C*kh*kw) @ cols[n]``: one matrix product per image. The picture shows what it does to a
# 5x5 image with pixels numbered 1 to 25: column ``j`` holds the 3x3 window of output position ``j``, read row
# by row.

# %%
image = np.arange(1, 26, dtype=np.float32).reshape(1, 1, 5, 5)
cols = im2col_numpy(image, (3, 3), (1, 1), (0, 0), (1, 1), (3, 3))[0]  # (9, 9): 9 windows of 9 pixels
print("cols (9 kernel offsets x 9 output positions):")
print(cols.astype(int))

fig, axes = plt.subplots(1, 2, figsize=(9, 4), gridspec_kw={"width_ratios": [1, 1.6]})
axes[0].imshow(image[0, 0], cmap="viridis")
for (i, j), value in np.ndenumerate(image[0, 0]):
    axes[0].text(j, i, int(value), ha="center", va="center", color="white", fontsize=9)
axes[0].add_patch(plt.Rectangle((-0.5, -0.5), 3, 3, fill=False, edgecolor="red", linewidth=2))
axes[0].add_patch(plt.Rectangle((0.5, -0.5), 3, 3, fill=False, edgecolor="orange", linewidth=2, linestyle="--"))
axes[0].set_title("input 5x5; the first two 3x3 windows")
axes[1].imshow(cols, cmap="viridis")
for (i, j), value in np.ndenumerate(cols):
    axes[1].text(j, i, int(value), ha="center", va="center", color="white", fontsize=8)
axes[1].add_patch(plt.Rectangle((-0.5, -0.5), 1, 9, fill=False, edgecolor="red", linewidth=2))
axes[1].add_patch(plt.Rectangle((0.5, -0.5), 1, 9, fill=False, edgecolor="orange", linewidth=2, linestyle="--"))
axes[1].set_title("im2col: one column per output position")
axes[1].set_xlabel("output position (3x3 = 9)")
axes[1].set_ylabel("kernel offset (3x3 = 9)")
for axis in axes:
    axis.set_xticks([])
    axis.set_yticks([])
fig.tight_layout()
fig.savefig(os.path.join(OUT, "im2col.png"), dpi=120)

# %% [markdown]
# A 3x3 convolution with ``F`` filters is now ``weight (F, 9) @ cols (9, 9)``: each output is one dot product.
# The price is memory: every pixel is copied ``kh*kw`` times.
#
# 3. Loops, NumPy im2col, Numba im2col and ``F.conv2d`` agree
# -----------------------------------------------------------

# %%
def conv2d_im2col(x, weight, stride, padding, im2col):
    """x (N, C, H, W), weight (F, C, kh, kw): im2col, then (F, K) @ (N, K, L) -> (N, F, L), reshaped."""
    n, c, h, w = x.shape
    f, _, kh, kw = weight.shape
    out_h = (h + 2 * padding - kh) // stride + 1
    out_w = (w + 2 * padding - kw) // stride + 1
    cols = im2col(x, (kh, kw), (stride, stride), (padding, padding), (1, 1), (out_h, out_w))
    out = weight.reshape(f, -1) @ cols
    return out.reshape(n, f, out_h, out_w)


def timed(fn, repeats):
    """(result, seconds per call) after one warm-up call (Numba compiles on the first call, or loads its cache)."""
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        result = fn()
    return result, (time.perf_counter() - start) / repeats


rng = np.random.default_rng(0)
shape = (1, 3, 8, 8) if args.quick else (2, 3, 12, 12)
x = rng.standard_normal(shape).astype(np.float32)
weight = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
print(f"x: {x.shape}, weight: {weight.shape}, stride 1, padding 1")

loops, t_loops = timed(lambda: conv2d_loops(x, weight, 1, 1), 1)
numpy_cols, t_numpy = timed(lambda: conv2d_im2col(x, weight, 1, 1, im2col_numpy), 20)
numba_cols, t_numba = timed(lambda: conv2d_im2col(x, weight, 1, 1, im2col_numba), 20)
library = F.conv2d(ti.tensor(x), ti.tensor(weight), padding=1).numpy()
print(f"loops vs NumPy im2col : max difference {np.abs(loops - numpy_cols).max():.2e}")
print(f"loops vs Numba im2col : max difference {np.abs(loops - numba_cols).max():.2e}")
print(f"loops vs F.conv2d     : max difference {np.abs(loops - library).max():.2e}")
assert np.allclose(loops, numpy_cols, atol=1e-4) and np.allclose(loops, numba_cols, atol=1e-4)
assert np.allclose(loops, library, atol=1e-4)
print("(the differences are float32 rounding: the sums run in a different order)")

# %% [markdown]
# 4. How long each takes
# ----------------------
# The three do the same multiply-adds; the matrix product hands them to BLAS, which uses vector units, caches
# and all cores. The ratios below are measured on this run.

# %%
macs_small = loops.size * weight[0].size
print(f"{macs_small:,} multiply-adds in each version")
print(f"six nested Python loops : {t_loops * 1e3:10.2f} ms")
print(f"NumPy im2col + matmul   : {t_numpy * 1e3:10.2f} ms   (loops / this = {t_loops / t_numpy:,.0f})")
print(f"Numba im2col + matmul   : {t_numba * 1e3:10.2f} ms   (loops / this = {t_loops / t_numba:,.0f})")

big = rng.standard_normal((2 if args.quick else 8, 96, 28, 28)).astype(np.float32)
big_weight = rng.standard_normal((128, 96, 3, 3)).astype(np.float32)
_, t_np_big = timed(lambda: im2col_numpy(big, (3, 3), (1, 1), (1, 1), (1, 1), (28, 28)), 3)
_, t_nb_big = timed(lambda: im2col_numba(big, (3, 3), (1, 1), (1, 1), (1, 1), (28, 28)), 3)
_, t_conv = timed(lambda: conv2d_im2col(big, big_weight, 1, 1, im2col_numba), 3)
macs_big = big.shape[0] * 128 * 28 * 28 * 96 * 9
print(f"\nAt an Inception size, x {big.shape} through a 3x3 convolution to 128 channels "
      f"({macs_big / 1e9:.2f} G multiply-adds):")
print(f"  im2col alone: NumPy {t_np_big * 1e3:.1f} ms, Numba {t_nb_big * 1e3:.1f} ms; whole convolution "
      f"{t_conv * 1e3:.1f} ms = {2 * macs_big / t_conv / 1e9:.0f} GFLOP/s measured")

# %% [markdown]
# 5. No im2col at all: nine shifted 1x1 convolutions
# --------------------------------------------------
# A 3x3 convolution is a sum of nine 1x1 convolutions, each reading the input shifted by one tap offset. If each
# channel is laid out as one flat row (the pixels row by row, each image row followed by one zero, the images
# side by side, zero margins at both ends), a shifted input is just a slice of that row: nothing is copied nine
# times. The zero after each row is the right padding of that row *and* the left padding of the next. This is
# how ``F.conv2d`` runs stride-1 convolutions on its channel-major CPU path
# (``tinyinception/kernels/shifted_conv.py``): BLAS reads each shifted block in place and adds into the output.

# %%
rng = np.random.default_rng(2)
x = rng.standard_normal((2, 4, 6, 6)).astype(np.float32)
weight = rng.standard_normal((5, 4, 3, 3)).astype(np.float32)
grid = shifted_conv.grid_geometry(x.shape, (3, 3), (1, 1), (1, 1), (1, 1))
rows = shifted_conv.to_grid_numpy(x.transpose(1, 0, 2, 3), grid, grid.before, grid.after)
print(f"x {x.shape} -> rows {rows.shape}: channel c is one row; row pitch {grid.pitch} = 6 + 1 zero, "
      f"{grid.images} images side by side, {grid.before} zeros before and after")
print("output pixel a reads tap (i, j) at a + offset; the offsets of the nine taps:", grid.offsets)
out_rows = np.zeros((5, grid.anchors), dtype=np.float32)
for tap, offset in enumerate(grid.offsets):
    i, j = divmod(tap, 3)
    start = grid.before + offset
    out_rows += weight[:, :, i, j] @ rows[:, start:start + grid.anchors]  # a 1x1 convolution, shifted input
out = shifted_conv.from_grid_numpy(out_rows, grid, 0, 6, 6).transpose(1, 0, 2, 3)
print(f"nine shifted products vs loops: max difference {np.abs(out - conv2d_loops(x, weight, 1, 1)).max():.2e}")
print(f"outputs are computed at {grid.anchors} anchors for {out.size // 5} real outputs: only the column of "
      "zeros is wasted")

# %% [markdown]
# Both ways do the same multiply-adds. What the shifted layout saves for certain is memory (no nine-fold copy);
# whether it also saves time next to im2col + one product depends on the sizes, the BLAS and the machine's
# load. Here is the measurement of this run at inception (3a)'s 3x3 branch size:

# %%
rng = np.random.default_rng(3)
big = rng.standard_normal((2 if args.quick else 8, 96, 28, 28)).astype(np.float32)
big_weight = rng.standard_normal((128, 96, 3, 3)).astype(np.float32)
big_cnhw = np.ascontiguousarray(layout.channel_major(big))  # (C, N, H, W): how layers hand activations on
taps = shifted_conv.weight_taps(big_weight)
grid = shifted_conv.grid_geometry(big.shape, (3, 3), (1, 1), (1, 1), (1, 1))
shifted, t_shifted = timed(lambda: shifted_conv.forward(big_cnhw, taps, grid), 3)
_, t_im2col = timed(lambda: conv2d_im2col(big, big_weight, 1, 1, im2col_numba), 3)
cols_bytes = big.size * 9 * 4
print(f"x {big.shape}, 3x3 to 128 channels, {big.shape[0] * 128 * 28 * 28 * 96 * 9 / 1e9:.2f} G multiply-adds:")
print(f"  im2col + matmul {t_im2col * 1e3:.1f} ms (its cols take {cols_bytes / 2**20:.1f} MiB), "
      f"shifted products {t_shifted * 1e3:.1f} ms (no cols)")

# %% [markdown]
# 6. Fewer multiplications: Winograd's F(2x2, 3x3)
# ------------------------------------------------
# A 2x2 block of outputs of a 3x3 convolution reads a 4x4 patch: 4 outputs x 9 = 36 multiplications.
# Winograd computes ``U = G g G^T`` once per weight, ``V = B^T d B`` with additions only (``B^T`` holds 0, 1
# and -1), and ``out = A^T (U * V) A``: 16 multiplications, then additions only.

# %%
rng = np.random.default_rng(4)
patch, kernel = rng.standard_normal((4, 4)), rng.standard_normal((3, 3))
direct = np.array([[np.sum(patch[y:y + 3, x:x + 3] * kernel) for x in range(2)] for y in range(2)])
u = winograd.G @ kernel @ winograd.G.T
v = winograd.B_T @ patch @ winograd.B_T.T
tile = winograd.A_T @ (u * v) @ winograd.A_T.T
print(f"Winograd's 16 multiplications vs the direct 36: max difference {np.abs(tile - direct).max():.1e}")
print("B^T =", winograd.B_T.astype(int).tolist())
print("A^T =", winograd.A_T.astype(int).tolist())

# %% [markdown]
# Over ``C`` input channels the 16 elementwise products become 16 matrix products, one per position ``k``:
# ``M_k (F, tiles) = U_k (F, C) @ V_k (C, tiles)``, 2.25 times fewer multiply-adds than nine shifted products.
# The transforms cost additions and memory traffic, so ``F.conv2d`` uses Winograd only for "same" 3x3
# convolutions where its rule ``winograd.pays`` expects the saved products to outweigh them.

# %%
if threaded_blas.available(big_cnhw.dtype):
    fast, t_winograd = timed(lambda: winograd.convolve(big_cnhw, winograd.transform_weight(taps)), 3)
    scale = np.abs(shifted).max()
    print(f"x {big.shape}, 3x3 to 128 channels: shifted products {t_shifted * 1e3:.1f} ms, Winograd "
          f"{t_winograd * 1e3:.1f} ms (measured on this run); largest difference "
          f"{np.abs(fast - shifted).max() / scale:.1e} of the largest output (float32 rounding)")
else:
    print("(Winograd's products need the thread pool of kernels/threaded_blas.py, which is off in this process: "
          "F.conv2d uses the shifted products instead.)")
