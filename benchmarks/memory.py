"""Peak memory of each training step, here and in PyTorch, each measured in a child process of its own.

The child imports everything (NumPy, Numba, torch, tinyinception), notes its resident memory (the import cost),
builds the network and the batch, runs one warm-up step, resets the kernel's high-water mark
(``/proc/self/clear_refs``), runs two more steps and reports the high-water mark minus the import cost: weights,
gradients, optimizer state and the step's activations and temporaries. The PyTorch child records our graph to
build its program (`benchmarks.torch_mirror`) and drops our network before its warm-up step.
Linux only (it reads /proc).
"""
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
    else:
        step = OurStep(model, images, labels)
    step()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak resident set size (VmHWM) to the current one
    step()
    step()
    return {"peak_mib": (_status_kib("VmHWM") - import_kib) / 1024, "import_mib": import_kib / 1024}


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
    if len(sys.argv) >= 4 and sys.argv[1] == "--child":
        print(json.dumps(_child(sys.argv[2], sys.argv[3], "--quick" in sys.argv)))
