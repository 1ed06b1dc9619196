"""MNIST and Fashion-MNIST: 28x28 grey images of ten classes, from the IDX files (plain or gzipped).

Files are looked for in ``root/<Name>``, ``root/<Name>/raw`` (torchvision's layout) and ``root`` itself, each as
``train-images-idx3-ubyte`` or ``train-images-idx3-ubyte.gz`` (and ``train-labels-idx1-ubyte``, ``t10k-...``).
``download=True`` fetches the gzipped files into ``root/<Name>``, verified against their published md5.
"""
import os

import numpy as np

from .dataset import ArrayDataset
from .download import download_from_mirrors
from .idx import IDXFormatError, read_idx


class MNIST(ArrayDataset):
    """The MNIST digits. ``ds[i]`` -> (image (1, 28, 28) float32 in [0, 1], label int).

    root: directory holding the files (see module docstring). train: the 60,000 training images, else the 10,000
    test images. download: fetch missing files first. mirror: a base URL (or a list) to download from instead of
    the class attribute ``mirrors``.
    """

    folder = "MNIST"
    mirrors = ["https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"]
    # Published md5 checksums of the gzipped files.
    resources = {"train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                 "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
                 "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
                 "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"}
    class_names = ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four",
                   "5 - five", "6 - six", "7 - seven", "8 - eight", "9 - nine"]

    def __init__(self, root, train=True, download=False, mirror=None):
        self.root, self.train = os.fspath(root), bool(train)
        prefix = "train" if self.train else "t10k"
        names = (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")
        if download:
            self.download(mirror)
        image_path, label_path = self._find(names[0]), self._find(names[1])
        images, labels = read_idx(image_path), read_idx(label_path)
        self._check(images, labels, image_path, label_path)
        super().__init__(images[:, None, :, :], labels.astype("int64"), self.class_names)

    def _check(self, images, labels, image_path, label_path):
        """The files hold what the format promises: uint8 images (N, H, W), labels (N,) in [0, classes)."""
        name = type(self).__name__
        if images.dtype != np.uint8 or images.ndim != 3:
            raise IDXFormatError(f"{name}: {image_path} holds {images.dtype} values of shape {images.shape}; "
                                 f"the images must be uint8 (N, H, W) (pixel values 0-255)")
        if labels.ndim != 1 or len(images) != len(labels) or not np.issubdtype(labels.dtype, np.integer):
            raise IDXFormatError(f"{name}: {label_path} holds {labels.dtype} labels of shape {labels.shape}; "
                                 f"expected ({len(images)},) integers to match {image_path}")
        if len(labels) and (labels.min() < 0 or labels.max() >= len(self.class_names)):
            raise IDXFormatError(f"{name}: {label_path} has labels in [{labels.min()}, {labels.max()}]; "
                                 f"expected [0, {len(self.class_names)})")

    def _search_dirs(self):
        return [os.path.join(self.root, self.folder), os.path.join(self.root, self.folder, "raw"), self.root]

    def _find(self, name):
        """Path of ``name`` or ``name.gz`` in the search directories; a clear error if neither exists."""
        for directory in self._search_dirs():
            for candidate in (name, name + ".gz"):
                path = os.path.join(directory, candidate)
                if os.path.isfile(path):
                    return path
        looked = ", ".join(self._search_dirs())
        raise FileNotFoundError(f"{type(self).__name__}: file {name} (or {name}.gz) not found in {looked}; "
                                f"download it first (download=True; on the command line, --download)")

    def download(self, mirror=None):
        """Fetch every missing file into ``root/<folder>``, checksum-verified."""
        mirrors = self.mirrors if mirror is None else mirror
        target = os.path.join(self.root, self.folder)
        for filename, md5 in self.resources.items():
            plain = filename[:-len(".gz")]
            if any(os.path.isfile(os.path.join(d, f)) for d in self._search_dirs() for f in (filename, plain)):
                continue
            download_from_mirrors(mirrors, filename, os.path.join(target, filename), md5=md5)


class FashionMNIST(MNIST):
    """Zalando's Fashion-MNIST: 28x28 grey images of ten kinds of clothing; same files and layout as MNIST."""

    folder = "FashionMNIST"
    mirrors = ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"]
    resources = {"train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                 "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
                 "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
                 "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"}
    class_names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
