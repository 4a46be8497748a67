"""``estimate sweep``'s answer as a :class:`~estimator.present.report.Report`: one row per point of the grid of
token counts × ranks, its columns those of :meth:`estimator.sweep.Sweep.columns` (and, with ``--kv-method``,
each method's cache against the LoRA). A sweep may hold a million rows, so its JSON is written in chunks
(:meth:`SweepReport.write_json`) rather than built as one document."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from estimator.present.report import Text, markdown_table, pre, text_markdown

if TYPE_CHECKING:
    from estimator.compare import Estimate

COLUMNS = ("tokens", "rank", "kv_cache_bytes", "kv_bytes_per_token", "lora_bytes", "lora_bytes_per_token",
           "kv_to_lora_bytes_ratio", "parity_rank")  # fmt: skip
HEADERS = ["tokens", "rank", "KV cache", "KV B/token", "LoRA", "LoRA B/token", "KV ÷ LoRA", "parity rank"]
CHUNK = 20_000  # rows encoded at a time: a million rows take seconds, not minutes


@dataclass(frozen=True)
class SweepReport:
    """The sweep of ``est`` (the query at its smallest rank) as ``columns``: name -> one array per column."""

    est: Estimate
    columns: dict[str, Any]

    def _values(self) -> tuple[list[str], list[tuple[Any, ...]]]:
        """(the column names, the rows as tuples of Python numbers)."""
        names = list(self.columns)
        return names, list(zip(*(self.columns[name].tolist() for name in names), strict=True))

    def _head(self) -> dict[str, Any]:
        """The query (model, targets, dtypes) and its assumptions, without the rank notes of the base query."""
        from estimator import __version__
        from estimator.present.words import assumptions

        est = self.est
        query = {"model": est.spec.name, "targets": est.targets.label, "kv_dtype": est.kv.dtype.value,
                 "adapter_dtype": est.adapter_dtype.value, "weights_dtype": est.weights_dtype.value}  # fmt: skip
        words = [w for w in assumptions(est) if not w.startswith("Rank")]
        return {"estimator_version": __version__, "query": query, "assumptions": words}

    def record(self) -> dict[str, Any]:
        names, rows = self._values()
        return {**self._head(), "rows": [dict(zip(names, row, strict=True)) for row in rows]}

    def write_json(self, stream: TextIO) -> None:
        """The record, its head indented and one compact object per row, written in large chunks."""
        names, rows = self._values()
        head = json.dumps(self._head(), indent=1, allow_nan=False)
        stream.write(head[:-2] + ',\n "rows": [\n')
        encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False, default=str).encode
        for start in range(0, len(rows), CHUNK):
            text = ",\n".join(encode(dict(zip(names, row, strict=True))) for row in rows[start : start + CHUNK])
            stream.write(("" if start == 0 else ",\n") + text)
        stream.write("\n ]\n}\n")

    def rows(self) -> list[list[object]]:
        names, rows = self._values()
        return [list(names), *(list(row) for row in rows)]

    def _cells(self) -> list[list[str]]:
        from estimator.present.tables import format_ratio
        from estimator.units import format_bytes, format_number

        return [
            [f"{t:,}", f"{r:,}", format_bytes(kv), "—" if kv_t is None else format_number(kv_t), format_bytes(lo),
             format_number(lo_t), "—" if ratio is None else format_ratio(ratio),
             "—" if parity is None else f"{parity:,}"]
            for t, r, kv, kv_t, lo, lo_t, ratio, parity in zip(*(self.columns[c].tolist() for c in COLUMNS),
                                                               strict=True)
        ]  # fmt: skip

    def _caption(self) -> Text:
        est = self.est
        return Text(f"{est.spec.display_name}: KV cache ({est.kv.describe()}) against LoRA on {est.targets.described} "
                    f"({est.adapter_dtype.value})")  # fmt: skip

    def _notes(self) -> list[str]:
        """Under the table: where a window keeps the cache from holding the text, and counts past the context."""
        columns, notes = self.columns, []
        held = [h for h, whole in zip(columns["tokens_held"].tolist(), columns["holds_all_tokens"].tolist(),
                                      strict=True) if not whole]  # fmt: skip
        if held:
            notes.append(f"— : every layer keeps a window, so past it the cache holds only the last {max(held):,} "
                         "tokens and is no storage rate of the text.")  # fmt: skip
        if any(columns["beyond_context_window"].tolist()):
            notes.append(f"Token counts above {self.est.spec.max_position_embeddings:,} exceed the model's context "
                         "window.")  # fmt: skip
        return notes

    def text(self) -> list[Text]:
        from estimator.present.tables import format_table

        table = format_table(HEADERS, self._cells(), right=set(range(len(HEADERS))))
        return [self._caption(), pre(table), *(pre(note) for note in self._notes())]  # the notes unwrapped, as ever

    def markdown(self) -> str:
        table = markdown_table([HEADERS, *self._cells()], right_from=0)
        return text_markdown([self._caption(), Text(table), *(Text(note) for note in self._notes())])
