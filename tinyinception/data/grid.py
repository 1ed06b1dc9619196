"""Save a grid of labelled sample images as a PNG (for the README and the tutorials)."""
import numpy as np

from ..viz import pyplot, save_figure


def save_image_grid(images, labels, class_names, path, columns=10, scale=1.0, title=None):
    """Draw images in a grid, each titled with its class name, and save the figure to ``path``.

    images: (N, C, H, W) float in [0, 1] (or uint8), C = 1 (grey) or 3 (RGB)
    labels: (N,) class indices into class_names (or None for no titles)
    columns: images per row; scale: inches per image.
    """
    plt = pyplot()

    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"save_image_grid: images must be (N, 1 or 3, H, W), got shape {images.shape}")
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"save_image_grid: {len(images)} images but {len(labels)} labels")
    if images.dtype == np.uint8:
        images = images.astype(np.float32) / 255.0
    count = len(images)
    columns = max(1, min(columns, count))
    rows = max(1, -(-count // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(columns * scale * 1.2, rows * scale * 1.35),
                                squeeze=False)
    for position, axis in enumerate(axes.flat):
        axis.axis("off")
        if position >= count:
            continue
        pixels = np.clip(np.transpose(images[position], (1, 2, 0)), 0.0, 1.0)      # (H, W, C)
        if pixels.shape[2] == 1:
            axis.imshow(pixels[:, :, 0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        else:
            axis.imshow(pixels, interpolation="nearest")
        if labels is not None:
            axis.set_title(str(class_names[int(labels[position])]), fontsize=7)
    return save_figure(figure, path, title)
