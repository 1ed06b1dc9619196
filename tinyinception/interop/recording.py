"""Run a model once and keep what every module produced: its output, the gradient that flowed into that output,
and the input of each max pool. One recorder for our modules, one for PyTorch's; both return the same `Recording`.

The gradient comes from a fixed scalar: ``loss = sum_i (output_i * seed_i).sum()`` over the model's output tensors,
with the same ``seed_i`` arrays on both sides, so that the gradient flowing into every module is defined the same
way in both frameworks (a random seed direction reaches every element, which a plain ``.sum()`` does not test).

Our side records through forward hooks and ``retain_grad``; PyTorch's through forward hooks and tensor hooks
(``Tensor.register_hook``). PyTorch modules often modify a module's output in place afterwards
(``F.relu(x, inplace=True)``), so the PyTorch recorder hands the rest of the network a clone of each output and
keeps the original: the values recorded are those the module produced.
"""
import contextlib
import copy
from dataclasses import dataclass, field

import numpy as np

from .. import backend


@dataclass
class Record:
    """What one module did during the recorded pass (its first call, when it ran several times).

    output: first tensor of the output as a NumPy array; grad: the gradient flowing into that output (or None);
    pool_input: the input, kept for max pools only; geometry: the module itself, for max pools; calls: how often
    it ran; kind: its class name.
    """
    name: str
    kind: str
    output: np.ndarray = None
    grad: np.ndarray = None
    pool_input: np.ndarray = None
    pool: object = None
    calls: int = 0
    _tensor: object = field(default=None, repr=False)


@dataclass
class Recording:
    """Every module's `Record` by name, in the order the modules finished (children before their parent).

    error: ``(module name, message)`` when the forward pass raised (the innermost module that was running), with
    the records made up to then; else None.
    """
    records: dict
    order: list
    outputs: list
    error: tuple = None


class _CallStack:
    """Which modules are running: entered and left around each forward, so that an exception can be placed."""

    def __init__(self):
        self.names, self.failed_in = [], None

    def enter(self, name):
        self.names.append(name)

    def leave(self):
        self.names.pop()

    def fail(self):
        if self.failed_in is None and self.names:
            self.failed_in = self.names[-1]


def _first_tensor(output, tensor_type):
    if isinstance(output, tensor_type):
        return output
    if isinstance(output, (tuple, list)):
        for item in output:
            if isinstance(item, tensor_type):
                return item
    return None


def _all_tensors(output, tensor_type):
    if isinstance(output, tensor_type):
        return [output]
    if isinstance(output, (tuple, list)):
        return [item for item in output if isinstance(item, tensor_type)]
    return []


def _is_max_pool(module):
    return type(module).__name__ in ("MaxPool2d",) and hasattr(module, "kernel_size")


def seeds_for(shapes, seed=0):
    """One standard-normal array per output shape: the directions of the scalar that is backpropagated.

    Float64 arrays holding float32 values, so that a float32 and a float64 run backpropagate exactly the same
    scalar."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(np.float32).astype(np.float64) for shape in shapes]


# --- our modules -----------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _plain_execution(model, activated=None):
    """Run every module through its ``__call__``: no stacked sibling products, BatchNorm and ReLU as two passes.

    The fused paths skip the inner modules' ``__call__`` (so their hooks would not fire) and produce values that
    the reference computes in two steps; here each module's own output is what gets compared. (Folded inference,
    conv and BatchNorm in one pass, never runs on layers with forward hooks.)

    activated: {module name: hook} for BatchNorms whose reference applies the ReLU inside the module (timm's
    BatchNormAct2d): those keep ``forward_relu`` and ``hook`` sees its output, after the ReLU, so that the output
    and the gradient flowing into it are the same quantities as the reference's. They carry no forward hook.
    """
    from .. import functional as F
    from ..nn.fused import stacking
    activated = activated or {}
    shadowed = []
    for name, module in model.named_modules():
        if not hasattr(type(module), "forward_relu"):
            continue
        if name in activated:
            def forward_relu(x, module=module, hook=activated[name]):
                output = F.relu(module(x))
                hook(module, (x,), output)
                return output
        else:
            def forward_relu(x, module=module):
                return F.relu(module(x))
        module.__dict__["forward_relu"] = forward_relu
        shadowed.append(module)
    try:
        with stacking(False):
            yield
    finally:
        for module in shadowed:
            del module.__dict__["forward_relu"]


@contextlib.contextmanager
def _tracked_forwards(model, calls):
    """Every module's ``forward`` wrapped so that `_CallStack` ``calls`` knows which modules are running."""
    wrapped = []
    for name, module in model.named_modules():
        def forward(*args, module=module, name=name, **kwargs):
            calls.enter(name)
            try:
                output = type(module).forward(module, *args, **kwargs)
            except Exception:
                calls.fail()
                raise
            calls.leave()
            return output
        module.__dict__["forward"] = forward
        wrapped.append(module)
    try:
        yield
    finally:
        for module in wrapped:
            del module.__dict__["forward"]


