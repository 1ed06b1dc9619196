"""Tutorial 2: a convolution three ways — loops, im2col + one matrix product, and the Numba kernel.

Run it:  python tutorials/02_im2col_convolution.py [--quick] [--out DIR]

What you will see
  1. a 2-D convolution written as six nested loops: the definition, slow but obviously right
  2. im2col: every receptive field copied into a column, so the whole convolution becomes ONE matrix product
  3. the same im2col compiled by Numba (parallel over (image, channel) planes) — and that all three agree
  4. how long each takes
  5. a picture of what im2col does to a small image (saved as PNG)
  6. no im2col at all: a 3x3 convolution as nine 1x1 convolutions of shifted inputs, which is how
     tinyinception runs stride-1 convolutions on the CPU (`tinyinception/kernels/shifted_conv.py`)
  7. fewer multiplications: Winograd's F(2x2, 3x3), 16 products per 2x2 block of outputs instead of 36, which
     tinyinception uses for "same" 3x3 convolutions where it pays (`tinyinception/kernels/winograd.py`)
"""
import argparse
import os
import time

import numpy as np

import tinyinception as ti
import tinyinception.functional as F
from tinyinception.kernels import layout, shifted_conv, threaded_blas, winograd
from tinyinception.kernels.im2col import im2col_numba, im2col_numpy


def section(title):
    print(f"\n{'=' * 72}\n{title}\n{'=' * 72}")


def conv2d_loops(x, weight, stride=1, padding=0):
    """The definition: out[n, f, i, j] = sum over c, u, v of x_padded[n, c, i*s + u, j*s + v] * weight[f, c, u, v]."""
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


def conv2d_im2col(x, weight, stride, padding, im2col):
    """im2col turns x (N, C, H, W) into cols (N, C*kh*kw, out_h*out_w); then out[n] = W (F, C*kh*kw) @ cols[n]."""
    n, c, h, w = x.shape
    f, _, kh, kw = weight.shape
    out_h = (h + 2 * padding - kh) // stride + 1
    out_w = (w + 2 * padding - kw) // stride + 1
    cols = im2col(x, (kh, kw), (stride, stride), (padding, padding), (1, 1), (out_h, out_w))
    out = weight.reshape(f, -1) @ cols  # (F, K) @ (N, K, L) -> (N, F, L): one matrix product per image
    return out.reshape(n, f, out_h, out_w)


def timed(fn, repeats):
    fn()  # warm-up (Numba compiles on the first call, or loads its cache)
    start = time.perf_counter()
    for _ in range(repeats):
        result = fn()
    return result, (time.perf_counter() - start) / repeats


def step_1_to_4(quick):
    section("1-3. The same convolution by loops, by NumPy im2col, by Numba im2col")
    rng = np.random.default_rng(0)
    shape = (1, 3, 8, 8) if quick else (2, 3, 12, 12)
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
    print("(differences are float32 rounding: the sums run in a different order)")

    section("4. How long each takes")
    print(f"six nested Python loops : {t_loops * 1e3:10.2f} ms")
    print(f"NumPy im2col + matmul   : {t_numpy * 1e3:10.2f} ms   ({t_loops / t_numpy:,.0f}x faster)")
    print(f"Numba im2col + matmul   : {t_numba * 1e3:10.2f} ms   ({t_loops / t_numba:,.0f}x faster)")
    print("The loops do the same arithmetic; the matrix product hands it to BLAS, which uses vector units, caches")
    print("and both cores. im2col costs memory: every pixel is copied kh*kw times.")

    big = rng.standard_normal((8, 96, 28, 28)).astype(np.float32)
    big_weight = rng.standard_normal((128, 96, 3, 3)).astype(np.float32)
    _, t_np_big = timed(lambda: im2col_numpy(big, (3, 3), (1, 1), (1, 1), (1, 1), (28, 28)), 3)
    _, t_nb_big = timed(lambda: im2col_numba(big, (3, 3), (1, 1), (1, 1), (1, 1), (28, 28)), 3)
    _, t_conv = timed(lambda: conv2d_im2col(big, big_weight, 1, 1, im2col_numba), 3)
    print("\nAt an Inception size, x (8, 96, 28, 28) through a 3x3 convolution to 128 channels:")
    print(f"  im2col alone: NumPy {t_np_big * 1e3:.1f} ms, Numba {t_nb_big * 1e3:.1f} ms; whole convolution "
          f"{t_conv * 1e3:.1f} ms")
    flops = 2 * 8 * 128 * 96 * 9 * 28 * 28
    print(f"  the convolution is {flops / 1e9:.2f} GFLOP: {flops / t_conv / 1e9:.0f} GFLOP/s")


