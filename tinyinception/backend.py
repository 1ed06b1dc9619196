"""Which array module holds a tensor's data, and which kernels compute on it.

Three kernel families live side by side in `tinyinception/kernels/`:

* ``"numpy"``: plain NumPy, readable, the definition every other path is tested against;
* ``"numba"``: the same algorithms JIT-compiled by Numba for the CPU (the default);
* ``"cupy"``: CUDA kernels through CuPy, used whenever the data is a CuPy array.

CPU arrays use the kernels chosen by :func:`set_kernels` (or the environment variable
``TINYINCEPTION_KERNELS``); a CuPy array always uses the CuPy kernels.

The choice has two levels: :func:`set_kernels` sets the process's default, which every thread sees;
``with using_kernels(name):`` overrides it for the calling thread only, until the block ends (other threads
keep theirs). Inside such a block, ``set_kernels`` changes the default that the other threads, and this one
after the block, see.
"""
import contextlib
import contextvars
import os

import numpy as np

KERNEL_CHOICES = ("numba", "numpy")
_state = {"kernels": os.environ.get("TINYINCEPTION_KERNELS", "numba").strip().lower() or "numba"}  # the default
if _state["kernels"] not in KERNEL_CHOICES:
    raise ValueError(
        f"TINYINCEPTION_KERNELS={_state['kernels']!r}: expected one of {', '.join(KERNEL_CHOICES)}"
    )


# The calling thread's `using_kernels` choice, or None (the process default then): a context variable, per thread
# (a new thread starts with none) and per asyncio task.
_thread_choice = contextvars.ContextVar("tinyinception_kernels", default=None)


def _checked(name, where):
    name = str(name).lower()
    if name not in KERNEL_CHOICES:
        raise ValueError(f"{where}: expected one of {', '.join(KERNEL_CHOICES)}, got {name!r}")
    return name


def set_kernels(name):
    """Choose the CPU kernels for the whole process: ``"numba"`` (fast, default) or ``"numpy"`` (reference).
    A thread inside a `using_kernels` block keeps that block's choice until the block ends."""
    _state["kernels"] = _checked(name, "set_kernels")


def get_kernels():
    """The name of the kernels CPU arrays use now in the calling thread: ``"numba"`` or ``"numpy"``."""
    return _thread_choice.get() or _state["kernels"]


@contextlib.contextmanager
def using_kernels(name):
    """Context manager: ``with using_kernels("numpy"): ...`` runs the calling thread's CPU ops on the NumPy
    kernels (other threads keep theirs)."""
    previous = _thread_choice.get()
    _thread_choice.set(_checked(name, "using_kernels"))
    try:
        yield
    finally:
        _thread_choice.set(previous)


def cupy_module():
    """The ``cupy`` module if it imports, else None (importing it needs no GPU)."""
    try:
        import cupy
    except Exception:  # ImportError, or a broken CUDA install
        return None
    return cupy


def is_cupy_array(array):
    if type(array) is np.ndarray:  # the common case, answered without looking at the type's module
        return False
    cupy = cupy_module() if type(array).__module__.startswith("cupy") else None
    return cupy is not None and isinstance(array, cupy.ndarray)


def get_array_module(*arrays):
    """``numpy`` or ``cupy``, whichever holds the arrays (NumPy when none is a CuPy array)."""
    for array in arrays:
        if is_cupy_array(array):
            return cupy_module()
    return np


def kernels_for(array):
    """The kernel family that computes on ``array``: ``"cupy"``, ``"numba"`` or ``"numpy"``."""
    return "cupy" if is_cupy_array(array) else get_kernels()


def gpu_available():
    """True when CuPy imports *and* a CUDA device answers (any CUDA error means no)."""
    cupy = cupy_module()
    if cupy is None:
        return False
    try:
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # CUDARuntimeError on machines without a driver or device
        return False


def to_device(array, device):
    """Copy ``array`` to ``"cpu"`` (NumPy) or ``"cuda"`` (CuPy); no copy if already there."""
    device = str(device)
    if device == "cpu":
        return array.get() if is_cupy_array(array) else array
    if device.startswith("cuda"):
        if not gpu_available():
            raise RuntimeError(f"to('{device}'): no CUDA device is available (ti.cuda.is_available() is False)")
        cupy = cupy_module()
        return array if is_cupy_array(array) else cupy.asarray(array)
    raise ValueError(f"to: unknown device {device!r}; expected 'cpu' or 'cuda'")


def device_of(array):
    return "cuda" if is_cupy_array(array) else "cpu"
