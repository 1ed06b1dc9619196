"""Pooling: max (gradient to the argmax), average (PyTorch's divisor rules), adaptive average, global average.

x: (N, C, H, W) -> (N, C, out_h, out_w). The loops live in `tinyinception.kernels.pooling`.
"""
from ..autograd import Function
from .. import backend, kernels
from ..kernels import layout
from ..kernels._checks import all_finite
from ..kernels.threaded_blas import matmul as product  # 2-D CPU products on Numba's threads; NumPy's @ otherwise
from ._windows import as_int, check_nchw, output_size, pair


def _empty(x_shape, out_size, dtype, xp):
    """The zeros of a pool's result where the input is empty (no image or no channel): nothing to pool."""
    return xp.zeros(tuple(x_shape[:2]) + tuple(out_size), dtype=dtype)


class MaxPool2d(Function):
    def forward(self, x, kernel_size, stride, padding, out_size):
        self.x_shape, self.empty = x.shape, x.size == 0
        if self.empty:
            return _empty(x.shape, out_size, x.dtype, backend.get_array_module(x))
        # the argmax is found only when a backward will need it (inference skips that work)
        out, self.argmax = kernels.max_pool2d_forward(x, kernel_size, stride, padding, out_size,
                                                      keep_argmax=any(self.needs_input_grad))
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


def adaptive_weights(in_size, out_size, dtype, xp):
    """(out_size, in_size): row i averages adaptive window i (1/len on the window, 0 elsewhere)."""
    weights = xp.zeros((out_size, in_size), dtype=dtype)
    for i, (start, end) in enumerate(adaptive_windows(in_size, out_size)):
        weights[i, start:end] = 1 / (end - start)
    return weights


def _both_sides(planes, rows_matrix, cols_matrix):
    """planes (P, H, W) -> (P, R, S), every plane multiplied as ``rows_matrix (R, H) @ plane @ cols_matrix.T``
    (cols_matrix (S, W)): two matrix products over all the planes at once."""
    p, h, w = planes.shape
    r, s = rows_matrix.shape[0], cols_matrix.shape[0]
    along_w = product(planes.reshape(p * h, w), cols_matrix.T).reshape(p, h, s)
    along_h = product(along_w.transpose(0, 2, 1).reshape(p * s, h), rows_matrix.T)  # (P*S, R)
    return along_h.reshape(p, s, r).transpose(0, 2, 1)


def _from_planes(planes, like, shape):
    """(P, R, S) planes in the memory order of ``like`` -> an (N, C, R, S) array laid out like ``like``."""
    out = layout.empty_like_layout(like, shape)
    layout.planes(out)[...] = planes
    return out


def _window_means(x, axis, windows):
    """The mean of each window [start, end) of x along ``axis`` (negative), stacked along that axis. Each window is
    summed on its own, so a NaN or inf reaches only the windows that hold it."""
    xp = backend.get_array_module(x)
    tail = (slice(None),) * (-axis - 1)
    return xp.stack([x[(Ellipsis, slice(start, end)) + tail].mean(axis=axis) for start, end in windows], axis=axis)


def _window_spread(grad, axis, windows, size):
    """The adjoint of `_window_means`: each window's gradient divided by its length, added over the window."""
    xp = backend.get_array_module(grad)
    shape = list(grad.shape)
    shape[axis] = size
    out = xp.zeros(shape, dtype=grad.dtype)
    tail = (slice(None),) * (-axis - 1)
    for i, (start, end) in enumerate(windows):
        out[(Ellipsis, slice(start, end)) + tail] += grad[(Ellipsis, slice(i, i + 1)) + tail] / grad.dtype.type(
            end - start)
    return out


class AdaptiveAvgPool2d(Function):
    """Each output cell averages its adaptive window (windows may overlap, e.g. 14 -> 4: offsets 0, 3, 7, 10).

    The average over window (i, j) is separable: ``out = A_h @ x @ A_w.T`` per (n, c) plane, where row i of
    A_h (out_h, H) holds 1/len over window i (`adaptive_weights`); backward is ``A_h.T @ grad @ A_w``. Those
    products multiply every value by the zeros of the other windows, so a NaN or inf would reach the whole plane:
    where the result is not finite, it is computed again window by window (`_window_means`, `_window_spread`),
    and a NaN or inf reaches only the windows that hold it, as in PyTorch.
    """

    def forward(self, x, output_size):
        xp = backend.get_array_module(x)
        if not (layout.is_channel_major(x) or x.flags.c_contiguous):
            x = xp.ascontiguousarray(x)
        n, c, h, w = x.shape
        out_h, out_w = output_size
        self.x_shape, self.like = x.shape, x  # the layout the gradient is given back in
        self.windows = adaptive_windows(h, out_h), adaptive_windows(w, out_w)
        self.rows = adaptive_weights(h, out_h, x.dtype, xp)  # (out_h, H)
        self.cols = adaptive_weights(w, out_w, x.dtype, xp)  # (out_w, W)
        out = _from_planes(_both_sides(layout.planes(x), self.rows, self.cols), x, (n, c, out_h, out_w))
        if all_finite(out):
            return out
        rows, cols = self.windows
        return layout.as_layout_of(_window_means(_window_means(x, -1, cols), -2, rows), x)

    def backward(self, grad_output):
        grad = layout.as_layout_of(grad_output, self.like)
        if all_finite(grad):
            return _from_planes(_both_sides(layout.planes(grad), self.rows.T, self.cols.T), self.like,
                                self.x_shape), None
        (rows, cols), (h, w) = self.windows, self.x_shape[2:]
        return layout.as_layout_of(_window_spread(_window_spread(grad, -2, rows, h), -1, cols, w), self.like), None


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
