"""Give `Tensor` its operators and methods (``x + y``, ``x @ w``, ``x.sum()``, ``x.relu()``...).

The engine in `autograd.py` knows no operations; this file connects each Tensor method to the function in
`tinyinception.functional` that implements it, so there is exactly one implementation of each.
"""
import numpy as np

from ..autograd import Tensor
from . import activation, device, elementwise, linalg, reduction, shape


def _comparison(op):
    def compare(self, other):
        other = other.data if isinstance(other, Tensor) else other
        return Tensor(op(self.data, other))
    return compare


def install():
    methods = {
        "__add__": elementwise.add,
        "__radd__": elementwise.add,
        "__sub__": elementwise.sub,
        "__rsub__": elementwise.rsub,
        "__mul__": elementwise.mul,
        "__rmul__": elementwise.mul,
        "__truediv__": elementwise.div,
        "__rtruediv__": elementwise.rdiv,
        "__neg__": elementwise.neg,
        "__pow__": elementwise.pow,
        "__matmul__": linalg.matmul,
        "__rmatmul__": lambda self, other: linalg.matmul(Tensor(other), self),
        "__getitem__": shape.getitem,
        "__lt__": _comparison(np.less),
        "__le__": _comparison(np.less_equal),
        "__gt__": _comparison(np.greater),
        "__ge__": _comparison(np.greater_equal),
        "add": elementwise.add,
        "sub": elementwise.sub,
        "mul": elementwise.mul,
        "div": elementwise.div,
        "neg": elementwise.neg,
        "pow": elementwise.pow,
        "exp": elementwise.exp,
        "log": elementwise.log,
        "sqrt": elementwise.sqrt,
        "matmul": linalg.matmul,
        "sum": reduction.sum,
        "mean": reduction.mean,
        "max": reduction.max,
        "argmax": reduction.argmax,
        "reshape": shape.reshape,
        "view": shape.reshape,
        "permute": shape.permute,
        "transpose": shape.transpose,
        "flatten": shape.flatten,
        "relu": activation.relu,
        "sigmoid": activation.sigmoid,
        "tanh": activation.tanh,
        "softmax": activation.softmax,
        "log_softmax": activation.log_softmax,
        "to": device.to,
        "cpu": device.cpu,
        "cuda": device.cuda,
        "float": lambda self: elementwise.cast(self, np.float32),
        "double": lambda self: elementwise.cast(self, np.float64),
    }
    for name, function in methods.items():
        setattr(Tensor, name, function)
    Tensor.T = property(lambda self: shape.permute(self, tuple(reversed(range(self.ndim)))))
