"""Tutorial 4: the Inception module, and why GoogLeNet puts 1x1 convolutions in front of everything.

Run it:  python tutorials/04_inception_v1_module.py [--quick]     (about 20 s on 2 cores; --quick: fewer timings)

What you will see
  1. the naive Inception module (paper Figure 2a): 1x1, 3x3 and 5x5 convolutions and a 3x3 max pool, side by side
     on the same input, concatenated on channels; built for inception (3a)'s place: 192 channels in, 28x28
  2. what each branch costs in parameters and multiply-adds, measured from the real layers with ti.summary
  3. the module with 1x1 reductions (paper Figure 2b, the one GoogLeNet uses): the same output sizes for a
     fraction of the work, and the pool branch no longer grows the channel count
  4. wall-clock time of each branch, naive vs reduced, on a small batch
  5. the whole of GoogLeNet, block by block (ti.summary with max_depth=1), and how torchvision's layout differs
     from the paper's
"""
import argparse
import time

import numpy as np

import tinyinception as ti
from tinyinception import nn
from tinyinception.models.common import ConvReLU
from tinyinception.models.inception_v1 import Inception

IN_CHANNELS, SIZE = 192, 28                    # what inception (3a) receives at 224x224 input
CH1X1, CH3X3, CH5X5 = 64, 128, 32              # 3a's branch outputs (paper Table 1)
CH3X3_RED, CH5X5_RED, POOL_PROJ = 96, 16, 32   # 3a's 1x1 reductions and pool projection


def section(title):
    print(f"\n{'=' * 78}\n{title}\n{'=' * 78}")


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


BRANCHES = ("branch_1x1", "branch_3x3", "branch_5x5", "branch_pool")


def branch_table(module, title):
    """Parameters and multiply-adds of each branch, read from ti.summary's rows (the real layers, hooked)."""
    result = ti.summary(module, (IN_CHANNELS, SIZE, SIZE), show=False)
    print(f"\n{title}")
    print(f"  {'branch':12s} {'output':>12s} {'params':>10s} {'mult-adds':>14s}")
    for name in BRANCHES:
        row = result.row(name)
        shape = "x".join(str(s) for s in row.output_shape[1:])
        print(f"  {name:12s} {shape:>12s} {row.params:>10,} {row.macs:>14,}")
    out = "x".join(str(s) for s in result.output_shape[1:])
    print(f"  {'total':12s} {out:>12s} {result.total_params:>10,} {result.total_macs:>14,}")
    return result


def step_1_naive_module():
    section("1. The naive Inception module: four branches on the same input")
    print("GoogLeNet's idea: instead of choosing one filter size per layer, use several at once and let training\n"
          "decide which matters. Each branch keeps the 28x28 grid (padding 1 for 3x3, 2 for 5x5, a stride-1 pool),\n"
          "so their outputs can be stacked along the channel axis.")
    naive = NaiveInception(IN_CHANNELS, CH1X1, CH3X3, CH5X5)
    x = ti.tensor(np.random.default_rng(0).standard_normal((1, IN_CHANNELS, SIZE, SIZE)).astype(np.float32))
    with ti.no_grad():
        y = naive(x)
    print(f"\ninput {x.shape} -> output {y.shape}: {CH1X1} + {CH3X3} + {CH5X5} + {IN_CHANNELS} (the pool "
          f"passes all {IN_CHANNELS} channels through) = {y.shape[1]} channels")
    return naive


def step_2_naive_costs(naive):
    section("2. What each naive branch costs")
    print("A convolution's multiply-adds: one per weight per output position,\n"
          "    out_channels * out_h * out_w * in_channels * kh * kw.\n"
          f"For the 5x5 branch: {CH5X5} * {SIZE} * {SIZE} * {IN_CHANNELS} * 5 * 5 = "
          f"{CH5X5 * SIZE * SIZE * IN_CHANNELS * 25:,}. ti.summary counts exactly this from the hooked layers:")
    result = branch_table(naive, "Naive module at inception (3a): 192 x 28 x 28 in")
    print("\nThe 3x3 and 5x5 branches dominate because each of their weights touches all 192 input channels.\n"
          "Worse, stacking such modules makes every layer wider (the pool branch alone forwards all channels),\n"
          "so the cost would grow module after module.")
    return result


