"""Scratch buffers reused from call to call: big temporaries without the cost of fresh memory.

A fresh multi-megabyte NumPy array comes from the operating system as untouched pages, and the first
write to each 4 KiB page is a page fault: writing 10 MB of fresh memory costs ~3 ms, more than
copying it. A convolution that allocates its temporaries anew on every call pays this on every layer.

`scratch(name, shape, dtype)` hands out a view of a buffer kept under ``name`` and grown only when a
bigger one is asked for, so after the first training step the temporaries are written into memory
that is already mapped. Rules for callers: the view is valid until the next `scratch` call with the
same name, so a temporary must never escape (never be returned to the user, saved for backward or
stored in a tensor), and two temporaries alive at once need different names.

Each Python thread has buffers of its own: two threads convolving at once never write into each other's
temporaries (a thread's buffers are freed when the thread ends). Within one thread the rules above hold.

`release()` frees all buffers (the memory benchmark calls it to measure a cold start).
"""
import itertools
import math
import threading
import weakref

import numpy as np


class _Buffers(dict):
    """One thread's buffers, name -> uint8 array (a dict that `_every_thread` can refer to weakly)."""

    __slots__ = ("__weakref__",)


_this_thread = threading.local()
_every_thread = weakref.WeakValueDictionary()  # a number per thread -> its _Buffers while the thread lives
_numbers = itertools.count()
_registering = threading.Lock()


def _buffers():
    """The calling thread's buffers (made at its first `scratch` call)."""
    try:
        return _this_thread.buffers
    except AttributeError:
        buffers = _this_thread.buffers = _Buffers()
        with _registering:
            _every_thread[next(_numbers)] = buffers
        return buffers


def scratch(name, shape, dtype):
    """An uninitialised C-contiguous array of ``shape``/``dtype`` backed by the calling thread's reusable buffer
    ``name``."""
    dtype = np.dtype(dtype)
    size = math.prod(shape) * dtype.itemsize
    buffers = _buffers()
    buffer = buffers.get(name)
    if buffer is None or buffer.size < size:
        buffers.pop(name, None)  # drop the old one first, so that peak memory holds only the new one
        buffer = buffers[name] = np.empty(max(size, 1), dtype=np.uint8)
    return buffer[:size].view(dtype).reshape(shape)


LINE = 64  # bytes in a cache line


def row_pitch(length, itemsize):
    """Values per row for rows of ``length`` values: a whole number of cache lines, and an odd number, so that
    the rows of a matrix do not all fall in the same few cache sets. (A pitch that is a multiple of 1 KiB puts
    every 4th row of a matrix in the same set: BLAS, reading a block of K rows, then misses the cache; measured on a
    3x3 96->128 convolution whose grid rows were 27,904 floats: products 4% slower.)"""
    per_line = max(1, LINE // itemsize)
    lines = -(-length // per_line)
    return (lines + 1 - lines % 2) * per_line


def scratch_rows(name, rows, length, dtype):
    """An uninitialised C-contiguous (rows, `row_pitch` (length)) array of the reusable buffer ``name``: rows of
    at least ``length`` values (the caller uses the first ``length``)."""
    dtype = np.dtype(dtype)
    return scratch(name, (rows, row_pitch(length, dtype.itemsize)), dtype)


def _all_buffers():
    with _registering:
        return list(_every_thread.values())


def release():
    """Free every thread's scratch buffers (a temporary in use elsewhere keeps its memory until it is dropped)."""
    for buffers in _all_buffers():
        buffers.clear()


def held_bytes():
    """Bytes held by the scratch buffers of every thread now."""
    return sum(buffer.size for buffers in _all_buffers() for buffer in list(buffers.values()))