def _loss(outputs, seed, make_tensor):
    """sum_i (output_i * seed_i).sum(), the scalar both sides backpropagate."""
    loss = None
    for out, direction in zip(outputs, seeds_for([tuple(o.shape) for o in outputs], seed)):
        term = (out * make_tensor(direction, out)).sum()
        loss = term if loss is None else loss + term
    return loss


def record_ours(model, inputs, seed=None, activated=()):
    """Run our ``model`` on ``inputs`` (arrays in the model's dtype) and record every module.

    seed: None records the forward pass only; an int also backpropagates the `_loss` seeded with it.
    activated: names of BatchNorms recorded after their ReLU (see `_plain_execution`).
    """
    from ..autograd import Tensor, enable_grad, no_grad
    records, order = {}, []

    def hook(module, args, output, name):
        record = records.setdefault(name, Record(name, type(module).__name__))
        record.calls += 1
        if record.calls > 1:
            return
        order.append(name)
        tensor = _first_tensor(output, Tensor)
        if tensor is None:
            return
        record.output = np.array(backend.to_device(tensor.data, "cpu"), copy=True)
        if seed is not None and tensor.requires_grad:
            tensor.retain_grad()
            record._tensor = tensor
        if _is_max_pool(module) and args and isinstance(args[0], Tensor):
            record.pool_input = np.array(backend.to_device(args[0].data, "cpu"), copy=True)
            record.pool = module

    hooks = {name: (lambda m, a, o, name=name: hook(m, a, o, name)) for name, _ in model.named_modules()}
    handles = [module.register_forward_hook(hooks[name]) for name, module in model.named_modules()
               if name not in activated]
    xs = [Tensor(x, requires_grad=seed is not None) for x in inputs]
    calls, outputs, error = _CallStack(), [], None
    try:
        with _plain_execution(model, {name: hooks[name] for name in activated}), _tracked_forwards(model, calls), \
                (enable_grad() if seed is not None else no_grad()):
            outputs = _all_tensors(model(*xs), Tensor)
            if seed is not None:
                xp = backend.get_array_module(outputs[0].data)
                _loss(outputs, seed, lambda d, out: Tensor(xp.asarray(d, dtype=out.dtype))).backward()
    except Exception as exc:  # reported in the comparison, with what was recorded up to here
        error = (calls.failed_in, f"{type(exc).__name__}: {exc}")
    finally:
        for handle in handles:
            handle.remove()
    for record in records.values():
        if record._tensor is not None and record._tensor.grad is not None:
            record.grad = np.array(backend.to_device(record._tensor.grad, "cpu"), copy=True)
        record._tensor = None
    return Recording(records, order, [np.array(backend.to_device(o.data, "cpu")) for o in outputs], error)


# --- PyTorch's modules -----------------------------------------------------------------------------------------
def record_torch(module, inputs, dtype, training, seed=None):
    """Run a copy of the PyTorch ``module`` in ``dtype`` (numpy dtype) on ``inputs`` and record every module.

    The original module is left untouched (its weights, buffers, gradients and mode).
    """
    import torch
    torch_dtype = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[np.dtype(dtype)]
    reference = copy.deepcopy(module).to(torch_dtype).train(training)
    records, order = {}, []

    def hook(submodule, args, output, name):
        record = records.setdefault(name, Record(name, type(submodule).__name__))
        record.calls += 1
        if record.calls > 1:
            return None
        order.append(name)
        tensor = _first_tensor(output, torch.Tensor)
        if tensor is None:
            return None
        record.output = tensor.detach().cpu().numpy().copy()
        if _is_max_pool(submodule) and args and isinstance(args[0], torch.Tensor):
            record.pool_input = args[0].detach().cpu().numpy().copy()
            record.pool = submodule
        if seed is not None and tensor.requires_grad:
            tensor.register_hook(lambda grad, record=record: setattr(record, "grad", grad.detach().cpu().numpy()))
        if isinstance(output, torch.Tensor):
            return output.clone()  # later in-place ops change the clone, not the output recorded here
        return None

    calls, outputs, error = _CallStack(), [], None

    def leave_and_hook(submodule, args, output, name):
        calls.leave()
        return hook(submodule, args, output, name)

    handles = []
    for name, sub in reference.named_modules():
        handles.append(sub.register_forward_pre_hook(lambda m, a, name=name: calls.enter(name)))
        handles.append(sub.register_forward_hook(lambda m, a, o, name=name: leave_and_hook(m, a, o, name)))
    xs = [torch.tensor(np.asarray(x, dtype=dtype), requires_grad=seed is not None) for x in inputs]
    try:
        with torch.enable_grad() if seed is not None else torch.no_grad():
            outputs = _all_tensors(reference(*xs), torch.Tensor)
            if seed is not None:
                _loss(outputs, seed, lambda d, out: torch.tensor(d, dtype=out.dtype)).backward()
    except Exception as exc:  # reported in the comparison, with what was recorded up to here
        calls.fail()
        error = (calls.failed_in, f"{type(exc).__name__}: {exc}")
    finally:
        for handle in handles:
            handle.remove()
    return Recording(records, order, [o.detach().cpu().numpy() for o in outputs], error)
