"""Hostile and broken weight files are refused with WeightFileError; downloads against a local HTTP server leave
nothing half-written in the cache; the read path imports no torch."""
import hashlib
import http.server
import io
import json
import os
import pickle
import socket
import struct
import subprocess
import sys
import threading
import zipfile
from dataclasses import replace

import numpy as np
import pytest

import tinyinception as ti
from tinyinception.interop import WeightFileError, WeightsDownloadError, read_safetensors, read_state_dict
from tinyinception.interop.hub import cached_path, fetch
from tinyinception.interop.published import Preprocessing, PublishedWeights
from tinyinception.interop.torch_file import LEGACY_MAGIC, LEGACY_PROTOCOL
from tinyinception.models import registry


# --- hostile files ------------------------------------------------------------------------------------------------
class RunsACommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _zip_with_pickle(path, payload):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", payload)
        archive.writestr("archive/byteorder", "little")


def test_a_pickle_that_would_run_a_command_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "ran"
    payload = pickle.dumps({"weight": RunsACommand(marker)}, protocol=2)
    zip_path, legacy_path = tmp_path / "evil.pth", tmp_path / "evil_legacy.pth"
    _zip_with_pickle(zip_path, payload)
    with open(legacy_path, "wb") as handle:
        for header in (LEGACY_MAGIC, LEGACY_PROTOCOL, {"little_endian": True}):
            pickle.dump(header, handle, protocol=2)
        handle.write(payload)
    for path in (zip_path, legacy_path):
        with pytest.raises(WeightFileError, match=r"refusing to load (posix|os|nt)\.system") as error:
            read_state_dict(str(path))
        assert str(path) in str(error.value)
    assert not marker.exists()


def _storage_pickle(numel, offset, size):
    """data.pkl of one float32 tensor: the persistent-id and _rebuild_tensor_v2 opcodes torch writes."""
    # Written with the raw opcodes so no torch is needed: GLOBAL, persistent id tuple, BINPERSID, REDUCE.
    out = io.BytesIO()
    out.write(b"\x80\x02}q\x00X\x01\x00\x00\x00wq\x01ctorch._utils\n_rebuild_tensor_v2\nq\x02(")
    out.write(b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpu")
    out.write(b"J" + struct.pack("<i", numel) + b"tQ")
    out.write(b"J" + struct.pack("<i", offset) + b"J" + struct.pack("<i", size) + b"\x85J\x01\x00\x00\x00\x85")
    out.write(b"\x89ccollections\nOrderedDict\n)RtRs.")
    return out.getvalue()


def test_a_tensor_reaching_past_its_storage_is_refused(tmp_path):
    path = tmp_path / "offset.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", _storage_pickle(numel=4, offset=3, size=5))
        archive.writestr("archive/data/0", np.arange(4, dtype="<f4").tobytes())
    with pytest.raises(WeightFileError, match="reaches element 7 of storage"):
        read_state_dict(str(path))
    fine = tmp_path / "fine.pth"
    with zipfile.ZipFile(fine, "w") as archive:
        archive.writestr("archive/data.pkl", _storage_pickle(numel=4, offset=1, size=3))
        archive.writestr("archive/data/0", np.arange(4, dtype="<f4").tobytes())
    np.testing.assert_array_equal(read_state_dict(str(fine))["w"], [1, 2, 3])


def _safetensors_bytes(header, buffer):
    encoded = json.dumps(header).encode()
    return struct.pack("<Q", len(encoded)) + encoded + buffer


