"""Sibling 1x1 convolutions that read the same input, run as ONE matrix product.

Most Inception blocks open with several 1x1 Conv-BN-ReLU units on the block's input (GoogLeNet's 3a: the 1x1
branch and the 3x3 and 5x5 "reduce" convolutions). Their weights stacked on the output axis,
(F1 + F2 + F3, C, 1, 1), make one convolution whose output holds every unit's channels one after the other:

    stacked = conv2d(x, concat([w1, w2, w3]))      # one GEMM (F1+F2+F3, C) @ (C, N*H*W) instead of three
    outputs = [bn_i.forward_relu(stacked[:, slice_i]) for each unit]

On the Numba kernels activations are channel-major (`tinyinception.kernels.layout`), so each unit's slice is a
contiguous block of the stacked output: no copy. Backward is one GEMM for the input's gradient too (no adding up of
three (N, C, H, W) gradients) and one for the stacked weight's. The result equals running the units one by one
(tests/perf/test_fused.py checks it against the NumPy reference path); parameters, buffers and state_dict keys are
the units' own.

The pool branch of Inception-v3's, Inception-v4's and BN-Inception's blocks (a stride-1 3x3 average pool, then a
1x1 unit on the block's input) joins the product too, because an average pool and a 1x1 convolution commute: both
are linear, the pool mixes pixels with weights that are the same for every channel, the convolution mixes channels
with weights that are the same for every pixel, so

    conv1x1(avg_pool(x)) = avg_pool(conv1x1(x))          (without the convolution's bias; it is added after)

and the pool then runs on the unit's F output channels instead of the block's C input channels (Inception-v3's
last blocks: 192 instead of 2048), its BatchNorm and ReLU after it. The result equals the branch as written
within float32 rounding (the sums are taken in another order).
"""
import contextlib
import threading

import numpy as np

from .. import backend, profiler
from .. import functional as F
from ..autograd import Function, Tensor, no_grad
from ..functional._windows import pair
from ..kernels import layout, threaded_blas
from . import fold
from .containers import Sequential
from .pooling import AvgPool2d

_state = threading.local()  # per thread: one thread switching stacking off leaves the others alone


def stacking_enabled():
    return getattr(_state, "enabled", True)


@contextlib.contextmanager
def stacking(enabled):
    """``with stacking(False):`` runs the units one by one (e.g. to record the plain graph for PyTorch), in this
    thread only."""
    previous, _state.enabled = stacking_enabled(), bool(enabled)
    try:
        yield
    finally:
        _state.enabled = previous


def stacked_pointwise(x, units, pooled_unit=None, pool=None):
    """``[unit(x) for unit in units]`` with the units' 1x1 convolutions run as one GEMM.

    x: (N, C, H, W); units: Conv-BN-ReLU modules (submodules ``conv`` and ``bn``, e.g.
    ``models.common.BasicConv2d``) with 1x1, stride-1, unpadded convolutions from C channels (all with a bias or
    all without). Falls back to calling the units one by one where stacking does not apply (other kernels than
    Numba, other unit kinds, a single unit, inside ``stacking(False)``) or when a unit, its convolution or its
    BatchNorm has forward hooks (`ti.summary` counts each convolution through them).

    pooled_unit, pool: a block's pool branch, ``pooled_unit(F.avg_pool2d(x, **pool))`` with ``pool`` the keyword
    arguments of a stride-1 average pool that keeps the map's size; its output is appended to the list. Where it
    stacks, its convolution joins the product and the pool runs on its output (module docstring).
    """
    if pooled_unit is not None:
        units = list(units) + [pooled_unit]
        pairs = _pairs(units)
        if not (stacks(x, units) and pool_moves(pool, pairs, x)):
            return stacked_pointwise(x, units[:-1]) + [pooled_unit(F.avg_pool2d(x, **pool))]
        return [make() for make in stacked_parts(x, pairs, pool)]
    if not stacks(x, units):
        return [unit(x) for unit in units]
    return [make() for make in stacked_parts(x, _pairs(units))]


