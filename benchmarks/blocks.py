"""One block of every Inception kind, forward + backward in training mode, here and in PyTorch.

Each block is taken from its network (the first instance, e.g. GoogLeNet's inception (3a)) and fed a random
input of the shape it receives in the network at its native resolution, at batch 32 (8 with ``--quick``).
The PyTorch side replays the same block with the same weights (`benchmarks.torch_mirror`).
"""
import numpy as np

import tinyinception as ti
from benchmarks.common import Result, gemm_share, median_seconds, native_layout, torch_or_none
from benchmarks.networks import BLOCK_CASES, block_input_shape, build, find_block, forward_flops
from benchmarks.torch_mirror import TorchProgram

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


def _theirs(torch, program, grad):
    t_grad = torch.from_numpy(np.ascontiguousarray(grad))
    x = program.leaves_by_role["input"]

    def run():
        (out,) = program.run()
        out.backward(t_grad)
        x.grad = None
        for p in program.parameters:
            p.grad = None
    return run


def run(quick=False, repeats=7, cases=None):
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
        result = Result("blocks", f"{label} {'x'.join(map(str, shape))}", "forward+backward", flops=flops)
        result.seconds["numba"] = median_seconds(_ours(block, x, grad), repeats)
        result.gemm_share = gemm_share(_ours(block, x, grad))
        if torch is not None:
            program = TorchProgram.trace(lambda: block(x), torch)
            program.check()
            program.leaves_by_role = {"input": program.leaves[id(x)]}
            result.seconds["torch"] = median_seconds(_theirs(torch, program, grad), repeats)
        results.append(result)
        print(f"  {result.name:50s} " + "  ".join(f"{k} {v * 1e3:8.2f} ms" for k, v in result.seconds.items())
              + (f"  ratio {result.ratio():.2f}" if result.ratio() else ""), flush=True)
    return results
