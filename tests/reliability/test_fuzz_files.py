"""Seeded fuzz: random bytes, truncations and flipped bytes fed to every file reader. Only the documented errors
come out (CheckpointError, IDXFormatError, DatasetFormatError), each naming the file; or the file loads."""
import gzip
import os
import pickle

import numpy as np
import pytest

import tinyinception as ti
from tinyinception.data import CIFAR10, DatasetFormatError, IDXFormatError, read_idx
from tinyinception.data.image_folder import read_image

pytestmark = pytest.mark.usefixtures("numpy_kernels")

CASES = 60      # mutations per reader and kind


def _data_writers():
    """The format writers of tests/data/conftest.py (write_cifar, write_mnist), loaded from their file."""
    import importlib.util
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "conftest.py")
    spec = importlib.util.spec_from_file_location("data_format_writers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def writers():
    return _data_writers()


def _mutations(valid, seed):
    """(name, bytes) of truncations, flipped bytes and random bytes of a valid file, all from one seed."""
    rng = np.random.default_rng(seed)
    for case in range(CASES):
        yield f"truncated{case}", valid[:int(rng.integers(0, len(valid)))]
        flipped = bytearray(valid)
        for position in rng.integers(0, len(valid), size=int(rng.integers(1, 8))):
            flipped[position] = int(rng.integers(0, 256))
        yield f"flipped{case}", bytes(flipped)
        yield f"random{case}", rng.integers(0, 256, size=int(rng.integers(0, 400)), dtype=np.uint8).tobytes()


def _valid_checkpoint(tmp_path):
    path = ti.train.save_checkpoint(tmp_path / "valid.ckpt", model={"w": np.arange(6, dtype=np.float32)}, epoch=1,
                                    global_step=3, history=[{"epoch": 1, "val_accuracy": 0.5}], config={"a": 1})
    return open(path, "rb").read()


def test_load_checkpoint_fuzz(tmp_path):
    for name, raw in _mutations(_valid_checkpoint(tmp_path), seed=0):
        path = tmp_path / f"{name}.ckpt"
        path.write_bytes(raw)
        try:
            ti.train.load_checkpoint(path)
        except ti.train.CheckpointError as error:
            assert str(path) in str(error)


def _idx(array, type_code=0x08):
    import struct
    header = struct.pack(">BBBB", 0, 0, type_code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_fuzz(tmp_path, compress):
    valid = _idx(np.arange(2 * 5 * 5, dtype=np.uint8).reshape(2, 5, 5))
    for name, raw in _mutations(gzip.compress(valid) if compress else valid, seed=1):
        path = tmp_path / (name + (".gz" if compress else ""))
        path.write_bytes(raw)
        try:
            read_idx(path)
        except IDXFormatError as error:
            assert str(path) in str(error)


def test_mnist_refuses_float_images(tmp_path, writers):
    writers.write_mnist(tmp_path, count=3, gz=False)
    images = np.random.default_rng(0).random((3, 28, 28)).astype(np.float32)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(_idx(images, 0x0D))
    with pytest.raises(IDXFormatError, match="train-images-idx3-ubyte holds float32.*must be uint8"):
        ti.data.MNIST(tmp_path, train=True)


def test_cifar_batch_fuzz(tmp_path, writers):
    writers.write_cifar(tmp_path, per_batch=2)
    folder = tmp_path / "cifar-10-batches-py"
    valid = (folder / "test_batch").read_bytes()
    for name, raw in _mutations(valid, seed=2):
        (folder / "test_batch").write_bytes(raw)
        try:
            CIFAR10(tmp_path, train=False)
        except DatasetFormatError as error:
            assert "test_batch" in str(error)
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": 7}, protocol=2))
    (folder / "test_batch").write_bytes(valid)
    with pytest.raises(DatasetFormatError, match="batches.meta"):
        CIFAR10(tmp_path, train=False)


def test_image_fuzz(tmp_path):
    import matplotlib.image
    matplotlib.image.imsave(tmp_path / "valid.png", np.random.default_rng(0).random((6, 5, 3)))
    valid = (tmp_path / "valid.png").read_bytes()
    for name, raw in _mutations(valid, seed=3):
        path = tmp_path / f"{name}.png"
        path.write_bytes(raw)
        try:
            read_image(str(path))
        except DatasetFormatError as error:
            assert str(path) in str(error)


def test_image_folder_names_the_undecodable_image_and_the_empty_class(tmp_path):
    import matplotlib.image
    for name in ("circle", "square"):
        os.makedirs(tmp_path / name)
        matplotlib.image.imsave(tmp_path / name / "a.png", np.zeros((4, 4, 3)))
    (tmp_path / "square" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(DatasetFormatError, match="cannot decode image .*square.b.png"):
        ti.data.ImageFolder(tmp_path)
    os.remove(tmp_path / "square" / "b.png")
    os.makedirs(tmp_path / "triangle")
    with pytest.raises(FileNotFoundError, match="class folder.* triangle .*hold no"):
        ti.data.ImageFolder(tmp_path)


def test_resume_from_a_checkpoint_of_another_network_is_a_checkpoint_error(tmp_path):
    from tinyinception import nn
    ti.train.save_checkpoint(tmp_path / "other.ckpt", model={"w": np.zeros(3, np.float32)},
                             optimizer={"state": {}}, epoch=1, global_step=2, rng_state=ti.get_rng_state())
    model = nn.Linear(2, 2)
    optimizer = ti.optim.SGD(model.parameters(), lr=0.1)
    data = [(np.zeros((1, 2), np.float32), np.zeros(1, np.int64))]
    with pytest.raises(ti.train.CheckpointError, match="other.ckpt cannot be resumed"):
        ti.train.fit(model, data, None, optimizer, 2, resume=tmp_path / "other.ckpt", progress=False)
