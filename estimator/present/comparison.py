"""``estimate compare``: several models side by side at several token counts, as records, text tables,
Markdown and CSV rows, gathered in a :class:`ComparisonReport`. Pure functions of
:class:`~estimator.compare.Estimate` values; ``estimator.cli.output.emit`` prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import groupby
from typing import TYPE_CHECKING, Any

from estimator.present import frontier
from estimator.present.report import BLANK, Text, pre
from estimator.present.tables import format_ratio, format_table
from estimator.units import format_bytes, format_number, format_tokens_short

if TYPE_CHECKING:
    from collections.abc import Sequence

    from estimator.compare import Estimate

COLUMNS = (
    ("model", "model"),
    ("params", "parameters"),
    ("kv_bytes_per_token", "KV B/token"),
    ("kv_growing_bytes_per_token", "growing B/token"),
    ("kv_state_bytes", "fixed state"),
    ("tokens_held", "tokens held"),
    ("lora_bytes", "LoRA"),
    ("kv_to_lora_bytes_ratio", "KV ÷ LoRA"),
    ("crossover_tokens", "crossover"),
    ("parity_rank", "parity rank"),
    ("context_window_tokens", "context"),
)


def comparison_record(est: Estimate) -> dict[str, Any]:
    """One model at one token count: the cache (per token, its fixed part, what it holds), the LoRA, their
    ratio, crossover and parity rank (None where the cache keeps only a window, so holds no rate of the text).

    Llama 3 70B at 100,000 tokens, r = 32: KV 327,680 B/token, LoRA 828,375,040 bytes, 39.6x."""
    spec, holds = est.spec, est.holds_all_tokens
    return {
        "model": spec.name,
        "display_name": spec.display_name,
        "tokens": est.tokens,
        "params": est.params,
        "active_params": est.active_params,
        "kv_bytes_per_token": est.kv_bytes_per_token if holds else None,
        "kv_growing_bytes_per_token": est.kv_growing_bytes / est.tokens if holds else None,
        "kv_cache_bytes": est.kv_cache_bytes,
        "kv_state_bytes": est.kv_state_bytes,
        "tokens_held": None if est.holds_text_as == "state" else est.tokens_held,  # None: a state, no tokens
        "holds_all_tokens": holds,
        "holds_text_as": est.holds_text_as,
        "context_window_tokens": est.context_window_tokens,
        "beyond_context_window": est.beyond_context_window,
        "rank": est.query.rank,
        "lora_params": est.lora_params,
        "lora_bytes": est.lora_bytes,
        "kv_to_lora_bytes_ratio": est.kv_to_lora_bytes_ratio if holds else None,
        "crossover_tokens": est.crossover_tokens,
        "crossover_reason": est.crossover.reason.value,
        "state_to_lora_bytes_ratio": est.crossover.state_multiple,
        "parity_rank": est.parity_rank if holds else None,
        "smallest_full_rank": est.targets.smallest_full_rank,
        "parity_beyond_full_rank": holds and est.parity_rank > est.targets.smallest_full_rank,
        "experts": est.query.experts.value if spec.n_routed_experts is not None else None,
        **frontier.flat_record(est),  # --kv-method: each shrunk cache against the cache and the LoRA
    }


def _cell(key: str, record: dict[str, Any]) -> str:
    value = record[key]
    if key == "crossover_tokens" and value is None:
        if record["crossover_reason"] == "state-exceeds":  # the fixed state alone holds more than the adapter
            return f"none (state {format_ratio(record['state_to_lora_bytes_ratio'])})"
        return "never"  # a fixed state below the adapter's bytes, or a window that never reaches them
    if key == "context_window_tokens" and value is None:
        return "none"  # no position embeddings (a pure SSM): no window of its own
    if key == "tokens_held" and value is None:
        return "state only"
    if value is None:
        return "—"
    if key == "model":
        return str(value)
    if key in ("lora_bytes", "kv_state_bytes"):
        return format_bytes(value)
    if key == "kv_to_lora_bytes_ratio":
        return format_ratio(value)
    if key == "tokens_held":
        return f"{value:,}" + ("" if record["holds_all_tokens"] else " (window)")
    if key == "context_window_tokens":
        return f"{value:,}" + (" (exceeded)" if record["beyond_context_window"] else "")
    if key == "crossover_tokens":
        return f"{value:,}"
    if key == "parity_rank" and record["parity_beyond_full_rank"]:
        return f"{value:,}*"  # explained under the table (:func:`full_rank_notes`)
    return format_number(value) if isinstance(value, float) else f"{value:,}"


def caption(est: Estimate, records: Sequence[dict[str, Any]]) -> str:
    """What every number of one table assumes: the cache's format and the adapter's conventions (for
    mixtures of experts the layout decides the LoRA: DeepSeek-V3 at 100k is 0.26x per expert, 13.9x with
    ``--experts none``)."""
    q = est.query
    experts = sorted({r["model"] for r in records if r["experts"] is not None})
    moe = f"; experts of {', '.join(experts)} adapted {q.experts.value} (--experts)" if experts else ""
    return (
        f"{est.tokens:,} tokens ({format_tokens_short(est.tokens)}): KV cache {est.kv.describe()}, one sequence; "
        f"LoRA r={q.rank} on {est.targets.label} ({est.adapter_dtype.value}){moe}"
    )


def full_rank_notes(estimates: Sequence[Estimate]) -> list[str]:
    """The main query's note for each parity rank past the full rank of the narrowest targeted maps.

    Llama 3 70B at 100k, all-linear: r = 1,266 is beyond the full rank of k_proj, v_proj (1,024)."""
    return [
        f"* {e.spec.name}: parity rank {e.parity_rank:,} is beyond the full rank of "
        f"{', '.join(e.targets.narrowest())} ({e.targets.smallest_full_rank:,}), where a LoRA stops adding "
        "expressiveness."
        for e in estimates
        if e.holds_all_tokens and e.parity_rank > e.targets.smallest_full_rank
    ]


def left_out_note(skipped: Sequence[tuple[str, str]]) -> str:
    """One line naming the models the query does not apply to, each with why; empty when none."""
    if not skipped:
        return ""
    return "Left out (the query does not apply): " + "; ".join(f"{name}: {why}" for name, why in skipped) + "."


def by_tokens(estimates: Sequence[Estimate]) -> list[tuple[Estimate, list[dict[str, Any]]]]:
    """The estimates grouped by token count (in the order given): the first of each, and its records."""
    ordered = sorted(estimates, key=lambda e: e.tokens)
    return [(group[0], [comparison_record(e) for e in group]) for _, it in groupby(ordered, key=lambda e: e.tokens)
            for group in [list(it)]]  # fmt: skip


def text_tables(estimates: Sequence[Estimate]) -> str:
    """One aligned table per token count, each under its caption."""
    parts = []
    for first, records in by_tokens(estimates):
        body = [[_cell(key, r) for key, _ in COLUMNS] for r in records]
        table = format_table([h for _, h in COLUMNS], body, right=set(range(1, len(COLUMNS))))
        notes = "".join(f"\n{n}" for n in full_rank_notes([e for e in estimates if e.tokens == first.tokens]))
        parts.append(f"At {caption(first, records)}\n\n{table}{notes}")
    return "\n\n".join(parts) + "\n\n" + FOOTNOTE


def markdown_tables(estimates: Sequence[Estimate]) -> str:
    """The same tables in GitHub Markdown, one section per token count."""
    parts = []
    for first, records in by_tokens(estimates):
        header = "| " + " | ".join(h for _, h in COLUMNS) + " |"
        rule = "|" + "|".join(["---", *["---:"] * (len(COLUMNS) - 1)]) + "|"
        rows = ["| " + " | ".join(_cell(key, r).replace("|", "\\|") for key, _ in COLUMNS) + " |" for r in records]
        title = f"### {format_tokens_short(first.tokens)} tokens"
        notes = full_rank_notes([e for e in estimates if e.tokens == first.tokens])
        parts.append(
            "\n".join([title, "", caption(first, records), "", header, rule, *rows, *(["", *notes] if notes else [])])
        )
    return "\n\n".join(parts) + "\n\n" + FOOTNOTE


FOOTNOTE = (
    "KV B/token: the cache's bytes per token of text at that count (fixed states included); growing B/token: "
    "keys and values only; '—': every layer keeps only a window, so the cache holds the last tokens, not the "
    "text; crossover: tokens at which the cache reaches the LoRA's bytes (never: it stays below them; none (state "
    "Nx): its fixed state alone is N times the LoRA's from the first token, so there is no crossing); parity "
    "rank: the LoRA rank of the cache's bytes (*: beyond the full rank of the narrowest targeted maps)."
)


def csv_rows(estimates: Sequence[Estimate]) -> list[list[object]]:
    """Header and one row per model and token count, raw numbers (blank for none)."""
    records = [comparison_record(e) for e in estimates]
    header = list(records[0])
    return [header, *[["" if r[k] is None else r[k] for k in header] for r in records]]


@dataclass(frozen=True)
class ComparisonReport:
    """The answer of ``estimate compare``: ``estimates`` (each model at each token count) and the models left
    out, ``skipped`` as (name, why). The left-out note follows the tables; for JSON and CSV the CLI writes it on
    stderr (:attr:`left_out`), so each stays one document."""

    estimates: list[Estimate]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def left_out(self) -> str:
        return left_out_note(self.skipped)

    def record(self) -> list[dict[str, Any]]:
        return [comparison_record(e) for e in self.estimates]

    def rows(self) -> list[list[object]]:
        return csv_rows(self.estimates)

    def _note(self) -> str:
        return f"\n\n{self.left_out}" if self.left_out else ""

    def _kv_methods(self) -> str:
        """--kv-method: each shrunk cache of each model against the LoRA, one aligned table (empty: none asked)."""
        return frontier.compare_table(self.estimates) if any(e.kv_method_rows for e in self.estimates) else ""

    def text(self) -> list[Text]:
        blocks = [pre(text_tables(self.estimates) + self._note())]
        return blocks + ([BLANK, pre(kv)] if (kv := self._kv_methods()) else [])

    def markdown(self) -> str:
        kv = self._kv_methods()
        return markdown_tables(self.estimates) + self._note() + (f"\n\n```\n{kv}\n```" if kv else "")
