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


def load_checkpoint(path):
    """Read a checkpoint written by :func:`save_checkpoint`; returns its dict.

    Raises FileNotFoundError if ``path`` does not exist and CheckpointError if it is not a readable checkpoint.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load_checkpoint: no checkpoint file at {path}")
    try:
        with open(path, "rb") as handle:
            payload = _CheckpointUnpickler(handle).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as error:
        raise CheckpointError(f"load_checkpoint: {path} is not a readable checkpoint ({error})") from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_NAME:
        raise CheckpointError(f"load_checkpoint: {path} is not a tinyinception checkpoint")
    if payload.get("version") != FORMAT_VERSION:
        raise CheckpointError(f"load_checkpoint: {path} has format version {payload.get('version')}, this "
                              f"tinyinception reads version {FORMAT_VERSION}")
    return payload
