"""The networks table of the documentation, computed from the code with ``ti.summary``.

Run by ``docs/conf.py`` at every build; by hand:

    python docs/networks_table.py            # prints the Markdown table

Each network is built with 1000 classes and passed once, in eval mode, at the input size its reference uses;
parameters are counted over the whole model (auxiliary heads included where the builder has them on),
multiply-adds are those of the eval-mode forward pass (convolutions and linear layers, per image).
"""
import contextlib
import io
import pathlib
import sys

import tinyinception as ti

# (builder name, keyword arguments, the reference it equals, input size)
NETWORKS = [
    ("googlenet", {}, "torchvision `googlenet`", 224),
    ("googlenet", {"aux_logits": False}, "torchvision `googlenet` (weights as shipped)", 224),
    ("googlenet", {"paper": True}, "the paper's layout (Caffe's bvlc_googlenet)", 224),
    ("bn_inception", {}, "Cadene's `bninception`", 224),
    ("inception_v3", {}, "torchvision `inception_v3`", 299),
    ("inception_v3", {"aux_logits": False}, "torchvision `inception_v3`, no aux head", 299),
    ("inception_v4", {}, "timm `inception_v4`", 299),
    ("inception_resnet_v1", {}, "facenet-pytorch `InceptionResnetV1` trunk, plain head", 160),
    ("inception_resnet_v2", {}, "timm `inception_resnet_v2`", 299),
]


def measure(name, kwargs, size):
    """(parameters, multiply-adds per image) of one network at 1000 classes and ``size`` x ``size`` input."""
    ti.manual_seed(0)
    model = ti.models.create(name, num_classes=1000, **kwargs)
    with contextlib.redirect_stdout(io.StringIO()):
        result = ti.summary(model, (3, size, size), show=False)
    return result.total_params, result.total_macs


def markdown():
    lines = ["| builder (`ti.models.`) | reference it equals | parameters | multiply-adds | input |",
             "| --- | --- | ---: | ---: | ---: |"]
    for name, kwargs, reference, size in NETWORKS:
        params, macs = measure(name, kwargs, size)
        call = f"{name}({', '.join(f'{key}={value!r}' for key, value in kwargs.items())})"
        lines.append(f"| `{call}` | {reference} | {params:,} | {macs / 1e9:.3f} G | {size}x{size} |")
    return "\n".join(lines) + "\n"


def write(path):
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = ("<!-- computed by docs/networks_table.py when the site was built; not edited by hand -->\n\n"
            + markdown())
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


if __name__ == "__main__":
    sys.stdout.write(markdown())
