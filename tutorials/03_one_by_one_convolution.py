"""Tutorial 3: the 1x1 convolution, Inception's bottleneck — counted and timed on real layers.

Run it:  python tutorials/03_one_by_one_convolution.py [--quick]

What you will see
  1. a 1x1 convolution is a matrix product over channels, applied at every pixel (and tinyinception runs it that way)
  2. the textbook example: a 100x100x128 input through a 5x5 convolution to 256 channels, with and without a 1x1
     reduction to 32 channels first — weights and multiply-adds counted from the layers themselves
  3. GoogLeNet's inception (3a) 5x5 branch with and without its 16-channel reduction, counted and timed
"""
import argparse
import time

import numpy as np

import tinyinception as ti
from tinyinception import nn


def section(title):
    print(f"\n{'=' * 72}\n{title}\n{'=' * 72}")


def weights_of(*layers):
    """Weights of convolutions (biases left out, as the usual arithmetic leaves them out)."""
    return sum(layer.weight.numel() for layer in layers)


def multiply_adds(layer, out_h, out_w):
    """One multiply-add per weight per output pixel."""
    return layer.weight.numel() * out_h * out_w


def timed(fn, repeats=3):
    with ti.no_grad():
        fn()
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
    return (time.perf_counter() - start) / repeats


def step_1_a_matrix_product():
    section("1. A 1x1 convolution is a matrix product over channels")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 4, 5)).astype(np.float32)
    layer = nn.Conv2d(6, 3, kernel_size=1, bias=False)
    by_conv = layer(ti.tensor(x)).numpy()
    by_matmul = layer.weight.numpy().reshape(3, 6) @ x.reshape(2, 6, 4 * 5)  # (3, 6) @ (N, 6, H*W)
    print(f"x {x.shape}, weight {layer.weight.shape}: conv2d and weight @ x.reshape(N, C, H*W) differ by "
          f"{np.abs(by_conv - by_matmul.reshape(by_conv.shape)).max():.1e}")
    print("Every pixel's channel vector is multiplied by the same (out, in) matrix: it mixes channels and never")
    print("looks at neighbours. That is why it is cheap, and why tinyinception skips im2col for it entirely.")


def step_2_textbook(quick):
    section("2. 128 -> 256 channels through a 5x5, with and without a 1x1 reduction to 32")
    size = 20 if quick else 100
    direct = nn.Conv2d(128, 256, kernel_size=5, padding=2, bias=False)
    reduce = nn.Conv2d(128, 32, kernel_size=1, bias=False)
    after = nn.Conv2d(32, 256, kernel_size=5, padding=2, bias=False)

    w_direct, w_reduced = weights_of(direct), weights_of(reduce, after)
    print(f"weights, 5x5 directly        : 5*5*128*256 = {w_direct:,}")
    print(f"weights, 1x1 to 32, then 5x5 : 1*1*128*32 + 5*5*32*256 = {weights_of(reduce):,} + {weights_of(after):,}"
          f" = {w_reduced:,}")
    print(f"  -> {w_direct / w_reduced:.1f}x fewer. (Popular write-ups often quote only the 204,800 of the 5x5 and")
    print("     forget the 4,096 of the 1x1 that makes it possible.)")
    assert (w_direct, weights_of(reduce), weights_of(after)) == (819_200, 4_096, 204_800)

    macs_direct = multiply_adds(direct, 100, 100)
    macs_reduced = multiply_adds(reduce, 100, 100) + multiply_adds(after, 100, 100)
    print(f"multiply-adds at 100x100     : {macs_direct / 1e9:.2f} G versus {macs_reduced / 1e9:.2f} G")

    x = ti.tensor(np.random.default_rng(1).standard_normal((1, 128, size, size)).astype(np.float32))
    t_direct = timed(lambda: direct(x))
    t_reduced = timed(lambda: after(reduce(x)))
    print(f"measured at {size}x{size}, batch 1: {t_direct * 1e3:.1f} ms versus {t_reduced * 1e3:.1f} ms "
          f"({t_direct / t_reduced:.1f}x)")
    print("The 32-channel bottleneck squeezes what the 5x5 sees. It works because neighbouring channels are highly")
    print("correlated: the network learns a compact summary before the expensive spatial filter.")


def step_3_googlenet_3a(quick):
    section("3. GoogLeNet's inception (3a) 5x5 branch: 192 channels in, 32 out, at 28x28")
    batch = 2 if quick else 8
    naive = nn.Conv2d(192, 32, kernel_size=5, padding=2, bias=False)
    reduce = nn.Conv2d(192, 16, kernel_size=1, bias=False)
    after = nn.Conv2d(16, 32, kernel_size=5, padding=2, bias=False)
    print(f"without reduction: {weights_of(naive):,} weights, {multiply_adds(naive, 28, 28) / 1e6:.1f} M multiply-adds"
          f" per image")
    reduced_macs = multiply_adds(reduce, 28, 28) + multiply_adds(after, 28, 28)
    print(f"with 1x1 to 16   : {weights_of(reduce, after):,} weights, {reduced_macs / 1e6:.1f} M multiply-adds "
          f"per image")
    x = ti.tensor(np.random.default_rng(2).standard_normal((batch, 192, 28, 28)).astype(np.float32))
    t_naive = timed(lambda: naive(x))
    t_reduced = timed(lambda: after(reduce(x)))
    print(f"measured, batch {batch}: {t_naive * 1e3:.1f} ms versus {t_reduced * 1e3:.1f} ms")
    print("(torchvision's GoogLeNet actually uses a 3x3 here — a known slip carried over from its first port;")
    print(" ti.models.googlenet(paper=True) has the paper's 5x5.)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller inputs (used by the tests)")
    args = parser.parse_args()
    step_1_a_matrix_product()
    step_2_textbook(args.quick)
    step_3_googlenet_3a(args.quick)


if __name__ == "__main__":
    main()
