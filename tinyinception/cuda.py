"""``ti.cuda``: is there a GPU to run on?"""
from .backend import gpu_available


def is_available():
    """True when CuPy is installed and a CUDA device answers; False otherwise (never raises)."""
    return gpu_available()
