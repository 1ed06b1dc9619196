"""Non-finite values (NaN, +inf, -inf, values near float32's max) propagate exactly as PyTorch's do, no further.

Every operation, and every kernel path of the convolution, runs on inputs with such values planted at a corner, an
interior and a last position, against PyTorch: NaN must appear exactly where PyTorch has NaN, each infinity with
its sign, finite values to the usual tolerance (`helpers.assert_close`), forward and every gradient.

Convolution padding never enters a product here (as in PyTorch's float32 oneDNN convolution): a NaN or infinite
weight reaches only the outputs whose window reads an input pixel with that tap. (PyTorch's fallback convolution,
which it takes for float64, for few channels per group and for padding wider than the kernel's reach, multiplies
padding zeros by the weight; the shapes below are ones where PyTorch takes oneDNN.)
"""
import numpy as np
import pytest

import tinyinception as ti
import tinyinception.functional as F
from helpers import assert_close, check_parity
from tinyinception.functional import conv as conv_module
from tinyinception.kernels import shifted_conv, strided_conv, winograd

torch = pytest.importorskip("torch")
TF = torch.nn.functional
pytestmark = [pytest.mark.torch, pytest.mark.filterwarnings("ignore::RuntimeWarning")]  # NumPy's "invalid value"

SPECIALS = {"nan": np.nan, "+inf": np.inf, "-inf": -np.inf}
HUGE = 3e38  # float32's max is 3.4028e38


