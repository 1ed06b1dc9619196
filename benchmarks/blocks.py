"""One block of every Inception kind, forward + backward in training mode, here and in PyTorch.

Each block is taken from its network (the first instance, e.g. GoogLeNet's inception (3a)) and fed a random
input of the shape it receives in the network at its native resolution, at batch 32 (8 with ``--quick``).
The PyTorch side replays the same block with the same weights (`benchmarks.torch_mirror`) in each of its CPU modes
(`benchmarks.torch_modes`), all timed in alternating rounds with ours.

Two more rows: inception (3a) as a user writes it from ti.nn layers (`benchmarks.user_blocks`), as written and
after ``ti.optimize``; their ``extra["vs_models_block"]`` is their time over the ti.models block's, measured in
the same alternating rounds.
"""
import copy

import numpy as np

import tinyinception as ti
from benchmarks.common import Result, gemm_share, native_layout, torch_or_none
from benchmarks.networks import BLOCK_CASES, block_input_shape, build, find_block, forward_flops
from benchmarks.torch_mirror import TorchProgram
from benchmarks.torch_modes import MODES, interleaved, mode_callable
from benchmarks.user_blocks import UserInception

_NETWORK_CACHE = {}


def _network(name):
    if name not in _NETWORK_CACHE:
        _NETWORK_CACHE.clear()  # keep one network alive at a time
        _NETWORK_CACHE[name] = build(name) if name != "inception_v3" else build(name, aux_logits=False)
    return _NETWORK_CACHE[name]


def _ours(block, x, grad):
    def run():
        out = block(x)
        out.backward(grad)
        x.grad = None
        for p in block.parameters():
            p.grad = None
    return run


def _torch_body(torch, program, grad):
    t_grad = torch.from_numpy(np.ascontiguousarray(grad))
    x = program.leaves_by_role["input"]

    def body(run):
        def step():
            (out,) = run()
            out.backward(t_grad)
            x.grad = None
            for p in program.parameters:
                p.grad = None
        return step
    return body


def _torch_modes(torch, block, x, grad, modes):
    """{"torch" (eager) / "torch_<mode>": callable}, {mode: compile time or why it failed}."""
    callables, notes = {}, {}
    for mode in modes:
        try:
            program = TorchProgram.trace(lambda: block(x), torch)
            if mode == "eager":
                program.check()
            program.leaves_by_role = {"input": program.leaves[id(x)]}
            fn, compile_seconds = mode_callable(torch, program, mode, _torch_body(torch, program, grad))
            callables["torch" if mode == "eager" else f"torch_{mode}"] = fn
            if compile_seconds is not None:
                notes[mode] = f"compiled in {compile_seconds:.1f} s"
        except Exception as error:  # inductor may fail on a machine: say why, go on
            notes[mode] = f"failed: {type(error).__name__}: {str(error).splitlines()[0][:160]}"
    return callables, notes


def _record(label, shape, flops, block, x, grad, timed, notes):
    result = Result("blocks", f"{label} {'x'.join(map(str, shape))}", "forward+backward", flops=flops)
    for key, (median, low, high) in timed.items():
        result.seconds[key] = median
        result.extra[f"{key}_range"] = (low, high)
    result.extra["torch_notes"] = notes
    result.gemm_share = gemm_share(_ours(block, x, grad))
    print(f"  {result.name:50s} " + "  ".join(f"{k} {v * 1e3:8.2f} ms" for k, v in result.seconds.items())
          + (f"  ratio {result.ratio():.2f}" if result.ratio() else "")
          + (f"  /best {result.ratio_to_best():.2f}" if result.ratio_to_best() else "")
          + "".join(f"  [{mode}: {note}]" for mode, note in notes.items()), flush=True)
    return result


def _user_block_rows(models_block, shape, repeats, quick):
    """Inception (3a) from ti.nn layers, as written and optimised, timed in rounds with the ti.models block."""
    rng = np.random.default_rng(0)
    x = ti.Tensor(native_layout(rng.standard_normal(shape).astype(np.float32)), requires_grad=True)
    ti.manual_seed(0)
    written = UserInception(shape[1]).train()
    optimized = ti.optimize(copy.deepcopy(written))
    out = models_block(x)
    grad = native_layout(rng.standard_normal(out.shape).astype(np.float32))
    flops = 3 * forward_flops(out)
    timed = interleaved({"models": _ours(models_block, x, grad), "written": _ours(written, x, grad),
                         "optimized": _ours(optimized, x, grad)}, rounds=3 if quick else max(3, repeats))
    rows = []
    for key, label, block in (("written", "inception (3a) from ti.nn, as written", written),
                              ("optimized", "inception (3a) from ti.nn, ti.optimize", optimized)):
        result = Result("blocks", f"{label} {'x'.join(map(str, shape))}", "forward+backward", flops=flops)
        result.seconds["numba"] = timed[key][0]
        result.extra["numba_range"] = timed[key][1:]
        result.extra["vs_models_block"] = timed[key][0] / timed["models"][0]
        result.extra["models_block_seconds"] = timed["models"][0]
        rows.append(result)
        print(f"  {result.name:50s} numba {timed[key][0] * 1e3:8.2f} ms  ti.models block "
              f"{timed['models'][0] * 1e3:8.2f} ms  ratio to it {result.extra['vs_models_block']:.2f}", flush=True)
    return rows


def run(quick=False, repeats=7, cases=None, modes=MODES):
    torch = torch_or_none()
    results = []
    for label, network, class_name, size, batch in BLOCK_CASES:
        if cases and not any(c in label for c in cases):
            continue
        batch = 8 if quick else batch
        try:
            model = _network(network)
            block = find_block(model, class_name)
            shape = (batch,) + tuple(block_input_shape(model, block, size)[1:])
        except Exception as error:  # a network still being written must not stop the suite
            print(f"  {label}: skipped ({type(error).__name__}: {error})", flush=True)
            continue
        rng = np.random.default_rng(0)
        # our input and output gradient in the layout our own layers produce (channel-major on the Numba
        # kernels), as inside a network; PyTorch gets the same values as ordinary NCHW tensors
        x = ti.Tensor(native_layout(rng.standard_normal(shape).astype(np.float32)), requires_grad=True)
        out = block(x)
        flops = 3 * forward_flops(out)
        grad = native_layout(rng.standard_normal(out.shape).astype(np.float32))
        callables, notes = {"numba": _ours(block, x, grad)}, {}
        if torch is not None:
            torch_callables, notes = _torch_modes(torch, block, x, grad, modes)
            callables.update(torch_callables)
        timed = interleaved(callables, rounds=3 if quick else max(3, repeats))
        results.append(_record(label, shape, flops, block, x, grad, timed, notes))
        if label == "GoogLeNet inception (3a)":
            results.extend(_user_block_rows(block, shape, repeats, quick))
    return results
