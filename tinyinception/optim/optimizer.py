"""The optimizer base class: parameter groups, per-parameter state, and checkpoints.

An optimizer holds ``param_groups``, a list of dicts. Each dict has the key ``'params'`` (a list of
Parameters) and that group's options (``'lr'``, ``'momentum'``, ...); a learning-rate scheduler changes
``group['lr']`` between steps. ``state[p]`` is the dict of running buffers of parameter ``p`` (momentum,
moving averages, step count), created the first time ``p`` has a gradient.

A subclass only writes ``_update(param, grad, state, options)``: the rule for one parameter. The base class
walks the groups, skips parameters whose ``grad`` is None, checks shapes and dtypes, and hands the group's
options over as plain Python floats (a NumPy float64 scalar would upcast float32 arithmetic).

Every update happens in place on ``param.data`` with the array module of the data (NumPy or CuPy), so views
of the data and references held elsewhere stay valid, and the dtype never changes.

The usual loop::

    opt = ti.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for images, labels in loader:
        opt.zero_grad()                       # forget the previous batch's gradients
        loss = loss_fn(model(images), labels)
        loss.backward()                       # fill every p.grad
        opt.step()                            # p.data -= ... in place
"""
import numbers

import numpy as np

from tinyinception.backend import get_array_module, is_cupy_array


class _Required:
    """Marks an option a parameter group must give (there is no default)."""

    def __repr__(self):
        return "<required>"


required = _Required()


def _is_param(obj):
    """A Parameter-like object: it has ``.data`` and ``.grad`` (a dict is a parameter group, not one)."""
    return not isinstance(obj, dict) and hasattr(obj, "data") and hasattr(obj, "grad")


def _reject_sets(owner, params):
    if isinstance(params, (set, frozenset)):
        raise TypeError(
            f"{owner}: params must be an ordered collection (a list), not a set: "
            "the order is how state_dict() numbers them"
        )


def _python_scalar(value):
    """A number as a Python float (bools kept), a tuple of numbers as a tuple of floats, others unchanged."""
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (tuple, list)) and all(isinstance(v, numbers.Real) for v in value):
        return tuple(float(v) for v in value)
    return value


def _copy_value(value):
    """A copy of one state entry: arrays are copied, Python numbers are immutable already."""
    return value.copy() if hasattr(value, "copy") and hasattr(value, "dtype") else value


def _array_like(value, data):
    """``value`` (a NumPy or CuPy array) as a fresh array on ``data``'s module, floating values in its dtype; an
    array of the parameter's shape also takes its memory layout (so the fused update still applies after a resume)."""
    xp = get_array_module(data)
    if is_cupy_array(value) and xp.__name__ == "numpy":
        value = value.get()
    dtype = data.dtype if value.dtype.kind == "f" else value.dtype
    if tuple(value.shape) == tuple(data.shape):
        copy = xp.empty_like(data, dtype=dtype)  # order "K": the parameter's layout
        copy[...] = xp.asarray(value)
        return copy
    return xp.array(value, dtype=dtype, copy=True)


