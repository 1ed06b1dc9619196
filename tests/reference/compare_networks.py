"""Compare each of our six networks with its PyTorch reference, module by module, with ``ti.interop.compare``.

NEEDS THE SIDE ENVIRONMENT with the reference implementations (torchvision, timm, pretrainedmodels,
facenet-pytorch); it is not a test and is never run in CI:

    /work/shared/reference/make_env.sh ~/.cache/inception-reference
    python tests/reference/compare_networks.py [--dtype float32] [--networks googlenet inception_v4 ...]

It runs in this project's Python (NumPy, Numba and the same torch version as the side environment) and reads the
reference packages from the side environment's site-packages (``--env``). Each reference is built with its own
seeded initialisation, then given the deterministic weights of ``weights.py`` (non-trivial BatchNorm statistics),
copied into ours through the interop name tables; both run in eval mode on one image at the golden input size.
Prints each comparison's verdict line (and the table with ``--table``).
"""
import argparse
import glob
import os
import sys
import types

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

OURS = {  # network: (our builder and its arguments, reference name, reference kwargs, input size)
    "googlenet": (("googlenet", dict(dropout=0.0, dropout_aux=0.0)), "torchvision.googlenet",
                  dict(transform_input=False), 224),
    "bninception": (("bn_inception", {}), "pretrainedmodels.bninception", {}, 224),
    "inception_v3": (("inception_v3", {}), "torchvision.inception_v3", dict(transform_input=False), 299),
    "inception_v4": (("inception_v4", {}), "timm.inception_v4", {}, 299),
    "inception_resnet_v2": (("inception_resnet_v2", {}), "timm.inception_resnet_v2", {}, 299),
    "inception_resnet_v1": (("inception_resnet_v1", dict(head="facenet")), "facenet.inception_resnet_v1",
                            dict(num_classes=1000), 160),
}


def add_side_environment(env):
    site = glob.glob(os.path.join(env, "lib", "python3*", "site-packages"))
    if not site:
        raise SystemExit(f"compare_networks: no side environment at {env} (see the module docstring)")
    sys.path.append(site[0])
    sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
    sys.path.insert(0, os.environ.get("INCEPTION_REFERENCE_DIR", "/work/shared/reference"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default=os.path.expanduser("~/.cache/inception-reference"))
    parser.add_argument("--networks", nargs="+", default=list(OURS))
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--table", action="store_true")
    args = parser.parse_args()
    add_side_environment(args.env)
    import refmodels
    import torch
    import weights
    import tinyinception as ti
    for network in args.networks:
        (builder, kwargs), reference_name, reference_kwargs, size = OURS[network]
        reference = refmodels.build(reference_name, seed=12345, **reference_kwargs)
        shapes = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
        state = weights.deterministic_state_dict(shapes, seed=0)
        reference.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
        ours = getattr(ti.models, builder)(**kwargs).eval()
        if args.dtype == "float64":
            ours.double()
        x = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
        result = ti.interop.compare(ours, reference, x, load_weights=True)
        paired = sum(row.status not in ("ours only", "reference only") for row in result.rows)
        print(f"{network:22s} {args.dtype}: {paired} modules paired, {len(result.rows) - paired} one-sided; "
              f"{result.summary()}", flush=True)
        if args.table:
            print(result.table())


if __name__ == "__main__":
    main()