def stacked_parts(x, pairs, pool=None):
    """The stacked product of the (conv, bn) ``pairs`` (checked with `stacks`) on x, as one function per pair that
    returns that pair's ``relu(bn(conv(x)))``; with ``pool`` (F.avg_pool2d's keyword arguments, checked with
    `pool_moves`), the last pair's part is ``relu(bn(avg_pool(conv(x))))`` instead. A part is cut from the stacked
    output (and its BatchNorm run) only when asked for, so a part nobody asks for takes no place in the graph: its
    channels get a zero gradient."""
    sizes = [conv.out_channels for conv, _ in pairs]
    if all(fold.foldable(conv, bn, x) for conv, bn in pairs):  # inference: one output pass for all units
        return _folded_parts(x, pairs, sizes, pool)
    weight = F.concat([conv.weight for conv, _ in pairs], dim=0)  # (F1 + F2 + ..., C, 1, 1)
    has_bias = pairs[0][0].bias is not None
    bias = F.concat([conv.bias for conv, _ in pairs], dim=0) if has_bias else None
    split = ChannelSplit(F.conv2d(x, weight, bias), sizes)  # channel-major (N, F1 + F2 + ..., H, W)
    parts = [lambda i=i, bn=bn: bn.forward_relu(split.part(i)) for i, (_, bn) in enumerate(pairs)]
    if pool is not None:
        last, last_bn = len(pairs) - 1, pairs[-1][1]
        parts[-1] = lambda: last_bn.forward_relu(F.avg_pool2d(split.part(last), **pool))
    return parts


def _folded_parts(x, pairs, sizes, pool):
    """`stacked_parts` in inference: one product (`inference_product`), then BatchNorm and ReLU in one output pass
    over the plain parts; the pooled part's pass follows its pool, the convolution's bias with it (only the pool
    moves past the product)."""
    stacked = inference_product(x, [conv.weight for conv, _ in pairs])
    plain = len(pairs) - (pool is not None)
    fold.output_pass_(stacked.data[:, :sum(sizes[:plain])], pairs[:plain])  # channel-major: one block of channels
    split = ChannelSplit(stacked, sizes)
    parts = [lambda i=i: split.part(i) for i in range(plain)]
    if pool is not None:
        def pooled_part():
            with no_grad():
                pooled = F.avg_pool2d(split.part(plain), **pool)
            fold.output_pass_(pooled.data, pairs[plain:])
            return pooled
        parts.append(pooled_part)
    return parts


def inference_product(x, weights):
    """Under no_grad: the bias-free output (N, F1 + F2 + ..., H, W) of 1x1 convolutions with ``weights``
    [(F_i, C, 1, 1), ...] on x (N, C, H, W). On the Numba kernels with x channel-major, each weight multiplies x's
    (C, N*H*W) rows into its own rows of one channel-major output, so the weights are never copied into one
    stacked array (Inception-v4's last blocks would copy 7.8 MB of them at every call); otherwise one convolution
    with the weights concatenated."""
    data = x.data
    if not (isinstance(data, np.ndarray) and backend.kernels_for(data) == "numba" and layout.is_channel_major(data)
            and threaded_blas.available(data.dtype) and all(w.dtype == data.dtype for w in weights)):
        with no_grad():
            return F.conv2d(x, F.concat(list(weights), dim=0))
    n, _, h, w = data.shape
    sizes = [weight.shape[0] for weight in weights]
    out = layout.empty_channel_major((n, sum(sizes), h, w), data.dtype)
    rows, out_rows = layout.channel_rows(data), layout.channel_rows(out)
    with profiler.section("Conv2d.forward"), profiler.section("gemm"):  # profiled as the one convolution it is
        start = 0
        for weight, size in zip(weights, sizes):
            threaded_blas.matmul(weight.data[:, :, 0, 0], rows, out_rows[start:start + size])
            start += size
    return Tensor(out)


