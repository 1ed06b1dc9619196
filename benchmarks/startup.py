"""How long a fresh process takes from ``import tinyinception`` to the end of its first training step.

Numba compiles each kernel the first time it runs and caches the machine code on disk (``cache=True``), so only
the first process after a change pays for compilation; every later one loads the cache. Each case runs a child
process twice in a row: the first may compile (it does after a fresh install or an edit), the second shows what
every later process pays (the issue's target: within 3 s of import). The child is a fresh interpreter, so the time
of ``import tinyinception`` itself (NumPy, Numba and the package) is reported too.
"""
from benchmarks.common import Result, run_child

CASES = {"googlenet": ("googlenet", 16, 64), "inception_v3": ("inception_v3", 16, 96)}


_CHILD = """
import json, sys, time
started = time.perf_counter()
import tinyinception
imported = time.perf_counter()
from benchmarks.startup import first_step
first_step(sys.argv[1])
print(json.dumps({"import_s": imported - started, "first_step_s": time.perf_counter() - imported}))
"""


def first_step(name):
    """Build the case's network and batch and run one training step (zero_grad, forward, backward, SGD)."""
    from benchmarks.networks import OurStep, build, random_batch
    network, batch, size = CASES[name]
    model = build(network, **({"aux_logits": False} if network == "inception_v3" else {}))
    OurStep(model, *random_batch(batch, size))()


def _measure(name):
    return run_child(["-c", _CHILD, name])


def run(quick=False, repeats=7, cases=None):
    results = []
    for name in CASES:
        if cases and not any(c in name for c in cases):
            continue
        network, batch, size = CASES[name]
        result = Result("startup", f"{network} {batch}x3x{size}x{size}", "import -> first step done")
        first = _measure(name)  # may compile
        second = _measure(name)  # loads the cache
        result.seconds["numba"] = second["first_step_s"]
        result.extra.update(first_process_s=first["first_step_s"], import_s=second["import_s"])
        results.append(result)
        print(f"  {result.name:44s} import {second['import_s']:5.2f} s, then first step done after: "
              f"{first['first_step_s']:6.2f} s in the first process (may compile), {second['first_step_s']:6.2f} s "
              f"in the second", flush=True)
    return results
