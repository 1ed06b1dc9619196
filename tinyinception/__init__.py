"""tinyinception: build, train and understand every Inception network, from scratch on NumPy, Numba and CuPy.

    import tinyinception as ti
    x = ti.tensor([[1.0, 2.0]], requires_grad=True)
"""
import numpy as _np

from . import allocator  # keeps freed memory for reuse (see tinyinception/allocator.py)
from .autograd import Function, Tensor, enable_grad, is_grad_enabled, no_grad, tensor
from .backend import get_kernels, set_kernels, using_kernels
from .random import get_rng_state, manual_seed, set_rng_state
from . import functional
from .functional import cat, concat
from . import cuda, profiler
from .gradcheck import gradcheck, GradcheckError
from . import nn
from .nn.optimize import optimize
from . import optim
from . import data
from . import models, interop
from .summary import summary
from . import train, viz
from . import distributed  # data parallelism over MPI; mpi4py loads only under an MPI launcher

__version__ = "0.1.0"

float32 = _np.float32
float64 = _np.float64
