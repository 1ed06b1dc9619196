"""Write the golden files the parity tests read: tests/reference/golden/<network>.npz and keys/<network>.json.

NEEDS THE SIDE ENVIRONMENT with the PyTorch reference implementations (torchvision, timm, pretrainedmodels,
facenet-pytorch); it is not a test and is never run in CI:

    /work/shared/reference/make_env.sh ~/.cache/inception-reference
    ~/.cache/inception-reference/bin/python tests/reference/generate.py --out tests/reference

Deterministic: weights come from weights.deterministic_state_dict (by parameter name), inputs and loss
projections from weights.deterministic_input / deterministic_projection, every reference value is computed in
float64 (model.double()) and rounded once to float32, with a fixed torch thread count.
See tests/reference/README.md for what each file holds.
"""
import argparse
import copy
import json
import os
import sys
import types

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import weights  # noqa: E402

# torchvision's compiled operators need a CUDA build of torch; the model definitions do not. Registering an
# empty module under the name of the file that registers those operators lets `import torchvision` (and timm)
# work with the CPU build. (Same trick as /work/shared/reference/refmodels.py.)
sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))

import torch  # noqa: E402

REFERENCE_DIR = os.environ.get("INCEPTION_REFERENCE_DIR", "/work/shared/reference")
BATCH = 2
SEED = 0

# network: reference name, builder kwargs, golden input size, native size, hooked activations, aux heads.
# Activations named "<blob>@input_of:<module>" are the input of <module> (BN-Inception has no block modules:
# a block's concatenated output only exists as the input of the next layer; the Caffe blob name is kept).
NETWORKS = {
    "googlenet": dict(
        reference="torchvision.googlenet", kwargs=dict(transform_input=False), size=15, native=224,
        acts=["conv1", "inception3a", "inception4a", "inception5b"], aux=["aux1", "aux2"]),
    "bninception": dict(
        reference="pretrainedmodels.bninception", kwargs={}, size=223, native=224,
        acts=["inception_3a_output@input_of:inception_3b_1x1", "inception_3c_output@input_of:inception_4a_1x1",
              "inception_5b_output@input_of:global_pool"], aux=[]),
    "inception_v3": dict(
        reference="torchvision.inception_v3", kwargs=dict(transform_input=False), size=299, native=299,
        acts=["Mixed_5d", "Mixed_6e", "Mixed_7c"], aux=["AuxLogits"]),
    "inception_v4": dict(
        reference="timm.inception_v4", kwargs={}, size=75, native=299,
        acts=["features.3", "features.5", "features.10", "features.21"], aux=[]),
    "inception_resnet_v2": dict(
        reference="timm.inception_resnet_v2", kwargs={}, size=75, native=299,
        acts=["mixed_5b", "repeat", "repeat_1", "conv2d_7b"], aux=[]),
    "inception_resnet_v1": dict(
        reference="facenet.inception_resnet_v1", kwargs=dict(num_classes=1000), size=75, native=160,
        acts=["conv2d_4b", "repeat_1", "repeat_2", "block8"], aux=[]),
}
AUX_KEY = {"aux1": "aux1", "aux2": "aux2", "AuxLogits": "aux"}


def build_reference(network):
    """The reference model, its state_dict overwritten with the deterministic weights (strict load)."""
    sys.path.insert(0, REFERENCE_DIR)
    import refmodels
    spec = NETWORKS[network]
    model = refmodels.build(spec["reference"], seed=SEED + 12345, **spec["kwargs"])
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    state = weights.deterministic_state_dict(shapes, seed=SEED)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
    return model, state


def key_table(network, model):
    """The reference's state_dict: names in order with shape, dtype and kind, plus counts and BN/pool facts."""
    params = dict(model.named_parameters())
    entries = [{"name": k, "shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", ""),
                "kind": "parameter" if k in params else "buffer"} for k, v in model.state_dict().items()]
    norms = {n: dict(type=type(m).__name__, eps=m.eps, momentum=m.momentum)
             for n, m in model.named_modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)}
    pools = {n: repr(m) for n, m in model.named_modules()
             if isinstance(m, (torch.nn.MaxPool2d, torch.nn.AvgPool2d, torch.nn.AdaptiveAvgPool2d))}
    dropouts = {n: m.p for n, m in model.named_modules() if isinstance(m, torch.nn.Dropout)}
    return {"network": network, "reference": NETWORKS[network]["reference"],
            "num_params": sum(p.numel() for p in model.parameters()),
            "num_state_tensors": len(entries), "state_dict": entries,
            "batchnorm_eps": sorted({v["eps"] for v in norms.values()}),
            "batchnorm_momentum": sorted({v["momentum"] for v in norms.values()}),
            "batchnorm_types": sorted({v["type"] for v in norms.values()}),
            "pools": pools, "dropout": dropouts}


