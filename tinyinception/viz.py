"""Plots for training runs (matplotlib, Agg backend: no display needed).

* :func:`plot_curves` -- loss and accuracy per epoch, train and validation, side by side;
* :func:`plot_predictions` -- a grid of images titled with the predicted class (green if right, red if wrong);
* :func:`save_image_grid` -- a grid of labelled sample images (a dataset at a glance).

Each of the first two has a ``*_figure`` twin that returns the open matplotlib figure instead of writing a file
(for notebooks and the rendered tutorials, which show open figures).
"""
import math

import numpy as np


def pyplot():
    """matplotlib.pyplot on the Agg backend (files only), imported on first use."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    return plt


def save_figure(figure, path, title=None):
    """Give ``figure`` its title, lay it out, write it to ``path`` (PNG at 100 dpi), close it; returns ``path``."""
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot().close(figure)
    return path


def _series(history, key):
    """(epochs, values) of ``key`` over the records of ``history`` that hold a finite value for it."""
    points = [(record["epoch"], record[key]) for record in history
              if record.get(key) is not None and math.isfinite(record[key])]
    return [p[0] for p in points], [p[1] for p in points]


def curves_figure(history, title=None):
    """Loss and accuracy curves as an open matplotlib figure with two axes (loss, accuracy).

    history: list of per-epoch dicts with "epoch" and any of "train_loss", "val_loss", "train_accuracy",
    "val_accuracy" (what ``ti.train.fit`` returns and writes to metrics.jsonl). Epochs are whole numbers, so the
    x axis has integer ticks only; the y axes show plain values (no "+2.304"-style offset, which matplotlib would
    otherwise pick when a short run's losses differ only in the third decimal).
    """
    if not history:
        raise ValueError("curves_figure: history is empty; train at least one epoch first")
    from matplotlib.ticker import MaxNLocator, ScalarFormatter
    plt = pyplot()
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(10, 4))
    epochs_seen = []
    for axis, metric in ((loss_axis, "loss"), (accuracy_axis, "accuracy")):
        for split, style in (("train", "o-"), ("val", "s--")):
            epochs, values = _series(history, f"{split}_{metric}")
            epochs_seen += epochs
            if epochs:
                axis.plot(epochs, values, style, label=f"{split} {metric}")
        axis.set_xlabel("epoch")
        axis.set_ylabel(metric)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        formatter = ScalarFormatter(useOffset=False)
        formatter.set_scientific(False)
        axis.yaxis.set_major_formatter(formatter)
        axis.grid(True, alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend()
    if epochs_seen:
        first, last = min(epochs_seen), max(epochs_seen)
        margin = max(0.5, 0.05 * (last - first))
        for axis in (loss_axis, accuracy_axis):
            axis.set_xlim(first - margin, last + margin)
    accuracy_axis.set_ylim(0.0, 1.0)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def plot_curves(history, path, title=None):
    """Save loss and accuracy curves (:func:`curves_figure`) to ``path`` (PNG); returns ``path``."""
    if not history:
        raise ValueError("plot_curves: history is empty; train at least one epoch first")
    return save_figure(curves_figure(history), path, title)


def predictions_figure(images, labels, predictions, class_names, columns=8, title=None):
    """A grid of images as an open matplotlib figure, each titled "predicted (true)" in green when right, red
    when wrong.

    images: (N, C, H, W) float in [0, 1] (or uint8), C = 1 or 3; labels, predictions: (N,) class indices.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"plot_predictions: images must be (N, 1 or 3, H, W), got shape {images.shape}")
    if not len(images) == len(labels) == len(predictions):
        raise ValueError(f"plot_predictions: {len(images)} images, {len(labels)} labels and "
                         f"{len(predictions)} predictions; expected equal counts")
    if images.dtype == np.uint8:
        images = images.astype(np.float32) / 255.0
    plt = pyplot()
    count = len(images)
    columns = max(1, min(columns, count))
    rows = max(1, -(-count // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.4, rows * 1.6), squeeze=False)
    for position, axis in enumerate(axes.flat):
        axis.axis("off")
        if position >= count:
            continue
        pixels = np.clip(np.transpose(images[position], (1, 2, 0)), 0.0, 1.0)
        axis.imshow(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels, cmap="gray" if pixels.shape[2] == 1
                    else None, vmin=0.0, vmax=1.0, interpolation="nearest")
        predicted, true = int(predictions[position]), int(labels[position])
        colour = "green" if predicted == true else "red"
        text = class_names[predicted] if predicted == true else f"{class_names[predicted]}\n({class_names[true]})"
        axis.set_title(text, fontsize=7, color=colour)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def plot_predictions(images, labels, predictions, class_names, path, columns=8, title=None):
    """Save the grid of :func:`predictions_figure` to ``path`` (PNG); returns ``path``."""
    return save_figure(predictions_figure(images, labels, predictions, class_names, columns), path, title)


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
