"""Inference: every network in eval mode under no_grad at its native resolution, at its batch and at batch 1.

The networks are untrained; their BatchNorm statistics are calibrated on the input first (`calibrated`). Ours runs
the network as a user would (``model.eval()``, ``with ti.no_grad():``): BatchNorm folded into the
convolutions' output pass, nothing recorded. PyTorch runs the same network with the same weights
(`benchmarks.torch_mirror`, recorded once in eval mode) under ``torch.no_grad()`` in each of its CPU modes
(`benchmarks.torch_modes`: eager, channels_last, torch.compile), all timed in alternating rounds in this process.
``--quick``: batch 1 of every network and the batched case of GoogLeNet only, fewer rounds. Then the peak memory
of each case (`benchmarks.memory.run_inference`, child processes), unless ``--torch-modes`` leaves out eager.
"""
import numpy as np

import tinyinception as ti
from benchmarks.common import Result, load_average, torch_or_none
from benchmarks.networks import forward_flops
from benchmarks.torch_mirror import TorchProgram
from benchmarks.torch_modes import MODES, interleaved, mode_callable

# network: (builder keyword arguments, native input size, batch)
INFERENCE_CASES = {
    "googlenet": (dict(aux_logits=False), 224, 16),
    "bn_inception": (dict(), 224, 16),
    "inception_v3": (dict(aux_logits=False), 299, 8),
    "inception_v4": (dict(), 299, 8),
    "inception_resnet_v2": (dict(), 299, 8),
    "inception_resnet_v1": (dict(), 160, 16),
}
QUICK_BATCHED = ("googlenet",)


def inference_cases(quick):
    """(network, builder arguments, size, batch) in the order they run: batched cases, then batch 1."""
    batched = [(name, kw, size, batch) for name, (kw, size, batch) in INFERENCE_CASES.items()
               if not quick or name in QUICK_BATCHED]
    return batched + [(name, kw, size, 1) for name, (kw, size, _) in INFERENCE_CASES.items()]


def calibrated(model, images):
    """``model`` in eval mode with every BatchNorm's running statistics set to the statistics of ``images`` (one
    training-mode pass with momentum 1). Freshly initialised statistics (mean 0, variance 1) let the activations of
    an untrained network grow layer after layer in eval mode (Inception-v3's logits reach ~1e12), which is nothing
    like a trained network's inference and can change the speed of either side; calibrated, they stay normalised."""
    norms = [m for m in model.modules() if isinstance(m, ti.nn.BatchNorm2d)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.momentum = 1.0
    model.train()
    with ti.no_grad():
        model(ti.Tensor(images))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    return model.eval()


def _ours(model, images):
    x = ti.Tensor(images)

    def forward():
        with ti.no_grad():
            return model(x)
    return forward


def _torch_body(torch):
    def body(run):
        def forward():
            with torch.no_grad():
                return run()
        return forward
    return body


def _torch_modes(torch, model, images, modes):
    """{mode: callable} and {mode: compile seconds or error text}."""
    x = ti.Tensor(images)
    callables, notes = {}, {}
    for mode in modes:
        try:
            program = TorchProgram.trace(lambda: model(x), torch)  # eval mode, recorded: BatchNorm as written
            if mode == "eager":
                program.check()
            callables[mode], compile_seconds = mode_callable(torch, program, mode, _torch_body(torch))
            if compile_seconds is not None:
                notes[mode] = f"compiled in {compile_seconds:.1f} s"
        except Exception as error:  # inductor may fail on a machine (compiler, memory): say why, go on
            notes[mode] = f"failed: {type(error).__name__}: {str(error).splitlines()[0][:160]}"
    return callables, notes


def run(quick=False, repeats=7, cases=None, modes=MODES):
    cases_filter = cases
    torch = torch_or_none()
    rounds = 3 if quick else max(3, repeats // 2)
    results = []
    for name, kwargs, size, batch in inference_cases(quick):
        label = f"{name} {batch}x3x{size}x{size}"
        if cases_filter and not any(c in label for c in cases_filter):
            continue
        ti.manual_seed(0)
        images = np.random.default_rng(0).standard_normal((batch, 3, size, size)).astype(np.float32)
        model = calibrated(ti.models.create(name, num_classes=1000, **kwargs), images)
        callables = {"numba": _ours(model, images)}
        notes = {}
        if torch is not None:
            modes_callables, notes = _torch_modes(torch, model, images, modes)
            callables.update({f"torch_{mode}": fn for mode, fn in modes_callables.items()})
        timed = interleaved(callables, rounds)
        result = Result("infer", label, "eval no_grad", flops=forward_flops(model(ti.Tensor(images))))
        for key, (median, low, high) in timed.items():
            implementation = "torch" if key == "torch_eager" else key
            result.seconds[implementation] = median
            result.extra[f"{implementation}_range"] = (low, high)
        result.extra["torch_notes"] = notes
        result.extra["load_average"] = load_average()
        result.extra["images_per_second"] = {k: batch / v for k, v in result.seconds.items()}
        results.append(result)
        print(f"  {label:36s} " + "  ".join(f"{k} {v * 1e3:8.1f} ms" for k, v in result.seconds.items())
              + (f"  vs best {result.ratio_to_best():.2f}" if result.ratio_to_best() else "")
              + "".join(f"  [{mode}: {note}]" for mode, note in notes.items())
              + f"  (load {result.extra['load_average']:.1f})", flush=True)
        del model, callables
    if "eager" in modes:
        from benchmarks.memory import run_inference
        results.extend(run_inference(quick, cases))
    return results