def step_3_reduced_module(naive_result):
    section("3. The same module with 1x1 reductions (what GoogLeNet uses)")
    print(f"A 1x1 convolution first squeezes the 192 channels to {CH3X3_RED} (before the 3x3) and to "
          f"{CH5X5_RED} (before\nthe 5x5); a 1x1 projection after the pool brings its 192 channels down to "
          f"{POOL_PROJ}. The 3x3 and 5x5\nconvolutions then work on far fewer input channels. "
          "(paper=True: a true 5x5, as in the paper.)")
    reduced = Inception(IN_CHANNELS, CH1X1, CH3X3_RED, CH3X3, CH5X5_RED, CH5X5, POOL_PROJ, paper=True)
    result = branch_table(reduced, "Module with reductions (paper Figure 2b) at inception (3a)")
    five_naive, five_reduced = naive_result.row("branch_5x5").macs, result.row("branch_5x5").macs
    print(f"\nThe 5x5 branch: {five_naive:,} -> {five_reduced:,} multiply-adds "
          f"({five_naive / five_reduced:.1f}x fewer), with the same {CH5X5} x {SIZE} x {SIZE} output.")
    print(f"The whole module: {naive_result.total_macs:,} -> {result.total_macs:,} multiply-adds "
          f"({naive_result.total_macs / result.total_macs:.1f}x fewer), and its output is "
          f"{result.output_shape[1]} channels instead of {naive_result.output_shape[1]}.")
    print("The price: the 3x3 and 5x5 now see a compressed input. The paper's bet (borne out by its results) is that\n"
          "nearby channels are correlated enough that a 1x1 'embedding' loses little. Each 1x1 is also followed\n"
          "by a ReLU, so the reductions add depth and nonlinearity for free.")
    return reduced


def time_call(module, x, repeats):
    """Best-of-``repeats`` seconds of one forward pass (no graph recorded)."""
    best = float("inf")
    with ti.no_grad():
        module(x)  # warm-up: first calls may compile kernels
        for _ in range(repeats):
            start = time.perf_counter()
            module(x)
            best = min(best, time.perf_counter() - start)
    return best


def step_4_timing(naive, reduced, quick):
    section("4. Timing each branch (forward only, best of a few runs)")
    batch, repeats = (2, 2) if quick else (8, 3)
    x = ti.tensor(np.random.default_rng(1).standard_normal((batch, IN_CHANNELS, SIZE, SIZE)).astype(np.float32))
    print(f"batch {batch} x {IN_CHANNELS} x {SIZE} x {SIZE}, times in milliseconds")
    print(f"  {'branch':12s} {'naive':>10s} {'reduced':>10s}")
    for name in BRANCHES:
        t_naive = time_call(getattr(naive, name), x, repeats)
        t_reduced = time_call(getattr(reduced, name), x, repeats)
        print(f"  {name:12s} {1e3 * t_naive:10.1f} {1e3 * t_reduced:10.1f}")
    t_naive, t_reduced = time_call(naive, x, repeats), time_call(reduced, x, repeats)
    print(f"  {'module':12s} {1e3 * t_naive:10.1f} {1e3 * t_reduced:10.1f}")
    print("Multiply-adds predict the big differences (the 3x3 and 5x5 branches). They miss memory traffic: a\n"
          "max pool costs no multiply-adds yet reads every input value, so both pool branches take real time.\n"
          "Timings on a shared machine jump around; run the script twice to see the spread.")


def step_5_googlenet(quick):
    section("5. GoogLeNet, block by block")
    print("Nine such modules (3a ... 5b), a stem of ordinary convolutions in front, max pools between stages and\n"
          "one linear classifier. torchvision's layout (the default), in eval mode at 224 x 224:")
    net = ti.models.googlenet()
    result = ti.summary(net, (3, 224, 224), max_depth=1)
    print("\nThe auxiliary classifiers aux1 and aux2 (after 4a and 4d) only run in training, where their losses\n"
          "(weighted 0.3 in the paper) push useful gradient into the middle of the network; eval skips them.\n"
          f"torchvision publishes 1.498 GFLOPS (multiply-adds) for this network: {result.total_macs / 1e9:.3f} G here.")
    if not quick:
        paper = ti.summary(ti.models.googlenet(paper=True), (3, 224, 224), show=False)
        print(f"\nThe paper's own layout (paper=True: true 5x5 branches, LocalResponseNorm, biases instead of\n"
              f"BatchNorm, a 3x3 fourth max pool) costs {paper.total_macs / 1e9:.3f} G multiply-adds and has "
              f"{paper.total_params:,} parameters\n(torchvision: {result.total_params:,}); see the table in "
              "tinyinception/models/inception_v1.py for every difference.")


def main():
    parser = argparse.ArgumentParser(description="The Inception module, step by step")
    parser.add_argument("--quick", action="store_true", help="smaller timing runs, skip the paper-layout summary")
    args = parser.parse_args()
    ti.manual_seed(0)
    naive = step_1_naive_module()
    naive_result = step_2_naive_costs(naive)
    reduced = step_3_reduced_module(naive_result)
    step_4_timing(naive, reduced, args.quick)
    step_5_googlenet(args.quick)


if __name__ == "__main__":
    main()