def pool_moves(pool, pairs, x):
    """True when the last of the stacked (conv, bn) ``pairs``, ``bn(conv(avg_pool(x)))``, may run as
    ``bn(avg_pool(conv(x)))``: a stride-1 average pool that keeps the map's size (so the product does the same
    work), and a convolution without a bias, or a bias that the folded output pass adds after the pool (every pair
    folds). With count_include_pad, a pool of a constant bias is smaller at the border: it must not be pooled."""
    return pool_keeps_size(pool) and (pairs[-1][0].bias is None
                                      or all(fold.foldable(conv, bn, x) for conv, bn in pairs))


def pool_keeps_size(pool):
    """True for F.avg_pool2d arguments of a stride-1 pool whose output has its input's size (kernel 2p + 1)."""
    kernel = pair(pool["kernel_size"], "kernel_size", "avg_pool2d")
    stride = kernel if pool.get("stride") is None else pair(pool["stride"], "stride", "avg_pool2d")
    padding = pair(pool.get("padding", 0), "padding", "avg_pool2d")
    return stride == (1, 1) and all(k == 2 * p + 1 for k, p in zip(kernel, padding))


def pool_arguments(module):
    """F.avg_pool2d's keyword arguments of an ``nn.AvgPool2d`` without hooks or divisor_override, else None."""
    if not isinstance(module, AvgPool2d) or module._forward_hooks or module.divisor_override is not None:
        return None
    return dict(kernel_size=module.kernel_size, stride=module.stride, padding=module.padding,
                ceil_mode=module.ceil_mode, count_include_pad=module.count_include_pad)


def run_branches(x, branches, pool_branch=None):
    """``[branch(x) for branch in branches]``, with the 1x1 units that open the branches run as one stacked product.

    Each branch is either a 1x1 Conv-BN-ReLU unit itself or a ``Sequential`` whose first child is one (GoogLeNet's
    and BN-Inception's ``branch_3x3 = Sequential(reduce=1x1, conv=3x3)``). The first units are stacked with
    `stacked_parts`; then every branch is called as usual (``branch(x)``, so its forward hooks fire), and its
    first unit, calling `fold.conv_bn_relu` on this ``x``, receives its part of the stacked product instead of
    computing it (`fold.precomputed`).

    pool_branch: a ``Sequential(nn.AvgPool2d, unit)`` (BN-Inception's ``branch_pool``), whose output is appended.
    Where its pool moves past its unit (`pool_moves`) and neither has hooks, the unit joins the product as in
    `stacked_pointwise`; otherwise it is called as usual.
    """
    heads = [branch[0] if isinstance(branch, Sequential) else branch for branch in branches]
    unit, pool = _pooled_unit(pool_branch)
    pool_joins = unit is not None and stacks(x, heads + [unit]) and pool_moves(pool, _pairs(heads + [unit]), x)
    tail = [] if pool_branch is None or pool_joins else [pool_branch]  # called as written, after the others
    if not (pool_joins or stacks(x, heads)):
        return [branch(x) for branch in branches + tail]
    parts = stacked_parts(x, _pairs(heads + [unit]), pool) if pool_joins else stacked_parts(x, _pairs(heads))
    with fold.precomputed({id(head.conv): (x, part) for head, part in zip(heads, parts)}):
        outputs = [branch(x) for branch in branches + tail]
    return outputs + [parts[-1]()] if pool_joins else outputs


def _pairs(units):
    """The (conv, bn) of each Conv-BN-ReLU unit."""
    return [(unit.conv, unit.bn) for unit in units]


def _pooled_unit(pool_branch):
    """(unit, F.avg_pool2d's arguments) of a ``Sequential(nn.AvgPool2d, unit)`` pool branch without hooks, else
    (None, None)."""
    if (not isinstance(pool_branch, Sequential) or pool_branch._forward_hooks or len(pool_branch) != 2
            or not hasattr(pool_branch[1], "conv")):
        return None, None
    pool = pool_arguments(pool_branch[0])
    return (None, None) if pool is None else (pool_branch[1], pool)


