"""The main query's answer for a model no family knows, measured from transformers and peft
(:mod:`estimator.validate.unknown`), as a :class:`~estimator.present.report.Report`: each measured row
labelled, each refused row saying why."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from estimator.present.report import BLANK, Text, markdown_table, pre, text_markdown

HEADERS = ["stored as", "parameters", "bytes", "size (SI)", "bytes / token", "KV ÷ this"]


@dataclass(frozen=True)
class MeasuredReport:
    """``result`` (a :class:`~estimator.validate.unknown.Measured`), its ``rows`` asked for, the model's
    ``name``, and the cache's bytes ``kv`` (None: refused)."""

    result: Any
    rows_asked: list[Any]
    name: str
    kv: int | None

    def record(self) -> dict[str, Any]:
        result, kv = self.result, self.kv
        return {
            "model": {"name": self.name, "display_name": result.name, "model_type": result.model_type,
                      "params": result.params},
            "measured": True,
            "measured_with": result.versions,
            "tokens": result.tokens,
            "kv_cache": {"bytes": kv, "growing_bytes": result.kv_growing_bytes, "state_bytes": result.kv_state_bytes},
            "methods": [
                {
                    "method": r.method,
                    "label": r.label,
                    "params": r.params,
                    "bytes": r.bytes,
                    "bytes_per_token": None if r.bytes is None else r.bytes / result.tokens,
                    "kv_to_this_bytes_ratio": None if kv is None or not r.bytes else kv / r.bytes,
                    "refused": r.refused,
                    "note": r.note,
                }
                for r in self.rows_asked
            ],
        }  # fmt: skip

    def rows(self) -> list[list[object]]:
        header: list[object] = ["mechanism", "method", "params", "bytes", "bytes_per_token", "kv_to_this_bytes_ratio",
                                "refused"]  # fmt: skip
        body: list[list[object]] = []
        for r in self.rows_asked:
            ratio = "" if self.kv is None or not r.bytes else self.kv / r.bytes
            per_token = "" if r.bytes is None else r.bytes / self.result.tokens
            params, size = ("" if r.params is None else r.params), ("" if r.bytes is None else r.bytes)
            body.append([r.label, r.method, params, size, per_token, ratio, r.refused or ""])
        return [header, *body]

    def _cells(self) -> list[list[str]]:
        from estimator.present.tables import format_ratio
        from estimator.units import format_bytes, format_number

        kv, tokens = self.kv, self.result.tokens
        return [
            [
                r.label,
                "—" if r.params is None else f"{r.params:,}",
                "—" if r.bytes is None else f"{r.bytes:,}",
                "—" if r.bytes is None else format_bytes(r.bytes),
                "—" if r.bytes is None else format_number(r.bytes / tokens),
                "—" if kv is None or not r.bytes else format_ratio(kv / r.bytes),
            ]
            for r in self.rows_asked
            if r.refused is None
        ]

    def _head(self) -> list[Text]:
        from estimator.units import format_tokens_short

        result = self.result
        versions = ", ".join(f"{k} {v}" for k, v in result.versions.items())
        return [
            Text(f"{result.name} ({self.name}): model_type {result.model_type}, which no family here knows; every "
                 f"number below is measured from the model transformers builds ({versions}), in "
                 f"{result.seconds:.1f} s"),
            Text(f"{result.params:,} parameters (meta device)"),
            Text(f"Learning {result.tokens:,} tokens ({format_tokens_short(result.tokens)}) of new text: bytes each "
                 "way"),
            BLANK,
        ]  # fmt: skip

    def _tail(self) -> list[Text]:
        blocks: list[Text] = []
        refused = [r for r in self.rows_asked if r.refused is not None]
        if refused:
            blocks += [BLANK, Text("Not measured:"), *(Text(f"{r.label}: {r.refused}.", bullet="- ") for r in refused)]
        notes = [
            "Parameters, LoRA and DoRA: the model built on the meta device and peft's all-linear adapter on it, "
            "trainable parameters counted (exact, whatever the architecture).",
            "Cache: one forward pass of the full-size model over the text under torch's FakeTensorMode (true "
            "shapes, no memory), the bytes of every tensor its cache holds, as transformers keeps them; where fake "
            "tensors cannot run the model, a copy with real tensors and two layers of each kind, scaled per layer "
            "(the cache row's note says which).",
            "Trained parameters are stored in the adapter dtype; no optimizer state, no base weights.",
        ]
        notes[2:2] = [f"{r.label}: {r.note}." for r in self.rows_asked if r.note]
        if self.result.kv_state_bytes:
            notes.insert(2, f"Of the cache, {self.result.kv_state_bytes:,} bytes are a fixed state that does not grow "
                            "with T.")  # fmt: skip
        return [*blocks, BLANK, Text("Assumptions:"), *(Text(line, bullet="- ") for line in notes)]

    def text(self) -> list[Text]:
        from estimator.present.tables import format_table

        return [*self._head(), pre(format_table(HEADERS, self._cells(), right={1, 2, 3, 4, 5})), *self._tail()]

    def markdown(self) -> str:
        return text_markdown([*self._head(), Text(markdown_table([HEADERS, *self._cells()])), *self._tail()])
