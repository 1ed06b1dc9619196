"""Inverted dropout: in training, zero each element with probability p and scale the rest by 1/(1-p)."""
from ..autograd import Function
from .. import random as ti_random


class Dropout(Function):
    def forward(self, x, p):
        keep = ti_random.uniform_like(x) >= p
        self.mask = keep * x.dtype.type(1.0 / (1.0 - p)) if p < 1 else keep * x.dtype.type(0)
        return x * self.mask

    def backward(self, grad_output):
        return grad_output * self.mask, None


def dropout(input, p=0.5, training=True, inplace=False):
    """``torch.nn.functional.dropout``: identity when not training or p == 0 (so eval mode is exact)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: probability must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return input
    return Dropout.apply(input, float(p))
