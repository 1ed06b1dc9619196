"""Pooling: max (gradient to the argmax), average (PyTorch's divisor rules), adaptive average, global average.

x: (N, C, H, W) -> (N, C, out_h, out_w). The loops live in `tinyinception.kernels.pooling`.
"""
from ..autograd import Function
from .. import backend, kernels
from ..kernels import layout
from ..kernels.threaded_blas import matmul as product  # 2-D CPU products on Numba's threads; NumPy's @ otherwise
from ._windows import check_nchw, output_size, pair


class MaxPool2d(Function):
    def forward(self, x, kernel_size, stride, padding, out_size):
        self.x_shape = x.shape
        out, self.argmax = kernels.max_pool2d_forward(x, kernel_size, stride, padding, out_size)
        return out

    def backward(self, grad_output):
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
    stride = kernel_size if stride is None or stride == [] else pair(stride, "stride", op)
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


class AdaptiveAvgPool2d(Function):
    """Each output cell averages its adaptive window (windows may overlap, e.g. 14 -> 4: offsets 0, 3, 7, 10).

    The average over window (i, j) is separable: ``out = A_h @ x @ A_w.T`` per (n, c) plane, where row i of
    A_h (out_h, H) holds 1/len over window i (`adaptive_weights`); backward is ``A_h.T @ grad @ A_w``.
    """

    def forward(self, x, output_size):
        xp = backend.get_array_module(x)
        if not (layout.is_channel_major(x) or x.flags.c_contiguous):
            x = xp.ascontiguousarray(x)
        n, c, h, w = x.shape
        out_h, out_w = output_size
        self.x = x
        self.rows = adaptive_weights(h, out_h, x.dtype, xp)  # (out_h, H)
        self.cols = adaptive_weights(w, out_w, x.dtype, xp)  # (out_w, W)
        return _from_planes(_both_sides(layout.planes(x), self.rows, self.cols), x, (n, c, out_h, out_w))

    def backward(self, grad_output):
        grad = layout.as_layout_of(grad_output, self.x)
        grad_planes = _both_sides(layout.planes(grad), self.rows.T, self.cols.T)
        return _from_planes(grad_planes, self.x, self.x.shape), None


def adaptive_avg_pool2d(input, output_size):
    """``torch.nn.functional.adaptive_avg_pool2d``: input (N, C, H, W) -> (N, C, *output_size).

    output_size: an int or an (out_h, out_w) pair (None in a pair keeps that input size).
    """
    check_nchw("adaptive_avg_pool2d", input)
    if isinstance(output_size, int):
        output_size = (output_size, output_size)
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
