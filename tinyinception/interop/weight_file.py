"""Any supported weight file -> a flat {reference key: ndarray} state_dict, and loading it into a model.

``read_state_dict(path)`` recognises the format from the first bytes (zip ``PK``, a pickle's ``\\x80``, or a
safetensors header length followed by ``{``), unwraps checkpoints that nest the weights (``{"state_dict": ...}``,
``{"model": ...}``) and strips DataParallel's ``module.`` prefix. ``load_weight_file(model, path)`` then loads it
through the model's ``ti.interop`` name table, strictly, with two tolerances PyTorch has too: a BatchNorm
``num_batches_tracked`` missing from an old file is taken as 0, and a file's auxiliary-head tensors (``aux1.``,
``aux2.``, ``AuxLogits.``) are skipped when the model was built without those heads.
"""
import os
import struct

import numpy as np

from .errors import WeightFileError
from .mapping import _table_for, load_torch_state_dict
from .safetensors_file import read_safetensors
from .torch_file import read_torch_file

NESTING_KEYS = ("state_dict", "model_state_dict", "model", "module", "net", "weights")
AUX_PREFIXES = ("aux1.", "aux2.", "AuxLogits.")


def detect_format(path):
    """"pytorch zip", "pytorch legacy" or "safetensors", from the file's first bytes."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no weight file at {path}")
    with open(path, "rb") as handle:
        head = handle.read(9)
    if head.startswith(b"PK\x03\x04"):
        return "pytorch zip"
    if head[:1] == b"\x80":
        return "pytorch legacy"
    if len(head) == 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] > 1:
        return "safetensors"
    raise WeightFileError(path, f"unknown format (first bytes {head!r}): expected a PyTorch .pth/.pt file or a "
                                f"safetensors file")


def _is_state_dict(obj):
    return isinstance(obj, dict) and obj and all(isinstance(k, str) and isinstance(v, np.ndarray)
                                                  for k, v in obj.items())


def find_state_dict(obj, path="weights"):
    """The flat {key: ndarray} inside a loaded object: itself, or under one of NESTING_KEYS (recursively)."""
    if _is_state_dict(obj):
        return obj
    if isinstance(obj, dict):
        for key in NESTING_KEYS:
            if key in obj:
                try:
                    return find_state_dict(obj[key], path)
                except WeightFileError:
                    continue
        arrays = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, np.ndarray)}
        if arrays and len(arrays) >= len(obj) / 2:      # a state_dict with a few non-tensor entries
            return arrays
    raise WeightFileError(path, f"no state_dict found: the file holds a {type(obj).__name__}"
                                + (f" with keys {sorted(map(str, obj))[:8]}" if isinstance(obj, dict) else ""))


def strip_prefix(state_dict, prefix="module."):
    """DataParallel's ``module.`` prefix removed when every key carries it."""
    if state_dict and all(key.startswith(prefix) for key in state_dict):
        return {key[len(prefix):]: value for key, value in state_dict.items()}
    return state_dict


def read_state_dict(path):
    """{reference key: ndarray} from a .pth/.pt (zip or legacy) or .safetensors file."""
    path = os.fspath(path)
    kind = detect_format(path)
    obj = read_safetensors(path) if kind == "safetensors" else read_torch_file(path)
    return strip_prefix(find_state_dict(obj, path))


def adapt_to_model(model, state_dict):
    """The tolerances of the module docstring: missing num_batches_tracked -> 0, aux heads the model lacks
    skipped. Returns a new dict; everything else is left for the strict load to judge."""
    expected = set(_table_for(model).values())
    adapted = {key: value for key, value in state_dict.items()
               if key in expected or not key.startswith(AUX_PREFIXES)
               or any(other.startswith(key.split(".")[0] + ".") for other in expected)}
    for key in expected:
        if key.endswith(".num_batches_tracked") and key not in adapted:
            adapted[key] = np.zeros((), dtype=np.int64)
    return adapted


def load_weight_file(model, path):
    """Load a .pth/.pt/.safetensors file holding the reference's keys into ``model``; returns the model.

    Raises WeightFileError for an unreadable file and StateDictError (listing missing, unexpected and mis-shaped
    keys) when the file does not match the model.
    """
    state_dict = adapt_to_model(model, read_state_dict(path))
    return load_torch_state_dict(model, state_dict)
