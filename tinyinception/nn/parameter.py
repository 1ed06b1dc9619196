"""`Parameter`: a leaf tensor that a `Module` registers as learnable (``requires_grad=True`` by default)."""
from ..autograd import Tensor, _as_array


class Parameter(Tensor):
    def __init__(self, data, requires_grad=True):
        super().__init__(_as_array(data), requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()
