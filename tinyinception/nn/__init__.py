"""Layers and networks' building blocks (``ti.nn``), with PyTorch's names, arguments and state_dict keys."""
from .module import Module
from .parameter import Parameter
from .containers import ModuleList, Sequential
from .linear import Linear
from .conv import Conv2d
from .pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from .normalization import BatchNorm1d, BatchNorm2d, LocalResponseNorm
from .simple import Dropout, Flatten, Identity, ReLU, Softmax
from . import init
from . import utils
from .optimize import FusedSequential, optimize
