"""The Inception operations at Inception-sized shapes: here with Numba, here with NumPy, and PyTorch on the CPU.

Shapes come from the networks: GoogLeNet's inception (3a) (32x192x28x28) and its branches, Inception-v3's
17x17 grid (32x768x17x17 through 1x7 and 7x1 convolutions), pooling and BatchNorm at those sizes.
"""
import statistics

import numpy as np

import tinyinception as ti
import tinyinception.functional as F
from benchmarks.common import Result, gemm_share, median_seconds, native_layout, torch_or_none


def _conv(x_shape, w_shape, **kw):
    flops = 2 * np.prod(w_shape) * x_shape[0]
    return dict(shapes=[x_shape, w_shape], ours=lambda x, w: F.conv2d(x, w, **kw),
                theirs=lambda tF, x, w: tF.conv2d(x, w, **kw), flops_per_pixel=flops, kw=kw)


ROUNDS = 3  # see `run`


def _cases(batch):
    n = batch
    return {
        "conv 1x1 192->64 @28 (3a branch1)": _conv((n, 192, 28, 28), (64, 192, 1, 1)),
        "conv 1x1 192->96 @28 (3a 3x3 reduce)": _conv((n, 192, 28, 28), (96, 192, 1, 1)),
        "conv 3x3 96->128 @28 (3a branch2)": _conv((n, 96, 28, 28), (128, 96, 3, 3), padding=1),
        "conv 3x3 16->32 @28 (3a branch3)": _conv((n, 16, 28, 28), (32, 16, 3, 3), padding=1),
        "conv 1x7 128->128 @17 (v3 C)": _conv((n, 128, 17, 17), (128, 128, 1, 7), padding=(0, 3)),
        "conv 7x1 128->192 @17 (v3 C)": _conv((n, 128, 17, 17), (192, 128, 7, 1), padding=(3, 0)),
        "conv 1x1 768->192 @17 (v3 C)": _conv((n, 768, 17, 17), (192, 768, 1, 1)),
        "conv 3x3/2 288->384 @35 (v3 D)": _conv((n, 288, 35, 35), (384, 288, 3, 3), stride=2),
        "max_pool 3x3/1 p1 @28 (3a pool)": dict(
            shapes=[(n, 192, 28, 28)], ours=lambda x: F.max_pool2d(x, 3, 1, 1, ceil_mode=True),
            theirs=lambda tF, x: tF.max_pool2d(x, 3, 1, 1, ceil_mode=True)),
        "max_pool 3x3/2 ceil @56": dict(
            shapes=[(n, 64, 56, 56)], ours=lambda x: F.max_pool2d(x, 3, 2, ceil_mode=True),
            theirs=lambda tF, x: tF.max_pool2d(x, 3, 2, ceil_mode=True)),
        "avg_pool 3x3/1 p1 excl @17": dict(
            shapes=[(n, 768, 17, 17)], ours=lambda x: F.avg_pool2d(x, 3, 1, 1, count_include_pad=False),
            theirs=lambda tF, x: tF.avg_pool2d(x, 3, 1, 1, count_include_pad=False)),
        "batch_norm (train) @28": dict(
            shapes=[(n, 192, 28, 28), (192,), (192,)],
            ours=lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True, eps=1e-3),
            theirs=lambda tF, x, w, b: tF.batch_norm(x, None, None, w, b, training=True, eps=1e-3)),
        "batch_norm+relu (train) @28": dict(
            shapes=[(n, 192, 28, 28), (192,), (192,)],
            ours=lambda x, w, b: F.batch_norm_relu(x, None, None, w, b, training=True, eps=1e-3),
            theirs=lambda tF, x, w, b: tF.relu(tF.batch_norm(x, None, None, w, b, training=True, eps=1e-3))),
        "relu @28": dict(shapes=[(n, 192, 28, 28)], ours=lambda x: F.relu(x), theirs=lambda tF, x: tF.relu(x)),
        "concat 64+128+32+32 @28 (3a out)": dict(
            shapes=[(n, 64, 28, 28), (n, 128, 28, 28), (n, 32, 28, 28), (n, 32, 28, 28)],
            ours=lambda *xs: ti.cat(xs, 1), theirs=lambda tF, *xs: _torch().cat(xs, 1)),
        "local_response_norm 64 @56": dict(
            shapes=[(n, 64, 56, 56)], ours=lambda x: F.local_response_norm(x, 5),
            theirs=lambda tF, x: tF.local_response_norm(x, 5)),
        "adaptive_avg_pool 14->4 (aux)": dict(
            shapes=[(n, 512, 14, 14)], ours=lambda x: F.adaptive_avg_pool2d(x, 4),
            theirs=lambda tF, x: tF.adaptive_avg_pool2d(x, 4)),
    }


