"""ImageFolder: a dataset from a directory with one sub-folder of images per class.

    root/circle/001.png
    root/circle/002.png
    root/square/001.jpg
    ...

Class names are the sub-folder names, sorted; label i is ``classes[i]``. PNG files are read with
matplotlib.image; JPEG files with Pillow, which is optional and imported only when a JPEG is met.
"""
import os

import numpy as np

from .dataset import ArrayDataset, DatasetFormatError
from .transforms import resize_bilinear

PNG_EXTENSIONS = (".png",)
JPEG_EXTENSIONS = (".jpg", ".jpeg")
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)     # ITU-R BT.601, RGB -> grey


def _read_jpeg(path):
    try:
        from PIL import Image
    except ImportError as error:
        raise ImportError(f"ImageFolder: reading JPEG file {path} needs Pillow (pip install pillow); "
                          f"PNG files need only matplotlib") from error
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def _decode(path, extension):
    if extension in JPEG_EXTENSIONS:
        return _read_jpeg(path)
    import matplotlib.image
    return np.asarray(matplotlib.image.imread(path), dtype=np.float32)


def read_image(path):
    """Read a PNG or JPEG file as (H, W, C) float32 in [0, 1], C = 1, 3 or 4 as stored (grey, RGB, RGBA).

    A file that cannot be decoded raises DatasetFormatError naming it.
    """
    extension = os.path.splitext(path)[1].lower()
    if extension not in JPEG_EXTENSIONS + PNG_EXTENSIONS:
        raise ValueError(f"ImageFolder: unsupported file type {extension!r} for {path}; use PNG or JPEG")
    try:
        pixels = _decode(path, extension)
    except ImportError:
        raise
    except Exception as error:      # noqa: BLE001 -- decoders raise anything on damaged bytes
        reason = f"{type(error).__name__}: {error}"[:200]
        raise DatasetFormatError(f"ImageFolder: cannot decode image {path} ({reason}); remove or replace "
                                 f"the file") from None
    if pixels.ndim not in (2, 3) or min(pixels.shape) == 0 or (pixels.ndim == 3 and pixels.shape[2] > 4):
        raise DatasetFormatError(f"ImageFolder: {path} decodes to an array of shape {pixels.shape}, not an "
                                 f"image")
    return pixels[:, :, None] if pixels.ndim == 2 else pixels


def to_channels(pixels, channels, path):
    """(H, W, C) -> (channels, H, W): alpha dropped, grey repeated to RGB, or RGB averaged to grey (BT.601)."""
    if pixels.shape[2] in (2, 4):
        pixels = pixels[:, :, :-1]                                   # drop alpha
    if channels == 3 and pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    elif channels == 1 and pixels.shape[2] == 3:
        pixels = (pixels @ LUMA_WEIGHTS)[:, :, None]
    if pixels.shape[2] != channels:
        raise ValueError(f"ImageFolder: {path} has {pixels.shape[2]} channels, cannot make {channels}")
    return np.transpose(pixels, (2, 0, 1))


def find_images(root, extensions=PNG_EXTENSIONS + JPEG_EXTENSIONS):
    """(classes, [(path, label), ...]): sorted sub-folders of root and their image files, sorted by name."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"ImageFolder: root directory {root} does not exist")
    classes = sorted(entry.name for entry in os.scandir(root) if entry.is_dir() and not entry.name.startswith("."))
    if not classes:
        raise FileNotFoundError(f"ImageFolder: {root} has no sub-folders; expected one folder of images per class")
    samples, empty = [], []
    for label, name in enumerate(classes):
        folder = os.path.join(root, name)
        files = sorted(f for f in os.listdir(folder) if f.lower().endswith(extensions))
        samples.extend((os.path.join(folder, f), label) for f in files)
        if not files:
            empty.append(name)
    if not samples:
        raise FileNotFoundError(f"ImageFolder: no {'/'.join(extensions)} files in the class folders of {root}")
    if empty:
        raise FileNotFoundError(f"ImageFolder: class folder(s) {', '.join(empty)} of {root} hold no "
                                f"{'/'.join(extensions)} file; every class needs at least one image (remove "
                                f"the empty folders)")
    return classes, samples


class ImageFolder(ArrayDataset):
    """Every image under ``root/<class>/`` loaded into memory as uint8 (N, C, H, W).

    image_size: None requires all images to have one size (a clear error names the first that differs); an int
        or (h, w) resizes every image to it (bilinear, align_corners=False).
    channels: 3 (RGB; grey images repeated) or 1 (grey; RGB converted with BT.601 weights). Alpha is dropped.
    ``ds[i]`` -> (image (C, H, W) float32 in [0, 1], label int); ``ds.samples`` lists (path, label).
    """

    def __init__(self, root, image_size=None, channels=3):
        if channels not in (1, 3):
            raise ValueError(f"ImageFolder: channels must be 1 or 3, got {channels}")
        self.root = os.fspath(root)
        classes, self.samples = find_images(self.root)
        size = None if image_size is None else ((image_size, image_size) if isinstance(image_size, int)
                                                else tuple(image_size))
        images = [self._load(path, channels, size) for path, _ in self.samples]
        first_shape, first_path = images[0].shape, self.samples[0][0]
        for image, (path, _) in zip(images, self.samples):
            if image.shape != first_shape:
                raise ValueError(f"ImageFolder: {path} is {image.shape[1]}x{image.shape[2]} but {first_path} is "
                                 f"{first_shape[1]}x{first_shape[2]}; pass image_size=(h, w) to resize all")
        data = np.round(np.clip(np.stack(images), 0.0, 1.0) * 255.0).astype(np.uint8)
        super().__init__(data, np.array([label for _, label in self.samples], dtype=np.int64), classes)

    @staticmethod
    def _load(path, channels, size):
        """One image as (channels, h, w) float32, resized to size if given."""
        image = to_channels(read_image(path), channels, path)
        if size is not None and image.shape[1:] != size:
            image = resize_bilinear(image[None], size)[0]
        return image
