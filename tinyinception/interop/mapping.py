"""The machinery behind ``ti.interop``: a name table per network maps our state_dict keys to the reference's.

A table is a function ``table(model) -> dict[our_key -> reference_key]`` registered under the model class name.
Networks whose names already equal the reference's register ``identity``.
"""
import numpy as np

from .. import backend
from ..nn.module import StateDictError

_TABLES = {}


def register_table(model_class_name):
    """Decorator registering a name table for models of the class named ``model_class_name``."""
    def decorate(table):
        _TABLES[model_class_name] = table
        return table
    return decorate


def identity(model):
    return {key: key for key in model.state_dict()}


def _table_for(model):
    name = type(model).__name__
    if name not in _TABLES:
        raise KeyError(f"ti.interop: no name table for {name}; known: {', '.join(sorted(_TABLES)) or 'none'}")
    return _TABLES[name](model)


def reference_keys(model):
    """The reference's state_dict keys for this model, in our state_dict's order."""
    return list(_table_for(model).values())


def _to_numpy(value):
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        return value.detach().cpu().numpy()
    return backend.to_device(getattr(value, "data", value), "cpu") if not isinstance(value, np.ndarray) else value


def load_torch_state_dict(model, state_dict):
    """Load a reference state_dict into ``model`` strictly: every key mapped, every shape checked.

    On any mismatch raises StateDictError (a KeyError) listing the reference keys the state_dict lacks, the keys
    with no counterpart in the model, and the shape mismatches (reference shape vs ours).
    """
    table = _table_for(model)
    own = model.state_dict()
    missing = [ref for ours, ref in table.items() if ref not in state_dict]
    known = set(table.values())
    unexpected = [key for key in state_dict if key not in known]
    mismatched = []
    converted = {}
    for ours, ref in table.items():
        if ref in state_dict:
            value = _to_numpy(state_dict[ref])
            if tuple(value.shape) != tuple(own[ours].shape):
                mismatched.append(f"{ref} -> {ours}: reference {tuple(value.shape)}, ours {tuple(own[ours].shape)}")
            converted[ours] = value
    if missing or unexpected or mismatched:
        raise StateDictError.listing(f"load_torch_state_dict into {type(model).__name__} failed:", [
            ("reference keys missing from the state_dict", missing, ", "),
            ("keys with no counterpart in the model", unexpected, ", "), ("shape mismatches", mismatched, "; ")])
    model.load_state_dict(converted, strict=True)
    return model


def to_torch_state_dict(model):
    """Our state_dict under the reference's names, as NumPy arrays (copies), in our order."""
    table = _table_for(model)
    return {table[key]: np.array(_to_numpy(value), copy=True) for key, value in model.state_dict().items()}
