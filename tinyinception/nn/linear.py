"""`Linear`: y = x @ weight.T + bias, with PyTorch's default initialisation."""
import math

import numpy as np

from .. import functional as F
from . import init
from .module import Module
from .parameter import Parameter


class Linear(Module):
    """in_features -> out_features. weight: (out_features, in_features), bias: (out_features,).

    Init as PyTorch: weight ~ kaiming_uniform(a=sqrt(5)) (i.e. U(-1/sqrt(in), 1/sqrt(in))), bias U(-1/sqrt(in), ...).
    """

    def __init__(self, in_features, out_features, bias=True, dtype=np.float32):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(np.empty((out_features, in_features), dtype=dtype))
        self.bias = Parameter(np.empty(out_features, dtype=dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        if x.shape[-1] != self.in_features:
            raise ValueError(f"Linear(in_features={self.in_features}) got input of shape {x.shape} "
                             f"with {x.shape[-1]} features")
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
