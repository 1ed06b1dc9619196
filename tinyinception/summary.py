"""``ti.summary(model, input_size)``: a layer-by-layer table of output shapes, parameters and multiply-adds.

How it works: a forward hook on every module records its output shape while one forward pass runs (eval mode,
no graph recorded) on a random input of shape ``(batch_size, *input_size)``. Only convolutions and linear layers
are charged multiply-adds, the convention behind torchvision's published GFLOPS and the papers' "multiply-adds"
(BatchNorm, ReLU, pooling and concatenation are cheap next to them and are not counted):

    Conv2d:  out_channels * out_h * out_w * (in_channels / groups) * kh * kw    per image
    Linear:  in_features * out_features                                         per row of the input

A block's row adds up the parameters and multiply-adds of every module inside it (by name prefix), so the table
can be cut at any depth (``max_depth=1``: just the stem layers and the Inception blocks). Modules that did not run
in eval mode (GoogLeNet's auxiliary classifiers) are marked "not run": their parameters count in the model's
total, not in what the forward pass used. Fused paths step aside for hooks: a Conv-BN-ReLU unit whose layers carry
forward hooks runs its convolution and BatchNorm through ``__call__`` (`tinyinception.nn.fold.conv_bn_relu`), so
every layer is recorded with no special case here.

    >>> result = ti.summary(ti.models.googlenet(), (3, 224, 224), max_depth=1)   # prints the table
    >>> result.total_macs                                                          # 1,498,376,192 (1.498 G)
"""
from collections import namedtuple

import numpy as np

from . import backend
from .autograd import Tensor, no_grad
from . import nn

SummaryRow = namedtuple("SummaryRow", ["name", "type", "depth", "output_shape", "params", "macs", "ran"])
SummaryRow.__doc__ = ("One module: dotted name, class name, depth (1 = a child of the model), output shape "
                      "(None if not seen), parameters and multiply-adds per image (its whole subtree), whether it "
                      "ran in the forward pass.")


class Summary:
    """The result of `summary`: ``rows`` (every module, depth first), ``total_params`` (the model's learnable
    elements), ``used_params`` (those of modules that ran), ``total_macs`` (per image), ``input_shape`` and
    ``output_shape``. ``str(result)`` or ``result.table(max_depth)`` gives the printed table."""

    def __init__(self, model_name, rows, input_shape, output_shape, total_params, used_params, total_macs,
                 max_depth=None):
        self.model_name, self.rows = model_name, rows
        self.input_shape, self.output_shape = input_shape, output_shape
        self.total_params, self.used_params, self.total_macs = total_params, used_params, total_macs
        self.max_depth = max_depth

    def row(self, name):
        """The row of the module called ``name`` (e.g. ``"inception3a"``)."""
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(f"summary: no module named {name!r}")

    def table(self, max_depth=None):
        """The table as text, rows deeper than ``max_depth`` left out (None: every module)."""
        shown = [r for r in self.rows if max_depth is None or r.depth <= max_depth]
        header = ("layer", "type", "output shape", "params", "mult-adds")
        cells = [("  " * (r.depth - 1) + r.name.rpartition(".")[2] if max_depth != 1 else r.name, r.type,
                  _shape_text(r),
                  f"{r.params:,}", f"{r.macs:,}") for r in shown]
        widths = [max(len(row[i]) for row in cells + [header]) for i in range(5)]
        line = "-" * (sum(widths) + 8)

        def fmt(row):
            return "  ".join(cell.ljust(w) if i < 3 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))

        lines = [f"{self.model_name}: input {tuple(self.input_shape)} -> output {self.output_shape}", line,
                 fmt(header), line] + [fmt(row) for row in cells] + [line]
        lines.append(f"parameters: {self.total_params:,}"
                     + (f" ({self.used_params:,} used by this forward pass)" if self.used_params != self.total_params
                        else ""))
        lines.append(f"multiply-adds per image: {self.total_macs:,} ({self.total_macs / 1e9:.3f} G)")
        return "\n".join(lines)

    def __str__(self):
        return self.table(self.max_depth)

    __repr__ = __str__


