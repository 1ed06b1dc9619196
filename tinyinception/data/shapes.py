"""Shapes10: a procedural ten-class image dataset drawn with NumPy, the project's default dataset.

Each image holds one filled shape at a random scale (small to large: objects at many scales are what the parallel
branches of an Inception block are for), position, rotation (where the class allows it) and colour, on a
background of another colour with a linear gradient, plus Gaussian pixel noise. Colours are drawn independently of
the class, so the mean colour of an image says nothing about its label: a classifier has to see the outline.

How a shape is drawn (all images of a chunk at once, no per-image Python loop):
1. a pixel grid at ``SUPERSAMPLE`` times the resolution, pixel centres ``(x, y)``;
2. per image, the grid moved into the shape's own frame: ``(u, v) = R(-angle) (x - cx, y - cy) / radius``;
3. the class's mask, a boolean test on ``(u, v)`` for a shape of unit radius (``u*u + v*v <= 1`` is a circle);
4. the mask averaged over each SUPERSAMPLE x SUPERSAMPLE block: an anti-aliased coverage ``alpha`` in [0, 1];
5. ``image = background * (1 - alpha) + colour * alpha + noise``, clipped to [0, 1] and stored as uint8.

Train and test come from different seed streams (``SeedSequence([seed, split])``), so they are disjoint draws.
"""
import numpy as np

from .dataset import ArrayDataset

SHAPE_CLASSES = ["circle", "square", "triangle", "cross", "ring",
                 "star", "horizontal_bar", "vertical_bar", "diamond", "crescent"]

# Largest rotation, in degrees, each class is drawn at. 180 means any angle. Square and diamond (a square at 45
# degrees) and the two bars stay apart because their rotations are bounded.
MAX_ROTATION_DEG = {"circle": 180.0, "square": 15.0, "triangle": 180.0, "cross": 20.0, "ring": 180.0,
                    "star": 180.0, "horizontal_bar": 12.0, "vertical_bar": 12.0, "diamond": 15.0,
                    "crescent": 180.0}

SUPERSAMPLE = 2            # anti-aliasing: masks are evaluated on a grid this many times finer
MIN_RADIUS = 0.13          # shape radius, as a fraction of the image size (log-uniform between the two)
MAX_RADIUS = 0.45
MIN_CONTRAST = 0.45        # least RGB distance between a shape's colour and its background's mean colour
MAX_GRADIENT = 0.5         # largest background brightness change across the image
MAX_NOISE_STD = 0.08       # pixel noise standard deviation, drawn per image in [0, MAX_NOISE_STD]
SPLIT_STREAMS = {"train": 0, "test": 1}
DEFAULT_SIZES = {"train": 20000, "test": 4000}
CHUNK = 1024               # images rendered at once (bounds memory: ~CHUNK * (32*2)^2 * 4 bytes per temporary)


def _star_mask(u, v, points=5, inner=0.42):
    """A five-pointed star of outer radius 1: inside if the radius is below the edge between an outer and an
    inner vertex, at the angle folded into one half-spike [0, pi/points]."""
    radius = np.sqrt(u * u + v * v)
    spike = np.pi / points
    folded = np.abs(np.mod(np.arctan2(v, u), 2 * spike) - spike)      # 0 at an inner vertex, spike at a tip
    folded = spike - folded                                           # 0 at a tip, spike at an inner vertex
    # Edge from tip (1, 0) to inner vertex (inner*cos(spike), inner*sin(spike)); normal form n . p = d.
    edge_x, edge_y = inner * np.cos(spike) - 1.0, inner * np.sin(spike)
    normal_x, normal_y = edge_y, -edge_x
    offset = normal_x * 1.0
    edge_radius = offset / (normal_x * np.cos(folded) + normal_y * np.sin(folded))
    return radius <= edge_radius


def _triangle_mask(u, v):
    """An equilateral triangle with circumradius 1: three half-planes at distance 0.5 from the centre."""
    inside = np.ones(u.shape, dtype=bool)
    for normal_angle in (np.pi / 2, np.pi / 2 + 2 * np.pi / 3, np.pi / 2 + 4 * np.pi / 3):
        inside &= u * np.cos(normal_angle) + v * np.sin(normal_angle) <= 0.5
    return inside


