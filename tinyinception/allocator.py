"""Keep freed memory for reuse: big arrays without a page fault on every training step.

A training step allocates and frees the same large arrays again and again (activations, gradients, the
columns of a convolution). glibc's ``malloc`` serves every block above a threshold (128 KiB, rising to at most
32 MiB as it adapts) with a fresh ``mmap`` and hands it back to the operating system on ``free``; the next
step's array of the same size then page-faults its way in again, and the kernel zeroes each page first. On
2 cores that churn cost GoogLeNet's training step about 20% (126 -> 101 ms; Inception-v3 and -v4 10%).

`keep_freed_memory()` raises both thresholds (``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD``, via ``mallopt``)
so that freed blocks stay in the process and the next allocation reuses them. The price: the process's
resident memory stays near its peak instead of shrinking between steps (the peak itself does not grow). It
changes malloc for the whole process (PyTorch's CPU tensors, in the same process, benefit too).

tinyinception calls it once on import on Linux with glibc; ``TINYINCEPTION_KEEP_FREED_MEMORY=0`` turns that
off. On other systems it does nothing and returns False.
"""
import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_THRESHOLD_BYTES = 1 << 30  # blocks up to 1 GiB come from, and return to, the process's own heap

_state = {"enabled": False}


def keep_freed_memory():
    """Tune glibc's malloc to keep freed blocks for reuse (see the module docstring). Returns True if applied."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    applied = mallopt(_M_MMAP_THRESHOLD, _THRESHOLD_BYTES) == 1 and mallopt(_M_TRIM_THRESHOLD, _THRESHOLD_BYTES) == 1
    _state["enabled"] = applied
    return applied


def is_keeping_freed_memory():
    """True once `keep_freed_memory` has been applied in this process."""
    return _state["enabled"]


if os.environ.get("TINYINCEPTION_KEEP_FREED_MEMORY", "1") != "0":
    keep_freed_memory()
