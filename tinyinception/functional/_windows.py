"""Window arithmetic shared by convolution and pooling: argument pairs and output sizes (PyTorch's rules)."""
import operator



def as_int(value):
    """``value`` as a Python int when it is any integer (``int``, ``np.int64``, a 0-d integer array), else None."""
    try:
        return operator.index(value)
    except TypeError:
        return None


def pair(value, name, op):
    """An int or a pair of ints (any integer type, NumPy's too) as ``(along H, along W)`` of Python ints."""
    single = as_int(value)
    if single is not None:
        return (single, single)
    try:
        value = tuple(int(v) for v in value)
    except TypeError:
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}") from None
    if len(value) != 2:
        raise ValueError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    return value


def output_length(size, kernel, stride, padding, dilation=1, ceil_mode=False):
    """Number of windows along one axis.

    floor((size + 2*padding - dilation*(kernel-1) - 1) / stride) + 1, or with ceil instead of floor in ceil_mode;
    in ceil_mode the last window is dropped if it would start beyond the input and its left padding
    (PyTorch's rule: an extra window is kept only if it starts inside the input or the left padding).
    """
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    if ceil_mode:
        out = -(-span // stride) + 1
        if (out - 1) * stride >= size + padding:
            out -= 1
    else:
        out = span // stride + 1
    return out


def output_size(op, x_shape, kernel_size, stride, padding, dilation=(1, 1), ceil_mode=False):
    """(out_h, out_w) for an NCHW input, or a ValueError naming the op when the window does not fit."""
    h, w = x_shape[-2:]
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    # PyTorch lets a ceil-mode pooling window overhang a small input (GoogLeNet at 15x15 pools 3x3 over 2x2);
    # everywhere else a window larger than the padded input is an error.
    if not ceil_mode and (dh * (kh - 1) + 1 > h + 2 * ph or dw * (kw - 1) + 1 > w + 2 * pw):
        raise ValueError(
            f"{op}: kernel size {(kh, kw)} (dilation {(dh, dw)}) is larger than the padded input "
            f"{(h + 2 * ph, w + 2 * pw)} (input {(h, w)}, padding {(ph, pw)})"
        )
    out_h = output_length(h, kh, sh, ph, dh, ceil_mode)
    out_w = output_length(w, kw, sw, pw, dw, ceil_mode)
    if out_h <= 0 or out_w <= 0:
        raise ValueError(f"{op}: output size {(out_h, out_w)} is not positive for input {(h, w)}")
    return out_h, out_w


def check_nchw(op, x):
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D input (N, C, H, W), got shape {x.shape}")