def _shape_mask(name, u, v):
    """Boolean mask of the unit-radius shape ``name`` at shape-frame coordinates u, v: (B, H', W')."""
    if name == "circle":
        return u * u + v * v <= 0.9 ** 2
    if name == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.75
    if name == "triangle":
        return _triangle_mask(u, v)
    if name == "cross":
        return ((np.abs(u) <= 0.28) & (np.abs(v) <= 1.0)) | ((np.abs(v) <= 0.28) & (np.abs(u) <= 1.0))
    if name == "ring":
        squared = u * u + v * v
        return (squared <= 1.0) & (squared >= 0.55 ** 2)
    if name == "star":
        return _star_mask(u, v)
    if name == "horizontal_bar":
        return (np.abs(u) <= 1.0) & (np.abs(v) <= 0.25)
    if name == "vertical_bar":
        return (np.abs(v) <= 1.0) & (np.abs(u) <= 0.25)
    if name == "diamond":
        return np.abs(u) + np.abs(v) <= 1.0
    if name == "crescent":
        return (u * u + v * v <= 1.0) & ((u - 0.5) ** 2 + v * v >= 0.8 ** 2)
    raise ValueError(f"Shapes10: unknown shape {name!r}; expected one of {SHAPE_CLASSES}")


def _contrasting_colours(rng, background):
    """Draw one RGB colour (B, 3) per background colour (B, 3), at least MIN_CONTRAST away from it."""
    colours = rng.random(background.shape)
    too_close = np.linalg.norm(colours - background, axis=1) < MIN_CONTRAST
    while too_close.any():
        colours[too_close] = rng.random((int(too_close.sum()), 3))
        too_close = np.linalg.norm(colours - background, axis=1) < MIN_CONTRAST
    return colours


def sample_shape_params(rng, labels, image_size):
    """Draw every random choice of every image at once. Returns a dict of arrays with first dimension B.

    labels: (B,) class indices. Keys: radius, center_x, center_y (pixels), angle (radians), colour and
    background (B, 3) RGB in [0, 1], gradient (B, 2) brightness change per image width along x and y, noise_std (B,).
    """
    count = len(labels)
    log_radius = rng.uniform(np.log(MIN_RADIUS), np.log(MAX_RADIUS), count)
    radius = np.exp(log_radius) * image_size
    # Keep the centre far enough in that at least 80% of the radius fits inside the image.
    margin = np.minimum(0.8 * radius, image_size / 2)
    center_x = margin + rng.random(count) * (image_size - 2 * margin)
    center_y = margin + rng.random(count) * (image_size - 2 * margin)
    max_angle = np.deg2rad([MAX_ROTATION_DEG[SHAPE_CLASSES[label]] for label in labels])
    angle = rng.uniform(-1.0, 1.0, count) * max_angle
    background = rng.random((count, 3))
    colour = _contrasting_colours(rng, background)
    gradient_direction = rng.uniform(0.0, 2 * np.pi, count)
    gradient_strength = rng.uniform(-MAX_GRADIENT, MAX_GRADIENT, count)
    gradient = gradient_strength[:, None] * np.stack([np.cos(gradient_direction), np.sin(gradient_direction)], 1)
    noise_std = rng.uniform(0.0, MAX_NOISE_STD, count)
    return {"radius": radius, "center_x": center_x, "center_y": center_y, "angle": angle,
            "colour": colour, "background": background, "gradient": gradient, "noise_std": noise_std}


def _coverage(labels, params, image_size):
    """Anti-aliased shape coverage alpha: (B, H, W) float32 in [0, 1] for labels (B,) and their params."""
    fine_size = image_size * SUPERSAMPLE
    grid = ((np.arange(fine_size) + 0.5) / SUPERSAMPLE).astype(np.float32)     # pixel-centre coordinates
    alpha_fine = np.zeros((len(labels), fine_size, fine_size), dtype=np.float32)
    for class_index in np.unique(labels):
        members = np.flatnonzero(labels == class_index)
        cos = np.cos(params["angle"][members]).astype(np.float32)[:, None, None]
        sin = np.sin(params["angle"][members]).astype(np.float32)[:, None, None]
        inv_radius = (1.0 / params["radius"][members]).astype(np.float32)[:, None, None]
        dx = grid[None, None, :] - params["center_x"][members].astype(np.float32)[:, None, None]   # (b, 1, W')
        dy = grid[None, :, None] - params["center_y"][members].astype(np.float32)[:, None, None]   # (b, H', 1)
        u = (cos * dx + sin * dy) * inv_radius                                   # (b, H', W')
        v = (cos * dy - sin * dx) * inv_radius
        alpha_fine[members] = _shape_mask(SHAPE_CLASSES[class_index], u, v)
    blocks = alpha_fine.reshape(len(labels), image_size, SUPERSAMPLE, image_size, SUPERSAMPLE)
    return blocks.mean(axis=(2, 4))


