"""Moving a tensor between the CPU (NumPy) and the GPU (CuPy), with the gradient moved back.

``Tensor.to``, ``Tensor.cpu`` and ``Tensor.cuda`` are these functions, attached in `tensor_methods`: the engine in
`autograd.py` knows no operation, not even a copy between devices.
"""
from ..autograd import Function
from .. import backend


class ToDevice(Function):
    def forward(self, x, device):
        self.source = backend.device_of(x)
        return backend.to_device(x, device)

    def backward(self, grad_output):
        return backend.to_device(grad_output, self.source), None


def to_device(input, device):
    """A differentiable copy of ``input`` on ``device`` (``"cpu"`` or ``"cuda"``); always a new tensor."""
    return ToDevice.apply(input, str(device))


def to(input, device):
    """``Tensor.to``: a copy on ``"cpu"`` or ``"cuda"`` (the same tensor if already there); differentiable."""
    if backend.device_of(input.data) == str(device).split(":")[0]:
        return input
    return to_device(input, device)


def cpu(input):
    """``Tensor.cpu``: ``input.to("cpu")``."""
    return to(input, "cpu")


def cuda(input):
    """``Tensor.cuda``: ``input.to("cuda")``."""
    return to(input, "cuda")
