"""``estimate models``: the zoo, one record per model with its cache rate at a stated number of tokens, as a
:class:`ZooReport` (the web's ``/api/models`` reads :func:`model_record` too)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from estimator.present.report import BLANK, Text, markdown_table, pre, text_markdown

SORT_KEYS = ("name", "params", "kv")
RIGHT = {2, 3, 4, 5, 6, 7, 8, 9, 10}  # the numeric columns of the table


def model_record(spec: Any, tokens: int) -> dict[str, Any]:
    """One zoo model's numbers at T tokens of text (bf16 cache, the default conventions)."""
    from estimator.architecture import active_params, total_params
    from estimator.compare import context_window_tokens
    from estimator.kv import kv_bytes_per_token, kv_cache_bytes, kv_state_bytes, kv_tokens_held
    from estimator.units import DType

    cache = kv_cache_bytes(spec, tokens, DType.bf16)
    state = kv_state_bytes(spec, DType.bf16)
    held = kv_tokens_held(spec, tokens, DType.bf16)
    holds = held >= tokens or state > 0
    window = context_window_tokens(spec)  # None: no window of its own (an SSM)
    return {
        "name": spec.name,
        "display_name": spec.display_name,
        "params": total_params(spec),
        "active_params": active_params(spec),
        "tokens": tokens,
        "kv_cache_bytes": cache,
        "kv_state_bytes": state,
        "kv_bytes_per_token": cache / tokens if holds else None,
        "tokens_held": None if held == 0 and state > 0 else held,  # None: a fixed state, no tokens
        "holds_text_as": "state" if held == 0 and state > 0 else "tokens",
        "holds_all_tokens": holds,
        "beyond_context_window": window is not None and tokens > window,
        "kv_bytes_per_cached_token_bf16": kv_bytes_per_token(spec, DType.bf16),
        "num_hidden_layers": spec.num_hidden_layers,
        "num_attention_heads": spec.num_attention_heads,
        "num_key_value_heads": spec.num_key_value_heads,
        "head_dim": spec.head_dim,
        "sliding_window_tokens": spec.sliding_window,
        "context_window_tokens": window,
        "pretraining_tokens": spec.pretraining_tokens,
        "source": spec.source,
    }


def sort_key(sort: str) -> Any:
    """The order of ``--sort``: by name, by parameters, or by the cache's bytes per token (models whose cache
    cannot hold the text go last)."""
    if sort == "params":
        return lambda r: r["params"]
    if sort == "kv":
        return lambda r: (r["kv_bytes_per_token"] is None, r["kv_bytes_per_token"] or 0.0)
    return lambda r: r["name"]


def _cells(r: dict[str, Any]) -> list[str]:
    """One model's row as a person reads it."""
    from estimator.units import format_number, format_tokens_short

    held = "state only" if r["tokens_held"] is None else f"{r['tokens_held']:,}"
    window = r["context_window_tokens"]
    return [
        r["name"],
        r["display_name"],
        f"{r['params']:,}",
        f"{r['active_params']:,}" if r["active_params"] != r["params"] else "—",
        "—" if r["kv_bytes_per_token"] is None else format_number(r["kv_bytes_per_token"]),
        held + ("" if r["tokens_held"] is None or r["holds_all_tokens"] else " (window)"),
        "—" if r["sliding_window_tokens"] is None else f"{r['sliding_window_tokens']:,}",
        str(r["num_hidden_layers"]),
        f"{r['num_attention_heads']}/{r['num_key_value_heads']}",
        "none" if window is None else f"{window:,}" + (" <" if r["beyond_context_window"] else ""),
        "—" if r["pretraining_tokens"] is None else format_tokens_short(r["pretraining_tokens"]),
        r["source"],
    ]


@dataclass(frozen=True)
class ZooReport:
    """The zoo's ``records`` (:func:`model_record`, in the order asked) at ``tokens`` tokens of text."""

    records: list[dict[str, Any]]
    tokens: int

    def record(self) -> list[dict[str, Any]]:
        return self.records

    def rows(self) -> list[list[object]]:
        header = list(self.records[0])
        return [header, *[["" if r[k] is None else r[k] for k in header] for r in self.records]]

    def _headers(self) -> list[str]:
        from estimator.units import format_tokens_short

        label = format_tokens_short(self.tokens)
        return ["name", "model", "parameters", "active (MoE)", f"KV B/token at {label}", "held at " + label,
                "window", "layers", "heads q/kv", "context", "pretrained on", "source"]  # fmt: skip

    def _footnote(self) -> str:
        from estimator.units import format_tokens_short

        return (
            f"KV cache in bf16, one sequence of {self.tokens:,} tokens, bytes per token of text (fixed states "
            f"included); '—' where every layer keeps only a window and so holds only the last tokens; '<' marks a "
            f"context window shorter than {format_tokens_short(self.tokens)}. `estimate models --sort kv` orders "
            "by that rate."
        )

    def text(self) -> list[Text]:
        from estimator.present.tables import format_table

        table = format_table(self._headers(), [_cells(r) for r in self.records], right=RIGHT)
        return [pre(table), BLANK, pre(self._footnote())]  # the footnote unwrapped, as ever

    def markdown(self) -> str:
        table = markdown_table([self._headers(), *(_cells(r) for r in self.records)], right_from=2)
        return text_markdown([Text(table), Text(self._footnote())])
