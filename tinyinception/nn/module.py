"""`Module`: the base class of every layer and network, with PyTorch's registration and state_dict rules.

Assigning a `Parameter` or a `Module` to an attribute registers it; ``register_buffer`` registers state that is
saved but not learned (BatchNorm's running statistics). Names are dotted paths (``inception3a.branch1.conv.weight``),
exactly as PyTorch names them, so weights can be exchanged by name.
"""
from collections import OrderedDict

import numpy as np

from ..autograd import Tensor
from .. import backend
from .parameter import Parameter


class StateDictError(KeyError, RuntimeError):
    """load_state_dict's error: a KeyError (and a RuntimeError, as in torch) whose message prints as written."""

    def __str__(self):
        return str(self.args[0]) if self.args else ""

    @classmethod
    def listing(cls, title, problems):
        """The error for ``title`` followed by one line per kind of problem that occurred: ``problems`` is a list
        of (label, items, separator), e.g. ("missing keys", ["fc.bias"], ", "); empty kinds are left out."""
        lines = [title] + [f"  {label} ({len(items)}): {separator.join(items)}"
                           for label, items, separator in problems if items]
        return cls("\n".join(lines))


class _HookHandle:
    def __init__(self, hooks, key):
        self.hooks, self.key = hooks, key

    def remove(self):
        self.hooks.pop(self.key, None)


