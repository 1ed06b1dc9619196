"""Element-wise arithmetic with broadcasting: + - * / neg pow exp log sqrt, and explicit dtype casts.

Every binary op sums its gradients back to each input's shape (`unbroadcast`), so ``x + bias`` with x (N, C) and
bias (C,) gives bias a (C,) gradient.
"""
from ..autograd import Function, Tensor
from .. import backend
from ._broadcast import as_operand, broadcast_shape, unbroadcast


class _Binary(Function):
    op_name = "binary op"

    def remember_shapes(self, a, b):
        self.a_shape, self.b_shape = a.shape, b.shape
        broadcast_shape(a.shape, b.shape, self.op_name)


class Add(_Binary):
    op_name = "add"

    def forward(self, a, b):
        self.remember_shapes(a, b)
        return a + b

    def backward(self, grad_output):
        return unbroadcast(grad_output, self.a_shape), unbroadcast(grad_output, self.b_shape)


class Sub(_Binary):
    op_name = "sub"

    def forward(self, a, b):
        self.remember_shapes(a, b)
        return a - b

    def backward(self, grad_output):
        grad_b = -unbroadcast(grad_output, self.b_shape) if self.needs_input_grad[1] else None
        return unbroadcast(grad_output, self.a_shape), grad_b


class Mul(_Binary):
    op_name = "mul"

    def forward(self, a, b):
        self.remember_shapes(a, b)
        self.a, self.b = a, b
        return a * b

    def backward(self, grad_output):
        grad_a = unbroadcast(grad_output * self.b, self.a_shape) if self.needs_input_grad[0] else None
        grad_b = unbroadcast(grad_output * self.a, self.b_shape) if self.needs_input_grad[1] else None
        return grad_a, grad_b


class Div(_Binary):
    op_name = "div"

    def forward(self, a, b):
        self.remember_shapes(a, b)
        self.a, self.b = a, b
        return a / b

    def backward(self, grad_output):
        grad_a = unbroadcast(grad_output / self.b, self.a_shape) if self.needs_input_grad[0] else None
        grad_b = None
        if self.needs_input_grad[1]:
            grad_b = unbroadcast(-grad_output * self.a / (self.b * self.b), self.b_shape)
        return grad_a, grad_b


class Neg(Function):
    def forward(self, x):
        return -x

    def backward(self, grad_output):
        return -grad_output


class Pow(Function):
    """x ** exponent for a scalar exponent."""

    def forward(self, x, exponent):
        self.x, self.exponent = x, exponent
        return x ** x.dtype.type(exponent)

    def backward(self, grad_output):
        n = self.x.dtype.type(self.exponent)
        if n == 0:  # d/dx x**0 = 0 everywhere (x**-1 would give 0 * inf = nan at x = 0)
            return backend.get_array_module(grad_output).zeros_like(grad_output), None
        return grad_output * n * self.x ** (n - 1), None


class Exp(Function):
    def forward(self, x):
        self.y = backend.get_array_module(x).exp(x)
        return self.y

    def backward(self, grad_output):
        return grad_output * self.y


class Log(Function):
    def forward(self, x):
        self.x = x
        return backend.get_array_module(x).log(x)

    def backward(self, grad_output):
        return grad_output / self.x


class Sqrt(Function):
    def forward(self, x):
        self.y = backend.get_array_module(x).sqrt(x)
        return self.y

    def backward(self, grad_output):
        return grad_output / (2 * self.y)


class Cast(Function):
    """An explicit dtype change (``x.float()``, ``x.double()``); its gradient is cast back."""

    def forward(self, x, dtype):
        self.input_dtype = x.dtype
        return x.astype(dtype)

    def backward(self, grad_output):
        return grad_output.astype(self.input_dtype), None


def _binary(function, a, b, op_name, swap=False):
    if not isinstance(a, Tensor):
        a = Tensor(a)
    if a.dtype.kind in "iub" and isinstance(b, Tensor) and b.dtype.kind == "f":  # int op float -> float, no upcast
        a = Tensor(a.data.astype(b.dtype))
    b = as_operand(b, a, op_name)
    return function.apply(b, a) if swap else function.apply(a, b)


def add(input, other):
    """input + other, broadcasting; ``other`` may be a tensor, array or Python number."""
    return _binary(Add, input, other, "add")


def sub(input, other):
    return _binary(Sub, input, other, "sub")


def mul(input, other):
    return _binary(Mul, input, other, "mul")


def div(input, other):
    return _binary(Div, input, other, "div")


def rsub(input, other):
    """other - input."""
    return _binary(Sub, input, other, "sub", swap=True)


def rdiv(input, other):
    """other / input."""
    return _binary(Div, input, other, "div", swap=True)


def neg(input):
    return Neg.apply(input)


def pow(input, exponent):
    """input ** exponent, with a scalar exponent."""
    if isinstance(exponent, Tensor):
        raise TypeError("pow: only a scalar exponent is supported (got a Tensor)")
    return Pow.apply(input, float(exponent))


def exp(input):
    return Exp.apply(input)


def log(input):
    return Log.apply(input)


def sqrt(input):
    return Sqrt.apply(input)


def cast(input, dtype):
    """input converted to ``dtype`` (differentiable); the same tensor if it already has it."""
    if input.dtype == dtype:
        return input
    return Cast.apply(input, dtype)
