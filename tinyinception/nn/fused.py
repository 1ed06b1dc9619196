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
"""
import contextlib

from .. import backend
from .. import functional as F
from ..autograd import Function
from ..kernels import layout
from .containers import Sequential

_state = {"enabled": True}


@contextlib.contextmanager
def stacking(enabled):
    """``with stacking(False):`` runs the units one by one (e.g. to record the plain graph for PyTorch)."""
    previous, _state["enabled"] = _state["enabled"], bool(enabled)
    try:
        yield
    finally:
        _state["enabled"] = previous


def stacked_pointwise(x, units):
    """``[unit(x) for unit in units]`` with the units' 1x1 convolutions run as one GEMM.

    x: (N, C, H, W); units: Conv-BN-ReLU modules (submodules ``conv`` and ``bn``, e.g.
    ``models.common.BasicConv2d``) with 1x1, stride-1, unpadded convolutions from C channels (all with a bias or
    all without). Falls back to calling the units one by one where stacking does not apply (other kernels than
    Numba, other unit kinds, a single unit, inside ``stacking(False)``) or when a unit or its convolution has
    forward hooks (`ti.summary` counts each convolution through them).
    """
    if (not _state["enabled"] or len(units) < 2 or backend.kernels_for(x.data) != "numba"
            or not all(_stackable(unit, x) for unit in units)
            or len({unit.conv.bias is None for unit in units}) > 1):
        return [unit(x) for unit in units]
    weight = F.concat([unit.conv.weight for unit in units], dim=0)  # (F1 + F2 + ..., C, 1, 1)
    has_bias = units[0].conv.bias is not None
    bias = F.concat([unit.conv.bias for unit in units], dim=0) if has_bias else None
    stacked = F.conv2d(x, weight, bias)  # channel-major (N, F1 + F2 + ..., H, W)
    slices = split_channels(stacked, [unit.conv.out_channels for unit in units])
    return [unit.bn.forward_relu(part) for unit, part in zip(units, slices)]


def run_branches(x, branches):
    """``[branch(x) for branch in branches]``, with the 1x1 units that open the branches run as one stacked product.

    Each branch is either a 1x1 Conv-BN-ReLU unit itself or a ``Sequential`` whose first child is one (GoogLeNet's
    and BN-Inception's ``branch_3x3 = Sequential(reduce=1x1, conv=3x3)``): the first children are stacked with
    `stacked_pointwise`, then each Sequential's other children run on its part. When any branch has forward hooks
    the branches are simply called, so that a hook on a branch sees it run whole (`ti.summary` relies on this).
    """
    if any(branch._forward_hooks for branch in branches):
        return [branch(x) for branch in branches]
    sequences = [isinstance(branch, Sequential) for branch in branches]
    heads = [branch[0] if sequence else branch for branch, sequence in zip(branches, sequences)]
    outputs = []
    for branch, sequence, out in zip(branches, sequences, stacked_pointwise(x, heads)):
        for child in (list(branch)[1:] if sequence else ()):
            out = child(out)
        outputs.append(out)
    return outputs


def _stackable(unit, x):
    conv = getattr(unit, "conv", None)
    hooked = unit._forward_hooks or (conv is not None and conv._forward_hooks)
    return (conv is not None and hasattr(unit, "bn") and not hooked and conv.groups == 1
            and conv.kernel_size == (1, 1) and conv.stride == (1, 1) and conv.padding == (0, 0)
            and conv.in_channels == x.shape[1] and conv.weight.dtype == x.dtype)


def split_channels(x, sizes):
    """x: (N, sum(sizes), H, W) -> [x[:, 0:s0], x[:, s0:s0+s1], ...], differentiable, views of x.

    Backward writes each part's gradient into its slice of ONE gradient array for x, handed to autograd when the
    last part's gradient has arrived. Every part must therefore reach the loss (true when the parts are branches
    of a block whose outputs are all concatenated); a part that never gets a gradient leaves x without one.
    """
    if sum(sizes) != x.shape[1]:
        raise ValueError(f"split_channels: sizes {list(sizes)} add up to {sum(sizes)}, but the input has "
                         f"{x.shape[1]} channels (shape {x.shape})")
    gathered = _GatheredGradient(len(sizes))
    parts, start = [], 0
    for size in sizes:
        parts.append(ChannelSlice.apply(x, gathered, start, start + size))
        start += size
    return parts


class _GatheredGradient:
    """The gradient of a split tensor, filled part by part; complete once every part has written its slice."""

    def __init__(self, parts):
        self.parts, self.pending, self.grad = parts, parts, None

    def add(self, reference, start, stop, grad_part):
        """Write ``grad_part`` into channels [start, stop); return the whole gradient when it is complete,
        else None (autograd then waits for the other parts)."""
        if self.grad is None:
            self.grad = layout.empty_like_layout(reference)  # channel-major like x: each slice contiguous
        self.grad[:, start:stop] = grad_part
        self.pending -= 1
        if self.pending:
            return None
        grad, self.grad, self.pending = self.grad, None, self.parts  # ready for another backward (retain_graph)
        return grad


class ChannelSlice(Function):
    """x[:, start:stop] as a view; backward hands its gradient to the split's `_GatheredGradient`."""

    def forward(self, x, gathered, start, stop):
        self.x, self.gathered, self.start, self.stop = x, gathered, start, stop
        return x[:, start:stop]

    def backward(self, grad_output):
        grad_x = self.gathered.add(self.x, self.start, self.stop, grad_output)
        return grad_x, None, None, None
