"""Each network's training step (zero_grad, forward, loss, backward, SGD step), here and in PyTorch.

Batch 16 at 64x64 (GoogLeNet, BN-Inception) or 96x96 (the others), and Inception-v3 at 299 with its auxiliary
head at batch 4 (see `benchmarks.networks.TRAIN_CASES`); ``--quick`` halves the batches. PyTorch runs the same
network with the same weights and data (`benchmarks.torch_mirror`) in each of its CPU modes (`benchmarks.torch_modes`;
with torch.compile the optimizer step is compiled too), all timed in alternating rounds with ours. ``images/s``
ratios are the inverse of the time ratios printed in the table.
"""
import time

import tinyinception as ti
from benchmarks.common import Result, gemm_share, torch_or_none
from benchmarks.networks import TRAIN_CASES, OurStep, TorchStep, build, forward_flops, loss_of, random_batch
from benchmarks.torch_modes import MODES, interleaved, to_channels_last


def _torch_step(torch, model, images, labels, mode):
    """(step callable, compile seconds or None): PyTorch's training step in ``mode``."""
    step = TorchStep(torch, model, images, labels)
    if mode == "channels_last":
        to_channels_last(torch, step.program)
        return step, None
    if mode == "compile":
        step.program.run = torch.compile(step.program.run)
        step.optimizer.step = torch.compile(step.optimizer.step)
        start = time.perf_counter()
        step()  # compiles forward, backward and the optimizer step
        return step, time.perf_counter() - start
    return step, None


def run(quick=False, repeats=7, cases=None, modes=MODES):
    torch = torch_or_none()
    rounds = 3 if quick else max(3, repeats // 2)  # whole networks: fewer, longer runs
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
        callables, notes = {"numba": step}, {}
        for mode in (modes if torch is not None else ()):
            try:
                fn, compile_seconds = _torch_step(torch, model, images, labels, mode)
                callables["torch" if mode == "eager" else f"torch_{mode}"] = fn
                if compile_seconds is not None:
                    notes[mode] = f"compiled in {compile_seconds:.1f} s"
            except Exception as error:  # inductor may fail on a machine: say why, go on
                notes[mode] = f"failed: {type(error).__name__}: {str(error).splitlines()[0][:160]}"
        timed = interleaved(callables, rounds)
        result = Result("train", f"{label} {batch}x3x{size}x{size}", "train step", flops=flops)
        for key, (median, low, high) in timed.items():
            result.seconds[key] = median
            result.extra[f"{key}_range"] = (low, high)
        result.extra["torch_notes"] = notes
        result.gemm_share = gemm_share(step)
        result.extra["images_per_second"] = {k: batch / v for k, v in result.seconds.items()}
        results.append(result)
        print(f"  {result.name:44s} " + "  ".join(f"{k} {v * 1e3:9.1f} ms" for k, v in result.seconds.items())
              + (f"  speed vs PyTorch eager {1 / result.ratio():.2f}x" if result.ratio() else "")
              + (f", vs its best mode {1 / result.ratio_to_best():.2f}x" if result.ratio_to_best() else "")
              + "".join(f"  [{mode}: {note}]" for mode, note in notes.items()), flush=True)
    return results
