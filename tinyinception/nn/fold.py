"""Conv -> BatchNorm -> ReLU for inference: BatchNorm folded into the convolution's output pass.

In evaluation mode BatchNorm is a fixed affine map per channel, so after a convolution (weight W, bias b)

    relu(bn(conv(x))) = relu(conv(x; W) * scale + shift),   scale = gamma / sqrt(running_var + eps),
                                                            shift = beta - running_mean * scale + b * scale

Folding the scale into W itself (W' = W * scale) would save nothing on these kernels: the pass over the output
that adds the bias is needed either way, and multiplying by ``scale`` in that same pass is free next to reading and
writing the output. So the folded form is the pair (scale, shift), recomputed on every call from the current
parameters and running statistics: O(channels), a few microseconds, and nothing cached that could go stale after
``load_state_dict``, an optimizer step or a change of the running statistics. The output pass
(`tinyinception.kernels.epilogue`) then does scale, shift and ReLU in place on the convolution's fresh output:
one pass instead of BatchNorm's two new arrays and ReLU's third.

The folded path runs only where it changes nothing but speed: BatchNorm in eval mode with running statistics, and
no gradient being recorded (``ti.no_grad()``, or nothing that requires grad), and no forward hook on the
convolution or the BatchNorm (a hook sees each layer run on its own). Everywhere else the layers run as written,
BatchNorm and ReLU still fused into one pass (``bn.forward_relu``).
"""
import contextlib
import threading

from .. import functional as F
from ..autograd import Tensor, is_grad_enabled, no_grad
from ..backend import get_array_module
from ..kernels import epilogue

_precomputed = threading.local()  # per thread: {id(conv): (input tensor, make output)} for `conv_bn_relu`


def folded_affine(bn, conv_bias=None):
    """(scale, shift), each (C,), with ``bn(y + conv_bias) == y * scale + shift`` for BatchNorm ``bn`` in eval mode.

    Computed as BatchNorm's own eval pass computes its scale, in the statistics' dtype."""
    running_mean, running_var = bn.running_mean.data, bn.running_var.data
    xp = get_array_module(running_var)
    dtype = running_var.dtype
    scale = (1 / xp.sqrt(running_var + dtype.type(bn.eps))).astype(dtype)
    if bn.weight is not None:
        scale = scale * bn.weight.data
    shift = -running_mean * scale if bn.bias is None else bn.bias.data - running_mean * scale
    if conv_bias is not None:
        shift = shift + conv_bias.data * scale
    return scale, shift


def foldable(conv, bn, x):
    """True when ``bn(conv(x))`` may run folded: eval-mode BatchNorm with running statistics, no gradient being
    recorded through any of the tensors involved, no forward hooks on either layer, matching shapes and dtypes
    (anything else takes the plain path, which raises the layers' own errors)."""
    if bn.training or bn.running_mean is None or bn.running_var is None:
        return False
    if conv._forward_hooks or bn._forward_hooks or x.ndim != 4 or x.shape[1] != conv.in_channels:
        return False
    if conv.out_channels != bn.num_features or conv.weight.dtype != x.dtype:
        return False
    tensors = (x, conv.weight, conv.bias, bn.weight, bn.bias)
    return not (is_grad_enabled() and any(isinstance(t, Tensor) and t.requires_grad for t in tensors))


def folded_conv(x, weight, pairs, relu=True):
    """relu(bn_i(conv_i(x))) for (conv_i, bn_i) in ``pairs``, the convolutions' weights concatenated in ``weight``
    (one pair: its own weight), as ONE convolution and ONE output pass. Returns the (N, sum F_i, H', W') tensor.
    Every pair must satisfy `foldable`; the geometry is the first convolution's."""
    conv = pairs[0][0]
    with no_grad():
        out = F.conv2d(x, weight, None, conv.stride, conv.padding, conv.dilation, conv.groups)
    output_pass_(out.data, pairs, relu)
    return out


def output_pass_(out, pairs, relu=True):
    """In place on ``out`` (N, sum F_i, H', W'), the bias-free output of the convolutions in ``pairs`` (or anything
    linear after it, such as an average pool): BatchNorm ``bn_i`` with ``conv_i``'s bias, then ReLU, in one pass.
    Returns out."""
    affine = [folded_affine(bn, c.bias) for c, bn in pairs]
    xp = get_array_module(affine[0][0])
    scale = affine[0][0] if len(affine) == 1 else xp.concatenate([a[0] for a in affine])
    shift = affine[0][1] if len(affine) == 1 else xp.concatenate([a[1] for a in affine])
    return epilogue.channel_affine_(out, scale.astype(out.dtype, copy=False), shift.astype(out.dtype, copy=False),
                                    relu)


def conv_bn_relu(conv, bn, x, relu=True):
    """``relu(bn(conv(x)))`` (without the ReLU when ``relu`` is False): folded in inference (see the module's
    docstring), else conv then BatchNorm and ReLU in one fused pass. A forward hook on ``bn`` makes it run through
    ``bn(...)`` and ReLU on its own, so the hook sees it. Hands out the output that `precomputed` holds for
    ``conv`` on this very ``x`` (a stacked product of sibling units), if any."""
    ready = _take_precomputed(conv, x)
    if ready is not None:
        return ready
    if foldable(conv, bn, x):
        return folded_conv(x, conv.weight, [(conv, bn)], relu)
    out = conv(x)
    if bn._forward_hooks:
        out = bn(out)
        return F.relu(out) if relu else out
    return bn.forward_relu(out) if relu else bn(out)


@contextlib.contextmanager
def precomputed(outputs):
    """Within the block, `conv_bn_relu(conv, bn, x)` returns ``make()`` for ``outputs[id(conv)] = (x, make)``
    (once, and only for that same input tensor ``x``) instead of computing the unit: how a stacked product of
    sibling units hands each unit its part while the branches still run through their containers' ``__call__``
    (and their hooks)."""
    previous = getattr(_precomputed, "outputs", None)
    _precomputed.outputs = dict(outputs)
    try:
        yield
    finally:
        _precomputed.outputs = previous


def _take_precomputed(conv, x):
    outputs = getattr(_precomputed, "outputs", None)
    if not outputs:
        return None
    entry = outputs.get(id(conv))
    if entry is None or entry[0] is not x:
        return None
    del outputs[id(conv)]
    return entry[1]()
