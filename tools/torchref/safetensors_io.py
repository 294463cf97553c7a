"""A small safetensors reader and writer (F32 and BF16), built on numpy.

The format: an 8-byte little-endian header length n, n bytes of JSON (padded
with spaces so that the data starts at a multiple of 8), then the tensors'
bytes, row-major, little-endian. The JSON maps each tensor name to
{"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the
data start) and may hold "__metadata__", an object of string values.

Like the official library, the reader refuses a file whose header is longer
than the file, whose JSON is not an object, whose metadata values are not
strings, whose tensors use an unknown dtype, whose offsets overlap, leave
gaps or run past the data, or whose shape does not match its byte count. Every
error is a SafetensorsError (a ValueError) naming the file and the problem.

BF16 tensors are widened to float32 on reading; on writing, float32 values are
rounded to bfloat16 to nearest, ties to even, with NaN kept quiet and signed.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from dataclasses import dataclass, field
from typing import Dict, Mapping, Optional

import numpy as np

METADATA_KEY = "__metadata__"
# The official library's limit on the header size.
MAX_HEADER_BYTES = 100 * 1024 * 1024
# Bytes per element of each supported dtype.
DTYPE_SIZES = {"F32": 4, "BF16": 2}
TENSOR_FIELDS = ("dtype", "shape", "data_offsets")


class SafetensorsError(ValueError):
    """A file that is not valid safetensors (or not one this module reads)."""


@dataclass
class SafetensorsFile:
    """A decoded file: float32 arrays by name, their stored dtypes, metadata."""

    path: str
    tensors: Dict[str, np.ndarray]
    dtypes: Dict[str, str] = field(default_factory=dict)
    metadata: Dict[str, str] = field(default_factory=dict)


@dataclass
class _Entry:
    name: str
    dtype: str
    shape: tuple
    begin: int
    end: int


def _fail(path: str, message: str) -> SafetensorsError:
    return SafetensorsError(f"{path}: {message}")


def _no_duplicate_keys(pairs):
    out = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _parse_entry(path: str, name: str, raw, data_len: int) -> _Entry:
    where = f"tensor {name!r}"
    if name == "":
        raise _fail(path, "a tensor has an empty name")
    if not isinstance(raw, dict):
        raise _fail(path, f"{where}: header entry is not an object")
    unknown = sorted(set(raw) - set(TENSOR_FIELDS))
    if unknown:
        raise _fail(path, f"{where}: unknown field(s) {unknown}")
    for key in TENSOR_FIELDS:
        if key not in raw:
            raise _fail(path, f"{where}: missing {key}")
    dtype = raw["dtype"]
    if not isinstance(dtype, str):
        raise _fail(path, f"{where}: dtype {dtype!r} is not a string")
    if dtype not in DTYPE_SIZES:
        raise _fail(path, f"{where}: unknown or unsupported dtype {dtype!r} (this reader knows {', '.join(DTYPE_SIZES)})")
    shape = raw["shape"]
    if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
        raise _fail(path, f"{where}: shape {shape!r} is not a list of non-negative integers")
    offsets = raw["data_offsets"]
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_int(o) for o in offsets):
        raise _fail(path, f"{where}: data_offsets {offsets!r} are not [begin, end]")
    begin, end = offsets
    if begin < 0 or end < begin:
        raise _fail(path, f"{where}: data_offsets {offsets} are not 0 <= begin <= end")
    if end > data_len:
        raise _fail(path, f"{where}: data_offsets {offsets} are out of range of the {data_len}-byte data buffer")
    count = 1
    for d in shape:
        count *= d
    nbytes = count * DTYPE_SIZES[dtype]
    if nbytes != end - begin:
        raise _fail(path, f"{where}: shape {shape} of {dtype} is {nbytes} bytes but data_offsets {offsets} hold {end - begin}")
    return _Entry(name, dtype, tuple(shape), begin, end)


def parse_header(blob: bytes, path: str = "<bytes>"):
    """Validates the header of a whole file's bytes.

    Returns (entries in header order, metadata, offset of the data buffer).
    """
    if len(blob) < 8:
        raise _fail(path, f"truncated: {len(blob)} bytes, shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > MAX_HEADER_BYTES:
        raise _fail(path, f"header length {n} is over the {MAX_HEADER_BYTES}-byte limit")
    if 8 + n > len(blob):
        raise _fail(path, f"truncated: header length {n} is beyond the file ({len(blob) - 8} bytes follow the length)")
    try:
        header = json.loads(blob[8:8 + n].decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
    except (UnicodeDecodeError, ValueError) as e:
        raise _fail(path, f"header is not valid JSON: {e}") from None
    if not isinstance(header, dict):
        raise _fail(path, "header is not a JSON object")
    data_start = 8 + n
    data_len = len(blob) - data_start

    metadata: Dict[str, str] = {}
    raw_meta = header.pop(METADATA_KEY, None)
    if raw_meta is not None:
        if not isinstance(raw_meta, dict):
            raise _fail(path, f"{METADATA_KEY} is not an object of strings")
        for key, value in raw_meta.items():
            if not isinstance(value, str):
                raise _fail(path, f"{METADATA_KEY}[{key!r}] is {type(value).__name__} {json.dumps(value)[:40]}, not a string")
            metadata[key] = value

    entries = [_parse_entry(path, name, raw, data_len) for name, raw in header.items()]

    # The tensors must tile the data buffer: no overlap, no gap, nothing left over.
    next_byte, previous = 0, None
    for e in sorted(entries, key=lambda e: (e.begin, e.end)):
        if e.begin < next_byte:
            raise _fail(path, f"tensor {e.name!r}: data_offsets [{e.begin}, {e.end}] overlap tensor {previous!r}, which ends at {next_byte}")
        if e.begin > next_byte:
            raise _fail(path, f"tensor {e.name!r}: data_offsets [{e.begin}, {e.end}] leave a gap of bytes [{next_byte}, {e.begin})")
        next_byte, previous = e.end, e.name
    if next_byte != data_len:
        raise _fail(path, f"tensors cover bytes [0, {next_byte}) of the {data_len}-byte data buffer")
    return entries, metadata, data_start


def bf16_to_f32(raw: np.ndarray) -> np.ndarray:
    """Widens little-endian bfloat16 bit patterns (uint16) to float32."""
    return (raw.astype(np.uint32) << 16).view(np.float32)


def f32_to_bf16(x: np.ndarray) -> np.ndarray:
    """Rounds float32 to bfloat16 bit patterns: nearest, ties to even; NaN stays a quiet NaN of the same sign."""
    values = np.ascontiguousarray(x, dtype=np.float32)
    bits = values.view(np.uint32)
    rounded = (bits + (((bits >> 16) & 1) + 0x7FFF)) >> 16
    nan = np.isnan(values)
    quiet = (bits >> 16) | 0x0040
    return np.where(nan, quiet, rounded).astype(np.uint16)


def decode(blob: bytes, path: str = "<bytes>") -> SafetensorsFile:
    """Decodes a whole file's bytes."""
    entries, metadata, start = parse_header(blob, path)
    tensors: Dict[str, np.ndarray] = {}
    dtypes: Dict[str, str] = {}
    for e in entries:
        raw = blob[start + e.begin:start + e.end]
        if e.dtype == "F32":
            values = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        else:
            values = bf16_to_f32(np.frombuffer(raw, dtype="<u2"))
        tensors[e.name] = values.reshape(e.shape)
        dtypes[e.name] = e.dtype
    return SafetensorsFile(path=path, tensors=tensors, dtypes=dtypes, metadata=metadata)


