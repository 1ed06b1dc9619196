"""Numba's ``njit`` and ``prange``, or stand-ins that explain what is missing.

Every Numba kernel in this package is compiled lazily (on first call, once per dtype) with
``cache=True``, so the machine code is written to ``__pycache__`` and later processes load it
instead of compiling again.

The threading layer defaults to Numba's work queue (see below), chosen before the first parallel kernel runs.
"""
import os

try:
    import numba
    from numba import njit, prange

    NUMBA_AVAILABLE = True
    if "NUMBA_THREADING_LAYER" not in os.environ:
        # Numba's own work queue, not OpenMP: OpenMP's worker threads keep spinning after each parallel kernel
        # and starve OpenBLAS's threads, which run the GEMMs in between; on 2 cores a GoogLeNet training step
        # measured 8-10 s instead of 0.3 s. (The work queue must not be entered from two Python threads at
        # once; nothing in this package does. Set NUMBA_THREADING_LAYER to choose another layer.)
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
