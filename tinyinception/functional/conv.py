"""2-D convolution as matrix products: im2col + GEMM, and a plain GEMM for 1x1 stride-1 convolutions.

Shapes: x (N, C, H, W), weight (F, C/groups, kh, kw), bias (F,), out (N, F, out_h, out_w).

Two ways to lay the products out, with the same result:

* per image (the reference, used by the NumPy and CuPy kernels and for groups > 1): with G groups, channels
  split into G independent slices: cols (N, G, K, L) where K = C/G*kh*kw and L = out_h*out_w, weight
  (G, F/G, K), and ``out = weight @ cols`` is one batched matrix product (N*G GEMMs), already in NCHW order.
* channel-major (the Numba kernels, groups == 1; see `tinyinception.kernels.layout`): cols (K, N*L) and
  ``out = weight (F, K) @ cols`` is ONE large GEMM whose (F, N*L) result is the output laid out channel-major,
  so no transpose is ever needed and the next layer reads it as it is. Backward is two more large GEMMs:
  ``grad_weight = grad (F, N*L) @ cols.T`` and ``grad_cols = weight.T @ grad``.

A 1x1 stride-1 convolution needs no im2col at all: its cols are the input itself. Nor, on the channel-major
path, does a k x k convolution: it is a sum of kh*kw shifted 1x1 products that BLAS accumulates in place
(`tinyinception.kernels.shifted_conv` for stride 1, `tinyinception.kernels.strided_conv` for stride 2 and more,
via phase images); im2col remains for groups, inputs with few channels and where no direct BLAS is found.
The columns of a kxk convolution are not kept for backward (they are 9x the input for a 3x3); backward
unfolds the saved input again, which costs a fraction of the products and keeps memory near PyTorch's.
"""
import operator

from ..autograd import Function
from .. import backend, kernels
from ..kernels import (blas, chunked_im2col, direct_conv, layout, shifted_conv, strided_conv, threaded_blas, winograd,
                       workspace)
from ..kernels._checks import all_finite
from ..profiler import section
from ._windows import check_nchw, output_size, pair


def _is_pointwise(kernel, stride, padding, dilation):
    return kernel == (1, 1) and stride == (1, 1) and padding == (0, 0)


def tap_products(channels, kernel_size, stride, padding, dilation, groups):
    """The kernels module that computes this convolution as a sum of shifted per-tap products (`shifted_conv` for
    stride 1, `strided_conv` for larger strides), or None when im2col (or, for 1x1, a plain GEMM) is used."""
    if groups != 1 or kernel_size == (1, 1):
        return None
    if shifted_conv.supports(kernel_size, stride, padding, dilation):
        return shifted_conv
    if strided_conv.supports(kernel_size, stride, channels):
        return strided_conv
    return None


def _uses_channel_major(x, groups):
    """The one-GEMM channel-major path: CPU arrays on the Numba kernels, without groups."""
    return groups == 1 and backend.kernels_for(x) == "numba"


def _products_for(x, weight_shape, stride, padding, dilation, groups, forward_only=False):
    """The kernels module that computes this call as shifted products: `tap_products`' choice, refined to `winograd`
    for a "same" 3x3 convolution where it pays (which needs the map size, and threaded_blas's compiled BLAS calls;
    with no backward to come: also a "valid" 3x3, and only with enough output pixels); None off the channel-major
    path or where no BLAS is bound (im2col, or a plain GEMM for 1x1, then)."""
    if not (_uses_channel_major(x, groups) and blas.available(x.dtype)):
        return None
    f, c, kh, kw = weight_shape
    products = tap_products(c, (kh, kw), stride, padding, dilation, groups)  # groups == 1 here
    if (products is shifted_conv
            and winograd.supports((kh, kw), stride, padding, dilation, c, f, x.shape[2:], forward_only=forward_only)
            and threaded_blas.available(x.dtype)
            and (not forward_only or winograd.pays_forward_only(x.shape[0] * x.shape[2] * x.shape[3],
                                                                  x.shape[2] * x.shape[3]))):
        return winograd
    return products