def read(path: str) -> SafetensorsFile:
    """Reads and validates a safetensors file; BF16 tensors come back as float32."""
    with open(path, "rb") as f:
        blob = f.read()
    return decode(blob, str(path))


def encode(tensors: Mapping[str, np.ndarray], metadata: Optional[Mapping[str, str]] = None,
           dtypes: Optional[Mapping[str, str]] = None, path: str = "<bytes>") -> bytes:
    """Encodes tensors (any float arrays) as F32, or BF16 where dtypes says so."""
    dtypes = dict(dtypes or {})
    header: Dict[str, object] = {}
    if metadata:
        for key, value in metadata.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise _fail(path, f"{METADATA_KEY}[{key!r}] must be a string")
        header[METADATA_KEY] = dict(metadata)
    chunks = []
    offset = 0
    for name in sorted(tensors):
        if name == METADATA_KEY or name == "":
            raise _fail(path, f"{name!r} is not a valid tensor name")
        dtype = dtypes.get(name, "F32")
        if dtype not in DTYPE_SIZES:
            raise _fail(path, f"tensor {name!r}: cannot write dtype {dtype!r} (this writer knows {', '.join(DTYPE_SIZES)})")
        values = np.asarray(tensors[name], dtype=np.float32)
        if dtype == "F32":
            data = np.ascontiguousarray(values, dtype="<f4").tobytes()
        else:
            data = f32_to_bf16(values).astype("<u2").tobytes()
        header[name] = {"dtype": dtype, "shape": [int(d) for d in values.shape],
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write(path: str, tensors: Mapping[str, np.ndarray], metadata: Optional[Mapping[str, str]] = None,
          dtypes: Optional[Mapping[str, str]] = None) -> None:
    """Writes a safetensors file (through a temporary file, then a rename)."""
    blob = encode(tensors, metadata, dtypes, str(path))
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".safetensors", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's files are private; give the usual mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