def _restored(value, data):
    """One saved state entry made ready for ``data``: arrays as in :func:`_array_like`, NumPy scalars as
    Python numbers (a NumPy int64 step count would turn later bias corrections into float64)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, numbers.Number):
        return value
    if hasattr(value, "dtype"):
        return _array_like(value, data)
    return _copy_value(value)


class ParamState:
    """``state[p]``: the dict of buffers of parameter ``p``, created empty on first access.

    Keyed by the parameter's identity (``id(p)``) and not by ``p`` itself, because a Tensor that defines
    ``==`` elementwise cannot be a dict key. Iterating yields the parameters; ``items()`` yields
    ``(param, buffers)`` pairs.
    """

    def __init__(self):
        self._entries = {}  # id(param) -> (param, buffers)

    def __getitem__(self, param):
        entry = self._entries.get(id(param))
        if entry is None:
            entry = self._entries[id(param)] = (param, {})
        return entry[1]

    def __contains__(self, param):
        return id(param) in self._entries

    def __len__(self):
        return len(self._entries)

    def __iter__(self):
        return (param for param, _ in self._entries.values())

    def items(self):
        return list(self._entries.values())

    def values(self):
        return [buffers for _, buffers in self._entries.values()]

    def __repr__(self):
        return f"ParamState({len(self)} parameters)"


class Optimizer:
    """Base class of every optimizer.

    Args:
        params: an iterable of Parameters, or of dicts (parameter groups) each holding ``'params'`` and any
            options that differ from the defaults, e.g. ``[{'params': body}, {'params': head, 'lr': 0.1}]``.
        defaults: the options of a group that does not set them (``required`` marks one it must set).
    """

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.state = ParamState()
        self.param_groups = []
        name = type(self).__name__
        if _is_param(params) or isinstance(params, dict):
            raise TypeError(
                f"{name}: params must be an iterable of Parameters or of dicts (parameter groups), "
                f"got a single {type(params).__name__}; wrap it in a list"
            )
        _reject_sets(name, params)
        groups = list(params)
        if not groups:
            raise ValueError(f"{name}: got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, param_group):
        """Add a group of parameters with its own options (e.g. a new head trained with a larger lr).

        Args:
            param_group: a dict with ``'params'`` (a Parameter or an ordered iterable of them) and options;
                options it does not give are taken from the optimizer's defaults.
        """
        name = type(self).__name__
        if not isinstance(param_group, dict):
            raise TypeError(f"{name}.add_param_group: expected a dict, got {type(param_group).__name__}")
        group = dict(param_group)
        params = group.get("params")
        if params is None:
            raise ValueError(f"{name}.add_param_group: the group has no 'params' entry")
        _reject_sets(name, params)
        params = [params] if _is_param(params) else list(params)
        for index, param in enumerate(params):
            if not _is_param(param):
                raise TypeError(
                    f"{name}: params[{index}] is a {type(param).__name__}, expected a Parameter "
                    "(an object with .data and .grad)"
                )
        if len({id(p) for p in params}) != len(params):
            raise ValueError(f"{name}: a parameter appears twice in the same parameter group")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError(f"{name}: some parameters appear in more than one parameter group")
        for option, default in self.defaults.items():
            if default is required and option not in group:
                raise ValueError(f"{name}: parameter group {len(self.param_groups)} must set {option!r}")
            group.setdefault(option, default)
        group["params"] = params
        self.param_groups.append(group)

    def zero_grad(self, set_to_none=True):
        """Forget the gradients: ``p.grad = None`` (default), or fill them with zeros in place."""
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                if set_to_none:
                    param.grad = None
                else:
                    param.grad[...] = 0

    def step(self, closure=None):
        """Update every parameter that has a gradient, in place; return ``closure()`` if one is given.

        Args:
            closure: optional callable that recomputes the loss (zero_grad, forward, backward) and returns it.
        """
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            options = {key: _python_scalar(value) for key, value in group.items() if key != "params"}
            for param in group["params"]:
                if param.grad is None:
                    continue
                self._update(param, self._checked_grad(param), self.state[param], options)
        return loss

    def _update(self, param, grad, state, options):
        """Apply this optimizer's rule to one parameter in place. ``grad`` has ``param.data``'s shape and dtype."""
        raise NotImplementedError(f"{type(self).__name__} must define _update(param, grad, state, options)")

    def _checked_grad(self, param):
        data, grad = param.data, param.grad
        name = type(self).__name__
        if grad.shape != data.shape:
            raise ValueError(
                f"{name}.step: a parameter of shape {tuple(data.shape)} has a gradient of shape {tuple(grad.shape)}"
            )
        if grad.dtype != data.dtype:
            raise TypeError(
                f"{name}.step: a {data.dtype} parameter of shape {tuple(data.shape)} has a {grad.dtype} gradient; "
                "the optimizer does not cast dtypes silently"
            )
        if get_array_module(grad) is not get_array_module(data):
            raise TypeError(f"{name}.step: a parameter and its gradient live on different devices (NumPy vs CuPy)")
        return grad

    def state_dict(self):
        """The optimizer's state as plain data, keyed by parameter index like PyTorch.

        Returns ``{'state': {index: {buffer name: array copy or int}}, 'param_groups': [options with
        'params': [indices]]}``; indices count the parameters across the groups in order.
        """
        index_of = {}
        packed_groups = []
        for group in self.param_groups:
            packed = {key: value for key, value in group.items() if key != "params"}
            packed["params"] = []
            for param in group["params"]:
                index_of[id(param)] = len(index_of)
                packed["params"].append(index_of[id(param)])
            packed_groups.append(packed)
        packed_state = {
            index_of[id(param)]: {key: _copy_value(value) for key, value in buffers.items()}
            for param, buffers in self.state.items()
            if id(param) in index_of
        }
        return {"state": packed_state, "param_groups": packed_groups}

    def load_state_dict(self, state_dict):
        """Restore a ``state_dict()``: buffers are copied onto each parameter's device in its dtype.

        The parameters are matched by position, so the optimizer must have been built over the same
        parameters in the same order and grouping.
        """
        name = type(self).__name__
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"{name}.load_state_dict: the saved state has {len(saved_groups)} parameter groups, "
                f"this optimizer has {len(self.param_groups)}"
            )
        param_of_index = {}
        for number, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"{name}.load_state_dict: parameter group {number} has {len(saved['params'])} parameters "
                    f"in the saved state and {len(group['params'])} here"
                )
            param_of_index.update(zip((int(i) for i in saved["params"]), group["params"]))
        new_state = ParamState()
        for index, buffers in state_dict["state"].items():
            if int(index) not in param_of_index:
                raise ValueError(f"{name}.load_state_dict: saved state for parameter {index}, which no group holds")
            param = param_of_index[int(index)]
            new_state[param].update({key: _restored(value, param.data) for key, value in buffers.items()})
        self.state = new_state
        for saved, group in zip(saved_groups, self.param_groups):
            group.update({key: value for key, value in saved.items() if key != "params"})

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for number, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {number}")
            for key in sorted(k for k in group if k != "params"):
                lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)
