"""Datasets, loaders and batch transforms, all in NumPy.

Datasets (``ds[i] -> (image (C, H, W) float32 in [0, 1], label int)``, ``ds.get_batch``, ``ds.images``,
``ds.labels``, ``ds.classes``):
    Shapes10      procedural ten-class shapes, the default dataset (no download)
    CIFAR10       the python-pickle batches
    MNIST         IDX files, plain or gzipped
    FashionMNIST  same format as MNIST
    ImageFolder   one sub-folder of PNG/JPEG images per class
Damaged files raise DatasetFormatError naming the file (IDXFormatError for IDX files); missing ones
FileNotFoundError. Class names: imagenet_classes() (the 1000 ImageNet-1K names of the published classifiers).
Loading: DataLoader (shuffled reproducibly from a seed, resumable through state_dict()).
Transforms of batches (B, C, H, W): RandomCrop, RandomHorizontalFlip, Normalize, Resize, Compose.
"""
from .cifar import CIFAR10
from .dataset import ArrayDataset, DatasetFormatError
from .download import ChecksumError, DownloadError, download_url
from .idx import IDXFormatError, read_idx
from .image_folder import ImageFolder
from .imagenet import imagenet_classes
from .loader import DataLoader
from .mnist import MNIST, FashionMNIST
from .shapes import SHAPE_CLASSES, Shapes10
from .transforms import Compose, Normalize, RandomCrop, RandomHorizontalFlip, Resize

__all__ = ["ArrayDataset", "Shapes10", "SHAPE_CLASSES", "CIFAR10", "MNIST", "FashionMNIST", "ImageFolder",
           "DataLoader", "Compose", "Normalize", "RandomCrop", "RandomHorizontalFlip", "Resize",
           "imagenet_classes", "download_url", "DownloadError", "ChecksumError", "read_idx", "IDXFormatError",
           "DatasetFormatError"]
