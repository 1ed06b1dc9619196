"""Transforms of whole batches, in NumPy: images (B, C, H, W) in, images out.

A transform is a callable ``transform(images, rng=None)``. The random ones draw from ``rng``, a
``numpy.random.Generator``; the :class:`~tinyinception.data.loader.DataLoader` hands each batch its own generator,
derived from (seed, epoch, batch index), so a whole training run's augmentation is reproducible and resumable.
Called without ``rng``, a random transform uses a generator of its own (seeded by ``seed`` if given).
"""
import inspect

import numpy as np


def _check_batch(name, images):
    """Raise a clear error unless images is a (B, C, H, W) array."""
    if not isinstance(images, np.ndarray) or images.ndim != 4:
        shape = getattr(images, "shape", type(images).__name__)
        raise ValueError(f"{name}: expected images (B, C, H, W) as a NumPy array, got {shape}")


def _pair(name, value, what):
    """(h, w) from an int or a pair of ints."""
    if isinstance(value, (int, np.integer)):
        return int(value), int(value)
    if len(value) != 2:
        raise ValueError(f"{name}: {what} must be an int or (h, w), got {value!r}")
    return int(value[0]), int(value[1])


def apply_transform(transform, images, rng):
    """Call ``transform(images, rng)``, or ``transform(images)`` for a plain one-argument function."""
    if _accepts_rng(transform):
        return transform(images, rng)
    return transform(images)


def _accepts_rng(transform):
    try:
        parameters = inspect.signature(transform).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in parameters)


class RandomTransform:
    """Base of the random transforms: holds the fallback generator used when no ``rng`` is passed."""

    def __init__(self, seed=None):
        self._own_rng = np.random.default_rng(seed)

    def _rng(self, rng):
        return self._own_rng if rng is None else rng