def step_5_picture(out_dir):
    section("5. What im2col does to a small image")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    image = np.arange(1, 26, dtype=np.float32).reshape(1, 1, 5, 5)  # pixels numbered 1..25
    cols = im2col_numpy(image, (3, 3), (1, 1), (0, 0), (1, 1), (3, 3))[0]  # (9, 9): 9 windows of 9 pixels
    print("input (pixels numbered 1..25):")
    print(image[0, 0].astype(int))
    print("cols: column j holds the 3x3 window of output position j, read row by row:")
    print(cols.astype(int))

    fig, axes = plt.subplots(1, 2, figsize=(9, 4), gridspec_kw={"width_ratios": [1, 1.6]})
    axes[0].imshow(image[0, 0], cmap="viridis")
    for (i, j), value in np.ndenumerate(image[0, 0]):
        axes[0].text(j, i, int(value), ha="center", va="center", color="white", fontsize=9)
    axes[0].add_patch(plt.Rectangle((-0.5, -0.5), 3, 3, fill=False, edgecolor="red", linewidth=2))
    axes[0].set_title("input 5x5; the first 3x3 window")
    axes[1].imshow(cols, cmap="viridis")
    for (i, j), value in np.ndenumerate(cols):
        axes[1].text(j, i, int(value), ha="center", va="center", color="white", fontsize=8)
    axes[1].add_patch(plt.Rectangle((-0.5, -0.5), 1, 9, fill=False, edgecolor="red", linewidth=2))
    axes[1].set_title("im2col: one column per output position")
    axes[1].set_xlabel("output position (3x3 = 9)")
    axes[1].set_ylabel("kernel offset (3x3 = 9)")
    for axis in axes:
        axis.set_xticks([])
        axis.set_yticks([])
    fig.tight_layout()
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "02_im2col.png")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"\npicture saved to {os.path.abspath(path)}")
    print("A 3x3 convolution with F filters is now weight (F, 9) @ cols (9, 9): each output is one dot product.")


def step_6_shifted_products(quick):
    section("6. No im2col at all: nine shifted 1x1 convolutions")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 4, 6, 6)).astype(np.float32)
    weight = rng.standard_normal((5, 4, 3, 3)).astype(np.float32)
    grid = shifted_conv.grid_geometry(x.shape, (3, 3), (1, 1), (1, 1), (1, 1))
    # each channel becomes ONE flat row: the 6x6 pixels row by row, each image row followed by 1 zero, and the two
    # images' values side by side (pixel (y, x) of image n at (y*7 + x)*2 + n), zero margins at both ends
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
    loops = conv2d_loops(x, weight, stride=1, padding=1)
    print(f"nine shifted products vs loops: max difference {np.abs(out - loops).max():.2e}")
    print("The zero after each row is the right padding of that row AND the left padding of the next, so the")
    print("layout is barely bigger than x, and nothing is copied nine times. BLAS reads each shifted block in")
    print("place and adds into the output (beta = 1), so the nine products accumulate in the CPU cache.")
    print(f"Outputs are computed at {grid.anchors} anchors for {out.size // 5} real outputs: only the column of "
          "zeros is wasted (a 1x7 convolution lays its rows along x instead, and wastes none).")

    big, big_weight = _inception_3a_branch2(quick)
    big_cnhw = np.ascontiguousarray(layout.channel_major(big))  # (C, N, H, W): how layers hand activations on
    taps = shifted_conv.weight_taps(big_weight)
    grid = shifted_conv.grid_geometry(big.shape, (3, 3), (1, 1), (1, 1), (1, 1))
    _, t_shifted = timed(lambda: shifted_conv.forward(big_cnhw, taps, grid), 3)
    _, t_im2col = timed(lambda: conv2d_im2col(big, big_weight, 1, 1, im2col_numba), 3)
    print(f"\nx {big.shape}, 3x3 to 128 channels: im2col + matmul {t_im2col * 1e3:.1f} ms, "
          f"shifted products {t_shifted * 1e3:.1f} ms")


