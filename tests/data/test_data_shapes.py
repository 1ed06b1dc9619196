"""Shapes10: determinism, balance, shapes/dtypes/ranges, disjoint splits, and the sample grid."""
import numpy as np
import pytest

from tinyinception.data import SHAPE_CLASSES, Shapes10
from tinyinception.viz import save_image_grid
from tinyinception.data.shapes import _shape_mask


def test_same_seed_same_images_other_seed_differs():
    first, again = Shapes10("train", size=60, seed=3), Shapes10("train", size=60, seed=3)
    other = Shapes10("train", size=60, seed=4)
    np.testing.assert_array_equal(first.data, again.data)
    np.testing.assert_array_equal(first.labels, again.labels)
    assert not np.array_equal(first.data, other.data)


def test_train_and_test_are_different_draws():
    train, test = Shapes10("train", size=50, seed=0), Shapes10("test", size=50, seed=0)
    assert not np.array_equal(train.data, test.data)
    train_rows = {row.tobytes() for row in train.data}
    assert not any(row.tobytes() in train_rows for row in test.data)


def test_classes_balanced_and_named():
    ds = Shapes10("test", size=200, seed=1)
    assert ds.classes == SHAPE_CLASSES and len(ds.classes) == 10
    np.testing.assert_array_equal(np.bincount(ds.labels, minlength=10), np.full(10, 20))


def test_item_and_batch_shapes_dtypes_and_range():
    ds = Shapes10("train", size=30, seed=0, image_size=24)
    image, label = ds[5]
    assert image.shape == (3, 24, 24) and image.dtype == np.float32
    assert isinstance(label, int) and 0 <= label < 10
    images, labels = ds.get_batch(np.array([0, 7, 29]))
    assert images.shape == (3, 3, 24, 24) and images.dtype == np.float32
    assert labels.dtype == np.int64
    assert 0.0 <= ds.images.min() and ds.images.max() <= 1.0
    assert ds.images.shape == (30, 3, 24, 24) and len(ds) == 30


def test_mean_colour_does_not_give_away_the_class():
    ds = Shapes10("train", size=1000, seed=2)
    class_means = np.stack([ds.images[ds.labels == c].mean(axis=(0, 2, 3)) for c in range(10)])   # (10, 3)
    # Colours are drawn independently of the class: per-class average colours all sit near the global one.
    assert np.abs(class_means - class_means.mean(axis=0)).max() < 0.08


def test_every_shape_mask_covers_a_sensible_area():
    grid = np.linspace(-1.2, 1.2, 121, dtype=np.float32)
    u, v = np.meshgrid(grid, grid)
    masks = {name: _shape_mask(name, u[None], v[None])[0] for name in SHAPE_CLASSES}
    areas = {name: mask.mean() for name, mask in masks.items()}
    assert all(0.05 < area < 0.6 for area in areas.values()), areas
    for first in SHAPE_CLASSES:
        for second in SHAPE_CLASSES:
            if first < second:
                assert (masks[first] != masks[second]).mean() > 0.05, (first, second)


def test_shapes_are_anti_aliased_and_objects_visible():
    ds = Shapes10("train", size=20, seed=0)
    # Coverage is blended: many images hold pixels strictly between background and shape colour.
    assert len(np.unique(ds.data)) > 200


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="split"):
        Shapes10("valid")
    with pytest.raises(ValueError, match="image_size"):
        Shapes10("train", size=4, image_size=4)
    with pytest.raises(IndexError, match="out of range"):
        Shapes10("train", size=4)[4]


def test_save_image_grid_writes_a_png(tmp_path):
    ds = Shapes10("test", size=12, seed=0)
    path = save_image_grid(ds.images, ds.labels, ds.classes, tmp_path / "grid.png", columns=6)
    with open(path, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="images"):
        save_image_grid(ds.images[0], ds.labels, ds.classes, tmp_path / "bad.png")
