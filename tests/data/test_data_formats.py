"""CIFAR-10 pickles, MNIST IDX files (plain and gzipped) and image folders, built here in the real formats."""
import gzip
import os
import pickle

import numpy as np
import pytest

from tinyinception.data import CIFAR10, MNIST, FashionMNIST, IDXFormatError, ImageFolder, read_idx

@pytest.mark.parametrize("bytes_keys", [False, True])
def test_cifar10_reads_pickled_batches(tmp_path, bytes_keys, writers):
    written = writers.write_cifar(tmp_path, bytes_keys=bytes_keys)
    train, test = CIFAR10(tmp_path, train=True), CIFAR10(tmp_path, train=False)
    assert len(train) == 15 and len(test) == 3 and train.classes == writers.cifar_names
    data, labels = written["data_batch_2"]
    image, label = train[4]                                   # second image of data_batch_2
    assert image.shape == (3, 32, 32) and image.dtype == np.float32 and label == labels[1]
    np.testing.assert_allclose(image[0], data[1, :1024].reshape(32, 32) / 255.0, rtol=1e-6)  # red plane first
    np.testing.assert_allclose(image[2], data[1, 2048:].reshape(32, 32) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(test.labels, written["test_batch"][1])
    assert test.images.shape == (3, 3, 32, 32) and 0.0 <= test.images.min() <= test.images.max() <= 1.0


def test_cifar10_missing_and_malicious_files(tmp_path, writers):
    with pytest.raises(FileNotFoundError, match="data_batch_1.*download=True"):
        CIFAR10(tmp_path)
    writers.write_cifar(tmp_path)
    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "wb") as handle:
        pickle.dump({"data": os.system, "labels": []}, handle)   # a pickle that would call a function
    with pytest.raises(ValueError, match="refusing to load"):
        CIFAR10(tmp_path, train=False)
    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "wb") as handle:
        handle.write(pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 1]})[:40])
    with pytest.raises(ValueError, match="not a valid CIFAR batch"):
        CIFAR10(tmp_path, train=False)


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("layout", ["MNIST", "MNIST/raw", ""])
def test_mnist_reads_idx_files(tmp_path, gz, layout, writers):
    arrays = writers.write_mnist(tmp_path / layout, gz=gz)
    train, test = MNIST(tmp_path, train=True), MNIST(tmp_path, train=False)
    images, labels = arrays["t10k"]
    assert len(train) == 5 and test.data.shape == (5, 1, 28, 28)
    np.testing.assert_allclose(test.images[:, 0], images / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(test.labels, labels)
    assert test.labels.dtype == np.int64 and test[0][0].shape == (1, 28, 28)


def test_fashion_mnist_uses_its_own_folder_and_names(tmp_path, writers):
    writers.write_mnist(tmp_path / "FashionMNIST", count=3)
    ds = FashionMNIST(tmp_path, train=False)
    assert len(ds) == 3 and ds.classes[9] == "Ankle boot"
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte.*download=True"):
        MNIST(tmp_path, train=False)


def test_idx_other_types_and_broken_headers(tmp_path, writers):
    values = np.arange(12, dtype=np.int32).reshape(3, 4) - 5
    (tmp_path / "ints.idx").write_bytes(writers.idx_bytes(values, 0x0C))
    read = read_idx(tmp_path / "ints.idx")
    np.testing.assert_array_equal(read, values)
    assert read.dtype.isnative
    broken = {"short": b"\x00\x00", "magic": b"\x01\x02\x08\x01" + b"\x00" * 8,
              "type": b"\x00\x00\x07\x01\x00\x00\x00\x01\x05",
              "dims": b"\x00\x00\x08\x03\x00\x00\x00\x02",
              "truncated": writers.idx_bytes(np.zeros((4, 28, 28), np.uint8))[:-10]}
    messages = {"short": "too short", "magic": "two zero bytes", "type": "unknown value type",
                "dims": "declares 3 dimensions", "truncated": "truncated"}
    for name, raw in broken.items():
        (tmp_path / name).write_bytes(raw)
        with pytest.raises(IDXFormatError, match=messages[name]):
            read_idx(tmp_path / name)
    full = gzip.compress(writers.idx_bytes(np.zeros((4, 28, 28), np.uint8)))
    (tmp_path / "cut.gz").write_bytes(full[:len(full) // 2])
    with pytest.raises(IDXFormatError, match="truncated"):
        read_idx(tmp_path / "cut.gz")


def _save_png(path, pixels):
    import matplotlib.image
    matplotlib.image.imsave(path, pixels, vmin=0.0, vmax=1.0, cmap="gray")


def test_image_folder_reads_png_classes(tmp_path):
    rng = np.random.default_rng(0)
    expected = {}
    for name in ("squares", "circles"):
        os.makedirs(tmp_path / name)
        for index in range(3):
            pixels = rng.integers(0, 256, size=(6, 5, 3)).astype(np.float32) / 255.0
            _save_png(tmp_path / name / f"{index}.png", pixels)
            expected[(name, index)] = pixels
    (tmp_path / "circles" / "notes.txt").write_text("not an image")
    ds = ImageFolder(tmp_path)
    assert ds.classes == ["circles", "squares"] and len(ds) == 6
    image, label = ds[4]                                     # squares/1.png
    assert label == 1 and image.shape == (3, 6, 5)
    np.testing.assert_allclose(image, expected[("squares", 1)].transpose(2, 0, 1), atol=1e-6)
    grey = ImageFolder(tmp_path, channels=1)
    assert grey.data.shape == (6, 1, 6, 5)


def test_image_folder_sizes_resize_and_errors(tmp_path):
    os.makedirs(tmp_path / "a")
    os.makedirs(tmp_path / "b")
    _save_png(tmp_path / "a" / "x.png", np.full((4, 4), 0.5))
    _save_png(tmp_path / "b" / "y.png", np.full((6, 8), 0.5))
    with pytest.raises(ValueError, match="is 6x8 but .* is 4x4; pass image_size"):
        ImageFolder(tmp_path)
    ds = ImageFolder(tmp_path, image_size=5)
    assert ds.data.shape == (2, 3, 5, 5)
    np.testing.assert_allclose(ds.images, 128 / 255.0, atol=1 / 255.0)
    with pytest.raises(FileNotFoundError, match="no sub-folders"):
        ImageFolder(tmp_path / "a")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageFolder(tmp_path / "missing")


def test_image_folder_reads_jpeg_with_pillow(tmp_path):
    image_module = pytest.importorskip("PIL.Image")
    os.makedirs(tmp_path / "flat")
    image_module.new("RGB", (7, 3), (200, 100, 50)).save(tmp_path / "flat" / "one.jpg", quality=100)
    ds = ImageFolder(tmp_path)
    assert ds.data.shape == (1, 3, 3, 7)
    np.testing.assert_allclose(ds.images[0, :, 0, 0], np.array([200, 100, 50]) / 255.0, atol=3 / 255.0)
