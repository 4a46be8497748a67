"""The analytic parameter count against a checkpoint's tensor table, the difference explained in one line.

Parts the layout does not count, each found by the tensors' names: layers beyond ``num_hidden_layers``
(DeepSeek-V3's multi-token-prediction layer), a vision or audio tower and its projector, and a tied
output head stored a second time. What remains is printed as unexplained, never hidden.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from estimator.checkpoint.stored import Stored, summarise

if TYPE_CHECKING:
    from estimator.specs import ModelSpec

LAYER = re.compile(r"(?:^|\.)(?:layers|h|blocks|blk)\.(\d+)\.")
TOWERS = ("vision", "visual", "audio", "multi_modal_projector", "mm_projector", "image_newline", "embed_vision")
GiB = 2**30


@dataclass(frozen=True)
class CrossCheck:
    stored: Stored
    layout_params: int
    parts: tuple[tuple[str, int], ...]  # (what, parameters) the layout does not count
    files: int

    @property
    def difference(self) -> int:
        return self.stored.params - self.layout_params

    @property
    def unexplained(self) -> int:
        return self.difference - sum(n for _, n in self.parts)

    def record(self) -> dict[str, Any]:
        """The cross-check in JSON: parameters and bytes as stored, the layout's count, the parts named."""
        return {
            "files": self.files,
            "tensors": len(self.stored.tensors),
            "params_in_headers": self.stored.params,
            "bytes_by_dtype": self.stored.bytes_by_dtype,
            "quantisation_companion_bytes": self.stored.companion_bytes,
            "quantisation": list(self.stored.quantisation),
            "layout_params": self.layout_params,
            "difference_params": self.difference,
            "explained": {what: n for what, n in self.parts if n},
            "unexplained_params": self.unexplained,
            "line": self.line(),
        }

    def line(self) -> str:
        """``Checkpoint: 1,235,814,400 parameters in 146 tensors ...; the layout counts ...: the same.``"""
        s = self.stored
        from estimator.units import format_bytes

        order = sorted(s.bytes_by_dtype.items(), key=lambda x: -x[1])
        dtypes = ", ".join(f"{d} {format_bytes(b)}" for d, b in order)
        files = f"{self.files} file" + ("s" if self.files != 1 else "")
        head = f"Checkpoint: {s.params:,} parameters in {len(s.tensors):,} tensors ({files}; {dtypes})"
        if s.quantisation:
            head += f"; stored as {'; '.join(s.quantisation)}"
        if self.difference == 0:
            return f"{head}; the layout counts {self.layout_params:,}: the same."
        words = [f"{what} {n:+,}" for what, n in self.parts if n]
        if self.unexplained:
            words.append(f"unexplained {self.unexplained:+,}")
        return f"{head}; the layout counts {self.layout_params:,}, {self.difference:+,}: {', '.join(words)}."


def parts_not_in_layout(spec: ModelSpec, stored: Stored) -> tuple[tuple[str, int], ...]:
    """Parameters of tensors the layout leaves out, by what they are."""
    extra_layers = towers = head = 0
    for t, held in zip(stored.tensors, stored.held, strict=True):
        match = LAYER.search(t.name)
        if any(word in t.name for word in TOWERS):
            towers += held
        elif match and int(match.group(1)) >= spec.num_hidden_layers:
            extra_layers += held
        elif spec.tie_word_embeddings and t.name.split(".")[-2:] in (["lm_head", "weight"], ["output", "weight"]):
            head += held
    return (
        (f"layers past num_hidden_layers {spec.num_hidden_layers} (e.g. multi-token prediction)", extra_layers),
        ("vision or audio tower and projector", towers),
        ("the tied output head stored again", head),
    )


def cross_check(spec: ModelSpec, stored: Stored, files: int) -> CrossCheck:
    from estimator.architecture import total_params

    return CrossCheck(stored, total_params(spec), parts_not_in_layout(spec, stored), files)


def folder_check(spec: ModelSpec) -> CrossCheck | None:
    """The cross-check for a spec read from a local folder with safetensors files, or a GGUF file; None for a
    config.json with no weights beside it."""
    from urllib.parse import unquote, urlparse

    if not spec.source.startswith("file://"):
        return None
    path = Path(unquote(urlparse(spec.source).path))
    if path.suffix.lower() == ".gguf":
        from estimator.checkpoint.gguf_file import read_gguf

        return cross_check(spec, summarise(read_gguf(path)[1]), 1)
    from estimator.checkpoint.safetensors_files import read_header, read_json, weight_files

    files = weight_files(path.parent)
    if not files:
        return None
    config = read_json(path, "config.json") if path.name == "config.json" else None
    tensors = [t for f in files for t in read_header(f)[0]]
    return cross_check(spec, summarise(tensors, config), len(files))