def _torch():
    import torch
    return torch


def _flops(case, out_shape):
    """2 * multiply-adds for convolutions (forward); backward is counted as twice the forward."""
    if "flops_per_pixel" not in case:
        return 0.0
    _, _, out_h, out_w = out_shape
    return float(case["flops_per_pixel"]) * out_h * out_w


def _run_ours(case, arrays, kernels, backward):
    # the first array is the op's input (the activation); the others (weights, statistics) keep their layout
    inputs = [ti.Tensor(native_layout(a, kernels) if i == 0 else a, requires_grad=backward)
              for i, a in enumerate(arrays)]

    grad = {}  # the output gradient, made once (its making is not part of the operation)

    def run():
        with ti.using_kernels(kernels):
            out = case["ours"](*inputs)
            if backward:
                if "ones" not in grad:
                    grad["ones"] = native_layout(np.ones(out.shape, out.dtype), kernels)
                out.backward(grad["ones"])
                for x in inputs:
                    x.grad = None
        return out

    return run



def run(quick=False, repeats=7, implementations=("numba", "numpy"), cases=None, rounds=ROUNDS):
    """Each case forward and forward+backward, here (each implementation) and in PyTorch. ``rounds``: our Numba
    path's series and PyTorch's alternate that many times and each time is the median of its rounds (these
    operations take a millisecond or less, and this shared machine's speed drifts over seconds: one round measured
    the 3x3 16->32 convolution at 0.82 ms, another minutes later at 1.25 ms while PyTorch's stayed at 0.54)."""
    selected = cases
    torch = torch_or_none()
    batch = 8 if quick else 32
    rng = np.random.default_rng(0)
    results = []
    for name, case in _cases(batch).items():
        if selected and not any(c in name for c in selected):
            continue
        arrays = [rng.standard_normal(s).astype(np.float32) for s in case["shapes"]]
        with ti.no_grad():
            out_shape = case["ours"](*[ti.Tensor(a) for a in arrays]).shape
        for backward in (False, True):
            variant = "forward+backward" if backward else "forward"
            result = Result("ops", name, variant, flops=_flops(case, out_shape) * (3 if backward else 1))
            runners = {kernels: _run_ours(case, arrays, kernels, backward) for kernels in implementations}
            if torch is not None:
                runners["torch"] = _torch_runner(torch, case, arrays, backward)
            series = {key: [] for key in runners}
            for round_ in range(1 if quick else rounds):
                for key, fn in runners.items():
                    if round_ == 0 or key in ("numba", "torch"):  # the NumPy reference path: one round is enough
                        series[key].append(_median_of(fn, repeats, backward, torch if key == "torch" else None))
            result.seconds = {key: statistics.median(times) for key, times in series.items()}
            result.gemm_share = gemm_share(runners["numba"]) if "numba" in runners else None
            results.append(result)
            print(f"  {name:44s} {variant:17s} " + "  ".join(f"{k} {v * 1e3:8.2f} ms" for k, v in
                                                               result.seconds.items()), flush=True)
    return results


def _median_of(fn, repeats, backward, torch=None):
    """median_seconds of ``fn``, under no_grad (ours or PyTorch's) for a forward-only case."""
    if backward:
        return median_seconds(fn, repeats)
    with (torch.no_grad() if torch is not None else ti.no_grad()):
        return median_seconds(fn, repeats)


def _torch_runner(torch, case, arrays, backward):
    t_inputs = [torch.tensor(a, requires_grad=backward) for a in arrays]
    t_grad = {}

    def t_run():
        out = case["theirs"](torch.nn.functional, *t_inputs)
        if backward:
            out.backward(t_grad.setdefault("ones", torch.ones_like(out)))
            for x in t_inputs:
                x.grad = None

    return t_run
