"""Read PyTorch ``.pth``/``.pt`` files with NumPy alone: ``read_torch_file(path) -> object with ndarrays``.

``torch.save`` has written two formats:

zip (torch >= 1.6)
    a zip archive ``<name>/data.pkl`` (the pickled object), ``<name>/data/<key>`` (one file of raw bytes per
    storage), ``<name>/byteorder`` ("little" or "big"; absent in files older than torch 1.10, which were little
    endian) and a few version records. ``<name>`` is "archive" or the file's stem.
legacy (torch < 1.6, e.g. Cadene's 2017 BN-Inception)
    five pickles and raw bytes in one stream: the magic number 0x1950a86a20f9469cfc6c, the protocol version 1001,
    the system info ({"little_endian": ...}), the object, the list of storage keys; then for each key an int64
    element count followed by the storage's raw bytes.

In both, the object pickle refers to storages by "persistent id" tuples ``("storage", torch.FloatStorage, key,
location, numel[, view])`` and rebuilds each tensor with ``torch._utils._rebuild_tensor_v2(storage, offset, size,
stride, ...)``. The unpickler here resolves exactly those names, to NumPy equivalents: a tensor becomes an ndarray
of the storage's dtype with the recorded size, stride (in elements) and storage offset, copied out of the storage
after checking that every element it reaches lies inside it. Any other global -- ``os.system``, ``builtins.eval``,
a model class -- is refused with WeightFileError, so a hostile file cannot run code.
"""
import collections
import io
import pickle
import struct
import zipfile

import numpy as np

from .errors import WeightFileError

LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
LEGACY_PROTOCOL = 1001

STORAGE_DTYPES = {
    "DoubleStorage": np.float64, "FloatStorage": np.float32, "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16", "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}
TORCH_DTYPES = {"float64": np.float64, "float32": np.float32, "float16": np.float16, "bfloat16": "bfloat16",
                "int64": np.int64, "int32": np.int32, "int16": np.int16, "int8": np.int8, "uint8": np.uint8,
                "bool": np.bool_}


class StorageType:
    """Stands for ``torch.FloatStorage`` and friends in the pickle: only its element dtype matters."""

    def __init__(self, name, dtype):
        self.name, self.dtype = name, dtype

    def __repr__(self):
        return f"torch.{self.name}"


class Storage:
    """One storage's raw bytes as a flat NumPy array (``values``) of its element dtype."""

    def __init__(self, values, name):
        self.values, self.name = values, name


class DeferredTensor:
    """A legacy-format tensor whose storage bytes follow the object pickle: resolved once they are read."""

    def __init__(self, path, storage, storage_offset, size, stride):
        self.arguments = (path, storage, storage_offset, size, stride)

    def resolve(self):
        return _rebuild_tensor(*self.arguments)


def _resolve(obj):
    """``obj`` with every DeferredTensor inside (dicts, lists, tuples) replaced by its array."""
    if isinstance(obj, DeferredTensor):
        return obj.resolve()
    if isinstance(obj, dict):
        for key, value in obj.items():
            obj[key] = _resolve(value)
        return obj
    if isinstance(obj, list):
        obj[:] = [_resolve(value) for value in obj]
        return obj
    if isinstance(obj, tuple):
        return tuple(_resolve(value) for value in obj)
    return obj


def bfloat16_to_float32(raw_uint16):
    """bfloat16 bits (uint16) -> float32: bfloat16 is the upper half of a float32."""
    return (raw_uint16.astype(np.uint32) << 16).view(np.float32)


def _element_dtype(dtype, byteorder):
    """NumPy dtype of one stored element (bfloat16 is read as its uint16 bits)."""
    base = np.dtype(np.uint16 if dtype == "bfloat16" else dtype)
    return base.newbyteorder("<" if byteorder == "little" else ">")


def _rebuild_tensor(path, storage, storage_offset, size, stride):
    """The ndarray a tensor view of ``storage`` describes, after checking it stays inside the storage."""
    if not isinstance(storage, Storage):
        raise WeightFileError(path, f"a tensor refers to {type(storage).__name__}, not a storage")
    if storage.values is None:                              # legacy format: the bytes come after the object
        return DeferredTensor(path, storage, storage_offset, size, stride)
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    if len(size) != len(stride) or storage_offset < 0 or any(s < 0 for s in size) or any(s < 0 for s in stride):
        raise WeightFileError(path, f"invalid tensor view: offset {storage_offset}, size {size}, stride {stride}")
    count = len(storage.values)
    if 0 not in size:
        last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= count:
            raise WeightFileError(path, f"a tensor of size {size}, stride {stride} at offset {storage_offset} "
                                        f"reaches element {last} of storage {storage.name!r}, which holds {count}")
    values = storage.values
    itemsize = values.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(values[storage_offset:] if 0 not in size else values[:0],
                                           shape=size, strides=tuple(s * itemsize for s in stride))
    array = np.array(view, dtype=view.dtype.newbyteorder("="), copy=True)
    return bfloat16_to_float32(array) if storage.name.endswith("(bfloat16)") else array


class _RestrictedUnpickler(pickle.Unpickler):
    """Plain containers, tensors and storages only; ``load_storage(persistent_id) -> Storage``."""

    def __init__(self, stream, path, load_storage):
        super().__init__(stream, encoding="utf-8")
        self.path, self.load_storage = path, load_storage

    def find_class(self, module, name):
        path = self.path
        if module in ("torch", "torch.cuda") and name in STORAGE_DTYPES:
            return StorageType(name, STORAGE_DTYPES[name])
        if module == "torch" and name in TORCH_DTYPES:          # a torch.dtype (in _rebuild_tensor_v3)
            return TORCH_DTYPES[name]
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor", "_rebuild_tensor_v2"):
            def rebuild(storage, storage_offset, size, stride, *unused):
                return _rebuild_tensor(path, storage, storage_offset, size, stride)
            return rebuild
        if (module, name) == ("torch._utils", "_rebuild_tensor_v3"):
            def rebuild_v3(storage, storage_offset, size, stride, requires_grad, hooks, dtype, *unused):
                return _rebuild_tensor(path, storage, storage_offset, size, stride)
            return rebuild_v3
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return lambda data, requires_grad, hooks, *unused: data
        if (module, name) == ("torch._utils", "_rebuild_parameter_with_state"):
            return lambda data, requires_grad, hooks, state, *unused: data
        raise WeightFileError(path, f"refusing to load {module}.{name}: a weight file may hold only tensors and "
                                    f"plain containers (this one asks for code to run)")

    def persistent_load(self, persistent_id):
        if not (isinstance(persistent_id, tuple) and len(persistent_id) >= 5 and persistent_id[0] == "storage"
                and isinstance(persistent_id[1], StorageType)):
            raise WeightFileError(self.path, f"unknown persistent id {persistent_id!r:.120}")
        return self.load_storage(persistent_id)


def _unpickle(stream, path, load_storage):
    try:
        return _RestrictedUnpickler(stream, path, load_storage).load()
    except WeightFileError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            struct.error, UnicodeDecodeError, MemoryError, RecursionError) as error:
        raise WeightFileError(path, f"not a readable PyTorch pickle ({type(error).__name__}: {error})") from error


