"""A bounded reader of a GGUF file's header: its metadata and its tensor table, parsed once, no tensor data read.

The layout (llama.cpp's ``gguf.md``): ``GGUF``, a uint32 version (2 or 3), uint64 tensor and key counts, the
keys (a string, a uint32 value type, the value; an array is a uint32 item type, a uint64 count and the
items), then per tensor its name, uint32 n_dims, n_dims uint64 dimensions (innermost first), a uint32 ggml
type and a uint64 offset into the aligned data section. Every count and length is checked against the bytes
left in the file before anything is allocated or walked (a 49-byte file cannot announce 2^64 items), arrays
nest at most :data:`MAX_DEPTH` deep, and each tensor's data must lie inside the file. Long arrays (a
tokenizer's vocabulary) are walked, not kept: :class:`LongArray` stands for them. The type constants are the
``gguf`` package's (llama.cpp's own); its reader is not used, because it trusts the counts it reads.
"""

from __future__ import annotations

import mmap
import os
import stat
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from estimator.checkpoint.files import printable
from estimator.checkpoint.safetensors_files import TensorInfo
from estimator.errors import EstimatorError

MAGIC = b"GGUF"
VERSIONS = (2, 3)  # version 1 had 32-bit counts; llama.cpp writes 3
MAX_DEPTH = 2  # an array of arrays at most
MAX_STRING_BYTES = 16 * 2**20  # chat templates are tens of kB
MAX_KEPT_ITEMS = 4096  # per-layer arrays (a few hundred layers) are kept; longer ones are walked
MAX_WALKED_ITEMS = 8 * 2**20  # strings walked in all (a 262k vocabulary and its merges: under 1M)
MAX_KEPT_TOTAL = 2**18  # items of short arrays kept in all (per-layer values: a few thousand)
MAX_DIMS = 4  # GGML_MAX_DIMS
SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
STRING, ARRAY = 8, 9
TYPE_NAMES = {0: "uint8", 1: "int8", 2: "uint16", 3: "int16", 4: "uint32", 5: "int32", 6: "float32", 7: "bool",
              8: "string", 9: "array", 10: "uint64", 11: "int64", 12: "float64"}  # fmt: skip
DEFAULT_ALIGNMENT = 32


class GGUFFormatError(ValueError):
    """What is wrong with the file, in a few words (the caller names the file and the fix)."""


@dataclass(frozen=True)
class LongArray:
    """A metadata array longer than :data:`MAX_KEPT_ITEMS` (a vocabulary, merges, scores): walked and checked,
    its items not kept."""

    item_type: str
    count: int


class Cursor:
    """A position in the mapped file that refuses to read past its end."""

    def __init__(self, data: mmap.mmap | bytes, order: str) -> None:
        self.data, self.order, self.at, self.walked, self.kept = data, order, 0, 0, 0

    @property
    def left(self) -> int:
        return len(self.data) - self.at

    def need(self, size: int, what: str) -> None:
        if size > self.left:
            raise GGUFFormatError(f"{what} needs {size:,} bytes at offset {self.at:,}; the file has {self.left:,} left")

    def unpack(self, code: str, what: str) -> Any:
        size = struct.calcsize(code)
        self.need(size, what)
        (value,) = struct.unpack_from(self.order + code, self.data, self.at)
        self.at += size
        return value

    def string(self, what: str, limit: int = MAX_STRING_BYTES, keep: bool = True) -> str:
        length = self.unpack("Q", f"the length of {what}")
        if length > limit:
            raise GGUFFormatError(f"{what} is {length:,} bytes long, over the {limit:,} a GGUF string may hold here")
        self.need(length, what)
        start, self.at = self.at, self.at + length
        if not keep:
            return ""
        try:
            return bytes(self.data[start : self.at]).decode("utf-8")
        except UnicodeDecodeError:
            raise GGUFFormatError(f"{what} at offset {start:,} is not UTF-8") from None


def value(cur: Cursor, kind: int, key: str, depth: int = 0) -> Any:
    """One metadata value of type ``kind``; arrays checked against the bytes left before they are walked."""
    if kind in SCALARS:
        return cur.unpack(SCALARS[kind], f"the value of {key}")
    if kind == STRING:
        return cur.string(f"the value of {key}")
    if kind != ARRAY:
        raise GGUFFormatError(f"{key} has value type {kind}, which GGUF does not define")
    if depth >= MAX_DEPTH:
        raise GGUFFormatError(f"{key} nests arrays more than {MAX_DEPTH} deep")
    item, count = cur.unpack("I", f"the item type of {key}"), cur.unpack("Q", f"the length of {key}")
    smallest = struct.calcsize(SCALARS[item]) if item in SCALARS else 8 if item in (STRING, ARRAY) else 0
    if smallest == 0:
        raise GGUFFormatError(f"{key} is an array of value type {item}, which GGUF does not define")
    cur.need(count * smallest, f"{key}'s {count:,} items")
    if count > MAX_KEPT_ITEMS and item in SCALARS:
        cur.at += count * smallest
        return LongArray(TYPE_NAMES[item], count)
    if count > MAX_KEPT_ITEMS:
        cur.walked += count
        if cur.walked > MAX_WALKED_ITEMS:
            raise GGUFFormatError(f"its arrays hold over {MAX_WALKED_ITEMS:,} strings or arrays in all")
        for _ in range(count):
            if item == STRING:
                cur.string(f"an item of {key}", keep=False)
            else:
                value(cur, ARRAY, key, depth + 1)
        return LongArray(TYPE_NAMES[item], count)
    cur.kept += count
    if cur.kept > MAX_KEPT_TOTAL:
        raise GGUFFormatError(f"its short arrays hold over {MAX_KEPT_TOTAL:,} items in all")
    return [value(cur, item, key, depth + 1) for _ in range(count)]


