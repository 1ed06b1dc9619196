"""Peak memory of inference alone (``python -m benchmarks --suite inference_memory``): see
`benchmarks.memory.run_inference`. The inference suite runs it after its timings."""
from benchmarks.memory import run_inference


def run(quick=False, repeats=7, cases=None):
    return run_inference(quick, cases)
