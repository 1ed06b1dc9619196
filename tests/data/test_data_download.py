"""Downloads against a local HTTP server: success, wrong checksum, truncated transfer, dead mirror, datasets."""
import gzip
import hashlib
import io
import os
import tarfile

import numpy as np
import pytest

from tinyinception.data import CIFAR10, MNIST, ChecksumError, DownloadError, download_url


PAYLOAD = bytes(range(256)) * 300


def test_download_success_with_md5_and_sha256(server, tmp_path):
    httpd, base = server
    httpd.files["/blob.bin"] = PAYLOAD
    target = tmp_path / "sub" / "blob.bin"
    download_url(base + "/blob.bin", target, md5=hashlib.md5(PAYLOAD).hexdigest(), progress=False)
    assert target.read_bytes() == PAYLOAD and os.listdir(tmp_path / "sub") == ["blob.bin"]
    os.remove(target)
    download_url(base + "/blob.bin", target, sha256=hashlib.sha256(PAYLOAD).hexdigest().upper(), progress=False)
    assert target.read_bytes() == PAYLOAD and os.listdir(tmp_path / "sub") == ["blob.bin"]


def test_checksum_mismatch_leaves_nothing(server, tmp_path):
    httpd, base = server
    httpd.files["/blob.bin"] = PAYLOAD
    with pytest.raises(ChecksumError, match="checksum mismatch .* expected md5 0{32}"):
        download_url(base + "/blob.bin", tmp_path / "blob.bin", md5="0" * 32, progress=False)
    assert os.listdir(tmp_path) == []


def test_truncated_transfer_leaves_nothing_and_keeps_old_file(server, tmp_path):
    httpd, base = server
    httpd.files["/blob.bin"] = PAYLOAD
    httpd.truncated.add("/blob.bin")
    with pytest.raises(DownloadError, match="cut short"):
        download_url(base + "/blob.bin", tmp_path / "blob.bin", progress=False)      # no checksum: length check
    assert os.listdir(tmp_path) == []
    (tmp_path / "blob.bin").write_bytes(b"old")
    with pytest.raises(DownloadError):
        download_url(base + "/blob.bin", tmp_path / "blob.bin", md5=hashlib.md5(PAYLOAD).hexdigest(),
                     progress=False)
    assert os.listdir(tmp_path) == ["blob.bin"] and (tmp_path / "blob.bin").read_bytes() == b"old"


def test_missing_url_raises_download_error(server, tmp_path):
    _, base = server
    with pytest.raises(DownloadError, match="could not download .*missing.bin"):
        download_url(base + "/missing.bin", tmp_path / "missing.bin", progress=False)
    assert os.listdir(tmp_path) == []


def _cifar_archive(tmp_path, writers):
    """A miniature cifar-10-python.tar.gz (bytes) and the batches written into it."""
    source = tmp_path / "source"
    written = writers.write_cifar(source, per_batch=2)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(source / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return buffer.getvalue(), written


def test_cifar10_download_extracts_and_cleans_up(server, tmp_path, monkeypatch, writers):
    httpd, base = server
    archive, written = _cifar_archive(tmp_path, writers)
    httpd.files["/data/cifar-10-python.tar.gz"] = archive
    monkeypatch.setattr(CIFAR10, "archive_md5", hashlib.md5(archive).hexdigest())
    root = tmp_path / "root"
    test = CIFAR10(root, train=False, download=True, mirror=base + "/data/")
    assert sorted(os.listdir(root)) == ["cifar-10-batches-py"]            # archive removed, no staging left
    np.testing.assert_array_equal(test.labels, written["test_batch"][1])
    httpd.files.clear()                                                   # already there: no second request
    assert len(CIFAR10(root, train=True, download=True, mirror=base + "/data/")) == 10
    assert httpd.requests == ["/data/cifar-10-python.tar.gz"]


def test_cifar10_download_with_wrong_checksum_leaves_nothing(server, tmp_path, monkeypatch, writers):
    httpd, base = server
    archive, _ = _cifar_archive(tmp_path, writers)
    httpd.files["/cifar-10-python.tar.gz"] = archive
    monkeypatch.setattr(CIFAR10, "archive_md5", "f" * 32)
    root = tmp_path / "root"
    with pytest.raises(ChecksumError, match="cifar-10-python.tar.gz"):
        CIFAR10(root, download=True, mirror=base)
    assert os.listdir(root) == []


def test_mnist_download_falls_back_to_the_next_mirror(server, tmp_path, monkeypatch, writers):
    httpd, base = server
    rng = np.random.default_rng(0)
    resources = {}
    for prefix in ("train", "t10k"):
        files = {f"{prefix}-images-idx3-ubyte.gz": rng.integers(0, 256, (4, 28, 28), dtype=np.uint8),
                 f"{prefix}-labels-idx1-ubyte.gz": np.arange(4, dtype=np.uint8)}
        for name, array in files.items():
            body = gzip.compress(writers.idx_bytes(array))
            httpd.files["/good/" + name] = body
            resources[name] = hashlib.md5(body).hexdigest()
    monkeypatch.setattr(MNIST, "resources", resources)
    ds = MNIST(tmp_path, train=False, download=True, mirror=[base + "/dead/", base + "/good/"])
    assert len(ds) == 4 and ds.data.shape == (4, 1, 28, 28)
    assert sorted(os.listdir(tmp_path / "MNIST")) == sorted(resources)


def test_extract_refuses_members_outside_the_folder(tmp_path):
    from tinyinception.data.download import extract_tar
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    destination = tmp_path / "dest"
    os.makedirs(destination)
    with pytest.raises(DownloadError):
        extract_tar(archive, destination, "cifar-10-batches-py")
    assert not (tmp_path / "escaped.txt").exists() and os.listdir(destination) == []