def stacks(x, units):
    """True when `stacked_pointwise` runs ``units`` on ``x`` as one product (see its conditions)."""
    return (stacking_enabled() and len(units) >= 2 and backend.kernels_for(x.data) == "numba"
            and all(_stackable(unit, x) for unit in units)
            and len({unit.conv.bias is None for unit in units}) == 1)


def _stackable(unit, x):
    conv, bn = getattr(unit, "conv", None), getattr(unit, "bn", None)
    return conv is not None and bn is not None and not unit._forward_hooks and pair_stackable(conv, bn, x)


def is_pointwise(conv):
    """True for a 1x1, stride-1, unpadded convolution without groups: a matrix product over the channels."""
    return conv.groups == 1 and conv.kernel_size == (1, 1) and conv.stride == (1, 1) and conv.padding == (0, 0)


def pair_stackable(conv, bn, x):
    """True when the 1x1 unit (conv, bn) can join a stacked product on x: `is_pointwise`, from x's channels in x's
    dtype, and no forward hooks on either layer (a hook sees its layer run on its own)."""
    return (not conv._forward_hooks and not bn._forward_hooks and is_pointwise(conv)
            and conv.in_channels == x.shape[1] and conv.weight.dtype == x.dtype)


def split_channels(x, sizes):
    """x: (N, sum(sizes), H, W) -> [x[:, 0:s0], x[:, s0:s0+s1], ...], differentiable, views of x.

    Backward writes each part's gradient into its slice of ONE gradient array for x, handed to autograd when the
    last part's gradient has arrived. Every part must therefore reach the loss (true when the parts are branches
    of a block whose outputs are all concatenated); a part that never gets a gradient leaves x without one.
    """
    split = ChannelSplit(x, sizes)
    return [split.part(i) for i in range(len(sizes))]


class ChannelSplit:
    """x (N, sum(sizes), H, W) cut along channels; ``part(i)`` is the i-th slice, made when asked for. Channels of
    parts never asked for get a zero gradient."""

    def __init__(self, x, sizes):
        if sum(sizes) != x.shape[1]:
            raise ValueError(f"split_channels: sizes {list(sizes)} add up to {sum(sizes)}, but the input has "
                             f"{x.shape[1]} channels (shape {x.shape})")
        self.x, self.gathered = x, _GatheredGradient()
        self.bounds = [(sum(sizes[:i]), sum(sizes[:i + 1])) for i in range(len(sizes))]

    def part(self, index):
        start, stop = self.bounds[index]
        self.gathered.expect(start, stop)
        return ChannelSlice.apply(self.x, self.gathered, start, stop)


class _GatheredGradient:
    """The gradient of a split tensor, filled part by part; complete once every part made has written its slice
    (the channels of no part are zero)."""

    def __init__(self):
        self.ranges, self.pending, self.grad = [], 0, None

    def expect(self, start, stop):
        self.ranges.append((start, stop))
        self.pending += 1

    def add(self, reference, start, stop, grad_part):
        """Write ``grad_part`` into channels [start, stop); return the whole gradient when it is complete,
        else None (autograd then waits for the other parts)."""
        if self.grad is None:
            self.grad = layout.empty_like_layout(reference)  # channel-major like x: each slice contiguous
            if sum(stop_ - start_ for start_, stop_ in self.ranges) < reference.shape[1]:
                self.grad[...] = 0  # some channels belong to no part made: their gradient is zero
        self.grad[:, start:stop] = grad_part
        self.pending -= 1
        if self.pending:
            return None
        grad, self.grad, self.pending = self.grad, None, len(self.ranges)  # ready for another backward (retain_graph)
        return grad


class ChannelSlice(Function):
    """x[:, start:stop] as a view; backward hands its gradient to the split's `_GatheredGradient`."""

    def forward(self, x, gathered, start, stop):
        self.x, self.gathered, self.start, self.stop = x, gathered, start, stop
        return x[:, start:stop]

    def backward(self, grad_output):
        grad_x = self.gathered.add(self.x, self.start, self.stop, grad_output)
        return grad_x, None, None, None