class Module:
    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())
        object.__setattr__(self, "training", True)

    # --- registration ---------------------------------------------------------------------------------------
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before assigning attributes")
        if isinstance(value, Parameter):
            self._forget(name)
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._forget(name)
            self._modules[name] = value
        elif name in self._buffers:
            self._buffers[name] = None if value is None else _as_buffer(value)
        elif name in self._parameters and value is not None:
            raise TypeError(f"cannot assign {type(value).__name__} as parameter '{name}' "
                            "(a Parameter or None expected)")
        elif name in self._parameters or name in self._modules:
            self._forget(name)
            object.__setattr__(self, name, value)
        else:
            object.__setattr__(self, name, value)

    def _forget(self, name):
        for registry in (self._parameters, self._buffers, self._modules):
            registry.pop(name, None)
        self.__dict__.pop(name, None)

    def __getattr__(self, name):  # only called when normal lookup fails
        for registry in ("_parameters", "_buffers", "_modules"):
            store = self.__dict__.get(registry)
            if store is not None and name in store:
                return store[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for registry in (self._parameters, self._buffers, self._modules):
            if name in registry:
                del registry[name]
                return
        object.__delattr__(self, name)

    def register_buffer(self, name, value):
        """Register state that is saved in ``state_dict`` and moved by ``to`` but not learned (may be None)."""
        self.__dict__.pop(name, None)
        self._buffers[name] = None if value is None else _as_buffer(value)

    def register_parameter(self, name, parameter):
        if parameter is None:
            self._parameters[name] = None
        else:
            setattr(self, name, parameter)

    def add_module(self, name, module):
        self._modules[name] = module

    # --- walking the tree -------------------------------------------------------------------------------------
    def named_modules(self, prefix=""):
        """(name, module) for this module and every descendant, depth first, in registration order."""
        stack = [(prefix, self)]
        seen = set()
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [(f"{name}.{child_name}" if name else child_name, child)
                        for child_name, child in module._modules.items() if child is not None]
            stack.extend(reversed(children))

    def modules(self):
        return (module for _, module in self.named_modules())

    def named_children(self):
        return ((name, m) for name, m in self._modules.items() if m is not None)

    def children(self):
        return (m for _, m in self.named_children())

    def _named_members(self, registry, recurse=True):
        seen = set()
        modules = self.named_modules() if recurse else [("", self)]
        for module_name, module in modules:
            for name, value in getattr(module, registry).items():
                if value is None or id(value) in seen:
                    continue
                seen.add(id(value))
                yield (f"{module_name}.{name}" if module_name else name), value

    def named_parameters(self, recurse=True):
        return self._named_members("_parameters", recurse)

    def parameters(self, recurse=True):
        return (p for _, p in self.named_parameters(recurse))

    def named_buffers(self, recurse=True):
        return self._named_members("_buffers", recurse)

    def buffers(self, recurse=True):
        return (b for _, b in self.named_buffers(recurse))

    def num_parameters(self):
        """Total number of learnable elements (what torchvision and timm report as the parameter count)."""
        return sum(p.numel() for p in self.parameters())

    # --- modes and gradients ----------------------------------------------------------------------------------
    def train(self, mode=True):
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self, set_to_none=True):
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad[...] = 0

    def requires_grad_(self, requires_grad=True):
        for p in self.parameters():
            p.requires_grad = requires_grad
        return self

    # --- calling ----------------------------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        output = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            result = hook(self, args, output)
            if result is not None:
                output = result
        return output

    def register_forward_hook(self, hook):
        """``hook(module, inputs, output)`` runs after each forward; return a value to replace the output."""
        key = max(self._forward_hooks, default=-1) + 1
        self._forward_hooks[key] = hook
        return _HookHandle(self._forward_hooks, key)

    # --- state ------------------------------------------------------------------------------------------------
    def state_dict(self):
        """OrderedDict name -> array (NumPy or CuPy) of every parameter and buffer, PyTorch's order and names.

        The arrays are the module's own (not copies), as in PyTorch: copy them before changing them.
        """
        state = OrderedDict()
        for module_name, module in self.named_modules():
            for registry in (module._parameters, module._buffers):
                for name, value in registry.items():
                    if value is not None:
                        state[f"{module_name}.{name}" if module_name else name] = value.data
        return state

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays into this module's parameters and buffers, in place (device and dtype kept).

        With strict=True every key must match and every shape agree; otherwise a KeyError lists the missing,
        unexpected and mis-shaped keys. Returns (missing_keys, unexpected_keys).
        """
        own = OrderedDict()
        for module_name, module in self.named_modules():
            for registry in (module._parameters, module._buffers):
                for name, value in registry.items():
                    if value is not None:
                        own[f"{module_name}.{name}" if module_name else name] = value
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        mismatched = []
        for key, target in own.items():
            if key in state_dict:
                shape = tuple(np.shape(_raw(state_dict[key])))
                if shape != target.shape:
                    mismatched.append(f"{key}: checkpoint {shape}, model {target.shape}")
        if mismatched or (strict and (missing or unexpected)):
            raise StateDictError.listing(f"load_state_dict for {type(self).__name__} failed:", [
                ("missing keys", missing, ", "), ("unexpected keys", unexpected, ", "),
                ("shape mismatches", mismatched, "; ")])
        for key, target in own.items():
            if key in state_dict:
                xp = backend.get_array_module(target.data)
                target.data[...] = xp.asarray(_raw(state_dict[key]), dtype=target.dtype)
        return missing, unexpected

    # --- devices and dtypes -----------------------------------------------------------------------------------
    def _apply(self, convert):
        """Replace every parameter's and buffer's array by ``convert(array)`` (the objects stay the same)."""
        for module in self.modules():
            for registry in (module._parameters, module._buffers):
                for value in registry.values():
                    if value is not None:
                        value.data = convert(value.data)
                        if value.grad is not None:
                            value.grad = convert(value.grad)
        return self

    def to(self, device):
        """Move all parameters and buffers to ``"cpu"`` or ``"cuda"``, in place; returns self."""
        return self._apply(lambda a: backend.to_device(a, device))

    def cpu(self):
        return self.to("cpu")

    def cuda(self):
        return self.to("cuda")

    def _cast_floats(self, dtype):
        return self._apply(lambda a: a.astype(dtype) if a.dtype.kind == "f" else a)

    def float(self):
        return self._cast_floats(np.float32)

    def double(self):
        """Every floating parameter and buffer to float64 (for gradient checks of whole blocks)."""
        return self._cast_floats(np.float64)

    def apply(self, fn):
        """Call ``fn(module)`` on every submodule (children first) and on self, like ``torch.nn.Module.apply``."""
        for module in reversed(list(self.modules())):
            fn(module)
        return self

    # --- printing ---------------------------------------------------------------------------------------------
    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = [f"({name}): " + repr(child).replace("\n", "\n  ") for name, child in self.named_children()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"


def _raw(value):
    """An array from a Tensor, NumPy/CuPy array, or torch tensor (through NumPy)."""
    if isinstance(value, Tensor):
        return value.data
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        return value.detach().cpu().numpy()
    return value


def _as_buffer(value):
    if isinstance(value, Tensor):
        return value
    return Tensor(value)
