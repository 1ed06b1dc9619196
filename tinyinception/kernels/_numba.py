"""Numba's ``njit`` and ``prange``, or stand-ins that explain what is missing.

Every Numba kernel in this package is compiled lazily (on first call, once per dtype) with
``cache=True``, so the machine code is written to ``__pycache__`` and later processes load it
instead of compiling again.
"""
try:
    from numba import njit, prange

    NUMBA_AVAILABLE = True
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
