"""Run any tinyinception computation in PyTorch: record our graph once, replay it with ``torch.nn.functional``.

The benchmarks compare a block or a whole training step here and in PyTorch "on the same data". Rather than keep
a second, hand-written PyTorch copy of every block and network (torchvision and timm are not installed here), we
run our forward pass once, walk the autograd graph it recorded (every `Function` keeps its positional inputs:
tensors, parameters and options such as stride and padding) and translate each node into the PyTorch call that
computes the same thing. The result is a plain PyTorch eager program over PyTorch leaf tensors:

    program = TorchProgram.trace(lambda: block(x))        # our forward, recorded
    out = program.run()                                   # PyTorch eager, same weights, same input
    program.parameters                                    # torch leaves, for an optimizer

Replaying costs one Python call per operation, like eager PyTorch modules (a few microseconds each, nothing next
to a convolution). ``check`` compares the replay with our output, so a wrong translation cannot go unnoticed.
"""
import numpy as np

from tinyinception.autograd import Tensor, _topological_order
from tinyinception.nn.fused import stacking

_TRANSLATIONS = {}


def translates(*names):
    """Register a translation ``f(torch, node_inputs, fn) -> torch value`` for Function classes ``names``."""
    def register(function):
        for name in names:
            _TRANSLATIONS[name] = function
        return function
    return register


def forward_order(*outputs):
    """Every Function behind ``outputs``, producers before consumers."""
    order, seen = [], set()
    for output in outputs:
        if output.grad_fn is None:
            continue
        for fn in reversed(_topological_order(output.grad_fn)):
            if id(fn) not in seen:
                seen.add(id(fn))
                order.append(fn)
    return order


class TorchProgram:
    """A recorded graph replayed in PyTorch: ``run()`` returns the torch tensors of the traced outputs."""

    def __init__(self, torch, nodes, outputs, leaves, parameters, ours):
        self.torch, self.nodes, self.outputs = torch, nodes, outputs
        self.leaves, self.parameters, self.ours = leaves, parameters, ours
        self.release = self._release_plan()

    def _release_plan(self):
        """For each node, the computed values no later node (nor the outputs) reads: `run` drops them right after
        it, as eager PyTorch code frees an intermediate once its last user has run (without this, inference would
        hold every activation to the end and PyTorch's peak memory would be overstated)."""
        kept = {k[1] for k in self.outputs if isinstance(k, tuple) and k[0] == "node"}
        last_use = {}
        for index, (_, args, _, _) in enumerate(self.nodes):
            for a in args:
                if isinstance(a, tuple) and a[0] == "node":
                    last_use[a[1]] = index
        plan = [[] for _ in self.nodes]
        for key, index in last_use.items():
            if key not in kept:
                plan[index].append(key)
        return plan

    @classmethod
    def trace(cls, forward, torch=None):
        """Run ``forward()`` (returning a Tensor or a tuple of Tensors, with gradients recorded) and translate the
        graph, recorded with the sibling 1x1 convolutions unstacked (`tinyinception.nn.fused`): PyTorch gets the
        plain program, one convolution per layer. Parameters (leaves that require grad) become torch leaves that
        require grad; other arrays (inputs, BatchNorm running statistics) become torch tensors of their own
        (copies)."""
        if torch is None:
            import torch
        with stacking(False):  # PyTorch eager runs each convolution on its own, as torchvision writes the blocks
            result = forward()
        outputs = result if isinstance(result, (tuple, list)) else (result,)
        leaves, parameters, nodes = {}, [], []
        for fn in forward_order(*outputs):
            name = type(fn).__name__
            if name not in _TRANSLATIONS:
                raise NotImplementedError(f"torch_mirror: no PyTorch translation for {name}; add one with "
                                          f"@translates('{name}')")
            args = [_leaf(torch, value, leaves, parameters) for value in fn.inputs]
            nodes.append((_TRANSLATIONS[name], args, _options(fn), id(fn._output())))
        output_keys = [_key_or_leaf(torch, t, leaves, parameters) for t in outputs]
        ours = [t.data.copy() for t in outputs]
        return cls(torch, nodes, output_keys, leaves, parameters, ours)

    def run(self):
        values = {}
        for (translate, args, options, key), done in zip(self.nodes, self.release):
            inputs = [values[a[1]] if isinstance(a, tuple) and a[0] == "node" else a for a in args]
            values[key] = translate(self.torch, inputs, options)
            del inputs
            for finished in done:
                del values[finished]
        return [values[k[1]] if isinstance(k, tuple) and k[0] == "node" else k for k in self.outputs]

    def check(self, rtol=1e-3, atol=1e-3):
        """Replay once and compare with what our forward returned (raises AssertionError naming the output)."""
        with self.torch.no_grad():
            outputs = self.run()
        for i, (theirs, ours) in enumerate(zip(outputs, self.ours)):
            theirs = theirs.detach().numpy()
            if not np.allclose(theirs, ours, rtol=rtol, atol=atol):
                worst = float(np.max(np.abs(theirs - ours)))
                raise AssertionError(f"torch_mirror: output {i} differs from ours by up to {worst:.3g}")


