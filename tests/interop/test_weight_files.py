"""Weight files read with NumPy alone: torch.save files (zip and legacy), safetensors, into every builder.

Each file is written here by torch (or byte by byte for safetensors) with the reference's key names, then loaded
through the builder's ``weights=PATH``; the logits must equal those of the same weights given to
``ti.interop.load_torch_state_dict``. Small widths and 32x32 inputs keep it fast; the key names are the full
networks' (checked against tests/reference/keys/).
"""
import json
import os
import struct

import numpy as np
import pytest

import tinyinception as ti
from tinyinception.interop import (WeightFileError, load_torch_state_dict, read_safetensors, read_state_dict,
                                   read_torch_file, to_torch_state_dict)

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

KEYS_DIR = os.path.join(os.path.dirname(__file__), "..", "reference", "keys")
# builder name, keys file, builder options (small: width 0.125, the 32x32 stem)
NETWORKS = [
    ("googlenet", "googlenet", {"aux_logits": True}),
    ("bn_inception", "bninception", {}),
    ("inception_v3", "inception_v3", {"aux_logits": True}),
    ("inception_v4", "inception_v4", {}),
    ("inception_resnet_v2", "inception_resnet_v2", {}),
    ("inception_resnet_v1", "inception_resnet_v1", {"head": "facenet"}),
]
SMALL = {"width": 0.125, "small_input": True, "num_classes": 10}


def _build(name, options, **extra):
    return ti.models.create(name, **SMALL, **options, **extra)


def _logits(model, seed=0):
    model.eval()
    x = np.random.default_rng(seed).uniform(-1, 1, (2, 3, 32, 32)).astype(np.float32)
    with ti.no_grad():
        return model(ti.tensor(x)).data.copy()


def _reference_state(name, options, seed=1):
    """A reference-keyed state_dict of torch tensors with non-trivial values (BatchNorm statistics included)."""
    ti.manual_seed(seed)
    source = _build(name, options)
    rng = np.random.default_rng(seed)
    state = {}
    for key, value in to_torch_state_dict(source).items():
        if key.endswith("running_var"):
            value = rng.uniform(0.5, 2.0, value.shape).astype(value.dtype)
        elif key.endswith(("running_mean", "bn.bias")):
            value = rng.uniform(-0.25, 0.25, value.shape).astype(value.dtype)
        state[key] = torch.from_numpy(np.array(value, copy=True))
    return state


def _expected_logits(name, options, state):
    model = _build(name, options)
    load_torch_state_dict(model, state)
    return _logits(model)


def _write_safetensors_by_hand(path, arrays):
    """The format written byte by byte: u64 header length, JSON header, little-endian C-order buffer."""
    header, buffer = {}, b""
    codes = {np.dtype(np.float32): "F32", np.dtype(np.float64): "F64", np.dtype(np.int64): "I64",
             np.dtype(np.float16): "F16", np.dtype(np.bool_): "BOOL"}
    for key, array in arrays.items():
        raw = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()
        header[key] = {"dtype": codes[array.dtype], "shape": list(array.shape),
                       "data_offsets": [len(buffer), len(buffer) + len(raw)]}
        buffer += raw
    header["__metadata__"] = {"format": "pt"}
    encoded = json.dumps(header).encode()
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(encoded)) + encoded + buffer)


@pytest.mark.parametrize("name,keys_file,options", NETWORKS, ids=[n[0] for n in NETWORKS])
def test_reference_key_names_match_the_published_layout(name, keys_file, options):
    with open(os.path.join(KEYS_DIR, keys_file + ".json")) as handle:
        reference = [entry["name"] for entry in json.load(handle)["state_dict"]]
    assert sorted(to_torch_state_dict(_build(name, options))) == sorted(reference)


@pytest.mark.parametrize("name,keys_file,options", NETWORKS, ids=[n[0] for n in NETWORKS])
def test_every_format_loads_into_the_builder_with_equal_logits(tmp_path, name, keys_file, options):
    state = _reference_state(name, options)
    expected = _logits(_build_loaded(name, options, state))
    files = {
        "zip.pth": lambda p: torch.save(state, p),
        "legacy.pth": lambda p: torch.save(state, p, _use_new_zipfile_serialization=False),
        "nested_prefixed.pt": lambda p: torch.save({"epoch": 3, "state_dict": {"module." + k: v
                                                                               for k, v in state.items()}}, p),
        "by_hand.safetensors": lambda p: _write_safetensors_by_hand(p, {k: v.numpy() for k, v in state.items()}),
    }
    for filename, write in files.items():
        path = str(tmp_path / filename)
        write(path)
        loaded = ti.models.create(name, **SMALL, **options, weights=path)
        np.testing.assert_array_equal(_logits(loaded), expected, err_msg=filename)


def _build_loaded(name, options, state):
    model = _build(name, options)
    return load_torch_state_dict(model, state)


