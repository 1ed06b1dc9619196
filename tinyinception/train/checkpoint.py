"""Checkpoints: one pickle file of plain Python containers and NumPy arrays, written atomically.

Format (``FORMAT_VERSION`` 1): ``pickle`` protocol 4 of a dict

    format            "tinyinception-checkpoint"
    version           1
    model             {state_dict key: ndarray}   -- parameters and buffers, PyTorch's names
    optimizer         optimizer.state_dict()      -- arrays as NumPy
    scheduler         scheduler.state_dict() or None
    epoch             number of epochs completed (a resumed run starts with this epoch index)
    global_step       optimizer steps taken so far
    train_loader      the training DataLoader's state_dict() ({"seed", "epoch", "batch"}) or None
    rng_state         ti.get_rng_state() (dropout and initialisation draws)
    history           list of the per-epoch metric dicts so far (what metrics.jsonl holds)
    plan              what the run was planned as: {"epochs", "steps_per_epoch", "optimizer" (class name),
                      "settings" (each parameter group's hyperparameters, lr = the peak)}; resuming compares it
    best_val_accuracy the best validation accuracy so far (or None)
    config            free-form dict from the caller (the CLI stores model name, width, dataset...)

Only plain types go in: CuPy arrays are copied to NumPy and NumPy scalars become Python numbers, so a checkpoint
written on a GPU loads on a CPU. Loading uses an unpickler that refuses every class except NumPy's array
reconstruction, so a checkpoint cannot run code -- but still only load checkpoints you trust.

Atomic save: the bytes go to a temporary file in the same directory, are flushed and fsync'ed, and only then
``os.replace`` moves the file over the old checkpoint (an atomic rename on POSIX and Windows). A crash or an
exception during the write leaves the previous checkpoint untouched, and the temporary file is removed.
"""
import os
import pickle

import numpy as np

from .. import backend
from ..atomic_file import atomic_file

FORMAT_NAME = "tinyinception-checkpoint"
FORMAT_VERSION = 1
PICKLE_PROTOCOL = 4

_RECONSTRUCT = np.zeros(1).__reduce__()[0]      # numpy's array-unpickling function, wherever this NumPy keeps it
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,    # NumPy 1.x name
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,   # NumPy 2.x name
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class CheckpointError(ValueError):
    """A file that is not a readable tinyinception checkpoint."""


def to_plain(value):
    """``value`` with CuPy arrays copied to NumPy, NumPy scalars as Python numbers, tuples/lists/dicts walked."""
    if backend.is_cupy_array(value):
        return backend.to_device(value, "cpu")
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "data") and hasattr(value, "grad_fn"):    # a Tensor (a buffer handed over as one)
        return to_plain(value.data)
    if isinstance(value, dict):
        return {key: to_plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [to_plain(item) for item in value]
    if isinstance(value, tuple):
        return tuple(to_plain(item) for item in value)
    return value


def _write_payload(handle, payload):
    """Serialise ``payload`` into the open binary file ``handle`` (the one step that can fail halfway)."""
    pickle.dump(payload, handle, protocol=PICKLE_PROTOCOL)


def atomic_save(payload, path):
    """Write ``payload`` (plain containers and NumPy arrays) to ``path`` atomically; returns ``path``.

    The file appears complete or not at all: a failure leaves the previous file at ``path`` unchanged and no
    temporary file behind (`tinyinception.atomic_file`).
    """
    with atomic_file(path) as handle:
        _write_payload(handle, payload)
    return os.fspath(path)


def save_checkpoint(path, **fields):
    """Save a checkpoint: ``fields`` as described in the module docstring (format and version added)."""
    payload = {"format": FORMAT_NAME, "version": FORMAT_VERSION}
    payload.update(to_plain(fields))
    return atomic_save(payload, path)


class _CheckpointUnpickler(pickle.Unpickler):
    """Plain containers and NumPy arrays only; every other global is refused."""

    def find_class(self, module, name):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"load_checkpoint: refusing to load {module}.{name} from a checkpoint")
        return _ALLOWED_GLOBALS[(module, name)]


# The fields `fit` reads back, with the type each must have when present.
_FIELD_TYPES = {"model": dict, "optimizer": dict, "scheduler": (dict, type(None)), "epoch": int,
                "global_step": int, "train_loader": (dict, type(None)), "history": list, "config": dict,
                "plan": (dict, type(None)), "best_val_accuracy": (int, float, type(None))}


def _unpickle(path):
    """The object pickled in ``path``; any failure of the bytes becomes a CheckpointError naming the file."""
    try:
        with open(path, "rb") as handle:
            return _CheckpointUnpickler(handle).load()
    except OSError:
        raise
    except Exception as error:      # noqa: BLE001 -- hostile bytes raise anything (MemoryError, KeyError...)
        reason = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        raise CheckpointError(f"load_checkpoint: {path} is not a readable checkpoint ({reason[:200]})") from None


def _check_fields(payload, path):
    for name, kinds in _FIELD_TYPES.items():
        if name in payload and (not isinstance(payload[name], kinds) or isinstance(payload[name], bool)):
            raise CheckpointError(f"load_checkpoint: {path}: field {name!r} is a {type(payload[name]).__name__}, "
                                  f"not what a checkpoint holds; the file is damaged or not a checkpoint")
    for key, value in (payload.get("model") or {}).items():
        if not isinstance(value, np.ndarray):
            raise CheckpointError(f"load_checkpoint: {path}: model entry {key!r} is a {type(value).__name__}, "
                                  f"expected a NumPy array")


def load_checkpoint(path):
    """Read a checkpoint written by :func:`save_checkpoint`; returns its dict.

    Raises FileNotFoundError if ``path`` does not exist and CheckpointError (naming the file) if it is not a
    readable checkpoint: bytes that do not unpickle, a pickle of something else, a field of the wrong type. No
    other error comes out of reading damaged or hostile bytes.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load_checkpoint: no checkpoint file at {path}")
    payload = _unpickle(path)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_NAME:
        raise CheckpointError(f"load_checkpoint: {path} is not a tinyinception checkpoint")
    if payload.get("version") != FORMAT_VERSION:
        raise CheckpointError(f"load_checkpoint: {path} has format version {payload.get('version')!r}, this "
                              f"tinyinception reads version {FORMAT_VERSION}")
    _check_fields(payload, path)
    return payload


def require_fields(state, path, *names):
    """Raise CheckpointError naming ``path`` unless the loaded checkpoint ``state`` has every field in ``names``."""
    missing = [name for name in names if name not in state]
    if missing:
        raise CheckpointError(f"{path} lacks the field(s) {', '.join(missing)}; it was not written by "
                              f"ti.train.fit (or `tinyinception train`)")
