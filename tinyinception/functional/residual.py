"""Inception-ResNet's scaled residual connection: x + scale * branch, optionally followed by its ReLU."""
from .. import kernels
from ..autograd import Function


class ResidualAdd(Function):
    """y = x + scale * branch; with ``relu``, y = relu(x + scale * branch) in one pass (kernels/residual.py)."""

    def forward(self, x, branch, scale, relu):
        self.scale, self.relu = branch.dtype.type(scale), relu
        if not relu:
            return branch * self.scale + x
        self.y = kernels.residual_relu_forward(x, branch, self.scale)
        return self.y

    def backward(self, grad_output):
        if self.relu:
            grad_x, grad_branch = kernels.residual_relu_backward(grad_output, self.y, self.scale)
            return grad_x, grad_branch if self.needs_input_grad[1] else None, None, None
        grad_branch = grad_output * self.scale if self.needs_input_grad[1] else None
        return grad_output, grad_branch, None, None


def residual_add(x, branch, scale=1.0, relu=False):
    """x + scale * branch (both (N, C, H, W), same shape), then ReLU if ``relu``. The Inception-ResNet papers scale
    residuals by 0.1-0.3 so that very wide residual branches do not destabilise early training. ``relu=True`` gives
    ``F.relu(F.residual_add(x, branch, scale))``, the same numbers, in one pass over memory instead of two."""
    if x.shape != branch.shape:
        raise ValueError(f"residual_add: x has shape {x.shape} but the branch has shape {branch.shape}")
    return ResidualAdd.apply(x, branch, float(scale), bool(relu))