def _leaf(torch, value, leaves, parameters):
    """A node input: ("node", key) for a computed tensor, a torch leaf for arrays, the value itself otherwise."""
    if isinstance(value, Tensor):
        return _key_or_leaf(torch, value, leaves, parameters)
    if isinstance(value, np.ndarray):  # running statistics, integer targets, constants
        if id(value) not in leaves:
            leaves[id(value)] = torch.from_numpy(np.array(value, copy=True, order="C"))
        return leaves[id(value)]
    return value


def _key_or_leaf(torch, tensor, leaves, parameters):
    if tensor.grad_fn is not None:
        return ("node", id(tensor))
    if id(tensor) not in leaves:
        leaf = torch.from_numpy(np.array(tensor.data, copy=True, order="C"))
        if tensor.requires_grad:
            leaf.requires_grad_(True)
            parameters.append(leaf)
        leaves[id(tensor)] = leaf
    return leaves[id(tensor)]


def _options(fn):
    """What a translation needs beyond the positional inputs (attributes the forward stored)."""
    return {key: getattr(fn, key) for key in ("dim", "dims", "keepdim", "sizes") if hasattr(fn, key)}


# --- translations, one per Function class ------------------------------------------------------------------
@translates("Conv2d")
def _conv2d(torch, a, options):
    x, weight, bias, stride, padding, dilation, groups = a
    return torch.nn.functional.conv2d(x, weight, bias, stride, padding, dilation, groups)


@translates("BatchNorm")
def _batch_norm(torch, a, options):
    x, weight, bias, running_mean, running_var, training, momentum, eps, relu = a
    y = torch.nn.functional.batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps)
    return torch.relu(y) if relu else y


def _ceil_mode(torch, x, kernel_size, stride, padding, out_size):
    """Our pooling Functions store the output size; PyTorch wants ceil_mode: the one that gives that size."""
    floor_h = (x.shape[2] + 2 * padding[0] - kernel_size[0]) // stride[0] + 1
    floor_w = (x.shape[3] + 2 * padding[1] - kernel_size[1]) // stride[1] + 1
    return (floor_h, floor_w) != tuple(out_size)


@translates("MaxPool2d")
def _max_pool(torch, a, options):
    x, kernel_size, stride, padding, out_size = a
    return torch.nn.functional.max_pool2d(x, kernel_size, stride, padding,
                                          ceil_mode=_ceil_mode(torch, x, kernel_size, stride, padding, out_size))


@translates("AvgPool2d")
def _avg_pool(torch, a, options):
    x, kernel_size, stride, padding, out_size, count_include_pad = a
    return torch.nn.functional.avg_pool2d(x, kernel_size, stride, padding,
                                          ceil_mode=_ceil_mode(torch, x, kernel_size, stride, padding, out_size),
                                          count_include_pad=count_include_pad)


@translates("AdaptiveAvgPool2d")
def _adaptive_avg_pool(torch, a, options):
    return torch.nn.functional.adaptive_avg_pool2d(a[0], a[1])


@translates("Mean")
def _mean(torch, a, options):
    return a[0].mean(dim=a[1], keepdim=a[2])


@translates("Sum")
def _sum(torch, a, options):
    return a[0].sum(dim=a[1], keepdim=a[2])


@translates("Concat", "ChannelConcat")
def _concat(torch, a, options):
    return torch.cat(a, dim=options.get("dim", 1))


@translates("Reshape")
def _reshape(torch, a, options):
    return a[0].reshape(a[1])


@translates("Permute")
def _permute(torch, a, options):
    return a[0].permute(*a[1])


@translates("GetItem")
def _getitem(torch, a, options):
    return a[0][a[1]]


@translates("Linear")
def _linear(torch, a, options):
    return torch.nn.functional.linear(*a)


@translates("Dropout")
def _dropout(torch, a, options):
    return torch.nn.functional.dropout(a[0], a[1], training=True)


@translates("ReLU")
def _relu(torch, a, options):
    return torch.relu(a[0])


@translates("ResidualAdd")
def _residual_add(torch, a, options):
    x, branch, scale, relu = a
    out = branch * scale + x
    return torch.relu(out) if relu else out


@translates("LocalResponseNorm")
def _lrn(torch, a, options):
    x, size, alpha, beta, k = a
    return torch.nn.functional.local_response_norm(x, size, alpha, beta, k)


@translates("CrossEntropy")
def _cross_entropy(torch, a, options):
    logits, target, smoothing, reduction = a
    return torch.nn.functional.cross_entropy(logits, target, label_smoothing=smoothing, reduction=reduction)


def _operand(torch, value):
    return torch.as_tensor(value) if isinstance(value, np.ndarray) else value


@translates("Add")
def _add(torch, a, options):
    return _operand(torch, a[0]) + _operand(torch, a[1])


@translates("Sub")
def _sub(torch, a, options):
    return _operand(torch, a[0]) - _operand(torch, a[1])


@translates("Mul")
def _mul(torch, a, options):
    return _operand(torch, a[0]) * _operand(torch, a[1])


@translates("Div")
def _div(torch, a, options):
    return _operand(torch, a[0]) / _operand(torch, a[1])


@translates("Neg")
def _neg(torch, a, options):
    return -a[0]
