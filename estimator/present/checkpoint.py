"""`estimate inspect`'s answers as :class:`~estimator.present.report.Report` s: what a local model checkpoint
stores per dtype beside the layout's count (:class:`CheckpointReport`), and what a peft adapter folder holds
beside the estimate for the same settings (:class:`AdapterReport`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from estimator.present.report import BLANK, Text, markdown_table, pre, text_markdown

DTYPE_HEADERS = ["stored as", "tensors", "elements", "bytes"]


def dtype_rows(stored: Any) -> list[dict[str, Any]]:
    """Tensors, elements and bytes per stored dtype (safetensors' names, or GGUF's tensor types), the largest
    first."""
    tensors: Counter[str] = Counter()
    elements: Counter[str] = Counter()
    for t in stored.tensors:
        tensors[t.dtype] += 1
        elements[t.dtype] += t.numel
    order = sorted(stored.bytes_by_dtype, key=lambda d: -stored.bytes_by_dtype[d])
    return [
        {"dtype": d, "tensors": tensors[d], "elements": elements[d], "bytes": stored.bytes_by_dtype[d]} for d in order
    ]


@dataclass(frozen=True)
class CheckpointReport:
    """``spec`` read from ``path``, and ``check`` (a :class:`~estimator.checkpoint.crosscheck.CrossCheck`): the
    stored tensors against the layout's count."""

    spec: Any
    path: str
    check: Any

    def record(self) -> dict[str, Any]:
        spec = self.spec
        return {"model": spec.name, "model_type": spec.model_type, **self.check.record(),
                "by_dtype": dtype_rows(self.check.stored)}  # fmt: skip

    def rows(self) -> list[list[object]]:
        """One row per stored dtype: tensors, elements, bytes."""
        body = [[r["dtype"], r["tensors"], r["elements"], r["bytes"]] for r in dtype_rows(self.check.stored)]
        return [["dtype", "tensors", "elements", "bytes"], *body]

    def _cells(self) -> list[list[str]]:
        rows = dtype_rows(self.check.stored)
        return [[r["dtype"], f"{r['tensors']:,}", f"{r['elements']:,}", f"{r['bytes']:,}"] for r in rows]

    def _head(self) -> list[Text]:
        from estimator.checkpoint.files import printable

        spec, where = self.spec, printable(str(Path(self.path)))
        return [Text(f"{printable(spec.display_name)} ({spec.model_type}), read from {where}"), BLANK]

    def text(self) -> list[Text]:
        from estimator.present.tables import format_table

        table = format_table(DTYPE_HEADERS, self._cells(), right={1, 2, 3})
        return [*self._head(), pre(table), BLANK, Text(self.check.line())]

    def markdown(self) -> str:
        return text_markdown([*self._head(), Text(markdown_table([DTYPE_HEADERS, *self._cells()])), BLANK,
                              Text(self.check.line())])  # fmt: skip


@dataclass(frozen=True)
class AdapterReport:
    """``adapter`` (a :class:`~estimator.checkpoint.adapter.Adapter`) and the base it is estimated on (None:
    not named, and ``why``)."""

    adapter: Any
    base: Any = None
    why: str = ""

    def _estimate(self) -> int | None:
        from estimator.checkpoint.adapter import estimate_for

        return None if self.base is None else int(estimate_for(self.adapter, self.base)[0])

    def record(self) -> dict[str, Any]:
        adapter, base = self.adapter, self.base
        record: dict[str, Any] = {
            "folder": str(adapter.folder),
            "peft_type": adapter.peft_type,
            "rank": adapter.rank,
            "ranks_found": list(adapter.ranks_found),
            "modules": list(adapter.modules),
            "use_dora": adapter.dora,
            "params": adapter.params,
            "modules_to_save_params": adapter.saved_modules_params,
            "bytes_by_dtype": adapter.bytes_by_dtype,
            "base": base.name if base is not None else None,
        }
        if base is not None:
            record["estimate_params"] = self._estimate()
        return record

    def rows(self) -> list[list[object]]:
        """One row: the adapter's type, rank, modules, parameters and bytes, and the estimate on its base
        (blank where no base is named)."""
        adapter, estimate = self.adapter, self._estimate()
        header: list[object] = ["folder", "peft_type", "rank", "modules", "use_dora", "params",
                                "modules_to_save_params", "bytes", "base", "estimate_params"]  # fmt: skip
        row: list[object] = [str(adapter.folder), adapter.peft_type, "" if adapter.rank is None else adapter.rank,
                             " ".join(adapter.modules), adapter.dora, adapter.params, adapter.saved_modules_params,
                             sum(adapter.bytes_by_dtype.values()), "" if self.base is None else self.base.name,
                             "" if estimate is None else estimate]  # fmt: skip
        return [header, row]

    def text(self) -> list[Text]:
        from estimator.checkpoint.adapter import comparison_line

        base = self.base
        compared = comparison_line(self.adapter, base) if base is not None else f"No estimate: {self.why}."
        return [Text(self.adapter.describe()), Text(compared)]

    def markdown(self) -> str:
        return text_markdown(self.text())
