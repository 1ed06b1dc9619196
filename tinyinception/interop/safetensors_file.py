"""Read (and write) safetensors files with NumPy alone, the format of timm's published weights.

Layout: an 8-byte little-endian unsigned header length N, N bytes of JSON
``{"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ..., "__metadata__": {str: str}}``,
then the byte buffer; each tensor's bytes are ``buffer[begin:end]``, little endian, C order. The file is
memory-mapped and every header length, offset and size is checked against the file before any byte is used.
"""
import json
import mmap
import struct

import numpy as np

from .errors import WeightFileError
from .torch_file import bfloat16_to_float32

DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": "bfloat16", "I64": np.int64,
          "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}
NAMES = {np.dtype(value): key for key, value in DTYPES.items() if value != "bfloat16"}
MAX_HEADER = 100 * 1024 * 1024          # the reference implementation's limit


def _parse_header(path, mapped):
    size = len(mapped)
    if size < 8:
        raise WeightFileError(path, f"{size} bytes: too short for a safetensors header length")
    (header_length,) = struct.unpack("<Q", mapped[:8])
    if header_length > size - 8 or header_length > MAX_HEADER:
        raise WeightFileError(path, f"header length {header_length} is larger than the file allows "
                                    f"({size - 8} bytes after the length; truncated or not safetensors)")
    try:
        header = json.loads(bytes(mapped[8:8 + header_length]).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise WeightFileError(path, f"header is not valid JSON ({error})") from error
    if not isinstance(header, dict):
        raise WeightFileError(path, "header is not a JSON object")
    return header, 8 + header_length


def _tensor(path, mapped, buffer_start, name, entry):
    if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= set(entry):
        raise WeightFileError(path, f"tensor {name!r}: header entry lacks dtype, shape or data_offsets")
    dtype_name, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if dtype_name not in DTYPES:
        raise WeightFileError(path, f"tensor {name!r}: unknown dtype {dtype_name!r} (known: {', '.join(DTYPES)})")
    if (not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape)
            or not isinstance(offsets, list) or len(offsets) != 2 or not all(isinstance(o, int) for o in offsets)):
        raise WeightFileError(path, f"tensor {name!r}: malformed shape {shape!r} or data_offsets {offsets!r}")
    begin, end = offsets
    buffer_size = len(mapped) - buffer_start
    stored = np.dtype(np.uint16 if DTYPES[dtype_name] == "bfloat16" else DTYPES[dtype_name]).newbyteorder("<")
    expected = int(np.prod(shape, dtype=np.int64)) * stored.itemsize
    if not 0 <= begin <= end <= buffer_size:
        raise WeightFileError(path, f"tensor {name!r}: data_offsets [{begin}, {end}] lie outside the "
                                    f"{buffer_size}-byte buffer")
    if end - begin != expected:
        raise WeightFileError(path, f"tensor {name!r}: {end - begin} bytes for shape {shape} of {dtype_name} "
                                    f"({expected} expected)")
    flat = np.frombuffer(mapped, dtype=stored, count=expected // stored.itemsize, offset=buffer_start + begin)
    array = flat.astype(stored.newbyteorder("="), copy=True).reshape(shape)
    return bfloat16_to_float32(array) if DTYPES[dtype_name] == "bfloat16" else array


def read_safetensors(path, with_metadata=False):
    """{name: ndarray} from a safetensors file, in the header's order (and its ``__metadata__`` when asked).

    Raises WeightFileError for a header length past the end, invalid JSON, unknown dtypes, and offsets or sizes
    that disagree with the file.
    """
    path = str(path)
    with open(path, "rb") as handle:
        try:
            mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:                                  # an empty file cannot be mapped
            mapped = b""
    try:
        header, buffer_start = _parse_header(path, mapped)
        metadata = header.pop("__metadata__", None)
        tensors = {name: _tensor(path, mapped, buffer_start, name, entry) for name, entry in header.items()}
    finally:
        if isinstance(mapped, mmap.mmap):
            mapped.close()
    return (tensors, metadata) if with_metadata else tensors


def write_safetensors(tensors, path, metadata=None):
    """Write {name: ndarray} as a safetensors file (atomically), tensors in sorted order as the reference does."""
    from ..atomic_file import atomic_file
    header, chunks, offset = {}, [], 0
    for name in sorted(tensors):
        array = np.array(tensors[name], order="C", copy=True)          # 0-d arrays stay 0-d
        if array.dtype not in NAMES:
            raise TypeError(f"write_safetensors: {name!r} has dtype {array.dtype}, which safetensors cannot hold")
        raw = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": NAMES[array.dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = {str(key): str(value) for key, value in metadata.items()}
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)                    # the reference pads the header to 8 bytes
    with atomic_file(path) as handle:
        handle.write(struct.pack("<Q", len(encoded)))
        handle.write(encoded)
        for raw in chunks:
            handle.write(raw)
    return str(path)
