"""The common dataset interface: images in memory as one array, labels as another.

Every dataset in ``tinyinception.data`` is an :class:`ArrayDataset`:

    len(ds)                  -> number of examples N
    ds[i]                    -> (image: (C, H, W) float32 in [0, 1], label: int)
    ds.get_batch(indices)    -> (images: (B, C, H, W) float32 in [0, 1], labels: (B,) int64)
                                (float32 for uint8 storage; float storage is served in its own dtype)
    ds.images, ds.labels     -> the whole set: (N, C, H, W) float32 and (N,) int64
    ds.classes               -> list of class names, ds.classes[label]

Pixels are stored as they come on disk (uint8 for CIFAR-10, MNIST and PNG/JPEG folders, and for the procedural
shapes), four times smaller than float32; the conversion to float32 in [0, 1] happens per batch, so a loader never
holds more than one float copy of a batch.
"""
import numpy as np


class DatasetFormatError(ValueError):
    """A dataset file that cannot be read as its format says (damaged, truncated, or another kind of file); the
    message names the file."""


def to_float_images(data):
    """Convert stored pixels to float32 in [0, 1].

    data: (..., C, H, W) uint8 (divided by 255, giving float32) or a float array (returned as it is: float64
    pixels stay float64, never silently narrowed).
    """
    if data.dtype == np.uint8:
        return data.astype(np.float32) * np.float32(1.0 / 255.0)
    return data


class ArrayDataset:
    """A dataset held in memory: ``data`` (N, C, H, W) uint8 or float, ``targets`` (N,) int64.

    data:    (N, C, H, W) pixels, uint8 in [0, 255] (served as float32 in [0, 1]) or float in [0, 1] (served in
             its own dtype, so a float64 dataset gives float64 batches)
    targets: (N,) integer labels in [0, len(classes))
    classes: class names, one per label value
    """

    def __init__(self, data, targets, classes):
        data = np.asarray(data)
        targets = np.asarray(targets)
        if data.ndim != 4:
            raise ValueError(f"{type(self).__name__}: data must be (N, C, H, W), got shape {data.shape}")
        if targets.shape != (data.shape[0],):
            raise ValueError(f"{type(self).__name__}: targets must be ({data.shape[0]},) to match data, "
                             f"got shape {targets.shape}")
        if data.dtype != np.uint8 and not np.issubdtype(data.dtype, np.floating):
            raise TypeError(f"{type(self).__name__}: data must be uint8 (0-255) or float (0-1), got dtype "
                            f"{data.dtype}")
        if not np.issubdtype(targets.dtype, np.integer):
            raise TypeError(f"{type(self).__name__}: targets must be integers, got dtype {targets.dtype}")
        self.data = data
        self.targets = targets.astype(np.int64, copy=False)
        self.classes = list(classes)
        if len(self.targets) and (self.targets.min() < 0 or self.targets.max() >= len(self.classes)):
            raise ValueError(f"{type(self).__name__}: labels must lie in [0, {len(self.classes)}), got "
                             f"[{self.targets.min()}, {self.targets.max()}]")

    def __len__(self):
        return self.data.shape[0]

    def __getitem__(self, index):
        """Return (image: (C, H, W) float32 in [0, 1], label: int)."""
        count = len(self)
        if not -count <= index < count:
            raise IndexError(f"{type(self).__name__}: index {index} out of range for {count} examples")
        return to_float_images(self.data[index]), int(self.targets[index])

    def get_batch(self, indices):
        """Return (images: (B, C, H, W) float32 in [0, 1], labels: (B,) int64) for an index array (B,)."""
        indices = np.asarray(indices, dtype=np.int64)
        return to_float_images(self.data[indices]), self.targets[indices]

    @property
    def images(self):
        """All images, (N, C, H, W) float in [0, 1]. For uint8 storage, a new float32 array on every access
        (N*C*H*W*4 bytes): prefer get_batch or a DataLoader for large sets."""
        return to_float_images(self.data)

    @property
    def labels(self):
        """All labels, (N,) int64."""
        return self.targets

    @property
    def image_shape(self):
        """(C, H, W) of one image."""
        return tuple(self.data.shape[1:])

    def __repr__(self):
        return (f"{type(self).__name__}(size={len(self)}, image_shape={self.image_shape}, "
                f"classes={len(self.classes)})")