def test_float64_file_into_float32_model_equals_load_torch_state_dict(tmp_path):
    state = {k: (v.double() if v.is_floating_point() else v) for k, v in
             _reference_state("googlenet", {"aux_logits": True}).items()}
    for legacy in (False, True):
        path = str(tmp_path / f"f64_{legacy}.pth")
        torch.save(state, path, _use_new_zipfile_serialization=not legacy)
        model = _build("googlenet", {"aux_logits": True}, weights=path)
        np.testing.assert_array_equal(_logits(model), _expected_logits("googlenet", {"aux_logits": True}, state))


def test_safetensors_package_file_loads(tmp_path):
    safetensors_torch = pytest.importorskip("safetensors.torch")
    state = _reference_state("inception_v4", {})
    path = str(tmp_path / "model.safetensors")
    safetensors_torch.save_file({k: v.contiguous() for k, v in state.items()}, path)
    model = _build("inception_v4", {}, weights=path)
    np.testing.assert_array_equal(_logits(model), _expected_logits("inception_v4", {}, state))


def test_aux_heads_in_the_file_are_skipped_when_the_model_has_none(tmp_path):
    state = _reference_state("googlenet", {"aux_logits": True})
    path = str(tmp_path / "with_aux.pth")
    torch.save(state, path)
    model = _build("googlenet", {"aux_logits": False}, weights=path)
    without_aux = {k: v for k, v in state.items() if not k.startswith(("aux1.", "aux2."))}
    np.testing.assert_array_equal(_logits(model), _expected_logits("googlenet", {"aux_logits": False}, without_aux))


def test_missing_num_batches_tracked_is_taken_as_zero(tmp_path):
    state = {k: v for k, v in _reference_state("bn_inception", {}).items() if "num_batches_tracked" not in k}
    path = str(tmp_path / "old.pth")
    torch.save(state, path, _use_new_zipfile_serialization=False)
    model = _build("bn_inception", {}, weights=path)
    counters = [np.asarray(v if isinstance(v, np.ndarray) else v.data) for k, v in model.state_dict().items()
                if k.endswith("num_batches_tracked")]
    assert counters and all(int(c) == 0 for c in counters)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_dtypes_shared_storages_and_views(tmp_path, legacy):
    base = torch.arange(24, dtype=torch.float64).reshape(4, 6)
    values = {
        "f32": torch.randn(3, 5), "f64": base, "f16": torch.randn(7).half(), "i64": torch.arange(-3, 9),
        "bool": torch.tensor([True, False, True]), "bf16": torch.randn(4).bfloat16(), "scalar": torch.tensor(5),
        "transposed": base.t(), "offset_slice": base[1:3, 2:5], "strided": base[:, ::2], "same": base,
        "empty": torch.zeros(0, 3),
    }
    path = str(tmp_path / "values.pt")
    torch.save(values, path, _use_new_zipfile_serialization=not legacy)
    loaded = read_torch_file(path)
    for key, tensor in values.items():
        expected = tensor.float().numpy() if tensor.dtype == torch.bfloat16 else tensor.numpy()
        assert loaded[key].dtype == expected.dtype, key
        np.testing.assert_array_equal(loaded[key], expected, err_msg=key)
    assert all(array.flags.writeable for array in loaded.values())    # copies, not views into the file


def test_read_state_dict_of_safetensors_and_torch_agree(tmp_path):
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([1, -2], dtype=np.int64),
              "c": np.array([True, False]), "d": np.linspace(0, 1, 5).astype(np.float16)}
    _write_safetensors_by_hand(str(tmp_path / "a.safetensors"), arrays)
    torch.save({k: torch.from_numpy(v) for k, v in arrays.items()}, str(tmp_path / "a.pth"))
    for filename in ("a.safetensors", "a.pth"):
        loaded = read_state_dict(str(tmp_path / filename))
        for key, array in arrays.items():
            assert loaded[key].dtype == array.dtype
            np.testing.assert_array_equal(loaded[key], array)
    tensors, metadata = read_safetensors(str(tmp_path / "a.safetensors"), with_metadata=True)
    assert metadata == {"format": "pt"} and list(tensors) == list(arrays)


def test_a_file_for_another_network_is_refused_with_the_keys_named(tmp_path):
    path = str(tmp_path / "v4.pth")
    torch.save(_reference_state("inception_v4", {}), path)
    with pytest.raises(KeyError, match="features.0.conv.weight"):
        _build("inception_v3", {"aux_logits": False}, weights=path)


def test_unknown_weights_argument_names_the_tags():
    with pytest.raises(ValueError, match="IMAGENET1K_V1"):
        ti.models.googlenet(weights="no-such-tag")
    with pytest.raises(ValueError, match="width"):
        ti.models.googlenet(weights="IMAGENET1K_V1", width=0.5)


def test_not_a_weight_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(WeightFileError, match="notes.txt"):
        read_state_dict(str(path))
