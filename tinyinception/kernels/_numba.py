"""Numba's ``njit`` and ``prange``, or stand-ins that explain what is missing.

Every Numba kernel in this package is compiled lazily (on first call, once per dtype) with
``cache=True``, so the machine code is written to ``__pycache__`` and later processes load it
instead of compiling again (`_cache`: a change to any kernel file of the package recompiles them all).

The threading layer defaults to Numba's work queue (see below), chosen before the first parallel kernel runs.
"""
import os
import threading
import types

try:
    import numba
    from numba import njit, prange

    NUMBA_AVAILABLE = True
    if "NUMBA_THREADING_LAYER" not in os.environ:
        # Numba's own work queue, not OpenMP, while OpenBLAS runs the products on threads of its own: OpenMP's
        # worker threads keep spinning after each parallel kernel and starve OpenBLAS's, and on 2 cores a GoogLeNet
        # training step measured 8-10 s instead of 0.3 s. `threaded_blas` switches to OpenMP when it can run the
        # products on Numba's threads instead (OpenBLAS then on one thread): one pool, which starts in microseconds.
        # (The work queue must not be entered from two Python threads at once: `run_parallel` guards it. Set
        # NUMBA_THREADING_LAYER to choose a layer yourself.)
        numba.config.THREADING_LAYER = "workqueue"
except ImportError:  # keep the NumPy kernels usable without Numba
    NUMBA_AVAILABLE = False
    prange = range

    def njit(*args, **kwargs):
        def decorate(function):
            def missing(*call_args, **call_kwargs):
                raise RuntimeError(
                    f"{function.__name__}: Numba is not installed; "
                    "install numba or call tinyinception.backend.set_kernels('numpy')"
                )

            return missing

        if len(args) == 1 and callable(args[0]) and not kwargs:
            return decorate(args[0])
        return decorate


if NUMBA_AVAILABLE:
    from . import _cache

    _cache.install()  # before any kernel is decorated: every kernel module takes njit from here


def numba_threads():
    """How many threads Numba's parallel loops run on now (1 without Numba)."""
    return numba.get_num_threads() if NUMBA_AVAILABLE else 1


# Starting Numba's worker threads for one parallel loop costs tens of microseconds, and on a 2-core machine the
# threads also wait for OpenBLAS's, which keep spinning for a while after each matrix product. For a small array
# that is more than the whole work (a batch norm over 16x96x8x8 values: 0.20 ms on two threads, 0.03 ms on one),
# so each parallel kernel has a serial twin, chosen below this many elements. Memory-bound passes (batch norm,
# copies) gained nothing from a second thread even at 4M elements; compute-bound ones (pooling windows) pass
# their own, lower limit.
SERIAL_BELOW = 1 << 22
# Numba's OpenMP threads (see `threaded_blas`, which chooses them) start in microseconds and find both cores free:
# then every kernel gains from the second thread from ~8K elements on (a grid copy of 64K values: 70 -> 37 us).
SERIAL_BELOW_ONE_POOL = 1 << 14
_pool = {"one": False}


def use_one_pool():
    """Called by `threaded_blas` once Numba runs on OpenMP and OpenBLAS on one thread: lowers the serial limits."""
    _pool["one"] = True


def serial_twin(kernel):
    """``kernel`` (an ``njit(parallel=True)`` function) compiled again without threads: ``prange`` runs as
    ``range``. Same source, same results; its own name (``<name>_serial``), so its own on-disk cache entry."""
    if not NUMBA_AVAILABLE:
        return kernel
    function = kernel.py_func
    twin = types.FunctionType(function.__code__, function.__globals__, function.__name__ + "_serial",
                              function.__defaults__, function.__closure__)
    twin.__qualname__ = function.__qualname__ + "_serial"
    twin.__doc__ = function.__doc__
    options = {name: value for name, value in kernel.targetoptions.items() if name != "nopython"}
    return njit(**dict(options, parallel=False, cache=True))(twin)


# Numba's work queue aborts the process when a second Python thread starts a parallel region while one runs
# ("Concurrent access has been detected"); OpenMP and TBB take parallel regions from any number of threads.
_layer = {}  # "threadsafe": known once the first parallel region has started the threads
_work_queue_entry = threading.Lock()


def _threadsafe_layer():
    """True when the threading layer running takes parallel regions from several Python threads at once."""
    safe = _layer.get("threadsafe")
    if safe is None:
        try:
            safe = _layer["threadsafe"] = numba.threading_layer() != "workqueue"
        except ValueError:  # no parallel region has run yet: the layer is not known
            return False
    return safe


def run_parallel(parallel, serial, *args):
    """``parallel(*args)``, or ``serial(*args)`` (its serial twin, same results) when the threading layer is the work
    queue and another Python thread is inside a parallel region now: never waits, never enters the work queue twice."""
    if _threadsafe_layer():
        return parallel(*args)
    if not _work_queue_entry.acquire(blocking=False):
        return serial(*args)
    try:
        return parallel(*args)
    finally:
        _work_queue_entry.release()


class ThreadedWhenLarge:
    """A parallel kernel and its serial twin: a call runs the threaded one only when its first argument (the
    array it walks) has at least ``serial_below`` elements (default ``SERIAL_BELOW``). Used as a decorator
    above ``@njit(parallel=True)``: ``@threaded_when_large`` or ``@threaded_when_large(serial_below=...)``."""

    def __init__(self, kernel, serial_below=None):
        self.parallel, self.serial = kernel, serial_twin(kernel)
        self.serial_below = serial_below
        self.__name__, self.__doc__ = kernel.__name__, kernel.__doc__

    def __call__(self, *args):
        limit = SERIAL_BELOW if self.serial_below is None else self.serial_below
        if _pool["one"]:
            limit = min(limit, SERIAL_BELOW_ONE_POOL)
        if args[0].size < limit:
            return self.serial(*args)
        return run_parallel(self.parallel, self.serial, *args)


def threaded_when_large(kernel=None, serial_below=None):
    """Decorator form of `ThreadedWhenLarge`, with or without arguments."""
    if kernel is None:
        return lambda function: ThreadedWhenLarge(function, serial_below)
    return ThreadedWhenLarge(kernel, serial_below)