@pytest.mark.parametrize("header,buffer,message", [
    ({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 8, "lie outside"),
    ({"w": {"dtype": "F32", "shape": [4], "data_offsets": [8, 4]}}, b"\0" * 16, "lie outside"),
    ({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}}, b"\0" * 16, "16 bytes for shape"),
    ({"w": {"dtype": "Q7", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 16, "unknown dtype 'Q7'"),
    ({"w": {"dtype": "F32", "shape": [4]}}, b"\0" * 16, "lacks dtype, shape or data_offsets"),
], ids=["offset-past-end", "reversed-offsets", "size-mismatch", "unknown-dtype", "missing-field"])
def test_broken_safetensors_are_refused(tmp_path, header, buffer, message):
    path = tmp_path / "broken.safetensors"
    path.write_bytes(_safetensors_bytes(header, buffer))
    with pytest.raises(WeightFileError, match=message):
        read_safetensors(str(path))


def test_a_header_length_larger_than_the_file_is_refused(tmp_path):
    path = tmp_path / "long.safetensors"
    path.write_bytes(struct.pack("<Q", 10 ** 6) + b'{"w": {}}')
    with pytest.raises(WeightFileError, match="header length 1000000 is larger than the file"):
        read_state_dict(str(path))
    short = tmp_path / "short.safetensors"
    short.write_bytes(b"\x05\x00")
    with pytest.raises(WeightFileError, match="too short"):
        read_safetensors(str(short))


def test_truncated_and_wrong_magic_pytorch_files(tmp_path):
    torch = pytest.importorskip("torch")
    whole = tmp_path / "whole.pth"
    torch.save({"w": torch.arange(1000, dtype=torch.float32)}, whole, _use_new_zipfile_serialization=False)
    data = whole.read_bytes()
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(data[:-100])
    with pytest.raises(WeightFileError, match="truncated"):
        read_state_dict(str(truncated))
    wrong = tmp_path / "wrong.pth"
    with open(wrong, "wb") as handle:
        pickle.dump(12345, handle, protocol=2)
    with pytest.raises(WeightFileError, match="wrong magic number"):
        read_state_dict(str(wrong))
    zipped = tmp_path / "zipped.pth"
    torch.save({"w": torch.arange(1000, dtype=torch.float32)}, zipped)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(zipped.read_bytes()[:2000])
    with pytest.raises(WeightFileError, match="cut.pth"):
        read_state_dict(str(cut))


# --- the read path needs no torch ---------------------------------------------------------------------------------
NO_TORCH_NETWORKS = [("googlenet", {"aux_logits": True}), ("bn_inception", {}), ("inception_v3", {"aux_logits": True}),
                     ("inception_v4", {}), ("inception_resnet_v2", {}), ("inception_resnet_v1", {"head": "facenet"})]
SMALL = {"width": 0.125, "small_input": True, "num_classes": 10}

BLOCK_TORCH = """
import json, sys
class BlockTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")
sys.meta_path.insert(0, BlockTorch())
import numpy as np
import tinyinception as ti
folder = sys.argv[1]
cases = json.load(open(folder + "/cases.json"))
expected = np.load(folder + "/expected.npz")
for name, options in cases:
    for suffix in (".pth", ".safetensors"):
        model = ti.models.create(name, **options, weights=folder + "/" + name + suffix).eval()
        with ti.no_grad():
            logits = model(ti.tensor(expected["input"])).data
        assert np.array_equal(logits, expected[name]), (name, suffix)
        print("loaded", name, suffix)
assert not any(name == "torch" or name.startswith("torch.") for name in sys.modules)
print("no torch")
"""


@pytest.mark.torch
def test_every_layout_loads_without_torch(tmp_path):
    """Each reference's key layout, as a torch.save file (zip or legacy) and a safetensors file, loads through
    its builder in a process where importing torch fails; the logits equal load_torch_state_dict's."""
    torch = pytest.importorskip("torch")
    from tinyinception.interop import load_torch_state_dict, to_torch_state_dict, write_safetensors
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 32, 32)).astype(np.float32)
    expected, cases = {"input": x}, []
    for index, (name, options) in enumerate(NO_TORCH_NETWORKS):
        kwargs = dict(SMALL, **options)
        state = to_torch_state_dict(ti.models.create(name, **kwargs))
        torch.save({k: torch.from_numpy(np.array(v)) for k, v in state.items()}, tmp_path / f"{name}.pth",
                   _use_new_zipfile_serialization=index % 2 == 0)
        write_safetensors(state, tmp_path / f"{name}.safetensors")
        model = load_torch_state_dict(ti.models.create(name, **kwargs), state).eval()
        with ti.no_grad():
            expected[name] = model(ti.tensor(x)).data
        cases.append((name, kwargs))
    np.savez(tmp_path / "expected.npz", **expected)
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    result = subprocess.run([sys.executable, "-c", BLOCK_TORCH, str(tmp_path)], capture_output=True, text=True,
                            timeout=600,
                            cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("loaded") == 12 and "no torch" in result.stdout


# --- downloads against a local server -----------------------------------------------------------------------------
class _Handler(http.server.BaseHTTPRequestHandler):
    routes = {}

    def do_GET(self):                                   # noqa: N802 (http.server's name)
        if self.path not in self.routes:
            self.send_error(404)
            return
        body, declared = self.routes[self.path]
        self.send_response(200)
        self.send_header("Content-Length", str(declared))
        self.end_headers()
        self.wfile.write(body)                          # fewer bytes than declared: an interrupted transfer

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _weights_file(tmp_path):
    """A small GoogLeNet's weights as a safetensors file's bytes, and the model's logits for them."""
    from tinyinception.interop import to_torch_state_dict, write_safetensors
    model = ti.models.googlenet(width=0.125, small_input=True, num_classes=10, aux_logits=False)
    path = tmp_path / "source.safetensors"
    write_safetensors(to_torch_state_dict(model), path)
    return path.read_bytes(), model


def _record(url, **fields):
    base = PublishedWeights(model="googlenet", tag="test_tag", source="local test server", url=url,
                            filename="test-googlenet.safetensors", file_format="safetensors", num_classes=10,
                            categories="test", preprocessing=Preprocessing(32, 32, (0.5,) * 3, (0.5,) * 3),
                            model_kwargs={"aux_logits": False, "width": 0.125, "small_input": True})
    return replace(base, **fields)


def _cache_listing(home):
    folder = os.path.join(home, "weights")
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def test_download_verifies_and_loads_through_the_builder(tmp_path, server, monkeypatch, capsys):
    body, model = _weights_file(tmp_path)
    _Handler.routes = {"/w.safetensors": (body, len(body))}
    home = str(tmp_path / "home")
    monkeypatch.setenv("TINYINCEPTION_HOME", home)
    record = _record(server + "/w.safetensors", sha256=hashlib.sha256(body).hexdigest())
    monkeypatch.setitem(registry._WEIGHTS, "googlenet", {"test_tag": record})
    loaded = ti.models.googlenet(weights="test_tag", width=None, small_input=None)
    assert _cache_listing(home) == ["test-googlenet.safetensors"]
    x = ti.tensor(np.random.default_rng(0).uniform(-1, 1, (2, 3, 32, 32)).astype(np.float32))
    model.eval(), loaded.eval()
    with ti.no_grad():
        np.testing.assert_array_equal(loaded(x).data, model(x).data)
    _Handler.routes = {}                                # the cached file is used, no second download
    assert fetch(record) == cached_path(record)


def test_unpublished_checksum_is_printed_and_kept(tmp_path, server, monkeypatch, capsys):
    body = b"weights" * 1000
    _Handler.routes = {"/w": (body, len(body))}
    monkeypatch.setenv("TINYINCEPTION_HOME", str(tmp_path))
    path = fetch(_record(server + "/w"), progress=False)
    digest = hashlib.sha256(body).hexdigest()
    assert digest in capsys.readouterr().err
    assert open(path + ".sha256").read().split()[0] == digest


@pytest.mark.parametrize("case", ["checksum", "prefix", "interrupted", "404", "server-gone"])
def test_failed_downloads_leave_nothing_in_the_cache(tmp_path, server, monkeypatch, case):
    body = b"x" * 50000
    _Handler.routes = {"/w": (body, len(body)), "/short": (body[:1000], len(body))}
    monkeypatch.setenv("TINYINCEPTION_HOME", str(tmp_path / "home"))
    url, fields, message = server + "/w", {}, "failed its checksum"
    if case == "checksum":
        fields = {"sha256": "0" * 64}
    elif case == "prefix":
        fields = {"sha256_prefix": "00000000"}
    elif case == "interrupted":
        url, message = server + "/short", "cut short"
    elif case == "404":
        url, message = server + "/missing", "404"
    else:
        with socket.socket() as probe:                  # a port nothing listens on
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        url, message = f"http://127.0.0.1:{port}/w", "offline or cannot reach the host"
    with pytest.raises(WeightsDownloadError, match=message) as error:
        fetch(_record(url, **fields), progress=False, timeout=10)
    assert "pass its path" in str(error.value)
    assert _cache_listing(str(tmp_path / "home")) == []


def test_imagenet_classes_and_published_records():
    names = ti.data.imagenet_classes()
    assert len(names) == 1000 and names[0] == "tench" and names[652] == "military uniform"
    for model in ti.models.list_models():
        for tag in ti.models.list_weights(model):
            record = ti.models.get_weights(model, tag)
            assert record.url.startswith(("https://", "http://")) and record.num_classes > 0
            assert record.sha256 is None or len(record.sha256) == 64
            if record.sha256_prefix:
                assert record.sha256_prefix in record.filename       # torchvision's convention
    assert ti.models.get_weights("googlenet").model_kwargs["transform_input"] is True
    cadene = ti.models.get_weights("bn_inception", "imagenet").transforms()
    assert (cadene.channel_order, cadene.value_range, cadene.mean) == ("BGR", 255, (104.0, 117.0, 128.0))


def test_transforms_resize_crop_and_normalise():
    from PIL import Image
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)           # H 40, W 60
    rgb = Preprocessing(crop_size=20, resize_size=20, mean=(0.5, 0.4, 0.3), std=(0.2, 0.2, 0.2))
    out = rgb(image)
    resized = np.asarray(Image.fromarray(image).resize((30, 20), Image.BILINEAR), dtype=np.float32)
    crop = resized[:, 5:25].transpose(2, 0, 1) / 255.0
    expected = (crop - np.array([0.5, 0.4, 0.3]).reshape(3, 1, 1)) / 0.2
    assert out.shape == (3, 20, 20) and out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    bgr = Preprocessing(crop_size=20, resize_size=20, mean=(104.0, 117.0, 128.0), std=(1.0, 1.0, 1.0),
                        channel_order="BGR", value_range=255)(image)
    np.testing.assert_allclose(bgr, crop[::-1] * 255.0 - np.array([104.0, 117.0, 128.0]).reshape(3, 1, 1),
                               rtol=1e-4, atol=1e-3)