def _background(params, image_size):
    """Background images (B, 3, H, W) float32: a base colour plus a linear brightness ramp."""
    ramp = (np.arange(image_size, dtype=np.float32) + 0.5) / image_size - 0.5                 # (W,) in (-0.5, 0.5)
    gradient = params["gradient"].astype(np.float32)
    brightness = gradient[:, 0, None, None] * ramp[None, None, :] + gradient[:, 1, None, None] * ramp[None, :, None]
    base = params["background"].astype(np.float32)[:, :, None, None]
    return base + brightness[:, None, :, :]


def render_shapes(labels, params, image_size, rng):
    """Draw images (B, 3, H, W) uint8 for labels (B,) and params from :func:`sample_shape_params`.

    rng supplies the pixel noise.
    """
    alpha = _coverage(labels, params, image_size)[:, None, :, :]              # (B, 1, H, W)
    colour = params["colour"].astype(np.float32)[:, :, None, None]
    images = _background(params, image_size) * (1.0 - alpha) + colour * alpha
    noise_std = params["noise_std"].astype(np.float32)[:, None, None, None]
    images += noise_std * rng.standard_normal(images.shape, dtype=np.float32)
    return np.round(np.clip(images, 0.0, 1.0) * 255.0).astype(np.uint8)


GEOMETRY_KEYS = ("radius", "center_x", "center_y", "angle")


def generate_shapes(size, seed, image_size=32, split="train"):
    """Generate ``size`` balanced examples: (images (size, 3, S, S) uint8, labels (size,) int64, geometry).

    geometry: dict of (size,) float arrays "radius", "center_x", "center_y" (pixels) and "angle" (radians) of
    each image's shape. Deterministic given (seed, split, image_size); the split selects an independent stream.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, SPLIT_STREAMS[split]]))
    labels = rng.permutation(np.arange(size) % len(SHAPE_CLASSES)).astype(np.int64)
    images = np.empty((size, 3, image_size, image_size), dtype=np.uint8)
    geometry = {key: np.empty(size, dtype=np.float64) for key in GEOMETRY_KEYS}
    for start in range(0, size, CHUNK):
        chunk_labels = labels[start:start + CHUNK]
        params = sample_shape_params(rng, chunk_labels, image_size)
        images[start:start + CHUNK] = render_shapes(chunk_labels, params, image_size, rng)
        for key in GEOMETRY_KEYS:
            geometry[key][start:start + CHUNK] = params[key]
    return images, labels, geometry


class Shapes10(ArrayDataset):
    """Ten classes of coloured shapes, drawn procedurally; the default dataset of the project.

    split: "train" (default 20,000 images) or "test" (default 4,000), drawn from independent seed streams.
    size: number of images (default by split); classes are balanced (exactly, when size is a multiple of 10).
    seed: the whole dataset is a function of (seed, split, image_size).
    image_size: side S of the square images (3, S, S); 32 by default.

    ``ds[i]`` -> (image (3, S, S) float32 in [0, 1], label int); ``ds.classes`` holds the ten names;
    ``ds.geometry`` holds each shape's "radius", "center_x", "center_y" (pixels) and "angle" (radians), (N,) each,
    e.g. to plot accuracy against object scale.
    """

    def __init__(self, split="train", size=None, seed=0, image_size=32):
        if split not in SPLIT_STREAMS:
            raise ValueError(f"Shapes10: split must be one of {sorted(SPLIT_STREAMS)}, got {split!r}")
        size = DEFAULT_SIZES[split] if size is None else int(size)
        if size < 0:
            raise ValueError(f"Shapes10: size must be >= 0, got {size}")
        if int(image_size) < 8:
            raise ValueError(f"Shapes10: image_size must be >= 8 pixels, got {image_size}")
        self.split, self.seed, self.image_size = split, int(seed), int(image_size)
        images, labels, self.geometry = generate_shapes(size, self.seed, self.image_size, split)
        super().__init__(images, labels, SHAPE_CLASSES)