def planted(shape, value, seed=0, low=-2.0, high=2.0, where=("first", "middle", "last")):
    """Uniform random float32 values with ``value`` at the first element, one in the middle and the last."""
    array = np.random.default_rng(seed).uniform(low, high, size=shape).astype(np.float32)
    flat = array.reshape(-1)
    positions = {"first": 0, "middle": flat.size // 2 + shape[-1] // 2, "last": flat.size - 1}
    for name in where:
        flat[positions[name]] = value
    return array


def uniform(shape, seed=1, low=-2.0, high=2.0):
    return np.random.default_rng(seed).uniform(low, high, size=shape).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------------
# Convolution: every path, on the Numba kernels and on the NumPy reference
# ---------------------------------------------------------------------------------------------------------------
CONV_PATHS = {
    # name: (x shape, weight shape, keyword arguments, the products module the Numba kernels take (None: im2col
    # or a plain GEMM))
    "winograd": ((2, 16, 8, 8), (32, 16, 3, 3), dict(padding=1), winograd),
    "winograd_large": ((2, 96, 6, 6), (128, 96, 3, 3), dict(padding=1), winograd),
    "shifted_3x3": ((2, 4, 8, 8), (8, 4, 3, 3), dict(padding=1), shifted_conv),
    "shifted_5x5": ((2, 4, 8, 8), (8, 4, 5, 5), dict(padding=2), shifted_conv),
    "shifted_dilated": ((2, 4, 8, 8), (4, 4, 3, 3), dict(padding=2, dilation=2), shifted_conv),
    "strided": ((2, 16, 9, 9), (8, 16, 3, 3), dict(stride=2, padding=1), strided_conv),
    "1x7": ((2, 4, 9, 9), (6, 4, 1, 7), dict(padding=(0, 3)), shifted_conv),
    "7x1": ((2, 4, 9, 9), (6, 4, 7, 1), dict(padding=(3, 0)), shifted_conv),
    "im2col": ((2, 4, 9, 9), (6, 4, 3, 3), dict(stride=2, padding=1), None),
    "im2col_groups": ((2, 32, 6, 6), (64, 16, 3, 3), dict(padding=1, groups=2), None),
    "pointwise": ((2, 4, 8, 8), (6, 4, 1, 1), {}, None),
    "valid": ((2, 4, 7, 7), (5, 4, 3, 3), {}, shifted_conv),
}


def _conv_parity(path, x, w, kernels, grad_outputs=None, **tolerance):
    x_shape, w_shape, kwargs, products = CONV_PATHS[path]
    if kernels == "numba":  # the case really runs the path it names
        chosen = conv_module._products_for(ti.Tensor(x).data, w_shape, *(conv_module.pair(kwargs.get(k, d), k, "t")
                                           for k, d in (("stride", 1), ("padding", 0), ("dilation", 1))),
                                           kwargs.get("groups", 1))
        assert chosen is products, f"{path}: the convolution took {chosen}, not {products}"
    with ti.using_kernels(kernels):
        check_parity(lambda a, b: F.conv2d(a, b, **kwargs), lambda a, b: TF.conv2d(a, b, **kwargs), [x, w],
                     grad_outputs=grad_outputs, **{"rtol": 1e-4, "atol": 1e-4, **tolerance})


@pytest.mark.parametrize("kernels", ["numba", "numpy"])
@pytest.mark.parametrize("value", list(SPECIALS))
@pytest.mark.parametrize("path", list(CONV_PATHS))
def test_conv2d_nonfinite_input(path, value, kernels):
    x_shape, w_shape = CONV_PATHS[path][:2]
    _conv_parity(path, planted(x_shape, SPECIALS[value]), uniform(w_shape), kernels)


@pytest.mark.parametrize("kernels", ["numba", "numpy"])
@pytest.mark.parametrize("value", list(SPECIALS))
@pytest.mark.parametrize("path", list(CONV_PATHS))
def test_conv2d_nonfinite_weight(path, value, kernels):
    x_shape, w_shape = CONV_PATHS[path][:2]
    _conv_parity(path, uniform(x_shape), planted(w_shape, SPECIALS[value]), kernels)


# forward-only, the paths of inference: Winograd only from 1,536 output pixels (the small cases above take the
# shifted products), a same and a valid 3x3 with pixels enough for it, the 3-channel stem (chunked im2col)
INFERENCE_PATHS = {**{name: case[:3] + (shifted_conv if case[3] is winograd else case[3],)
                      for name, case in CONV_PATHS.items()},
                   "winograd_batched": ((32, 16, 8, 8), (32, 16, 3, 3), dict(padding=1), winograd),
                   "valid_winograd": ((16, 16, 11, 9), (32, 16, 3, 3), {}, winograd),
                   "stem": ((2, 3, 16, 16), (8, 3, 7, 7), dict(stride=2, padding=3), None)}


@pytest.mark.parametrize("value", list(SPECIALS))
@pytest.mark.parametrize("path", list(INFERENCE_PATHS))
def test_conv2d_nonfinite_weight_in_inference(path, value):
    """Under no_grad a fast path runs first and a NaN or inf weight is recognised from the output (every output of
    its filter turns non-finite there), then the exact path gives PyTorch's answer; the weight planted at tap (0, 0)
    reads padding at the border outputs, where the fast paths make NaN of 0 * inf."""
    x_shape, w_shape, kwargs, products = INFERENCE_PATHS[path]
    x, w = uniform(x_shape), planted(w_shape, SPECIALS[value])
    with ti.using_kernels("numba"), ti.no_grad():
        geometry = [conv_module.pair(kwargs.get(k, d), k, "t") for k, d in (("stride", 1), ("padding", 0),
                                                                            ("dilation", 1))]
        chosen = conv_module._products_for(ti.Tensor(x).data, w_shape, *geometry, kwargs.get("groups", 1),
                                           forward_only=True)
        assert chosen is products, f"{path}: the convolution took {chosen}, not {products}"
        ours = F.conv2d(ti.Tensor(x), ti.Tensor(w), **kwargs).numpy()
    theirs = TF.conv2d(torch.from_numpy(x), torch.from_numpy(w), **kwargs).numpy()
    assert not np.isfinite(theirs).all()
    assert_close(ours, theirs, rtol=1e-4, atol=1e-4, what=path)


@pytest.mark.parametrize("kernels", ["numba", "numpy"])
@pytest.mark.parametrize("value", list(SPECIALS))
@pytest.mark.parametrize("path", [p for p in CONV_PATHS if p != "shifted_dilated"])
def test_conv2d_nonfinite_output_gradient(path, value, kernels):
    """(Not dilated: PyTorch's dilated weight gradient multiplies the padding by the output gradient.)"""
    x_shape, w_shape, kwargs = CONV_PATHS[path][:3]
    out_shape = TF.conv2d(torch.zeros(x_shape), torch.zeros(w_shape), **kwargs).shape
    _conv_parity(path, uniform(x_shape, seed=2), uniform(w_shape), kernels,
                 grad_outputs=[planted(tuple(out_shape), SPECIALS[value], seed=3)])


@pytest.mark.parametrize("kernels", ["numba", "numpy"])
@pytest.mark.parametrize("path", list(CONV_PATHS))
def test_conv2d_inputs_near_float32_max_overflow_to_inf(path, kernels):
    """Every product of x in [2e38, 3e38] with w in [1, 2] is already beyond float32's max: each output is +inf in
    any order of summation (Winograd's transforms made NaN of it: inf - inf); with a positive output gradient so is
    every tap of the weight gradient."""
    x_shape, w_shape, kwargs = CONV_PATHS[path][:3]
    out_shape = tuple(TF.conv2d(torch.zeros(x_shape), torch.zeros(w_shape), **kwargs).shape)
    _conv_parity(path, uniform(x_shape, low=2e38, high=HUGE), uniform(w_shape, low=1.0, high=2.0), kernels,
                 grad_outputs=[uniform(out_shape, low=0.5, high=1.0)])


@pytest.mark.parametrize("kernels", ["numba", "numpy"])
@pytest.mark.parametrize("path", ["winograd", "shifted_3x3", "strided", "1x7", "im2col"])
def test_conv2d_one_pixel_near_float32_max(path, kernels):
    """One input pixel of 3e38 and positive weights of at least 1.5: the outputs that read it are +inf whatever the
    order, every other output finite and to tolerance (the forward only: its gradients are sums of random-signed
    terms near the overflow threshold, where the order of summation decides)."""
    x_shape, w_shape, kwargs = CONV_PATHS[path][:3]
    x = uniform(x_shape, seed=4)
    x[1, 3, 4, 4] = HUGE
    with ti.using_kernels(kernels):
        check_parity(lambda a, b: F.conv2d(a, b, **kwargs), lambda a, b: TF.conv2d(a, b, **kwargs),
                     [x, uniform(w_shape, low=1.5, high=2.0)], rtol=1e-4, atol=1e-3, backward=False)


def test_winograd_forward_with_an_inf_pixel_is_inf_not_nan():
    """The case as first seen: one inf pixel, Winograd's tiles turned inf - inf into NaN around it."""
    x = uniform((1, 16, 6, 6))
    x[0, 0, 2, 2] = np.inf
    w = uniform((32, 16, 3, 3), low=0.5, high=1.0)
    ours = F.conv2d(ti.Tensor(x), ti.Tensor(w), padding=1).numpy()
    theirs = TF.conv2d(torch.tensor(x), torch.tensor(w), padding=1).numpy()
    assert not np.isnan(ours).any()
    np.testing.assert_array_equal(np.isinf(ours), np.isinf(theirs))


# ---------------------------------------------------------------------------------------------------------------
# Pools
# ---------------------------------------------------------------------------------------------------------------
POOLS = {
    "max_3x3_s2": (lambda m, x: m.max_pool2d(x, 3, 2)),
    "max_3x3_s1_p1": (lambda m, x: m.max_pool2d(x, 3, 1, 1)),
    "max_ceil": (lambda m, x: m.max_pool2d(x, 3, 2, ceil_mode=True)),
    "avg_3x3_s1_p1": (lambda m, x: m.avg_pool2d(x, 3, 1, 1)),
    "avg_exclude_pad": (lambda m, x: m.avg_pool2d(x, 3, 1, 1, count_include_pad=False)),
    "avg_ceil": (lambda m, x: m.avg_pool2d(x, 3, 2, ceil_mode=True)),
    "avg_5x5_s3": (lambda m, x: m.avg_pool2d(x, 5, 3)),
    "adaptive_4x4": (lambda m, x: m.adaptive_avg_pool2d(x, 4)),
    "adaptive_3x5": (lambda m, x: m.adaptive_avg_pool2d(x, (3, 5))),
    "global": (lambda m, x: m.adaptive_avg_pool2d(x, 1)),
}


@pytest.mark.parametrize("kernels", ["numba", "numpy"])
@pytest.mark.parametrize("value", list(SPECIALS) + ["huge"])
@pytest.mark.parametrize("pool", list(POOLS))
def test_pool_nonfinite(pool, value, kernels):
    special = HUGE if value == "huge" else SPECIALS[value]
    x = planted((2, 3, 14, 14), special, where=("first", "middle", "last"))
    with ti.using_kernels(kernels):
        check_parity(lambda a: POOLS[pool](F, a), lambda a: POOLS[pool](TF, a), [x], rtol=1e-4, atol=1e-4)


def test_adaptive_avg_pool_nan_reaches_only_its_windows():
    """The aux heads' 14 -> 4 pool: one NaN reaches the (overlapping) windows that hold it, not the whole plane."""
    x = uniform((1, 1, 14, 14))
    x[0, 0, 0, 0] = np.nan
    out = F.adaptive_avg_pool2d(ti.Tensor(x), 4).numpy()
    assert np.isnan(out[0, 0, 0, 0]) and np.isnan(out).sum() == 1


# ---------------------------------------------------------------------------------------------------------------
# Normalisation
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kernels", ["numba", "numpy"])
@pytest.mark.parametrize("value", list(SPECIALS) + ["huge"])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_nonfinite(training, relu, value, kernels):
    """Training statistics accumulate in float64 here: with values near float32's max, whose squares overflow
    float32 (PyTorch's variance is then inf and its output the bias), the reference is PyTorch in float64."""
    special = HUGE if value == "huge" else SPECIALS[value]
    c = 5
    x = planted((4, c, 3, 3), special, where=("first", "last"))  # channels 0 and 4; the others stay finite
    mean, var = uniform((c,), seed=2), uniform((c,), seed=3, low=0.5, high=2.0)
    ours_mean, ours_var = mean.copy(), var.copy()
    in_float64 = value == "huge" and training
    reference_dtype = torch.float64 if in_float64 else torch.float32
    theirs_mean, theirs_var = torch.tensor(mean, dtype=reference_dtype), torch.tensor(var, dtype=reference_dtype)
    op = F.batch_norm_relu if relu else F.batch_norm

    def reference(a, w, b):
        cast = (lambda t: t.double()) if in_float64 else (lambda t: t)
        y = TF.batch_norm(cast(a), theirs_mean, theirs_var, cast(w), cast(b), training=training)
        return (torch.relu(y) if relu else y).float()

    with ti.using_kernels(kernels):
        check_parity(lambda a, w, b: op(a, ours_mean, ours_var, w, b, training=training), reference,
                     [x, (c,), (c,)], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ours_mean, theirs_mean.float().numpy(), rtol=1e-5, atol=1e-6)  # NaN where torch's is
    np.testing.assert_allclose(ours_var, theirs_var.float().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("value", list(SPECIALS) + ["huge"])
@pytest.mark.parametrize("where", [("first",), ("middle",), ("first", "middle", "last")])
def test_local_response_norm_nonfinite(value, where):
    special = HUGE if value == "huge" else SPECIALS[value]
    x = planted((2, 8, 3, 3), special, where=where)
    check_parity(lambda a: F.local_response_norm(a, 5), lambda a: TF.local_response_norm(a, 5), [x],
                 rtol=1e-4, atol=1e-5)


def test_local_response_norm_keeps_its_precision_on_a_large_range():
    """Values over 9 orders of magnitude: the channel sums are as precise as PyTorch's (a running cumulative sum
    carried the large channels' rounding into the small ones: 1.2e-2 relative error)."""
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((2, 64, 3, 3)) * np.exp(rng.uniform(-10, 10, (2, 64, 3, 3)))).astype(np.float32)
    exact = TF.local_response_norm(torch.tensor(x, dtype=torch.float64), 5).numpy()
    ours = F.local_response_norm(ti.Tensor(x), 5).numpy()
    theirs = TF.local_response_norm(torch.tensor(x), 5).numpy()
    torch_error = np.max(np.abs(theirs - exact) / np.abs(exact))
    assert np.max(np.abs(ours - exact) / np.abs(exact)) <= max(4 * torch_error, 1e-6)


def test_local_response_norm_nan_reaches_only_its_channel_window():
    x = uniform((1, 16, 2, 2))
    x[0, 8, 1, 1] = np.nan
    out = F.local_response_norm(ti.Tensor(x), 5).numpy()
    assert np.isnan(out[0, :, 1, 1]).nonzero()[0].tolist() == [6, 7, 8, 9, 10]
    assert not np.isnan(out[0, :, 0]).any()


@pytest.mark.parametrize("value", list(SPECIALS))
def test_normalize_nonfinite(value):
    x = planted((3, 6), SPECIALS[value], where=("first",))
    check_parity(lambda a: F.normalize(a, dim=1), lambda a: TF.normalize(a, dim=1), [x], rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# Activations, elementwise, concat, residual, linear, reductions, losses, dropout in eval
# ---------------------------------------------------------------------------------------------------------------
UNARY = {
    "relu": (lambda a: F.relu(a), lambda a: torch.relu(a)),
    "sigmoid": (lambda a: F.sigmoid(a), lambda a: torch.sigmoid(a)),
    "tanh": (lambda a: F.tanh(a), lambda a: torch.tanh(a)),
    "softmax": (lambda a: F.softmax(a, dim=1), lambda a: torch.softmax(a, dim=1)),
    "log_softmax": (lambda a: F.log_softmax(a, dim=1), lambda a: torch.log_softmax(a, dim=1)),
    "dropout_eval": (lambda a: F.dropout(a, 0.5, training=False), lambda a: TF.dropout(a, 0.5, training=False)),
    "exp": (lambda a: a.exp(), lambda a: a.exp()),
    "neg": (lambda a: -a, lambda a: -a),
    "scale": (lambda a: a * 3.0, lambda a: a * 3.0),
    "sum": (lambda a: a.sum(dim=1), lambda a: a.sum(dim=1)),
    "mean": (lambda a: a.mean(dim=(2, 3)), lambda a: a.mean(dim=(2, 3))),
    "max": (lambda a: F.max(a, dim=1), lambda a: a.max(dim=1).values),  # the gradient to the first maximum
    "flatten": (lambda a: F.flatten(a, 1), lambda a: torch.flatten(a, 1)),
}


@pytest.mark.parametrize("kernels", ["numba", "numpy"])
@pytest.mark.parametrize("value", list(SPECIALS) + ["huge"])
@pytest.mark.parametrize("op", list(UNARY))
def test_unary_nonfinite(op, value, kernels):
    special = HUGE if value == "huge" else SPECIALS[value]
    ours, theirs = UNARY[op]
    with ti.using_kernels(kernels):
        check_parity(ours, theirs, [planted((2, 5, 3, 4), special)], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kernels", ["numba", "numpy"])
@pytest.mark.parametrize("value", list(SPECIALS))
def test_relu_in_place_nonfinite(value, kernels):
    with ti.using_kernels(kernels):
        check_parity(lambda a: F.relu(a * 1.0, inplace=True), lambda a: torch.relu_(a * 1.0),
                     [planted((2, 5, 3, 4), SPECIALS[value])])


BINARY = {
    "add": (lambda a, b: a + b, lambda a, b: a + b),
    "sub": (lambda a, b: a - b, lambda a, b: a - b),
    "mul": (lambda a, b: a * b, lambda a, b: a * b),
    "div": (lambda a, b: a / b, lambda a, b: a / b),
    "concat": (lambda a, b: F.concat([a, b], dim=1), lambda a, b: torch.cat([a, b], dim=1)),
    "residual": (lambda a, b: F.residual_add(a, b, 0.2), lambda a, b: a + 0.2 * b),
    "residual_relu": (lambda a, b: F.residual_add(a, b, 0.2, relu=True), lambda a, b: torch.relu(a + 0.2 * b)),
}


@pytest.mark.parametrize("value", list(SPECIALS) + ["huge"])
@pytest.mark.parametrize("op", list(BINARY))
def test_binary_nonfinite(op, value):
    special = HUGE if value == "huge" else SPECIALS[value]
    ours, theirs = BINARY[op]
    check_parity(ours, theirs, [planted((2, 3, 4, 4), special), planted((2, 3, 4, 4), -special, seed=5,
                                                                        where=("middle",))], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("value", list(SPECIALS) + ["huge"])
@pytest.mark.parametrize("operand", ["input", "weight"])
def test_linear_nonfinite(operand, value):
    special = HUGE if value == "huge" else SPECIALS[value]
    x, w = uniform((4, 6)), uniform((5, 6), seed=2)
    if operand == "input":
        x = planted((4, 6), special, where=("first",))
    else:
        w = planted((5, 6), special, where=("middle",))
    check_parity(lambda a, b, c: F.linear(a, b, c), lambda a, b, c: TF.linear(a, b, c), [x, w, uniform((5,), 3)],
                 rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("value", list(SPECIALS) + ["huge"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_cross_entropy_nonfinite(value, label_smoothing):
    special = HUGE if value == "huge" else SPECIALS[value]
    logits = planted((4, 5), special, where=("first",))
    target = np.array([0, 1, 4, 2])
    check_parity(lambda a, t: F.cross_entropy(a, t, label_smoothing=label_smoothing),
                 lambda a, t: TF.cross_entropy(a, t, label_smoothing=label_smoothing), [logits, target],
                 rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# The comparison itself can fail: a detached output, NaN in another place, an infinity of the other sign
# ---------------------------------------------------------------------------------------------------------------
def test_check_parity_fails_an_output_detached_from_its_inputs():
    with pytest.raises(AssertionError, match="output 0 does not require grad here"):
        check_parity(lambda a: ti.Tensor(a.data * 2), lambda a: a * 2, [(2, 3)])


def test_check_parity_fails_a_gradient_that_is_missing():
    with pytest.raises(AssertionError, match="gradient of input 1 .*None here"):
        check_parity(lambda a, b: a * 2 + ti.Tensor(b.data), lambda a, b: a * 2 + b, [(2, 3), (2, 3)])


@pytest.mark.parametrize("ours, theirs, message", [
    (np.nan, 1.0, "NaN mismatch"), (1.0, np.nan, "NaN mismatch"), (np.inf, -np.inf, "differs"),
    (np.inf, 3e38, "differs"), (-np.inf, np.nan, "NaN mismatch")])
def test_check_parity_compares_nonfinite_values_exactly(ours, theirs, message):
    """One output element set to ``ours`` here and ``theirs`` in torch: the comparison must fail."""
    keep = np.ones((2, 3), np.float32)
    keep[0, 1] = 0.0

    def constant(value):
        return np.where(keep > 0, np.float32(0), np.float32(value))

    with pytest.raises(AssertionError, match=message):
        check_parity(lambda a: a * ti.Tensor(keep) + ti.Tensor(constant(ours)),
                     lambda a: a * torch.tensor(keep) + torch.tensor(constant(theirs)), [uniform((2, 3))],
                     backward=False)
