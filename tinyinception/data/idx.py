"""Read the IDX format of MNIST and Fashion-MNIST (plain or gzipped).

An IDX file is a 4-byte magic number, then one big-endian uint32 per dimension, then the values in C order,
big-endian:
    byte 0-1: 0x00 0x00
    byte 2:   value type (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64)
    byte 3:   number of dimensions D
    then D sizes (uint32, big-endian), then prod(sizes) values.
"""
import gzip
import math
import zlib

import numpy as np

from .dataset import DatasetFormatError

IDX_TYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
             0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


class IDXFormatError(DatasetFormatError):
    """An IDX file whose header or length is not valid."""


def _read_bytes(path):
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            return handle.read()
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise IDXFormatError(f"IDX file {path}: cannot be read ({error}); it is probably truncated or not "
                             f"gzip; delete it and download it again") from error


def parse_idx(raw, source="<bytes>"):
    """Decode IDX bytes into an array of the file's shape; multi-byte types come back in native byte order."""
    if len(raw) < 4:
        raise IDXFormatError(f"IDX file {source}: {len(raw)} bytes is too short for the 4-byte magic number")
    if raw[0] != 0 or raw[1] != 0:
        raise IDXFormatError(f"IDX file {source}: magic number must start with two zero bytes, got "
                             f"{raw[:4].hex()}; not an IDX file")
    type_code, ndim = raw[2], raw[3]
    if type_code not in IDX_TYPES:
        raise IDXFormatError(f"IDX file {source}: unknown value type 0x{type_code:02X}; expected one of "
                             f"{[f'0x{code:02X}' for code in IDX_TYPES]}")
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise IDXFormatError(f"IDX file {source}: header declares {ndim} dimensions ({header_size} bytes) but "
                             f"the file has only {len(raw)} bytes")
    shape = tuple(int(size) for size in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_TYPES[type_code]
    expected = math.prod(shape) * dtype.itemsize        # Python ints: a hostile header cannot overflow them
    actual = len(raw) - header_size
    if actual != expected:
        state = "truncated" if actual < expected else "longer than its header says"
        raise IDXFormatError(f"IDX file {source}: {state}: shape {shape} of {dtype.name} needs {expected} data "
                             f"bytes, found {actual}")
    values = np.frombuffer(raw, dtype=dtype, offset=header_size).reshape(shape)
    return values.astype(dtype.newbyteorder("="))


def read_idx(path):
    """Read an IDX file (``.gz`` is decompressed) into an array of its declared shape and type."""
    return parse_idx(_read_bytes(path), source=path)
