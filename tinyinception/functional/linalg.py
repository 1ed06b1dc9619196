"""Matrix products: ``a @ b`` (2-D and batched, broadcasting over leading dimensions) and ``linear``."""
from ..autograd import Function, Tensor
from ..kernels.threaded_blas import matmul as product  # 2-D CPU products on Numba's threads; NumPy's @ otherwise
from ._broadcast import as_operand, unbroadcast


class MatMul(Function):
    """a: (..., n, k) @ b: (..., k, m) -> (..., n, m); leading dimensions broadcast."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return product(a, b)

    def backward(self, grad_output):
        grad_a = grad_b = None
        if self.needs_input_grad[0]:
            grad_a = unbroadcast(product(grad_output, self.b.swapaxes(-1, -2)), self.a.shape)
        if self.needs_input_grad[1]:
            grad_b = unbroadcast(product(self.a.swapaxes(-1, -2), grad_output), self.b.shape)
        return grad_a, grad_b


class Linear(Function):
    """x: (N, in) -> x @ weight.T + bias: (N, out); weight: (out, in), bias: (out,) or None."""

    fresh_gradients = True  # every gradient is a new array (see Function)

    def forward(self, x, weight, bias):
        self.x, self.weight = x, weight
        out = product(x, weight.T)
        if bias is not None:
            out += bias
        return out

    def backward(self, grad_output):
        grad_x = product(grad_output, self.weight) if self.needs_input_grad[0] else None
        grad_weight = product(grad_output.reshape(-1, grad_output.shape[-1]).T, self.x.reshape(-1, self.x.shape[-1])) \
            if self.needs_input_grad[1] else None
        grad_bias = grad_output.reshape(-1, grad_output.shape[-1]).sum(axis=0) if self.needs_input_grad[2] else None
        return grad_x, grad_weight, grad_bias


def matmul(input, other):
    """Matrix product; at least 2-D operands. Errors name both shapes and the inner dimensions."""
    if not isinstance(input, Tensor):
        input = Tensor(input)
    other = as_operand(other, input, "matmul")
    if input.ndim < 2 or other.ndim < 2:
        raise ValueError(f"matmul: {input.shape} @ {other.shape}: both operands need at least 2 dimensions")
    if input.shape[-1] != other.shape[-2]:
        raise ValueError(
            f"matmul: {input.shape} @ {other.shape}: inner dimensions {input.shape[-1]} and {other.shape[-2]} differ"
        )
    return MatMul.apply(input, other)


def linear(input, weight, bias=None):
    """``torch.nn.functional.linear``: input (..., in_features) -> (..., out_features)."""
    if input.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"linear: input has {input.shape[-1]} features (shape {input.shape}) but weight expects "
            f"{weight.shape[1]} (weight shape {weight.shape})"
        )
    for name, other in (("weight", weight), ("bias", bias)):
        if other is not None and other.dtype != input.dtype:
            raise TypeError(f"linear: input has dtype {input.dtype} but {name} has dtype {other.dtype}; "
                            "tinyinception never upcasts silently (use x.float() or model.double())")
    return Linear.apply(input, weight, bias)
