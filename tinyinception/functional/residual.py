"""Inception-ResNet's scaled residual connection: x + scale * branch."""
from ..autograd import Function


class ResidualAdd(Function):
    def forward(self, x, branch, scale):
        self.scale = branch.dtype.type(scale)
        return branch * self.scale + x

    def backward(self, grad_output):
        grad_branch = grad_output * self.scale if self.needs_input_grad[1] else None
        return grad_output, grad_branch, None


def residual_add(x, branch, scale=1.0):
    """x + scale * branch (both (N, C, H, W), same shape). The Inception-ResNet papers scale residuals by 0.1-0.3
    so that very wide residual branches do not destabilise early training."""
    if x.shape != branch.shape:
        raise ValueError(f"residual_add: x has shape {x.shape} but the branch has shape {branch.shape}")
    return ResidualAdd.apply(x, branch, float(scale))
