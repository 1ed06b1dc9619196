"""Fixtures of the data tests: writers of the real file formats, and a local HTTP server."""
import gzip
import http.server
import os
import pickle
import struct
import threading
from types import SimpleNamespace

import numpy as np
import pytest

CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_cifar(root, per_batch=3, bytes_keys=False, seed=0):
    """Write a miniature cifar-10-batches-py under root; returns {batch name: (data (N, 3072), labels)}."""
    rng = np.random.default_rng(seed)
    folder = os.path.join(root, "cifar-10-batches-py")
    os.makedirs(folder, exist_ok=True)
    key = (lambda k: k.encode()) if bytes_keys else (lambda k: k)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=per_batch).tolist()
        with open(os.path.join(folder, name), "wb") as handle:
            pickle.dump({key("batch_label"): key(name), key("data"): data, key("labels"): labels}, handle, protocol=2)
        written[name] = (data, labels)
    with open(os.path.join(folder, "batches.meta"), "wb") as handle:
        pickle.dump({key("label_names"): [key(n) for n in CIFAR_NAMES], key("num_vis"): 3072}, handle, protocol=2)
    return written


def idx_bytes(array, type_code=0x08):
    """Encode an array in the IDX format (big-endian sizes after a 4-byte magic number)."""
    header = struct.pack(">BBBB", 0, 0, type_code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_mnist(directory, count=5, gz=True, seed=0):
    """Write train and t10k IDX files into directory; returns {(split, kind): array}."""
    rng = np.random.default_rng(seed)
    os.makedirs(directory, exist_ok=True)
    arrays = {}
    for prefix in ("train", "t10k"):
        images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=count).astype(np.uint8)
        for name, array in ((f"{prefix}-images-idx3-ubyte", images), (f"{prefix}-labels-idx1-ubyte", labels)):
            raw = idx_bytes(array)
            opener = gzip.open if gz else open
            with opener(os.path.join(directory, name + (".gz" if gz else "")), "wb") as handle:
                handle.write(raw)
        arrays[prefix] = (images, labels)
    return arrays



@pytest.fixture
def writers():
    """The format writers above: write_cifar, idx_bytes, write_mnist, and CIFAR_NAMES."""
    return SimpleNamespace(write_cifar=write_cifar, idx_bytes=idx_bytes, write_mnist=write_mnist,
                           cifar_names=CIFAR_NAMES)


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves server.files[path]; paths in server.truncated announce the full length but send half."""

    def do_GET(self):
        body = self.server.files.get(self.path)
        if body is None:
            self.send_error(404, "no such file")
            return
        self.server.requests.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[:len(body) // 2] if self.path in self.server.truncated else body)
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server(monkeypatch):
    """A local HTTP server on 127.0.0.1 (port chosen by the OS) in a thread; yields (server, base URL)."""
    for variable in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(variable, "127.0.0.1,localhost")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.files, httpd.truncated, httpd.requests = {}, set(), []
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield httpd, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
