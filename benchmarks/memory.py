"""Peak memory of each training step, here and in PyTorch, each measured in a child process of its own.

The child imports everything (NumPy, Numba, torch, tinyinception), notes its resident memory (the import cost),
builds the network and the batch, runs one warm-up step, resets the kernel's high-water mark
(``/proc/self/clear_refs``), runs two more steps and reports the high-water mark minus the import cost: weights,
gradients, optimizer state and the step's activations and temporaries. The PyTorch child records our graph to
build its program (`benchmarks.torch_mirror`), drops our network and hands the freed heap back to the system
(``malloc_trim``) before its warm-up step.
Linux only (it reads /proc).
"""
import ctypes
import ctypes.util
import gc
import json
import os
import sys

from benchmarks.common import Result, run_child
from benchmarks.networks import TRAIN_CASES


def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"memory: {field} not found in /proc/self/status")


def _release_freed_memory():
    """Hand the heap's free blocks back to the system (glibc's ``malloc_trim``): the PyTorch child recorded our
    graph to build its program, and tinyinception keeps freed memory for reuse (`tinyinception.allocator`), so
    without this the recording's freed arrays would count in PyTorch's peak."""
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to release
        pass


def _child(label, implementation, quick):
    import numpy  # noqa: F401
    import torch
    import tinyinception as ti  # noqa: F401
    from benchmarks.networks import OurStep, TorchStep, build, random_batch
    import_kib = _status_kib("VmRSS")
    kwargs, batch, size = TRAIN_CASES[label]
    kwargs = dict(kwargs)
    batch = max(2, batch // 2) if quick else batch
    model = build(kwargs.pop("name"), **kwargs)
    images, labels = random_batch(batch, size)
    if implementation == "torch":
        torch.set_num_threads(int(os.environ.get("TINYINCEPTION_BENCH_THREADS", 0)) or os.cpu_count() or 1)
        step = TorchStep(torch, model, images, labels)
        del model
        gc.collect()
        _release_freed_memory()
    else:
        step = OurStep(model, images, labels)
    step()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak resident set size (VmHWM) to the current one
    step()
    step()
    return {"peak_mib": (_status_kib("VmHWM") - import_kib) / 1024, "import_mib": import_kib / 1024}


def _inference_child(label, implementation):
    """Peak memory of inference (eval, no_grad) for the inference suite's case ``label`` ("googlenet 16"):
    ``numba`` (ours), ``torch`` (eager) or ``torch_channels_last``."""
    import numpy as np
    import torch
    import tinyinception as ti
    from benchmarks.inference import INFERENCE_CASES, calibrated
    from benchmarks.torch_mirror import TorchProgram
    from benchmarks.torch_modes import to_channels_last
    import_kib = _status_kib("VmRSS")
    name, batch = label.split()
    kwargs, size, _ = INFERENCE_CASES[name]
    images = np.random.default_rng(0).standard_normal((int(batch), 3, size, size)).astype(np.float32)
    model = calibrated(ti.models.create(name, num_classes=1000, **kwargs), images)
    x = ti.Tensor(images)
    if implementation.startswith("torch"):
        torch.set_num_threads(int(os.environ.get("TINYINCEPTION_BENCH_THREADS", 0)) or os.cpu_count() or 1)
        program = TorchProgram.trace(lambda: model(x), torch)
        if implementation == "torch_channels_last":
            to_channels_last(torch, program)
        del model
        gc.collect()
        _release_freed_memory()

        def forward():
            with torch.no_grad():
                return program.run()
    else:
        def forward():
            with ti.no_grad():
                return model(x)
    forward()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    forward()
    forward()
    return {"peak_mib": (_status_kib("VmHWM") - import_kib) / 1024, "import_mib": import_kib / 1024}


def run_inference(quick=False, cases=None):
    """Peak memory above imports of each inference case, ours against PyTorch eager and channels_last (compile is
    left out: its peak holds the compiler's own memory)."""
    from benchmarks.inference import inference_cases
    results = []
    for name, _, size, batch in inference_cases(quick):
        label = f"{name} {batch}"
        if cases and not any(c in f"{name} {batch}x3x{size}x{size}" for c in cases):
            continue
        result = Result("memory", f"inference {name} {batch}x3x{size}x{size}", "peak MiB (eval)")
        try:
            for implementation in ("numba", "torch", "torch_channels_last"):
                measured = run_child(["-m", "benchmarks.memory", "--inference-child", label, implementation])
                result.extra[implementation + "_peak_mib"] = measured["peak_mib"]
        except Exception as error:
            print(f"  {label}: skipped ({type(error).__name__}: {error})", flush=True)
            continue
        ours = result.extra["numba_peak_mib"]
        best = min(result.extra["torch_peak_mib"], result.extra["torch_channels_last_peak_mib"])
        result.extra["torch_peak_mib"], result.extra["torch_eager_peak_mib"] = best, result.extra["torch_peak_mib"]
        result.extra["memory_ratio"] = ours / best
        results.append(result)
        print(f"  {result.name:44s} peak above imports: ours {ours:8.1f} MiB  PyTorch eager "
              f"{result.extra['torch_eager_peak_mib']:8.1f}, channels_last "
              f"{result.extra['torch_channels_last_peak_mib']:8.1f} MiB  ratio to the lower {ours / best:.2f}",
              flush=True)
    return results


def _measure(label, implementation, quick):
    return run_child(["-m", "benchmarks.memory", "--child", label, implementation] + (["--quick"] if quick else []))


def run(quick=False, repeats=7, cases=None):
    results = []
    for label in TRAIN_CASES:
        if cases and not any(c in label for c in cases):
            continue
        result = Result("memory", label, "peak MiB (step)")
        try:
            for implementation in ("numba", "torch"):
                measured = _measure(label, implementation, quick)
                result.extra[implementation + "_peak_mib"] = measured["peak_mib"]
                result.extra["import_mib"] = measured["import_mib"]
        except Exception as error:
            print(f"  {label}: skipped ({type(error).__name__}: {error})", flush=True)
            continue
        ours, theirs = result.extra["numba_peak_mib"], result.extra["torch_peak_mib"]
        result.extra["memory_ratio"] = ours / theirs
        results.append(result)
        print(f"  {label:28s} peak above imports: ours {ours:8.1f} MiB  PyTorch {theirs:8.1f} MiB  "
              f"ratio {ours / theirs:.2f}", flush=True)
    return results


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "--inference-child":
        print(json.dumps(_inference_child(sys.argv[2], sys.argv[3])))
    elif len(sys.argv) >= 4 and sys.argv[1] == "--child":
        print(json.dumps(_child(sys.argv[2], sys.argv[3], "--quick" in sys.argv)))
