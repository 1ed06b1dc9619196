"""Pooling: max (gradient to the argmax), average (PyTorch's divisor rules), adaptive average, global average.

x: (N, C, H, W) -> (N, C, out_h, out_w). The loops live in `tinyinception.kernels.pooling`.
"""
from ..autograd import Function
from .. import backend, kernels
from ..kernels import layout
from ._windows import as_int, check_nchw, output_size, pair


def _empty(x_shape, out_size, dtype, xp):
    """The zeros of a pool's result where the input is empty (no image or no channel): nothing to pool."""
    return xp.zeros(tuple(x_shape[:2]) + tuple(out_size), dtype=dtype)


class MaxPool2d(Function):
    def forward(self, x, kernel_size, stride, padding, out_size):
        self.x_shape, self.empty = x.shape, x.size == 0
        if self.empty:
            return _empty(x.shape, out_size, x.dtype, backend.get_array_module(x))
        out, self.argmax = kernels.max_pool2d_forward(x, kernel_size, stride, padding, out_size)
        return out

    def backward(self, grad_output):
        if self.empty:
            return _empty(self.x_shape, self.x_shape[2:], grad_output.dtype, backend.get_array_module(grad_output)), \
                None, None, None, None
        return kernels.max_pool2d_backward(grad_output, self.argmax, self.x_shape), None, None, None, None


class AvgPool2d(Function):
    def forward(self, x, kernel_size, stride, padding, out_size, count_include_pad):
        self.x_shape = x.shape
        self.args = (kernel_size, stride, padding, out_size, count_include_pad)
        return kernels.avg_pool2d_forward(x, *self.args)

    def backward(self, grad_output):
        return (kernels.avg_pool2d_backward(grad_output, self.x_shape, *self.args),) + (None,) * 5


def _pool_geometry(op, x, kernel_size, stride, padding, ceil_mode):
    check_nchw(op, x)
    kernel_size = pair(kernel_size, "kernel_size", op)
    no_stride = stride is None or (isinstance(stride, (list, tuple)) and len(stride) == 0)  # PyTorch's default: []
    stride = kernel_size if no_stride else pair(stride, "stride", op)
    padding = pair(padding, "padding", op)
    if min(kernel_size) < 1 or min(stride) < 1:
        raise ValueError(f"{op}: kernel_size {kernel_size} and stride {stride} must be positive")
    if padding[0] > kernel_size[0] // 2 or padding[1] > kernel_size[1] // 2 or min(padding) < 0:
        raise ValueError(f"{op}: padding {padding} must be between 0 and half the kernel size {kernel_size}")
    out_size = output_size(op, x.shape, kernel_size, stride, padding, ceil_mode=ceil_mode)
    return kernel_size, stride, padding, out_size


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """``torch.nn.functional.max_pool2d``: padding counts as -inf; stride defaults to kernel_size.

    ceil_mode keeps a last partial window only if it starts inside the input or its left padding.
    """
    if pair(dilation, "dilation", "max_pool2d") != (1, 1):
        raise NotImplementedError("max_pool2d: dilation other than 1 is not implemented (no Inception network uses it)")
    if return_indices:
        raise NotImplementedError("max_pool2d: return_indices is not implemented; the argmax stays inside backward")
    geometry = _pool_geometry("max_pool2d", input, kernel_size, stride, padding, ceil_mode)
    return MaxPool2d.apply(input, *geometry)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """``torch.nn.functional.avg_pool2d``: count_include_pad=True divides by the window size clipped to the
    padded input; False divides by the number of real (in-bounds) elements."""
    if divisor_override is not None:
        raise NotImplementedError("avg_pool2d: divisor_override is not implemented")
    geometry = _pool_geometry("avg_pool2d", input, kernel_size, stride, padding, ceil_mode)
    return AvgPool2d.apply(input, *geometry, bool(count_include_pad))


def adaptive_windows(in_size, out_size):
    """PyTorch's adaptive windows along one axis: window i spans [floor(i*In/Out), ceil((i+1)*In/Out))."""
    return [((i * in_size) // out_size, -(-((i + 1) * in_size) // out_size)) for i in range(out_size)]


def _window_means(x, axis, windows):
    """The mean of each window [start, end) of x along ``axis`` (negative), stacked along that axis. Each window is
    summed on its own, so a NaN or inf reaches only the windows that hold it (a product with a 0/1-weights matrix
    would multiply it by every zero)."""
    xp = backend.get_array_module(x)
    return xp.stack([x[(Ellipsis, slice(start, end)) + (slice(None),) * (-axis - 1)].mean(axis=axis)
                     for start, end in windows], axis=axis)


def _window_spread(grad, axis, windows, size):
    """The adjoint of `_window_means`: each window's gradient divided by its length, added over the window."""
    xp = backend.get_array_module(grad)
    shape = list(grad.shape)
    shape[axis] = size
    out = xp.zeros(shape, dtype=grad.dtype)
    for i, (start, end) in enumerate(windows):
        tail = (slice(None),) * (-axis - 1)
        share = grad[(Ellipsis, slice(i, i + 1)) + tail] / grad.dtype.type(end - start)
        out[(Ellipsis, slice(start, end)) + tail] += share
    return out


class AdaptiveAvgPool2d(Function):
    """Each output cell averages its adaptive window (windows may overlap, e.g. 14 -> 4: offsets 0, 3, 7, 10).

    The average over window (i, j) is separable: the means along W of every column window, then along H of every
    row window (`adaptive_windows`); backward spreads each gradient back over its windows the same way.
    """

    def forward(self, x, output_size):
        n, c, h, w = x.shape
        out_h, out_w = output_size
        self.x_shape, self.channel_major = x.shape, layout.is_channel_major(x)
        self.rows, self.cols = adaptive_windows(h, out_h), adaptive_windows(w, out_w)
        return self._in_layout(_window_means(_window_means(x, -1, self.cols), -2, self.rows))

    def backward(self, grad_output):
        h, w = self.x_shape[2:]
        grad = _window_spread(_window_spread(grad_output, -2, self.rows, h), -1, self.cols, w)
        return self._in_layout(grad), None

    def _in_layout(self, array):
        """array (N, C, ...) laid out as the input was (channel-major or C-contiguous)."""
        xp = backend.get_array_module(array)
        return layout.from_channel_major(layout.channel_major(array)) if self.channel_major \
            else xp.ascontiguousarray(array)


def adaptive_avg_pool2d(input, output_size):
    """``torch.nn.functional.adaptive_avg_pool2d``: input (N, C, H, W) -> (N, C, *output_size).

    output_size: an int or an (out_h, out_w) pair (None in a pair keeps that input size).
    """
    check_nchw("adaptive_avg_pool2d", input)
    if as_int(output_size) is not None:
        output_size = (as_int(output_size), as_int(output_size))
    output_size = tuple(input.shape[2 + i] if s is None else int(s) for i, s in enumerate(output_size))
    if min(output_size) < 1:
        raise ValueError(f"adaptive_avg_pool2d: output_size must be positive, got {output_size}")
    if output_size == (1, 1):
        return global_avg_pool2d(input, keepdim=True)
    return AdaptiveAvgPool2d.apply(input, output_size)


def global_avg_pool2d(input, keepdim=False):
    """Mean over H and W: (N, C, H, W) -> (N, C) (or (N, C, 1, 1) with keepdim), the Inception classifiers' pool."""
    from .reduction import mean
    check_nchw("global_avg_pool2d", input)
    return mean(input, dim=(2, 3), keepdim=keepdim)