def count_macs(model, size, train):
    """Multiply-adds of conv and linear layers per (3, size, size) image, counted on the meta device.

    Runs a batch of 2 (train-mode BatchNorm needs more than one value per channel) and halves the total."""
    meta = copy.deepcopy(model).to("meta").train(train)
    total = [0]

    def hook(module, inputs, output):
        if isinstance(module, torch.nn.Conv2d):
            k_h, k_w = module.kernel_size
            total[0] += output.numel() * (module.in_channels // module.groups) * k_h * k_w
        else:
            total[0] += output.numel() * module.in_features

    handles = [m.register_forward_hook(hook) for m in meta.modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        meta(torch.zeros(2, 3, size, size, device="meta"))
    for h in handles:
        h.remove()
    return int(total[0]) // 2


def _hook_activations(model, names, store):
    """Forward hooks that copy each named activation into store[name]; returns the handles."""
    modules = dict(model.named_modules())
    handles = []
    for name in names:
        blob, _, target = name.partition("@input_of:")
        if target:
            handles.append(modules[target].register_forward_pre_hook(
                lambda m, inp, blob=blob: store.__setitem__(blob, inp[0].detach().clone())))
        else:
            handles.append(modules[name].register_forward_hook(
                lambda m, inp, out, name=name: store.__setitem__(name, out.detach().clone())))
    return handles


def _set_mode(model, train):
    """Eval, or train with batch statistics and every Dropout module switched off (eval)."""
    model.train(train)
    disabled = []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.modules.dropout._DropoutNd):
            module.eval()
            disabled.append(name)
    return disabled


def run_mode(model, state, network, x, projections, train, dtype):
    """One forward and backward of the loss sum(output * projection) in eval or train mode.

    Returns {name: np.ndarray float64} holding logits, aux logits, activations, grad_input, BN statistics.
    """
    spec = NETWORKS[network]
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
    model.to(dtype)
    disabled = _set_mode(model, train)
    acts, aux_out = {}, {}
    handles = _hook_activations(model, [a for a in spec["acts"]], acts)
    if train:
        for aux in spec["aux"]:
            handles.append(dict(model.named_modules())[aux].register_forward_hook(
                lambda m, inp, out, aux=aux: aux_out.__setitem__(AUX_KEY[aux], out)))
    inp = torch.from_numpy(x).to(dtype).requires_grad_(True)
    out = model(inp)
    logits = out if isinstance(out, torch.Tensor) else out[0]
    outputs = {"logits": logits, **aux_out}
    loss = sum((outputs[k] * torch.from_numpy(projections[k]).to(dtype)).sum() for k in outputs)
    loss.backward()
    for h in handles:
        h.remove()
    result = {k: _numpy64(v) for k, v in outputs.items()}
    result.update({f"act/{k.split('@')[0]}": _numpy64(v) for k, v in acts.items()})
    result["grad_input"] = _numpy64(inp.grad)
    result["loss"] = np.asarray(loss.item())
    if train:
        sd = model.state_dict()
        for key in tracked_bn_keys(model, spec):
            result[f"state/{key}"] = _numpy64(sd[key])
    model.zero_grad(set_to_none=True)
    return result, disabled


def _numpy64(tensor):
    """A float64 NumPy copy (never a view: the model's buffers are overwritten by the next run)."""
    return tensor.detach().to(torch.float64).numpy().copy()


def tracked_bn_keys(model, spec):
    """running_mean/var keys of the first, middle and last BatchNorm plus the first BN of each aux head."""
    bns = [n for n, m in model.named_modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    picked = [bns[0], bns[len(bns) // 2], bns[-1]]
    for aux in spec["aux"]:
        picked.append(next(n for n in bns if n.startswith(aux + ".")))
    return [f"{n}.{s}" for n in dict.fromkeys(picked) for s in ("running_mean", "running_var")]


def generate(network, out_dir, check_precision=True):
    """Build, run in float64 (stored) and float32 (compared), write golden npz and keys json; return a report."""
    spec = NETWORKS[network]
    model, state = build_reference(network)
    keys = key_table(network, model)
    size = spec["size"]
    x = weights.deterministic_input((BATCH, 3, size, size), seed=SEED, name=f"input/{network}")
    heads = ["logits"] + [AUX_KEY[a] for a in spec["aux"]]
    with torch.no_grad():
        probe = model.eval()(torch.zeros(1, 3, size, size))
    n_classes = probe.shape[-1]
    projections = {h: weights.deterministic_projection((BATCH, n_classes), seed=SEED, name=f"proj/{network}/{h}")
                   for h in heads}
    results = {}
    for mode, train in (("eval", False), ("train", True)):
        results[mode] = {}
        for dtype in (torch.float64, torch.float32) if check_precision else (torch.float64,):
            results[mode][dtype], disabled = run_mode(model, state, network, x, projections, train, dtype)
        model.to(torch.float32)

    macs = {f"eval@{spec['native']}": count_macs(model, spec["native"], False),
            f"train@{spec['native']}": count_macs(model, spec["native"], True),
            f"eval@{size}": count_macs(model, size, False), f"train@{size}": count_macs(model, size, True)}
    keys["macs"] = macs
    meta = {
        "network": network, "reference": spec["reference"], "builder_kwargs": spec["kwargs"],
        "input_shape": [BATCH, 3, size, size], "input_name": f"input/{network}", "seed": SEED,
        "input_rule": "weights.deterministic_input(input_shape, seed, input_name): U(-1, 1)",
        "weights_rule": "weights.deterministic_state_dict(shapes of keys/<network>.json, seed)",
        "native_size": spec["native"], "macs_conv_linear_per_image": macs,
        "loss": "sum over heads h of sum(h_output * proj/h); eval: logits only; "
                "train: logits + aux heads (" + ", ".join(heads[1:] or ["none"]) + ")",
        "projections": {h: f"proj/{h}" for h in heads},
        "train_mode": "model.train() with every torch.nn.Dropout module put in eval (identity); "
                      "BatchNorm uses batch statistics and updates its running statistics once",
        "dropout_disabled_in_train": disabled,
        "activations": {a.split("@")[0]: a for a in spec["acts"]},
        "activation_hook": "forward hook output of the named module; name@input_of:M = input of module M",
        "digest": "large arrays stored as weights.digest views: <key>/tl, /br, /poolB, /norm; small ones whole",
        "sketch": "a large grad_input also as <key>/sketch: weights.sketch of the float64 gradient (float64)",
        "computed_in": "float64 (model.double()), rounded to float32",
        "tolerances": {"logits": "rtol 1e-4, atol 1e-4", "grad_input": "1e-3 relative (norm)"},
        "versions": _versions(), "torch_threads": torch.get_num_threads(),
    }
    arrays = {"meta": np.array(json.dumps(meta, sort_keys=True))}
    for h in heads:
        arrays[f"proj/{h}"] = projections[h]
    _put(arrays, "input", x)
    for mode in results:
        for name, value in results[mode][torch.float64].items():
            _put(arrays, f"{mode}/{name}", value)
            if name == "grad_input" and f"{mode}/{name}" not in arrays:  # stored as views: the whole one sketched
                arrays[f"{mode}/{name}/sketch"] = weights.sketch(value)
    os.makedirs(os.path.join(out_dir, "golden"), exist_ok=True)
    os.makedirs(os.path.join(out_dir, "keys"), exist_ok=True)
    np.savez_compressed(os.path.join(out_dir, "golden", f"{network}.npz"), **arrays)
    with open(os.path.join(out_dir, "keys", f"{network}.json"), "w") as f:
        json.dump(keys, f, indent=1)
        f.write("\n")
    return results, macs


def _put(arrays, key, value):
    """Store `value` under `key` whole, or as its digest views under key/<view>."""
    for suffix, part in weights.digest(value).items():
        arrays[f"{key}/{suffix}" if suffix else key] = part


def _versions():
    import importlib.metadata as md
    found = {}
    for dist in ("torch", "torchvision", "timm", "pretrainedmodels", "facenet-pytorch", "numpy"):
        try:
            found[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=HERE, help="folder that receives golden/ and keys/ (default: here)")
    parser.add_argument("--networks", nargs="*", default=list(NETWORKS), choices=list(NETWORKS))
    parser.add_argument("--threads", type=int, default=2, help="torch threads (fixed for reproducibility)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for network in args.networks:
        results, macs = generate(network, args.out)
        print(f"{network}: wrote golden/{network}.npz, keys/{network}.json; MACs {macs}", flush=True)


if __name__ == "__main__":
    main()
