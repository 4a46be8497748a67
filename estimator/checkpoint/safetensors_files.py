"""The tensors of a local checkpoint, from its safetensors headers only: names, dtypes, shapes, bytes.

A safetensors file starts with an 8-byte little-endian header length and a JSON table of every tensor
(dtype, shape, byte offsets); the ``safetensors`` library reads and validates that header (its length
against the file, the JSON, the offsets) without touching tensor data. A sharded checkpoint lists its
files in ``model.safetensors.index.json``; a missing shard is named, not skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from math import prod
from pathlib import Path
from typing import Any

from estimator.checkpoint.files import inside, printable, regular_size
from estimator.errors import EstimatorError

INDEX = "model.safetensors.index.json"
ADAPTER_FILE = "adapter_model.safetensors"
MAX_INDEX_BYTES = 50_000_000  # an index lists tensor names: a few MB for the largest models
BITS = {  # safetensors dtype names and their bits per element
    "F64": 64, "F32": 32, "F16": 16, "BF16": 16, "F8_E4M3": 8, "F8_E5M2": 8, "F8_E8M0": 8, "F6_E2M3": 6,
    "F6_E3M2": 6, "F4": 4, "I64": 64, "U64": 64, "I32": 32, "U32": 32, "I16": 16, "U16": 16, "I8": 8,
    "U8": 8, "BOOL": 8, "C64": 64,
}  # fmt: skip


@dataclass(frozen=True)
class TensorInfo:
    """One stored tensor: its name, dtype (safetensors' name, or GGUF's type), shape, stored bytes."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int

    @property
    def numel(self) -> int:
        return prod(self.shape)


def read_header(path: Path) -> tuple[list[TensorInfo], dict[str, str]]:
    """The tensors and the metadata of one safetensors file; one line naming the file if it is not one."""
    from safetensors import SafetensorError, safe_open

    regular_size(path)  # a FIFO would block the open forever
    try:
        with safe_open(str(path), framework="numpy") as handle:
            metadata = handle.metadata() or {}
            tensors = []
            for name in handle.keys():  # noqa: SIM118 - safe_open is not a mapping
                piece = handle.get_slice(name)
                dtype, shape = piece.get_dtype(), tuple(int(n) for n in piece.get_shape())
                tensors.append(TensorInfo(name, dtype, shape, -(-prod(shape) * BITS.get(dtype, 8) // 8)))
    except SafetensorError as exc:
        detail = printable(" ".join(str(exc).split()), 160)
        raise EstimatorError(f"{printable(str(path))}: not a readable safetensors file ({detail}); re-download or "
                             "re-save it") from None  # fmt: skip
    except OSError as exc:
        raise EstimatorError(f"cannot read {printable(str(path))} ({exc.strerror or exc}); check the path") from None
    return tensors, dict(metadata)


def root_of(folder: Path) -> Path:
    """The folder whose files a checkpoint may link to: a Hub snapshot's files link into its repo's blobs."""
    return folder.parent.parent if folder.parent.name == "snapshots" else folder


def weight_files(folder: Path) -> list[Path]:
    """The checkpoint's safetensors files: the shards its index names (each must exist), else every
    ``*.safetensors`` file but a peft adapter's; each a regular file inside the folder (no FIFO, no link out)."""
    index, root = folder / INDEX, root_of(folder)
    if index.exists():
        inside(root, index)
        if index.stat().st_size > MAX_INDEX_BYTES:
            raise EstimatorError(f"{index} is over {MAX_INDEX_BYTES:,} bytes; it is not a safetensors index")
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map")
        except (ValueError, UnicodeDecodeError, AttributeError, RecursionError) as exc:
            raise EstimatorError(f"{index}: not valid JSON ({exc}); re-download it") from None
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            raise EstimatorError(f"{index}: lacks a weight_map of tensor names to files; re-download it")
        shards = sorted(set(weight_map.values()))
        for shard in shards:
            if Path(shard).name != shard:
                raise EstimatorError(
                    f"{index} names {printable(shard, 80)!r}, not a file beside it; re-download the index"
                )
            if not (folder / shard).exists():
                raise EstimatorError(
                    f"{folder}: {INDEX} names {shard}, which is missing; download every shard or remove the index"
                )
            inside(root, folder / shard)
        return [folder / shard for shard in shards]
    found = sorted(p for p in folder.glob("*.safetensors") if p.name != ADAPTER_FILE)
    for path in found:
        inside(root, path)
    return found


def read_folder(folder: Path) -> list[TensorInfo]:
    """Every tensor of the folder's checkpoint, from the headers of its files."""
    tensors: list[TensorInfo] = []
    for path in weight_files(folder):
        tensors += read_header(path)[0]
    return tensors


def read_json(path: Path, what: str) -> dict[str, Any]:
    """A small JSON object (a config, an adapter config), or one line naming the file and the problem."""
    try:
        if regular_size(path) > 1_000_000:
            raise EstimatorError(f"{path} is over 1,000,000 bytes; it is not a {what}")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        detail = printable(" ".join(str(exc).split()) or type(exc).__name__, 120)
        raise EstimatorError(f"{printable(str(path))}: not valid JSON ({detail}); re-download it") from None
    except OSError as exc:
        raise EstimatorError(f"cannot read {path} ({exc.strerror or exc}); check the path") from None
    if not isinstance(data, dict):
        raise EstimatorError(f"{path}: not a JSON object; it is not a {what}")
    return data