def _may_hold_non_finite_weights(out):
    """False when the weights that made ``out`` (N, F, H', W') by a fast path are certainly all finite: a NaN or inf
    weight of filter f makes EVERY output of f non-finite there (at each output its tap reads either an input value,
    inf * x, or a stored padding zero, 0 * inf = NaN; taps that read padding only are skipped, and skipped by the
    exact path too), so one output pixel per filter tells. O(F), where checking the weights themselves reads all of
    them at every call (Inception-ResNet-v2: 55M values, about 12 ms of a 110 ms pass at batch 1)."""
    if not out.size:
        return False
    probe = out[0, :, 0, 0]
    return not bool(backend.get_array_module(probe).isfinite(probe).all())


class Conv2d(Function):
    fresh_gradients = True  # every gradient is a new array (see Function)

    def forward(self, x, weight, bias, stride, padding, dilation, groups):
        f, _, kh, kw = weight.shape
        self.geometry = dict(kernel_size=(kh, kw), stride=stride, padding=padding, dilation=dilation)
        self.out_size = output_size("conv2d", x.shape, (kh, kw), stride, padding, dilation)
        self.x_shape, self.weight_shape, self.groups = x.shape, weight.shape, groups
        self.pointwise = _is_pointwise((kh, kw), stride, padding, dilation)
        self.channel_major = _uses_channel_major(x, groups)
        self.products = _products_for(x, weight.shape, stride, padding, dilation, groups,
                                      forward_only=not any(self.needs_input_grad))
        self.empty = x.shape[0] == 0  # an empty batch: an empty output, zero gradients (as PyTorch's)
        if self.empty:
            xp = backend.get_array_module(x)
            out = xp.zeros((0, f) + self.out_size, dtype=x.dtype)
            return out if bias is None else out + bias.reshape(1, f, 1, 1)
        self.exact = False
        if self.shifted:
            out = self._forward_shifted(x, weight)
        elif self.channel_major:
            out = self._forward_channel_major(x, weight)
        else:
            out = self._forward_per_image(x, weight)
        # a NaN or inf weight: tap by tap over the valid region, as the fast paths multiply it by padding zeros
        # (CPU arrays: on a GPU the check would wait for the device at every convolution)
        self.checked = backend.kernels_for(x) != "cupy"
        if self.checked and _may_hold_non_finite_weights(out) and not all_finite(weight):
            self.exact = True
            out = self._forward_exact(x, weight)
        if bias is not None:
            out += bias.reshape(1, f, 1, 1)
        return out

    @property
    def shifted(self):
        """True when this convolution runs as shifted per-tap products (`products` is the kernels module)."""
        return self.products is not None

    def backward(self, grad_output):
        if self.empty:
            xp = backend.get_array_module(grad_output)
            shapes = (self.x_shape, self.weight_shape, self.weight_shape[:1])
            return tuple(xp.zeros(shape, grad_output.dtype) if needed else None
                         for shape, needed in zip(shapes, self.needs_input_grad[:3])) + (None,) * 4
        if self.exact:
            grad_x, grad_weight = self._backward_exact(grad_output)
        elif self.shifted:
            grad_x, grad_weight = self._backward_shifted(grad_output)
        elif self.channel_major:
            grad_x, grad_weight = self._backward_channel_major(grad_output)
        else:
            grad_x, grad_weight = self._backward_per_image(grad_output)
        if (grad_weight is not None and self.checked and not (self.exact or self.pointwise)
                and not all_finite(grad_weight)):
            # the fast paths multiply the zeros around the output gradient (or the padding) by the input: with an
            # infinite input (or output gradient) that makes NaN of taps whose true gradient is finite
            grad_weight = self._exact_weight_gradient(grad_output, grad_weight)
        grad_bias = grad_output.sum(axis=(0, 2, 3)) if self.needs_input_grad[2] else None
        return grad_x, grad_weight, grad_bias, None, None, None, None

    # --- non-finite values: tap by tap over the valid region (`kernels.direct_conv`) ------------------------------
    def _forward_exact(self, x, weight):
        self.x, self.weight = (x if self.needs_input_grad[1] else None), weight
        out = direct_conv.forward(x, weight, **self._direct_geometry, out_size=self.out_size)
        return layout.from_channel_major(layout.channel_major(out)) if self.channel_major else out

    @property
    def _direct_geometry(self):
        geometry = self.geometry
        return dict(stride=geometry["stride"], padding=geometry["padding"], dilation=geometry["dilation"],
                    groups=self.groups)

    def _backward_exact(self, grad_output):
        grad_x = grad_weight = None
        if self.needs_input_grad[0]:
            grad_x = direct_conv.backward_input(grad_output, self.weight, self.x_shape, **self._direct_geometry)
            if self.channel_major:
                grad_x = layout.from_channel_major(layout.channel_major(grad_x))
        if self.needs_input_grad[1]:
            exact = direct_conv.backward_weight(grad_output, self.x, self.weight_shape, **self._direct_geometry)
            grad_weight = self._in_layout_of(self.weight, exact)
        return grad_x, grad_weight

    def _exact_weight_gradient(self, grad_output, fast):
        """The weight gradient by `direct_conv`, in the layout of the fast path's ``fast`` (tap-major or not)."""
        x = layout.from_channel_major(self.saved) if self.shifted else self.saved if self.channel_major else self.x
        return self._in_layout_of(fast, direct_conv.backward_weight(grad_output, x, self.weight_shape,
                                                                    **self._direct_geometry))

    @staticmethod
    def _in_layout_of(like, array):
        """``array`` copied into the memory layout of ``like`` (a tap-major weight stays tap-major)."""
        out = backend.get_array_module(like).empty_like(like)
        out[...] = array
        return out

    # --- channel-major k x k: a sum of shifted products, no im2col ---------------------------------------------
    def _forward_shifted(self, x, weight):
        x_cnhw = layout.channel_major(x)
        geometry = self.geometry
        self.grid = self.products.grid_geometry(x.shape, geometry["kernel_size"], geometry["stride"],
                                                geometry["padding"], geometry["dilation"])
        self.saved = x_cnhw if self.needs_input_grad[1] else None
        taps = shifted_conv.weight_taps(weight)  # (kh*kw, F, C): one matrix per tap, reused by backward
        self.taps = taps if self.needs_input_grad[0] else None
        return layout.from_channel_major(self.products.forward(x_cnhw, taps, self.grid))

    def _backward_shifted(self, grad_output):
        grad_cnhw = layout.channel_major(grad_output)
        # laid out once for both gradients (None where neither needs that layout: Winograd)
        grad_rows = self.products.grad_layout(grad_cnhw, self.grid, self.weight_shape, self.needs_input_grad[:2])
        grad_x = grad_weight = None
        if self.needs_input_grad[1]:
            grad_weight = self.products.backward_weight(grad_cnhw, self.saved, self.grid, self.weight_shape,
                                                        grad_rows)
        if self.needs_input_grad[0]:
            grad_x = layout.from_channel_major(
                self.products.backward_input(grad_cnhw, self.taps, self.grid, self.x_shape, grad_rows))
        return grad_x, grad_weight

    # --- channel-major: one GEMM for the whole batch -----------------------------------------------------------
    def _columns(self, x):
        """(K, N*L): the input itself for a 1x1 stride-1 convolution (a view when x is channel-major); else
        im2col's columns, written into a reusable scratch buffer (a temporary: never kept past this step)."""
        if self.pointwise:
            return layout.channel_rows(x)
        n, c = x.shape[:2]
        (kh, kw), (out_h, out_w) = self.geometry["kernel_size"], self.out_size
        cols = workspace.scratch("im2col_cols", (c * kh * kw, n * out_h * out_w), x.dtype)
        return kernels.im2col_channel_major(x, **self.geometry, out_size=self.out_size, out=cols)

    def _forward_channel_major(self, x, weight):
        n = x.shape[0]
        f = weight.shape[0]
        out_h, out_w = self.out_size
        self.weight_matrix = weight.reshape(f, -1)  # (F, K)
        if not self.pointwise and threaded_blas.available(x.dtype):
            # a kxk convolution here reads few channels (the stem): its columns are unfolded and multiplied chunk
            # by chunk, never whole (`kernels.chunked_im2col`); backward unfolds the saved x again
            self.saved = x if self.needs_input_grad[1] else None
            with section("gemm"):
                out_rows = chunked_im2col.forward(layout.channel_major(x), self.weight_matrix, **self.geometry,
                                                  out_size=self.out_size)
            return layout.from_channel_major(out_rows.reshape(f, n, out_h, out_w))
        cols = self._columns(x)
        # backward needs x for grad_weight: a 1x1 convolution keeps its cols (x itself), a kxk one keeps x
        self.saved = (cols if self.pointwise else x) if self.needs_input_grad[1] else None
        with section("gemm"):
            out_rows = threaded_blas.matmul(self.weight_matrix, cols)  # (F, N*L), channel-major
        return layout.from_channel_major(out_rows.reshape(f, n, out_h, out_w))

    def _backward_channel_major(self, grad_output):
        grad_rows = layout.channel_rows(grad_output)  # (F, N*L)
        grad_x = grad_weight = None
        if self.needs_input_grad[1]:
            cols = self.saved if self.pointwise else self._columns(self.saved)
            with section("gemm"):
                grad_weight = threaded_blas.matmul(grad_rows, cols.T).reshape(self.weight_shape)
            del cols
        if self.needs_input_grad[0]:
            grad_cols = workspace.scratch("col2im_cols", (self.weight_matrix.shape[1], grad_rows.shape[1]),
                                          grad_rows.dtype) if not self.pointwise else None
            with section("gemm"):
                grad_cols = threaded_blas.matmul(self.weight_matrix.T, grad_rows, out=grad_cols)  # (K, N*L)
            if self.pointwise:
                n, c, h, w = self.x_shape
                grad_x = layout.from_channel_major(grad_cols.reshape(c, n, h, w))
            else:
                grad_x = kernels.col2im_channel_major(grad_cols, self.x_shape, **self.geometry,
                                                      out_size=self.out_size, overwrite_cols=True)
        return grad_x, grad_weight

    # --- per image: the reference layout ----------------------------------------------------------------------
    def _forward_per_image(self, x, weight):
        n, c, h, w = x.shape
        f = weight.shape[0]
        groups = self.groups
        out_h, out_w = self.out_size
        if self.pointwise:  # a 1x1 convolution is a matrix product: no im2col at all
            cols = x.reshape(n, groups, c // groups, h * w)
        else:
            cols = kernels.im2col(x, **self.geometry, out_size=self.out_size)
            cols = cols.reshape(n, groups, -1, out_h * out_w)
        self.weight_matrix = weight.reshape(groups, f // groups, -1)  # (G, F/G, K)
        self.cols = cols if self.needs_input_grad[1] else None
        self.x = x if self.needs_input_grad[1] else None  # for an exact weight gradient (non-finite values)
        with section("gemm"):
            out = self.weight_matrix @ cols  # (N, G, F/G, L)
        return out.reshape(n, f, out_h, out_w)

    def _backward_per_image(self, grad_output):
        n, f = grad_output.shape[:2]
        grad = grad_output.reshape(n, self.groups, f // self.groups, -1)  # (N, G, F/G, L)
        grad_x = grad_weight = None
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
            grad_weight = grad_weight.reshape(self.weight_shape)
        return grad_x, grad_weight


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """``torch.nn.functional.conv2d``: input (N, C, H, W), weight (F, C/groups, kh, kw), bias (F,) or None.

    stride, padding, dilation: an int or a (H, W) pair, e.g. kernel (1, 7) with padding (0, 3).
    """
    check_nchw("conv2d", input)
    if weight.ndim != 4:
        raise ValueError(f"conv2d: weight must be 4-D (out_channels, in_channels/groups, kh, kw), got {weight.shape}")
    f, c_per_group = weight.shape[:2]
    groups = operator.index(groups)
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

