"""CIFAR-10 from the official "python version": pickled batches in ``root/cifar-10-batches-py``.

Each of data_batch_1..5 (training) and test_batch is a pickled dict with "data", a (10000, 3072) uint8 array whose
rows are 1024 red, then 1024 green, then 1024 blue values of a 32x32 image, and "labels", a list of ints;
batches.meta holds "label_names". The pickles were written by Python 2, so they are read with latin1 (NumPy's
advice for Python 2 arrays), and through an unpickler that only builds NumPy arrays: a pickle can run arbitrary
code, and a dataset file has no reason to.
"""
import os
import pickle

import numpy as np

from .dataset import ArrayDataset, DatasetFormatError
from .download import download_from_mirrors, extract_tar

# Globals a CIFAR pickle needs, mapped to where NumPy 2 keeps them ("numpy.core" became "numpy._core").
_ALLOWED_GLOBALS = {("numpy.core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
                    ("numpy._core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
                    ("numpy.core.multiarray", "scalar"): ("numpy._core.multiarray", "scalar"),
                    ("numpy._core.multiarray", "scalar"): ("numpy._core.multiarray", "scalar"),
                    ("numpy", "ndarray"): ("numpy", "ndarray"),
                    ("numpy", "dtype"): ("numpy", "dtype"),
                    ("_codecs", "encode"): ("_codecs", "encode")}   # bytes pickled by Python 3, protocol 2


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickle plain containers and NumPy arrays; refuse every other global."""

    def find_class(self, module, name):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"CIFAR10: refusing to load {module}.{name} from a dataset pickle")
        return super().find_class(*_ALLOWED_GLOBALS[(module, name)])


def load_pickle(path):
    """Read one CIFAR pickle into a dict with str keys."""
    try:
        with open(path, "rb") as handle:
            content = _ArrayUnpickler(handle, encoding="latin1").load()
    except OSError:
        raise
    except Exception as error:      # noqa: BLE001 -- damaged bytes raise anything (MemoryError, KeyError...)
        reason = f"{type(error).__name__}: {error}"[:200]
        raise DatasetFormatError(f"CIFAR10: {path} is not a valid CIFAR batch pickle ({reason}); it may be "
                                 f"truncated, delete it and download again") from None
    if not isinstance(content, dict):
        raise DatasetFormatError(f"CIFAR10: {path} holds a {type(content).__name__}, expected a dict")
    return {key.decode("latin1") if isinstance(key, bytes) else key: value for key, value in content.items()}


def _text(name):
    """A label name as str, whether the pickle held str or bytes."""
    return name.decode("latin1") if isinstance(name, bytes) else str(name)


def _read_batch(path):
    """(images (N, 3, 32, 32) uint8, labels (N,) int64) of one batch file."""
    batch = load_pickle(path)
    if "data" not in batch or "labels" not in batch:
        raise DatasetFormatError(f"CIFAR10: {path} lacks 'data' or 'labels'; keys are {sorted(map(str, batch))}")
    data, labels = batch["data"], batch["labels"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
        raise DatasetFormatError(f"CIFAR10: {path}: 'data' must be a uint8 array, got "
                                 f"{getattr(data, 'dtype', type(data).__name__)}")
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as error:
        raise DatasetFormatError(f"CIFAR10: {path}: 'labels' are not a list of integers ({error})") from None
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or labels.shape != (len(data),):
        raise DatasetFormatError(f"CIFAR10: {path}: expected data (N, 3072) and labels (N,), got {data.shape} "
                                 f"and {labels.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise DatasetFormatError(f"CIFAR10: {path}: labels in [{labels.min()}, {labels.max()}], expected [0, 9]")
    return data.reshape(-1, 3, 32, 32), labels


def _label_names(path):
    """The ten class names in ``batches.meta``."""
    names = load_pickle(path).get("label_names")
    if not isinstance(names, list) or len(names) != 10 or not all(isinstance(n, (str, bytes)) for n in names):
        raise DatasetFormatError(f"CIFAR10: {path}: 'label_names' must be a list of ten names")
    return [_text(name) for name in names]


class CIFAR10(ArrayDataset):
    """CIFAR-10: 32x32 colour images of ten classes. ``ds[i]`` -> (image (3, 32, 32) float32 in [0, 1], int).

    root: directory that holds (or will hold) ``cifar-10-batches-py``. train: the 50,000 training images, else the
    10,000 test images. download: fetch and extract the archive if the folder is missing. mirror: a base URL (or
    list) to download from instead of the class attribute ``mirrors``.
    """

    folder = "cifar-10-batches-py"
    archive = "cifar-10-python.tar.gz"
    archive_md5 = "c58f30108f718f92721af3b95e74349a"
    mirrors = ["https://www.cs.toronto.edu/~kriz/"]
    train_files = [f"data_batch_{index}" for index in range(1, 6)]
    test_files = ["test_batch"]

    def __init__(self, root, train=True, download=False, mirror=None):
        self.root, self.train = os.fspath(root), bool(train)
        if download:
            self.download(mirror)
        batches = [_read_batch(self._path(name)) for name in (self.train_files if train else self.test_files)]
        super().__init__(np.concatenate([images for images, _ in batches]),
                         np.concatenate([labels for _, labels in batches]),
                         _label_names(self._path("batches.meta")))

    def _path(self, name):
        path = os.path.join(self.root, self.folder, name)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"CIFAR10: file {path} not found; download it first (download=True; on the "
                                    f"command line, --download) to fetch {self.archive} and extract it into "
                                    f"{self.root}")
        return path

    def _complete(self):
        names = self.train_files + self.test_files + ["batches.meta"]
        return all(os.path.isfile(os.path.join(self.root, self.folder, name)) for name in names)

    def download(self, mirror=None):
        """Fetch the archive (md5-verified), extract it into ``root``, then delete the archive."""
        if self._complete():
            return
        os.makedirs(self.root, exist_ok=True)
        archive_path = os.path.join(self.root, self.archive)
        download_from_mirrors(self.mirrors if mirror is None else mirror, self.archive, archive_path,
                              md5=self.archive_md5)
        try:
            extract_tar(archive_path, self.root, self.folder)
        finally:
            os.remove(archive_path)
