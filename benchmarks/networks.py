"""The cases of the blocks, train and memory suites: which networks, at which sizes, and one training step of each,
here and (through `benchmarks.torch_mirror`) in PyTorch on the same weights and data.

A training step is what a training loop does per batch: zero the gradients, forward, cross-entropy loss (plus
0.3 x each auxiliary head's loss when the network has them in training), backward, SGD step (momentum 0.9).
"""
import numpy as np

import tinyinception as ti
import tinyinception.functional as F
from benchmarks.torch_mirror import TorchProgram

NUM_CLASSES = 1000
AUX_WEIGHT = 0.3

# name: (builder keyword arguments, batch, input size). GoogLeNet and BN-Inception at 64x64, the others at 96x96,
# Inception-v3 also at its native 299 (where its auxiliary head can run).
TRAIN_CASES = {
    "googlenet": (dict(name="googlenet"), 16, 64),
    "bn_inception": (dict(name="bn_inception"), 16, 64),
    "inception_v3": (dict(name="inception_v3", aux_logits=False), 16, 96),
    "inception_v4": (dict(name="inception_v4"), 16, 96),
    "inception_resnet_v1": (dict(name="inception_resnet_v1"), 16, 96),
    "inception_resnet_v2": (dict(name="inception_resnet_v2"), 16, 96),
    "inception_v3@299": (dict(name="inception_v3", aux_logits=True), 4, 299),
}

# One block of every kind: (label, network, block class name, native input size of the network, batch).
# The block is taken from the network (its first instance) and fed an input of the shape it sees there.
BLOCK_CASES = [
    ("GoogLeNet inception (3a)", "googlenet", "Inception", 224, 32),
    ("BN-Inception block (3a)", "bn_inception", "InceptionBN", 224, 32),
    ("BN-Inception reduction (3c)", "bn_inception", "ReductionBN", 224, 32),
    ("Inception-v3 A (35x35)", "inception_v3", "InceptionA", 299, 32),
    ("Inception-v3 B (reduction)", "inception_v3", "InceptionB", 299, 32),
    ("Inception-v3 C (17x17)", "inception_v3", "InceptionC", 299, 32),
    ("Inception-v3 D (reduction)", "inception_v3", "InceptionD", 299, 32),
    ("Inception-v3 E (8x8)", "inception_v3", "InceptionE", 299, 32),
    ("Inception-v4 A (35x35)", "inception_v4", "InceptionA", 299, 32),
    ("Inception-v4 reduction A", "inception_v4", "ReductionA", 299, 32),
    ("Inception-v4 B (17x17)", "inception_v4", "InceptionB", 299, 32),
    ("Inception-v4 reduction B", "inception_v4", "ReductionB", 299, 32),
    ("Inception-v4 C (8x8)", "inception_v4", "InceptionC", 299, 32),
    ("Inception-ResNet-v2 A (35x35)", "inception_resnet_v2", "InceptionResNetA", 299, 32),
    ("Inception-ResNet-v2 B (17x17)", "inception_resnet_v2", "InceptionResNetB", 299, 32),
    ("Inception-ResNet-v2 C (8x8)", "inception_resnet_v2", "InceptionResNetC", 299, 32),
]


def build(name, **kwargs):
    model = ti.models.create(name, num_classes=NUM_CLASSES, **kwargs)
    model.train()
    return model


def random_batch(batch, size, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((batch, 3, size, size)).astype(np.float32)
    labels = rng.integers(0, NUM_CLASSES, batch)
    return images, labels


def loss_of(outputs, labels):
    """Cross-entropy of the main logits, plus AUX_WEIGHT x each auxiliary head's (when the network returns them)."""
    if not isinstance(outputs, tuple):
        return F.cross_entropy(outputs, labels)
    loss = F.cross_entropy(outputs[0], labels)
    for aux in outputs[1:]:
        if aux is not None:
            loss = loss + AUX_WEIGHT * F.cross_entropy(aux, labels)
    return loss


class OurStep:
    """One training step of ``model`` on a fixed batch, here."""

    def __init__(self, model, images, labels, lr=0.01):
        self.model, self.labels = model, labels
        self.images = ti.Tensor(images)
        self.optimizer = ti.optim.SGD(model.parameters(), lr=lr, momentum=0.9)

    def __call__(self):
        self.optimizer.zero_grad()
        loss = loss_of(self.model(self.images), self.labels)
        loss.backward()
        self.optimizer.step()
        return loss


class TorchStep:
    """The same step in PyTorch: our graph of the loss, recorded once and replayed as PyTorch eager code."""

    def __init__(self, torch, model, images, labels, lr=0.01):
        self.torch = torch
        x = ti.Tensor(images)
        self.program = TorchProgram.trace(lambda: loss_of(model(x), labels), torch)
        self.optimizer = torch.optim.SGD(self.program.parameters, lr=lr, momentum=0.9)

    def __call__(self):
        self.optimizer.zero_grad(set_to_none=True)
        (loss,) = self.program.run()
        loss.backward()
        self.optimizer.step()
        return loss


def find_block(model, class_name):
    """The first submodule of ``model`` whose class is ``class_name`` and is defined in the model's own file."""
    home = type(model).__module__
    for _, module in model.named_modules():
        if type(module).__name__ == class_name and type(module).__module__ == home:
            return module
    raise LookupError(f"{type(model).__name__} has no block of class {class_name}")


def block_input_shape(model, block, size):
    """The shape ``block`` receives when ``model`` runs on a (1, 3, size, size) image (forward hook, no grad)."""
    seen = {}

    def remember(module, inputs, output):
        seen.setdefault("shape", inputs[0].shape)  # returns None: the output is left alone

    handle = block.register_forward_hook(remember)
    try:
        with ti.no_grad():
            model.eval()
            model(ti.Tensor(np.zeros((1, 3, size, size), np.float32)))
    finally:
        handle.remove()
        model.train()
    return seen["shape"]


def forward_flops(*outputs):
    """Floating point operations (2 per multiply-add) of the convolutions and linear layers behind ``outputs``
    (a recorded graph, before backward). A training step costs about 3x this (forward, grad input, grad weight)."""
    from benchmarks.torch_mirror import forward_order
    total = 0
    for fn in forward_order(*outputs):
        name = type(fn).__name__
        if name == "Conv2d":
            n = fn.x_shape[0]
            f, c_per_group, kh, kw = fn.weight_shape
            total += 2 * n * f * c_per_group * kh * kw * fn.out_size[0] * fn.out_size[1]
        elif name == "Linear":
            total += 2 * fn.x.size * fn.weight.shape[0]
    return float(total)
