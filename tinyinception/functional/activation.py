"""Activations: relu, sigmoid, tanh, softmax and log_softmax (numerically stable)."""
from ..autograd import Function
from .. import backend, kernels


class ReLU(Function):
    """y = max(x, 0); backward passes the gradient except where y <= 0 (kernels/activation.py)."""

    def forward(self, x):
        self.y = kernels.relu_forward(x)
        return self.y

    def backward(self, grad_output):
        return kernels.relu_backward(grad_output, self.y)


class Sigmoid(Function):
    def forward(self, x):
        xp = backend.get_array_module(x)
        self.y = xp.exp(-xp.logaddexp(0, -x)).astype(x.dtype)  # 1 / (1 + e^-x) without overflow
        return self.y

    def backward(self, grad_output):
        return grad_output * self.y * (1 - self.y)


class Tanh(Function):
    def forward(self, x):
        self.y = backend.get_array_module(x).tanh(x)
        return self.y

    def backward(self, grad_output):
        return grad_output * (1 - self.y * self.y)


class Softmax(Function):
    def forward(self, x, dim):
        xp = backend.get_array_module(x)
        self.dim = dim
        shifted = xp.exp(x - x.max(axis=dim, keepdims=True))
        self.y = shifted / shifted.sum(axis=dim, keepdims=True)
        return self.y

    def backward(self, grad_output):
        dot = (grad_output * self.y).sum(axis=self.dim, keepdims=True)
        return self.y * (grad_output - dot), None


class LogSoftmax(Function):
    def forward(self, x, dim):
        xp = backend.get_array_module(x)
        self.dim = dim
        shifted = x - x.max(axis=dim, keepdims=True)
        self.y = shifted - xp.log(xp.exp(shifted).sum(axis=dim, keepdims=True))
        return self.y

    def backward(self, grad_output):
        xp = backend.get_array_module(grad_output)
        return grad_output - xp.exp(self.y) * grad_output.sum(axis=self.dim, keepdims=True), None


def relu(input, inplace=False):
    """max(x, 0). ``inplace`` is accepted for PyTorch compatibility and ignored (we never overwrite saved data)."""
    return ReLU.apply(input)


def sigmoid(input):
    return Sigmoid.apply(input)


def tanh(input):
    return Tanh.apply(input)


def _check_dim(dim, input, name):
    if dim is None:
        raise TypeError(f"{name}: pass dim explicitly (e.g. dim=1 for (N, C) logits)")
    if not -input.ndim <= dim < input.ndim:
        raise IndexError(f"{name}: dim {dim} is out of range for shape {input.shape}")
    return dim % input.ndim


def softmax(input, dim=None):
    return Softmax.apply(input, _check_dim(dim, input, "softmax"))


def log_softmax(input, dim=None):
    return LogSoftmax.apply(input, _check_dim(dim, input, "log_softmax"))