# --- zip format ---------------------------------------------------------------------------------------------------
def _zip_prefix(path, names):
    pickles = [name for name in names if name.endswith("data.pkl") and name.count("/") == 1]
    if len(pickles) != 1:
        raise WeightFileError(path, f"zip archive without exactly one <name>/data.pkl (found {len(pickles)}): "
                                    f"not a torch.save file")
    return pickles[0][:-len("data.pkl")]


def read_zip(path):
    """The object of a zip-format torch.save file, tensors as ndarrays."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise WeightFileError(path, f"not a readable zip archive ({error})") from error
    with archive:
        names = set(archive.namelist())
        prefix = _zip_prefix(path, names)
        byteorder = "little"
        if prefix + "byteorder" in names:
            byteorder = archive.read(prefix + "byteorder").decode("ascii", "replace").strip()
            if byteorder not in ("little", "big"):
                raise WeightFileError(path, f"unknown byte order record {byteorder!r}")
        storages = {}

        def load_storage(persistent_id):
            _, storage_type, key, _location, numel = persistent_id[:5]
            if key not in storages:
                record = f"{prefix}data/{key}"
                if record not in names:
                    raise WeightFileError(path, f"storage {key!r} has no record {record} in the archive")
                dtype = _element_dtype(storage_type.dtype, byteorder)
                try:
                    raw = archive.read(record)
                except (zipfile.BadZipFile, OSError, EOFError) as error:
                    raise WeightFileError(path, f"storage record {record} is unreadable ({error})") from error
                if len(raw) % dtype.itemsize:
                    raise WeightFileError(path, f"storage {key!r} holds {len(raw)} bytes, not a whole number of "
                                                f"{storage_type!r} elements")
                name = f"{key} ({storage_type.dtype if isinstance(storage_type.dtype, str) else dtype.name})"
                storages[key] = Storage(np.frombuffer(raw, dtype=dtype), name)
            return storages[key]

        try:
            pickled = archive.read(prefix + "data.pkl")
        except (zipfile.BadZipFile, OSError, EOFError) as error:
            raise WeightFileError(path, f"data.pkl is unreadable ({error})") from error
        return _unpickle(io.BytesIO(pickled), path, load_storage)


# --- legacy format ------------------------------------------------------------------------------------------------
def _legacy_header(stream, path):
    """Check the magic number, protocol version and byte order of a legacy file; the stream then sits at the
    object pickle."""
    def refuse(*_):
        raise WeightFileError(path, "unexpected tensor in the legacy header")
    magic = _unpickle(stream, path, refuse)
    if magic != LEGACY_MAGIC:
        raise WeightFileError(path, f"wrong magic number {magic!r:.40}: not a PyTorch file")
    protocol = _unpickle(stream, path, refuse)
    if protocol != LEGACY_PROTOCOL:
        raise WeightFileError(path, f"unsupported legacy protocol version {protocol!r:.40} (expected 1001)")
    info = _unpickle(stream, path, refuse)
    if not isinstance(info, dict):
        raise WeightFileError(path, "legacy system info is not a dict")
    return "little" if info.get("little_endian", True) else "big"


def read_legacy(path):
    """The object of a legacy (pre-zip) torch.save file, tensors as ndarrays."""
    with open(path, "rb") as handle:
        data = handle.read()
    stream = io.BytesIO(data)
    byteorder = _legacy_header(stream, path)
    declared = {}                                           # root key -> (StorageType, numel)
    views = {}                                              # view key -> (root key, offset, size)
    placeholders = {}

    def remember(persistent_id):
        _, storage_type, root_key, _location, numel = persistent_id[:5]
        view = persistent_id[5] if len(persistent_id) > 5 else None
        declared.setdefault(root_key, (storage_type, int(numel)))
        key = root_key
        if view is not None:
            key, offset, size = view
            views[key] = (root_key, int(offset), int(size))
        return placeholders.setdefault(key, Storage(None, str(key)))

    obj = _unpickle(stream, path, remember)                 # tensors wait for the storages
    keys = _unpickle(stream, path, lambda _: None)
    if not isinstance(keys, list):
        raise WeightFileError(path, "legacy storage key list missing")
    offset = stream.tell()
    storages = {}
    for key in keys:
        if key not in declared:
            raise WeightFileError(path, f"storage {key!r} is listed but no tensor declares it")
        storage_type, numel = declared[key]
        dtype = _element_dtype(storage_type.dtype, byteorder)
        if offset + 8 > len(data):
            raise WeightFileError(path, f"file ends before storage {key!r} (truncated)")
        (count,) = struct.unpack("<q" if byteorder == "little" else ">q", data[offset:offset + 8])
        end = offset + 8 + count * dtype.itemsize
        if count != numel or count < 0 or end > len(data):
            raise WeightFileError(path, f"storage {key!r}: {count} elements recorded, {numel} declared, "
                                        f"{len(data) - offset - 8} bytes left in the file (truncated or corrupt)")
        name = f"{key} ({storage_type.dtype if isinstance(storage_type.dtype, str) else dtype.name})"
        storages[key] = Storage(np.frombuffer(data, dtype=dtype, count=count, offset=offset + 8), name)
        offset = end
    for key, placeholder in placeholders.items():
        root, start, size = views.get(key, (key, 0, None))
        if root not in storages:
            raise WeightFileError(path, f"storage {root!r} is used by a tensor but missing from the file")
        values = storages[root].values
        stop = len(values) if size is None else start + size
        if start < 0 or stop > len(values):
            raise WeightFileError(path, f"storage view {key!r} [{start}:{stop}] lies outside storage {root!r} "
                                        f"of {len(values)} elements")
        placeholder.values, placeholder.name = values[start:stop], storages[root].name

    return _resolve(obj)


def read_torch_file(path):
    """The object saved in a ``.pth``/``.pt`` file (either format), every tensor as an ndarray.

    Raises WeightFileError for anything else: truncated files, wrong magic, unknown storage types, tensors that
    reach outside their storage, and any global the restricted unpickler refuses.
    """
    path = str(path)
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head.startswith(b"PK\x03\x04"):
        return read_zip(path)
    if head[:1] == b"\x80":
        return read_legacy(path)
    raise WeightFileError(path, f"starts with {head!r}: neither a zip-format nor a legacy PyTorch file")
