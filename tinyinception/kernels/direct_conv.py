"""Convolution tap by tap over the valid region only: padding never enters a product.

Every fast path (im2col, shifted and strided products, Winograd) lays the input out with zeros for the padding and
multiplies them by the weights. With finite weights that adds exact zeros; with a NaN or infinite weight it adds
``0 * inf = NaN`` to every output whose window overhangs the border, where PyTorch's CPU convolution (oneDNN) gives
the finite sum of the taps that read the input. Likewise the weight gradient of the shifted products multiplies
the zeros around the output gradient by the input, so an infinite input pixel at the border turns finite taps
NaN. This module computes the convolution as its definition: for each tap (i, j), only the outputs whose tap
reads an input pixel, as one product per tap and group,

    out[:, f, oy, ox] += weight[f, :, i, j] @ x[:, :, oy*sh - ph + i*dh, ox*sw - pw + j*dw]

and backward the same two ways. `functional.conv.Conv2d` takes it where a weight is not finite, and for a weight
gradient that the fast paths made non-finite; it is plain NumPy (or CuPy) and slower than the fast paths, which
finite values never leave. Shapes: x (N, C, H, W), weight (F, C/groups, kh, kw), out (N, F, out_h, out_w).
"""
from .. import backend


def _span(size, out, tap, stride, pad, dilation):
    """(first output, count, first input) along one axis: the outputs o whose tap reads an input pixel
    i = o*stride - pad + tap*dilation inside [0, size), and the first such i (count 0 when none does)."""
    shift = tap * dilation - pad
    first = max(0, -(shift // stride))  # the least o with o*stride + shift >= 0
    last = min(out - 1, (size - 1 - shift) // stride)
    return first, max(0, last - first + 1), first * stride + shift


def _regions(x_shape, kernel_size, stride, padding, dilation, out_size):
    """For each live tap (i, j): (i, j, output slices (rows, cols), input slices (rows, cols))."""
    h, w = x_shape[2:]
    for i in range(kernel_size[0]):
        oy, ny, iy = _span(h, out_size[0], i, stride[0], padding[0], dilation[0])
        for j in range(kernel_size[1]):
            ox, nx, ix = _span(w, out_size[1], j, stride[1], padding[1], dilation[1])
            if ny and nx:
                yield i, j, (slice(oy, oy + ny), slice(ox, ox + nx)), \
                    (slice(iy, iy + stride[0] * (ny - 1) + 1, stride[0]), slice(ix, ix + stride[1] * (nx - 1) + 1,
                                                                                stride[1]))


def forward(x, weight, stride, padding, dilation, groups, out_size):
    """x (N, C, H, W), weight (F, C/groups, kh, kw) -> out (N, F, out_h, out_w), C-contiguous."""
    xp = backend.get_array_module(x)
    n = x.shape[0]
    f, c_group, kh, kw = weight.shape
    f_group = f // groups
    out = xp.zeros((n, f) + tuple(out_size), dtype=x.dtype)
    for i, j, (out_rows, out_cols), (in_rows, in_cols) in _regions(x.shape, (kh, kw), stride, padding, dilation,
                                                                     out_size):
        for g in range(groups):
            channels, filters = slice(g * c_group, (g + 1) * c_group), slice(g * f_group, (g + 1) * f_group)
            window = x[:, channels, in_rows, in_cols]  # (N, C/G, ny, nx)
            product = weight[filters, :, i, j] @ window.reshape(n, c_group, -1)  # (N, F/G, ny*nx)
            out[:, filters, out_rows, out_cols] += product.reshape((n, f_group) + window.shape[2:])
    return out


def backward_input(grad_output, weight, x_shape, stride, padding, dilation, groups):
    """grad_output (N, F, out_h, out_w), weight -> grad_input (N, C, H, W), C-contiguous."""
    xp = backend.get_array_module(grad_output)
    n = grad_output.shape[0]
    f, c_group, kh, kw = weight.shape
    f_group = f // groups
    grad_x = xp.zeros(x_shape, dtype=grad_output.dtype)
    for i, j, (out_rows, out_cols), (in_rows, in_cols) in _regions(x_shape, (kh, kw), stride, padding, dilation,
                                                                     grad_output.shape[2:]):
        for g in range(groups):
            channels, filters = slice(g * c_group, (g + 1) * c_group), slice(g * f_group, (g + 1) * f_group)
            grad = grad_output[:, filters, out_rows, out_cols]  # (N, F/G, ny, nx)
            product = weight[filters, :, i, j].T @ grad.reshape(n, f_group, -1)  # (N, C/G, ny*nx)
            grad_x[:, channels, in_rows, in_cols] += product.reshape((n, c_group) + grad.shape[2:])
    return grad_x


def backward_weight(grad_output, x, weight_shape, stride, padding, dilation, groups):
    """grad_output (N, F, out_h, out_w), x (N, C, H, W) -> grad_weight (F, C/groups, kh, kw), C-contiguous."""
    xp = backend.get_array_module(grad_output)
    f, c_group, kh, kw = weight_shape
    f_group = f // groups
    grad_weight = xp.zeros(weight_shape, dtype=grad_output.dtype)
    for i, j, (out_rows, out_cols), (in_rows, in_cols) in _regions(x.shape, (kh, kw), stride, padding, dilation,
                                                                     grad_output.shape[2:]):
        for g in range(groups):
            channels, filters = slice(g * c_group, (g + 1) * c_group), slice(g * f_group, (g + 1) * f_group)
            grad = grad_output[:, filters, out_rows, out_cols].transpose(1, 0, 2, 3).reshape(f_group, -1)
            window = x[:, channels, in_rows, in_cols].transpose(1, 0, 2, 3).reshape(c_group, -1)
            grad_weight[filters, :, i, j] = grad @ window.T  # summed over the batch and the tap's outputs
    return grad_weight

