"""Each network's training step (zero_grad, forward, loss, backward, SGD step), here and in PyTorch.

Batch 16 at 64x64 (GoogLeNet, BN-Inception) or 96x96 (the others), and Inception-v3 at 299 with its auxiliary
head at batch 4 (see `benchmarks.networks.TRAIN_CASES`); ``--quick`` halves the batches. PyTorch runs the same
network with the same weights and data (`benchmarks.torch_mirror`). ``images/s`` ratios are the inverse of the
time ratio printed in the table.
"""
import tinyinception as ti
from benchmarks.common import Result, gemm_share, median_seconds, torch_or_none
from benchmarks.networks import TRAIN_CASES, OurStep, TorchStep, build, forward_flops, loss_of, random_batch


def run(quick=False, repeats=7, cases=None):
    torch = torch_or_none()
    repeats = max(3, repeats // 2)  # whole networks: fewer, longer runs
    results = []
    for label, (kwargs, batch, size) in TRAIN_CASES.items():
        if cases and not any(c in label for c in cases):
            continue
        batch = max(2, batch // 2) if quick else batch
        kwargs = dict(kwargs)
        try:
            model = build(kwargs.pop("name"), **kwargs)
            images, labels = random_batch(batch, size)
            flops = 3 * forward_flops(loss_of(model(ti.Tensor(images)), labels))
            step = OurStep(model, images, labels)
        except Exception as error:  # a network still being written must not stop the suite
            print(f"  {label}: skipped ({type(error).__name__}: {error})", flush=True)
            continue
        result = Result("train", f"{label} {batch}x3x{size}x{size}", "train step", flops=flops)
        result.seconds["numba"] = median_seconds(step, repeats, warmup=1)
        result.gemm_share = gemm_share(step)
        if torch is not None:
            result.seconds["torch"] = median_seconds(TorchStep(torch, model, images, labels), repeats, warmup=1)
        result.extra["images_per_second"] = {k: batch / v for k, v in result.seconds.items()}
        results.append(result)
        print(f"  {result.name:44s} " + "  ".join(f"{k} {v * 1e3:9.1f} ms" for k, v in result.seconds.items())
              + (f"  speed vs PyTorch {1 / result.ratio():.2f}x" if result.ratio() else ""), flush=True)
    return results
