"""Each network's forward pass (eval mode) and forward+backward (train mode) at batch 8 and small inputs.

Here and in PyTorch on the same weights and data (`benchmarks.torch_mirror` replays our recorded graph as PyTorch
eager code). Sizes: 64x64 for GoogLeNet and BN-Inception, 96x96 for the others (all run their full-size stems).
``--suite models`` also runs the memory suite (peak memory of each training step, in child processes).
"""

import tinyinception as ti
from benchmarks.common import Result, gemm_share, median_seconds, torch_or_none
from benchmarks.networks import TRAIN_CASES, build, forward_flops, loss_of, random_batch
from benchmarks.torch_mirror import TorchProgram

BATCH = 8


def _cases():
    """The training-step networks at their small sizes (the 299 case belongs to the train suite)."""
    return {label: case for label, case in TRAIN_CASES.items() if "@" not in label}


class _OurForward:
    def __init__(self, model, images):
        self.model, self.images = model, ti.Tensor(images)

    def __call__(self):
        with ti.no_grad():
            return self.model(self.images)


class _OurForwardBackward:
    def __init__(self, model, images, labels):
        self.model, self.images, self.labels = model, ti.Tensor(images), labels

    def __call__(self):
        self.model.zero_grad()
        loss = loss_of(self.model(self.images), self.labels)
        loss.backward()
        return loss


class _TorchForward:
    def __init__(self, torch, model, images):
        x = ti.Tensor(images)
        self.torch, self.program = torch, TorchProgram.trace(lambda: model(x), torch)

    def __call__(self):
        with self.torch.no_grad():
            return self.program.run()


class _TorchForwardBackward:
    def __init__(self, torch, model, images, labels):
        x = ti.Tensor(images)
        self.program = TorchProgram.trace(lambda: loss_of(model(x), labels), torch)

    def __call__(self):
        for p in self.program.parameters:
            p.grad = None
        (loss,) = self.program.run()
        loss.backward()
        return loss


def run(quick=False, repeats=7, cases=None):
    torch = torch_or_none()
    repeats = max(3, repeats // 2)
    batch = 4 if quick else BATCH
    results = []
    for label, (kwargs, _, size) in _cases().items():
        if cases and not any(c in label for c in cases):
            continue
        kwargs = dict(kwargs)
        model = build(kwargs.pop("name"), **kwargs)
        images, labels = random_batch(batch, size)
        for variant in ("forward", "forward+backward"):
            model.train(variant != "forward")
            if variant == "forward":
                ours = _OurForward(model, images)
                theirs = _TorchForward(torch, model, images) if torch is not None else None
            else:
                ours = _OurForwardBackward(model, images, labels)
                theirs = _TorchForwardBackward(torch, model, images, labels) if torch is not None else None
            model.train(variant != "forward")
            outputs = model(ti.Tensor(images))
            flops = forward_flops(*(outputs if isinstance(outputs, tuple) else (outputs,)))
            result = Result("models", f"{label} {batch}x3x{size}x{size}", variant,
                            flops=flops * (3 if variant != "forward" else 1))
            result.seconds["numba"] = median_seconds(ours, repeats, warmup=1)
            result.gemm_share = gemm_share(ours)
            if theirs is not None:
                result.seconds["torch"] = median_seconds(theirs, repeats, warmup=1)
            results.append(result)
            print(f"  {result.name:40s} {variant:17s} " + "  ".join(
                f"{k} {v * 1e3:9.1f} ms" for k, v in result.seconds.items()), flush=True)
    return results