def _inception_3a_branch2(quick):
    """GoogLeNet inception (3a)'s 3x3 branch: x (n, 96, 28, 28) -> 128 channels."""
    rng = np.random.default_rng(3)
    n = 2 if quick else 8
    return (rng.standard_normal((n, 96, 28, 28)).astype(np.float32),
            rng.standard_normal((128, 96, 3, 3)).astype(np.float32))


def step_7_winograd(quick):
    section("7. Fewer multiplications: Winograd's F(2x2, 3x3)")
    rng = np.random.default_rng(4)
    patch, kernel = rng.standard_normal((4, 4)), rng.standard_normal((3, 3))
    direct = np.array([[np.sum(patch[y:y + 3, x:x + 3] * kernel) for x in range(2)] for y in range(2)])
    print("A 2x2 block of outputs of a 3x3 convolution reads a 4x4 patch: 4 outputs x 9 = 36 multiplications.")
    u = winograd.G @ kernel @ winograd.G.T  # 4x4, computed once per weight
    v = winograd.B_T @ patch @ winograd.B_T.T  # 4x4, additions only (B^T holds 0, 1, -1)
    tile = winograd.A_T @ (u * v) @ winograd.A_T.T  # 16 multiplications (u * v), then additions only
    print(f"Winograd: U = G g G^T, V = B^T d B, out = A^T (U * V) A: 16 multiplications; "
          f"max difference to the direct sum {np.abs(tile - direct).max():.1e}")
    print("B^T =", winograd.B_T.astype(int).tolist(), " A^T =", winograd.A_T.astype(int).tolist())
    print("Over C input channels the 16 elementwise products become 16 matrix products, one per position k:")
    print("    M_k (F, tiles) = U_k (F, C) @ V_k (C, tiles)    -> 2.25x fewer multiply-adds than 9 shifted products")
    big, big_weight = _inception_3a_branch2(quick)
    big_cnhw = np.ascontiguousarray(layout.channel_major(big))
    taps = shifted_conv.weight_taps(big_weight)
    grid = shifted_conv.grid_geometry(big.shape, (3, 3), (1, 1), (1, 1), (1, 1))
    shifted, t_shifted = timed(lambda: shifted_conv.forward(big_cnhw, taps, grid), 3)
    if not threaded_blas.available(big_cnhw.dtype):
        print("(Winograd's products need the one thread pool of kernels/threaded_blas.py, which is off in this "
              "process: F.conv2d uses the shifted products instead.)")
        return
    fast, t_winograd = timed(lambda: winograd.convolve(big_cnhw, winograd.transform_weight(taps)), 3)
    scale = np.abs(shifted).max()
    print(f"x {big.shape}, 3x3 to 128 channels: shifted products {t_shifted * 1e3:.1f} ms, Winograd "
          f"{t_winograd * 1e3:.1f} ms; largest difference {np.abs(fast - shifted).max() / scale:.1e} of the "
          "largest output (float32 rounding)")
    print("F.conv2d picks Winograd for 'same' 3x3 convolutions where the products it saves outweigh its transforms")
    print("(winograd.pays), shifted products elsewhere: see tinyinception/kernels/winograd.py.")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller inputs (used by the tests)")
    parser.add_argument("--out", default=os.path.join("runs", "tutorials"), help="where the PNG goes")
    args = parser.parse_args()
    step_1_to_4(args.quick)
    step_5_picture(args.out)
    step_6_shifted_products(args.quick)
    step_7_winograd(args.quick)


if __name__ == "__main__":
    main()