def tensor(cur: Cursor, sizes: dict[int, tuple[str, int, int]]) -> tuple[str, str, tuple[int, ...], int, int]:
    """One tensor-table entry: name, ggml type, dimensions (innermost first), bytes, offset in the data."""
    name = cur.string("a tensor name", limit=65_535)
    n_dims = cur.unpack("I", f"the rank of {name}")
    if n_dims > MAX_DIMS:
        raise GGUFFormatError(f"tensor {name!r} has {n_dims} dimensions; ggml allows at most {MAX_DIMS}")
    dims = tuple(cur.unpack("Q", f"a dimension of {name}") for _ in range(n_dims))
    kind, offset = cur.unpack("I", f"the type of {name}"), cur.unpack("Q", f"the offset of {name}")
    if kind not in sizes:
        raise GGUFFormatError(f"tensor {name!r} has ggml type {kind}, which this gguf package does not know")
    type_name, block, type_bytes = sizes[kind]
    elements = 1
    for d in dims:
        elements *= d
    if dims and dims[0] % block:
        raise GGUFFormatError(f"tensor {name!r}: {dims[0]:,} values per row is not a multiple of {type_name}'s {block}")
    return name, type_name, dims, elements * type_bytes // block, offset


def ggml_sizes() -> dict[int, tuple[str, int, int]]:
    """ggml type id -> (name, values per block, bytes per block), from the ``gguf`` package."""
    from gguf.constants import GGML_QUANT_SIZES

    return {int(t): (t.name, block, size) for t, (block, size) in GGML_QUANT_SIZES.items()}


def parse(data: mmap.mmap | bytes) -> tuple[dict[str, Any], list[TensorInfo]]:
    """The metadata and tensors of a whole GGUF file's bytes (mapped); :class:`GGUFFormatError` if malformed."""
    if len(data) < 24 or data[:4] != MAGIC:
        raise GGUFFormatError("it does not start with GGUF and its counts")
    (version,) = struct.unpack_from("<I", data, 4)
    order = "<" if version & 0xFFFF else ">"  # a big-endian file's version reads as 2^24 · v little-endian
    (version,) = struct.unpack_from(order + "I", data, 4)
    if version not in VERSIONS:
        raise GGUFFormatError(f"GGUF version {version} is not read here (only {', '.join(map(str, VERSIONS))})")
    cur = Cursor(data, order)
    cur.at = 8
    n_tensors, n_keys = cur.unpack("Q", "the tensor count"), cur.unpack("Q", "the key count")
    cur.need(n_keys * 13, f"{n_keys:,} keys")  # each at least a length, a type and a one-byte value
    metadata: dict[str, Any] = {}
    for _ in range(n_keys):
        key = cur.string("a key", limit=65_535)
        if key in metadata:
            raise GGUFFormatError(f"key {printable(key, 60)!r} appears twice")
        metadata[key] = value(cur, cur.unpack("I", f"the type of {printable(key, 60)}"), printable(key, 60))
    cur.need(n_tensors * 24, f"{n_tensors:,} tensors")  # each at least a name length, n_dims, a type, an offset
    sizes = ggml_sizes()
    entries = [tensor(cur, sizes) for _ in range(n_tensors)]
    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1) or alignment > 2**20:
        raise GGUFFormatError(f"general.alignment {alignment!r} is not a power of two up to 2^20")
    start = -(-cur.at // alignment) * alignment
    tensors, names = [], set()
    for name, type_name, dims, nbytes, offset in entries:
        if name in names:
            raise GGUFFormatError(f"tensor {printable(name, 60)!r} appears twice")
        names.add(name)
        if start + offset + nbytes > len(data):
            raise GGUFFormatError(
                f"tensor {printable(name, 60)!r}'s {nbytes:,} bytes at {start + offset:,} lie past the end of the "
                f"file ({len(data):,} bytes): it is cut short"
            )
        tensors.append(TensorInfo(name, type_name, dims, nbytes))
    return metadata, tensors


@lru_cache(maxsize=4)
def _parsed(path: str, identity: tuple[int, int, int, int]) -> tuple[dict[str, Any], tuple[TensorInfo, ...]]:
    """One parse per file version (device, inode, size, mtime): ``--config`` and its cross-check share it."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise GGUFFormatError("it is not a regular file")
        if identity[2] == 0:
            raise GGUFFormatError("it is empty")
        with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as data:
            metadata, tensors = parse(data)
    finally:
        os.close(fd)
    return metadata, tuple(tensors)


def read(path: Path) -> tuple[dict[str, Any], list[TensorInfo]]:
    """The metadata and tensors of the GGUF file at ``path``; one line naming the file and the problem if it is
    not a readable one."""
    shown = printable(str(path))
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise GGUFFormatError("it is not a regular file (a FIFO, device or socket)")
        metadata, tensors = _parsed(str(path.resolve()), (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns))
    except GGUFFormatError as exc:
        raise EstimatorError(f"{shown}: not a readable GGUF file ({exc}); re-download or re-convert it") from None
    except OSError as exc:
        raise EstimatorError(f"cannot read {shown} ({exc.strerror or exc}); check the path") from None
    return dict(metadata), list(tensors)
