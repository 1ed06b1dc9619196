"""The random numbers tinyinception uses (initialisation, dropout, data order), from one seeded generator.

``ti.manual_seed(0)`` makes a run repeatable; ``get_rng_state``/``set_rng_state`` let a checkpoint resume exactly.
"""
import numpy as np

from . import backend

_state = {"generator": np.random.default_rng(0)}


def manual_seed(seed):
    """Reseed the global generator (and CuPy's, when a GPU is present)."""
    _state["generator"] = np.random.default_rng(seed)
    if backend.gpu_available():
        backend.cupy_module().random.seed(seed)


def generator():
    """The global ``numpy.random.Generator``."""
    return _state["generator"]


def get_rng_state():
    return _state["generator"].bit_generator.state


def set_rng_state(state):
    _state["generator"].bit_generator.state = state


def uniform_like(array):
    """Uniform [0, 1) numbers with ``array``'s shape, dtype and device."""
    if backend.is_cupy_array(array):
        cupy = backend.cupy_module()
        return cupy.random.random(array.shape, dtype=array.dtype)
    dtype = array.dtype if array.dtype in (np.float32, np.float64) else np.float64
    return _state["generator"].random(array.shape, dtype=dtype)
