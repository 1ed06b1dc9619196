"""A warning in a child process forked after the kernels started Numba's OpenMP threads.

GNU OpenMP is not fork-safe: a process that ran a parallel kernel on Numba's OpenMP layer (see `threaded_blas`,
which chooses it) and then forks -- ``multiprocessing`` with the "fork" start method, the default on Linux before
Python 3.14 -- gets children whose first parallel kernel hangs, with Numba's "fork() called from a process already
using GNU OpenMP" as the only hint. `install` registers an ``os.register_at_fork`` hook that warns in each such
child, with the two ways out: start workers with "spawn" (or "forkserver"), or run on Numba's work-queue threads
(``TINYINCEPTION_ONE_POOL=0``), which survive a fork.
"""
import os
import warnings

MESSAGE = ("tinyinception: this process was forked after its kernels started Numba's OpenMP threads, and GNU OpenMP "
           "is not fork-safe: a parallel kernel in this child will hang. Start worker processes with "
           "multiprocessing.get_context('spawn') (or 'forkserver'), or set TINYINCEPTION_ONE_POOL=0 in the "
           "environment before Python starts.")

_INSTALLED = []


class ForkAfterOpenMPWarning(RuntimeWarning):
    """A process forked after Numba's OpenMP threads started (see the module docstring)."""


def _warn_in_child():
    warnings.warn(MESSAGE, ForkAfterOpenMPWarning, stacklevel=2)


def install():
    """Register the warning for every later fork of this process (once; called when the OpenMP threads start)."""
    if not _INSTALLED and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_warn_in_child)
        _INSTALLED.append(True)
