"""The fine-tuning answer as a :class:`~estimator.present.report.Report`: per GPU, what is held between steps
and the peak of a step for each way of fine-tuning, whether it fits, the longest sequence and the largest
micro-batch that fit, and the assumptions. Sizes in GiB (2^30 bytes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from estimator.present.report import BLANK, Text, markdown_table, pre, text_markdown
from estimator.present.tables import format_table

GiB = 2**30
PERSISTENT = (  # (field, row label): held between steps
    ("frozen_weights_bytes", "frozen weights"),
    ("trainable_weights_bytes", "trainable weights"),
    ("master_weights_bytes", "fp32 master weights"),
    ("optimizer_bytes", "optimizer states"),
)
COMPONENTS = (*PERSISTENT, ("gradient_bytes", "gradients"), ("activation_bytes", "activations"),
              ("logits_bytes", "logits (bf16)"))  # fmt: skip


@dataclass(frozen=True)
class TrainingReport:
    """``estimate train-memory``'s answer: ``ways`` as (way, setup, peak, longest, most, label), on a device of
    ``capacity`` bytes, with the first line, the assumptions and the JSON record gathered."""

    headline: str
    ways: list[Any]
    capacity: int
    tokens: int
    words: list[str]
    data: dict[str, Any]

    def record(self) -> dict[str, Any]:
        return self.data

    def table(self) -> list[tuple[str, ...]]:
        return table_cells(self.ways, self.capacity, self.tokens)

    def rows(self) -> list[list[object]]:
        """CSV: one row per way, its components, phases' peak and verdicts in bytes."""
        flat = [{k: v for k, v in way.items() if not isinstance(v, dict)} for way in self.data["ways"]]
        head = {"model": self.data["model"], "tokens": self.tokens, "memory_bytes": self.capacity}
        return [[*head, *flat[0]], *([*head.values(), *r.values()] for r in flat)]

    def text(self) -> list[Text]:
        head, *body = (list(r) for r in self.table())
        lines = format_table(head, body, right=set(range(1, len(head))))
        return [pre(self.headline), BLANK, pre(lines), BLANK, *(Text(w, bullet="- ") for w in self.words)]

    def markdown(self) -> str:
        table = markdown_table([list(r) for r in self.table()])
        return text_markdown([Text(self.headline), Text(table), *(Text(w, bullet="- ") for w in self.words)])


def table_cells(rows: list[Any], capacity: int, tokens: int) -> list[tuple[str, ...]]:
    """The table: the persistent rows, then the deciding phase's parts, the peak and the verdicts."""
    table = [("per GPU, GiB", *(label for *_, label in rows))]
    for field, name in PERSISTENT:
        table.append((name, *(_gib(getattr(peak.memory, field)) for _, _, peak, *_ in rows)))
    table.append(("held between steps", *(_gib(peak.persistent_bytes) for _, _, peak, *_ in rows)))
    parts = list(dict.fromkeys(part for _, _, peak, *_ in rows for part in peak.parts[peak.phase]))
    for part in parts:
        table.append((f"+ {part}", *(_gib(peak.parts[peak.phase].get(part, 0)) for _, _, peak, *_ in rows)))
    table.append(("peak of a step", *(_gib(peak.peak_bytes) for _, _, peak, *_ in rows)))
    table.append(("  at", *(PHASE_WORDS[peak.phase] for _, _, peak, *_ in rows)))
    if any(peak.memory.off_gpu_bytes for _, _, peak, *_ in rows):
        table.append(("off the GPU (paged/CPU)", *(_gib(peak.memory.off_gpu_bytes) for _, _, peak, *_ in rows)))
    table.append((f"fits in {capacity / GiB:,.2f} GiB", *("yes" if p.peak_bytes <= capacity else "no"
                                                          for _, _, p, *_ in rows)))  # fmt: skip
    table.append(("longest sequence (tokens)", *(f"{longest:,}" for *_, longest, _, _ in rows)))
    table.append((f"largest micro-batch at {tokens:,}", *(f"{most:,}" for *_, most, _ in rows)))
    return table


PHASE_WORDS = {
    "forward": "the loss's forward",
    "loss": "loss, backward start",
    "layers": "layers' backward",
    "optimizer": "optimizer step",
}


def way_record(way: str, peak: Any, label: str, capacity: int, longest: int, most: int) -> dict[str, Any]:
    """One way of fine-tuning in the JSON: every component per GPU in bytes, each phase of the step and its parts,
    the peak, whether it fits, the longest sequence and the largest micro-batch that fit."""
    memory = peak.memory
    return {
        "way": way,
        "label": label,
        **{field: getattr(memory, field) for field, _ in COMPONENTS},
        "off_gpu_bytes": memory.off_gpu_bytes,
        "persistent_bytes": peak.persistent_bytes,
        "phases_bytes": peak.phases,
        "phase_parts_bytes": peak.parts,
        "peak_phase": peak.phase,
        "peak_bytes": peak.peak_bytes,
        "fits": peak.peak_bytes <= capacity,
        "longest_tokens": longest,
        "largest_micro_batch": most,
        "activations_exact": memory.activations_exact,
    }


def _gib(n: int) -> str:
    return "–" if n == 0 else f"{n / GiB:,.2f}"