def _shape_text(row):
    if not row.ran:
        return "(not run)"
    return "-" if row.output_shape is None else "x".join(str(s) for s in row.output_shape[1:])


def layer_macs(module, output_shape):
    """Multiply-adds per image of one Conv2d or Linear producing ``output_shape`` (batch first); 0 otherwise."""
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        per_output = (module.in_channels // module.groups) * kh * kw
        return int(np.prod(output_shape[1:])) * per_output
    if isinstance(module, nn.Linear):
        return int(np.prod(output_shape[1:-1], dtype=np.int64)) * module.in_features * module.out_features
    return 0


def _first_shape(output):
    """Shape of a module's output, or of the first tensor of a tuple of outputs."""
    if isinstance(output, Tensor):
        return tuple(output.shape)
    if isinstance(output, (tuple, list)):
        for item in output:
            if isinstance(item, Tensor):
                return tuple(item.shape)
    return None


def _device_and_dtype(model, dtype):
    for p in model.parameters():
        return backend.device_of(p.data), (dtype or p.dtype)
    return "cpu", (dtype or np.float32)


def _record(model, x):
    """Run the model once with hooks; returns ({name: output shape}, {name: multiply-adds per image}, output)."""
    shapes, macs, handles = {}, {}, []
    for name, module in model.named_modules():
        def hook(module, inputs, output, name=name):
            shape = _first_shape(output)
            shapes.setdefault(name, shape)
            if shape is not None:
                macs[name] = macs.get(name, 0) + layer_macs(module, shape)
        handles.append(module.register_forward_hook(hook))
    try:
        with no_grad():
            output = model(x)
    finally:
        for handle in handles:
            handle.remove()
    return shapes, macs, output


def summary(model, input_size, batch_size=1, max_depth=None, dtype=None, show=True):
    """Table of every module's output shape, parameters and multiply-adds for one input of ``input_size``.

    model: any ``nn.Module``. input_size: the shape of one sample, e.g. (3, 224, 224); the input is
    (batch_size, *input_size), random normal, on the model's device in its dtype (or ``dtype``). The pass runs in
    eval mode under ``no_grad``; the model's train/eval flags are restored afterwards. max_depth: print only rows
    up to this depth (1 = the model's children); the returned `Summary` always holds every row. show: print it.
    Multiply-adds are per image (independent of batch_size).
    """
    input_size = tuple(int(s) for s in input_size)
    if batch_size < 1 or not input_size or min(input_size) < 1:
        raise ValueError(f"summary: input_size must be positive sizes of one sample and batch_size >= 1, got "
                         f"input_size {input_size}, batch_size {batch_size}")
    device, dtype = _device_and_dtype(model, dtype)
    sample = np.random.default_rng(0).standard_normal((batch_size,) + input_size).astype(dtype)
    x = Tensor(backend.to_device(sample, device))
    modes = {id(m): m.training for m in model.modules()}
    model.eval()
    try:
        shapes, macs, output = _record(model, x)
    finally:
        for m in model.modules():
            object.__setattr__(m, "training", modes[id(m)])
    rows = _rows(model, shapes, macs)
    used = sum(p.numel() for name, m in model.named_modules() if name in shapes
               for p in m.parameters(recurse=False))
    result = Summary(type(model).__name__, rows, (batch_size,) + input_size, _first_shape(output),
                     model.num_parameters(), used, sum(macs.values()), max_depth)
    if show:
        print(result)
    return result


def _rows(model, shapes, macs):
    """One SummaryRow per module below the model, its params and multiply-adds summed over its subtree."""
    rows = []
    for name, module in model.named_modules():
        if not name:
            continue
        inside = [key for key in macs if key == name or key.startswith(name + ".")]
        shape = shapes.get(name)
        rows.append(SummaryRow(name, type(module).__name__, name.count(".") + 1, shape,
                               module.num_parameters(), sum(macs[key] for key in inside), shape is not None))
    return rows
