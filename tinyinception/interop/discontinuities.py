"""Where two correct implementations may legitimately disagree: the discontinuities of ReLU and max pooling.

Arithmetic rounding moves a result by a few units in the last place. A discontinuity turns such a tiny move into a
large one: a ReLU input at 1e-7 from zero is kept on one side and zeroed on the other, and the two largest values
of a max-pool window 2.5e-7 apart can swap places. The forward outputs still agree to rounding (the values
involved are tiny, or nearly equal), but the gradient takes a different path: the whole gradient of the window
goes to the other pixel. These helpers count such places so that a comparison can tell "a near-tie" from "a bug".

NumPy only; every array here is a plain ``numpy.ndarray``.
"""
from dataclasses import dataclass

import numpy as np


@dataclass
class ReluFlips:
    """Elements that are zero on one side and positive on the other, in an output that is >= 0 on both sides.

    count: how many; largest: the largest positive value among them (how far from zero the disagreement is).
    """
    count: int
    largest: float


@dataclass
class ArgmaxFlips:
    """Max-pool windows whose largest element is a different one on the two sides.

    count: how many windows; widest_gap: among those windows, the largest distance between the window's two
    largest values (reference side): a flip is a near-tie when this is within the rounding of the pool's input.
    smallest_gap: the smallest such distance over every window, flipped or not.
    """
    count: int
    widest_gap: float
    smallest_gap: float


def relu_flips(ours, reference):
    """`ReluFlips` of two outputs of the same shape, or None when either has a negative or non-finite value
    (then the output is not the result of a ReLU-like clamp and a zero means nothing special)."""
    if ours.shape != reference.shape or ours.size == 0:
        return None
    with np.errstate(invalid="ignore"):
        if not (np.isfinite(ours).all() and np.isfinite(reference).all()):
            return None
        if ours.min() < 0 or reference.min() < 0:
            return None
    flipped = (ours == 0) != (reference == 0)
    count = int(flipped.sum())
    largest = float(np.maximum(ours[flipped], reference[flipped]).max()) if count else 0.0
    return ReluFlips(count, largest)


def _pair(value):
    return (int(value), int(value)) if np.isscalar(value) else tuple(int(v) for v in value)


@dataclass(frozen=True)
class PoolGeometry:
    """A max pool's window: kernel, stride, padding, dilation (pairs) and ceil_mode, as torch.nn.MaxPool2d has."""
    kernel: tuple
    stride: tuple
    padding: tuple
    dilation: tuple

    @classmethod
    def of(cls, module):
        """The geometry of a max-pool module of either framework (both name the attributes alike)."""
        stride = module.stride if module.stride not in (None, ()) else module.kernel_size
        return cls(_pair(module.kernel_size), _pair(stride), _pair(module.padding),
                   _pair(getattr(module, "dilation", 1)))


def pool_windows(x, geometry, out_size):
    """Every window of a max pool over x, as (N, C, out_h, out_w, kh * kw); padding is -inf.

    x: (N, C, H, W). out_size: (out_h, out_w), the pool's actual output size (this covers ceil_mode: a last
    partial window reads -inf beyond the input, as the pool does).
    """
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = geometry.kernel, geometry.stride, geometry.padding, geometry.dilation
    out_h, out_w = out_size
    span_h, span_w = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    need_h, need_w = (out_h - 1) * sh + span_h, (out_w - 1) * sw + span_w
    n, c, h, w = x.shape
    padded = np.full((n, c, max(need_h, h + 2 * ph), max(need_w, w + 2 * pw)), -np.inf, dtype=x.dtype)
    padded[:, :, ph:ph + h, pw:pw + w] = x
    views = np.lib.stride_tricks.sliding_window_view(padded, (span_h, span_w), axis=(2, 3))
    views = views[:, :, :out_h * sh:sh, :out_w * sw:sw, ::dh, ::dw]
    return views.reshape(n, c, out_h, out_w, kh * kw)


def argmax_flips(ours_input, reference_input, geometry, out_size):
    """`ArgmaxFlips` of one max pool run on two inputs (N, C, H, W) of the same shape, or None if they differ."""
    if ours_input.shape != reference_input.shape or ours_input.size == 0:
        return None
    ours = pool_windows(ours_input, geometry, out_size)
    reference = pool_windows(reference_input, geometry, out_size)
    flipped = ours.argmax(axis=-1) != reference.argmax(axis=-1)
    top_two = -np.partition(-reference, 1, axis=-1)[..., :2] if reference.shape[-1] > 1 else None
    if top_two is None:
        return ArgmaxFlips(int(flipped.sum()), 0.0, float("inf"))
    with np.errstate(invalid="ignore"):
        gaps = (top_two[..., 0] - top_two[..., 1]).astype(np.float64)
    gaps = np.where(np.isfinite(gaps), gaps, np.inf)
    count = int(flipped.sum())
    widest = float(gaps[flipped].max()) if count else 0.0
    return ArgmaxFlips(count, widest, float(gaps.min()))
