"""The ``--kv-method`` rows in words, tables, CSV and JSON: each shrunk cache beside the plain one, and every
trained store measured against it. The bytes are computed; the quality is the paper's, cited in the
assumptions, never mixed with the bytes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from estimator.units import format_number

if TYPE_CHECKING:
    from estimator.compare import Estimate
    from estimator.frontier.rows import Against


def against_cell(against: Against) -> str:
    """One store against one shrunk cache: the cache ÷ the store, then where the cache reaches the store's bytes
    (``11.1x, at 8,989``), ``never`` (the cache stops below it) or ``always`` (its fixed part alone exceeds it)."""
    from estimator.present.tables import format_ratio

    crossing = against.crossover
    if crossing.tokens is not None:
        meet = f"at {crossing.tokens:,}"
    elif crossing.reason == "state-exceeds":
        meet = "always"
    else:
        meet = "never"
    return f"{format_ratio(against.cache_to_store_ratio)}, {meet}"


def against_caption(est: Estimate) -> str:
    return (
        f"Each trained store against each shrunk cache (--kv-method) at {est.tokens:,} tokens: the cache's bytes ÷ "
        "the store's, then the length at which the cache reaches the store's bytes (never: the cache stops below "
        "it; always: its fixed part alone exceeds it)."
    )


def against_table(est: Estimate) -> str:
    """Rows: the trained stores; columns: the ``--kv-method`` caches (as the option names them)."""
    from estimator.present.tables import format_table

    rows = est.kv_method_rows
    labels = [a.label for a in rows[0].against] if rows else []
    body = [[label, *(against_cell(row.against[i]) for row in rows)] for i, label in enumerate(labels)]
    return format_table(["trained store", *(row.method.text for row in rows)], body, right=set(range(1, len(rows) + 1)))


def assumptions(est: Estimate) -> list[str]:
    """Per method: what is counted, the quality the paper states (cited), and what it costs besides bytes."""
    words = []
    for row in est.kv_method_rows:
        m = row.method
        words.append(
            f"{row.label} (--kv-method {m.text}, {m.kind}): bytes computed from the model's layout "
            f"({format_number(row.growing_bytes)} growing + {format_number(row.fixed_bytes)} fixed at "
            f"{est.tokens:,} tokens). Quality, as the paper states it: {m.paper}. Costs besides bytes: {m.costs}."
        )
    if any(r.method.kind == "eviction" for r in est.kv_method_rows):
        words.append(
            "Eviction keeps ⌈f · h⌉ of the h tokens each layer holds: a sliding-window layer already holds at most "
            "w, and eviction keeps f of those; recurrent states are untouched. A query-agnostic eviction (KVzip, "
            "KVzap) leaves a cache any later query can reuse (prefix caching still works); a query-aware one "
            "does not."
        )
    return words


def records(est: Estimate) -> list[dict[str, Any]]:
    """The JSON rows: the keys of the ``methods`` rows, plus the two parts and the trained stores against it."""
    return [
        {
            "method": row.method.text,
            "kind": row.method.kind,
            "label": row.label,
            "params": None,
            "bytes": row.bytes,
            "growing_bytes": row.growing_bytes,
            "fixed_bytes": row.fixed_bytes,
            "bytes_per_token": row.bytes_per_token if est.holds_all_tokens or not row.growing_bytes else None,
            "kv_to_this_bytes_ratio": row.kv_to_this_bytes_ratio if est.holds_all_tokens else None,
            "crossover_tokens": None,
            "crossover_reason": None,
            "against": [
                {
                    "method": a.method,
                    "this_to_store_bytes_ratio": a.cache_to_store_ratio,
                    "crossover_tokens": a.crossover.tokens,
                    "crossover_reason": a.crossover.reason,
                }
                for a in row.against
            ],
            "quality_cited": row.method.paper,
            "costs": row.method.costs,
        }
        for row in est.kv_method_rows
    ]


def flat_record(est: Estimate) -> dict[str, Any]:
    """``compare``'s keys per method (its stem: ``commvq_bits_1``): bytes per token, KV ÷ it, it ÷ the LoRA, and
    the tokens at which it reaches the LoRA's bytes (None where it never does)."""
    from estimator.frontier.columns import column_stem

    record: dict[str, Any] = {}
    for row in est.kv_method_rows:
        stem = column_stem(row.method)
        lora = next((a for a in row.against if a.method == "lora"), None)
        record[f"{stem}_bytes_per_token"] = row.bytes_per_token
        record[f"kv_to_{stem}_bytes_ratio"] = row.kv_to_this_bytes_ratio
        record[f"{stem}_to_lora_bytes_ratio"] = None if lora is None else lora.cache_to_store_ratio
        record[f"{stem}_lora_crossover_tokens"] = None if lora is None else lora.crossover.tokens
    return record


def compare_table(estimates: list[Estimate]) -> str:
    """``compare --kv-method``: one row per model, token count and method (B/token, KV ÷ it, it ÷ LoRA, crossover)."""
    from estimator.present.tables import format_ratio, format_table

    head = ["model", "tokens", "cache (--kv-method)", "B/token", "KV ÷ it", "it ÷ LoRA", "reaches the LoRA at"]
    body = []
    for est in estimates:
        for row in est.kv_method_rows:
            lora = next((a for a in row.against if a.method == "lora"), None)
            meets = "—" if lora is None or lora.crossover.tokens is None else f"{lora.crossover.tokens:,}"
            versus = "—" if lora is None else format_ratio(lora.cache_to_store_ratio)
            body.append([est.spec.name, f"{est.tokens:,}", row.label, format_number(row.bytes_per_token),
                         format_ratio(row.kv_to_this_bytes_ratio), versus, meets])  # fmt: skip
    return format_table(head, body, right={1, 3, 4, 5, 6})
