"""2-D convolution as matrix products: im2col + GEMM, and a plain GEMM for 1x1 stride-1 convolutions.

Shapes: x (N, C, H, W), weight (F, C/groups, kh, kw), bias (F,), out (N, F, out_h, out_w).
With G groups, channels split into G independent slices: cols (N, G, K, L) where K = C/G*kh*kw and
L = out_h*out_w, weight (G, F/G, K), and ``out = weight @ cols`` is one batched matrix product (N*G GEMMs),
already in NCHW order (no transpose).
"""
from ..autograd import Function
from .. import kernels
from ..profiler import section
from ._windows import check_nchw, output_size, pair


def _is_pointwise(kernel, stride, padding, dilation):
    return kernel == (1, 1) and stride == (1, 1) and padding == (0, 0)


class Conv2d(Function):
    def forward(self, x, weight, bias, stride, padding, dilation, groups):
        n, c, h, w = x.shape
        f, _, kh, kw = weight.shape
        self.geometry = dict(kernel_size=(kh, kw), stride=stride, padding=padding, dilation=dilation)
        self.out_size = output_size("conv2d", x.shape, (kh, kw), stride, padding, dilation)
        self.x_shape, self.groups = x.shape, groups
        self.pointwise = _is_pointwise((kh, kw), stride, padding, dilation)
        out_h, out_w = self.out_size
        if self.pointwise:  # a 1x1 convolution is a matrix product: no im2col at all
            cols = x.reshape(n, groups, c // groups, h * w)
        else:
            cols = kernels.im2col(x, **self.geometry, out_size=self.out_size)
            cols = cols.reshape(n, groups, -1, out_h * out_w)
        self.weight_matrix = weight.reshape(groups, f // groups, -1)  # (G, F/G, K)
        self.cols = cols if self.needs_input_grad[1] else None
        with section("gemm"):
            out = self.weight_matrix @ cols  # (N, G, F/G, L)
        out = out.reshape(n, f, out_h, out_w)
        if bias is not None:
            out += bias.reshape(1, f, 1, 1)
        return out

    def backward(self, grad_output):
        n, f = grad_output.shape[:2]
        grad = grad_output.reshape(n, self.groups, f // self.groups, -1)  # (N, G, F/G, L)
        grad_x = grad_weight = grad_bias = None
        if self.needs_input_grad[0]:
            with section("gemm"):
                grad_cols = self.weight_matrix.swapaxes(1, 2) @ grad  # (N, G, K, L)
            if self.pointwise:
                grad_x = grad_cols.reshape(self.x_shape)
            else:
                grad_cols = grad_cols.reshape(n, -1, grad.shape[-1])
                grad_x = kernels.col2im(grad_cols, self.x_shape, **self.geometry, out_size=self.out_size)
        if self.needs_input_grad[1]:
            with section("gemm"):
                grad_weight = grad[0] @ self.cols[0].swapaxes(1, 2)  # (G, F/G, K), summed over the batch
                for i in range(1, n):
                    grad_weight += grad[i] @ self.cols[i].swapaxes(1, 2)
            grad_weight = grad_weight.reshape(f, -1, *self.geometry["kernel_size"])
        if self.needs_input_grad[2]:
            grad_bias = grad_output.sum(axis=(0, 2, 3))
        return grad_x, grad_weight, grad_bias, None, None, None, None


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """``torch.nn.functional.conv2d``: input (N, C, H, W), weight (F, C/groups, kh, kw), bias (F,) or None.

    stride, padding, dilation: an int or a (H, W) pair, e.g. kernel (1, 7) with padding (0, 3).
    """
    check_nchw("conv2d", input)
    if weight.ndim != 4:
        raise ValueError(f"conv2d: weight must be 4-D (out_channels, in_channels/groups, kh, kw), got {weight.shape}")
    f, c_per_group = weight.shape[:2]
    if groups < 1 or f % groups:
        raise ValueError(f"conv2d: out_channels {f} must be divisible by groups {groups}")
    if input.shape[1] != c_per_group * groups:
        raise ValueError(f"conv2d: weight {weight.shape} with groups={groups} expects {c_per_group * groups} input "
                         f"channels, got input of shape {input.shape}")
    if bias is not None and tuple(bias.shape) != (f,):
        raise ValueError(f"conv2d: bias must have shape ({f},), got {bias.shape}")
    if input.dtype != weight.dtype:
        raise TypeError(f"conv2d: input dtype {input.dtype} and weight dtype {weight.dtype} differ")
    stride, padding, dilation = pair(stride, "stride", "conv2d"), pair(padding, "padding", "conv2d"), \
        pair(dilation, "dilation", "conv2d")
    if min(stride) < 1 or min(dilation) < 1 or min(padding) < 0:
        raise ValueError(f"conv2d: stride {stride} and dilation {dilation} must be >= 1, padding {padding} >= 0")
    return Conv2d.apply(input, weight, bias, stride, padding, dilation, groups)