class Compose:
    """Apply transforms in order, passing the same generator to each: ``Compose([RandomCrop(32, 4), ...])``."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, images, rng=None):
        for transform in self.transforms:
            images = apply_transform(transform, images, rng)
        return images

    def __repr__(self):
        inner = ", ".join(repr(t) for t in self.transforms)
        return f"Compose([{inner}])"


class RandomCrop(RandomTransform):
    """Pad every image, then cut a (h, w) window at an independent random position per image.

    size: int or (h, w) of the output. padding: int (all sides), (horizontal, vertical), or (left, top, right,
    bottom), as in torchvision. padding_mode: "constant" (with ``fill``), "edge", "reflect" or "symmetric".
    images (B, C, H, W) -> (B, C, h, w), same dtype.
    """

    def __init__(self, size, padding=0, fill=0.0, padding_mode="constant", seed=None):
        super().__init__(seed)
        self.size = _pair("RandomCrop", size, "size")
        self.padding = self._four_sides(padding)
        if padding_mode not in ("constant", "edge", "reflect", "symmetric"):
            raise ValueError(f"RandomCrop: padding_mode must be constant, edge, reflect or symmetric, "
                             f"got {padding_mode!r}")
        self.fill, self.padding_mode = fill, padding_mode

    @staticmethod
    def _four_sides(padding):
        if isinstance(padding, (int, np.integer)):
            return (int(padding),) * 4
        padding = tuple(int(p) for p in padding)
        if len(padding) == 2:
            return padding * 2
        if len(padding) == 4:
            return padding
        raise ValueError(f"RandomCrop: padding must be an int, 2 or 4 ints, got {padding!r}")

    def _pad(self, images):
        left, top, right, bottom = self.padding
        widths = ((0, 0), (0, 0), (top, bottom), (left, right))
        if self.padding_mode == "constant":
            return np.pad(images, widths, mode="constant", constant_values=images.dtype.type(self.fill))
        return np.pad(images, widths, mode=self.padding_mode)

    def __call__(self, images, rng=None):
        _check_batch("RandomCrop", images)
        padded = self._pad(images) if any(self.padding) else images
        crop_h, crop_w = self.size
        padded_h, padded_w = padded.shape[2:]
        if crop_h > padded_h or crop_w > padded_w:
            raise ValueError(f"RandomCrop: crop size ({crop_h}, {crop_w}) is larger than the padded image "
                             f"({padded_h}, {padded_w})")
        tops, lefts = self.sample_offsets(self._rng(rng), images.shape[0], padded_h, padded_w)
        return self.crop(padded, tops, lefts)

    def sample_offsets(self, rng, count, padded_h, padded_w):
        """Top-left corners (tops (B,), lefts (B,)) of the windows, uniform over every position that fits."""
        crop_h, crop_w = self.size
        tops = rng.integers(0, padded_h - crop_h + 1, size=count)
        lefts = rng.integers(0, padded_w - crop_w + 1, size=count)
        return tops, lefts

    def crop(self, padded, tops, lefts):
        """Cut padded[b, :, tops[b]:tops[b]+h, lefts[b]:lefts[b]+w] for every b at once: (B, C, h, w)."""
        crop_h, crop_w = self.size
        # windows[b, c, i, j] is the (crop_h, crop_w) window whose top-left corner is (i, j): a view, no copy.
        windows = np.lib.stride_tricks.sliding_window_view(padded, (crop_h, crop_w), axis=(2, 3))
        return windows[np.arange(padded.shape[0]), :, tops, lefts]

    def __repr__(self):
        return f"RandomCrop(size={self.size}, padding={self.padding}, padding_mode={self.padding_mode!r})"


class RandomHorizontalFlip(RandomTransform):
    """Mirror each image left-right with probability p, independently per image. (B, C, H, W) -> same."""

    def __init__(self, p=0.5, seed=None):
        super().__init__(seed)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p}")
        self.p = p

    def __call__(self, images, rng=None):
        _check_batch("RandomHorizontalFlip", images)
        flip = self.sample_flips(self._rng(rng), images.shape[0])
        out = images.copy()
        out[flip] = images[flip][..., ::-1]
        return out

    def sample_flips(self, rng, count):
        """Which images to mirror: (B,) bool, each True with probability p."""
        return rng.random(count) < self.p

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"


class Normalize:
    """(images - mean[c]) / std[c] per channel; the dtype of the images is kept.

    mean, std: one value per channel (C,) or a single value for all.
    """

    def __init__(self, mean, std):
        self.mean = np.atleast_1d(np.asarray(mean, dtype=np.float64))
        self.std = np.atleast_1d(np.asarray(std, dtype=np.float64))
        if self.mean.ndim != 1 or self.std.ndim != 1:
            raise ValueError(f"Normalize: mean and std must be 1-D, got shapes {self.mean.shape}, {self.std.shape}")
        if np.any(self.std == 0):
            raise ValueError(f"Normalize: std must be non-zero, got {self.std.tolist()}")

    def __call__(self, images, rng=None):
        _check_batch("Normalize", images)
        channels = images.shape[1]
        for name, values in (("mean", self.mean), ("std", self.std)):
            if len(values) not in (1, channels):
                raise ValueError(f"Normalize: {name} has {len(values)} values but the images have "
                                 f"{channels} channels")
        dtype = images.dtype if np.issubdtype(images.dtype, np.floating) else np.float32
        mean = self.mean.astype(dtype)[None, :, None, None]
        inv_std = (1.0 / self.std).astype(dtype)[None, :, None, None]
        return (images.astype(dtype, copy=False) - mean) * inv_std

    def __repr__(self):
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


def _linear_taps(in_size, out_size):
    """Source rows (low, high) and weight of ``high`` for bilinear resizing, align_corners=False.

    Output pixel i samples the input at (i + 0.5) * in_size / out_size - 0.5, clamped below at 0 (PyTorch's
    rule); low = floor, high = min(low + 1, in_size - 1).
    """
    scale = in_size / out_size
    source = np.maximum((np.arange(out_size) + 0.5) * scale - 0.5, 0.0)
    low = np.minimum(np.floor(source).astype(np.int64), in_size - 1)
    high = np.minimum(low + 1, in_size - 1)
    return low, high, source - low


def resize_bilinear(images, size):
    """Resize images (B, C, H, W) to (B, C, h, w), bilinear with align_corners=False (no antialiasing), like
    ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)``. Floating dtypes are kept; integer
    images come back float32."""
    _check_batch("Resize", images)
    out_h, out_w = size
    dtype = images.dtype if np.issubdtype(images.dtype, np.floating) else np.float32
    images = images.astype(dtype, copy=False)
    low, high, weight = _linear_taps(images.shape[2], out_h)
    weight = weight.astype(dtype)[:, None]
    rows = images[:, :, low, :] * (1 - weight) + images[:, :, high, :] * weight            # (B, C, h, W)
    low, high, weight = _linear_taps(images.shape[3], out_w)
    weight = weight.astype(dtype)
    return rows[:, :, :, low] * (1 - weight) + rows[:, :, :, high] * weight               # (B, C, h, w)


class Resize:
    """Bilinear resize (align_corners=False) of a batch.

    size: (h, w), or an int: the smaller edge becomes ``size`` and the aspect ratio is kept (torchvision's rule).
    """

    def __init__(self, size):
        if isinstance(size, (int, np.integer)):
            self.size = int(size)
        else:
            self.size = _pair("Resize", size, "size")
        if min(np.atleast_1d(self.size)) < 1:
            raise ValueError(f"Resize: size must be positive, got {size!r}")

    def output_size(self, height, width):
        """(h, w) for an input of (height, width)."""
        if not isinstance(self.size, int):
            return self.size
        if height <= width:
            return self.size, int(self.size * width / height)
        return int(self.size * height / width), self.size

    def __call__(self, images, rng=None):
        _check_batch("Resize", images)
        return resize_bilinear(images, self.output_size(*images.shape[2:]))

    def __repr__(self):
        return f"Resize(size={self.size})"
