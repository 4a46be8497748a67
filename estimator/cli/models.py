"""``estimate models``: the zoo, one line per model, its cache rate at a stated number of tokens."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from estimator.cli.app import app
from estimator.cli.options import JsonOpt
from estimator.errors import EstimatorError

SORT_KEYS = ("name", "params", "kv")
ModelsTokensOpt = Annotated[
    str, typer.Option("--tokens", "-t", help="Tokens of text at which the cache rate is given (window, state).")
]
SortOpt = Annotated[str, typer.Option("--sort", help="Order: name, params or kv (cache bytes per token at T).")]


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


def _sort_key(sort: str) -> Any:
    if sort == "params":
        return lambda r: r["params"]
    if sort == "kv":  # models whose cache cannot hold the text go last
        return lambda r: (r["kv_bytes_per_token"] is None, r["kv_bytes_per_token"] or 0.0)
    return lambda r: r["name"]


@app.command("models")
def models(tokens: ModelsTokensOpt = "100k", sort: SortOpt = "name", as_json: JsonOpt = False) -> None:
    """List the model zoo: parameters, the KV cache's bytes per token of text at T tokens (bf16), source.

    The rate is given at a stated T because windows and fixed states make it depend on T (Gemma 3 27B:
    507,904 bytes per cached token while no window is full, 82,356 per token at 1M)."""
    from estimator.present.tables import format_table
    from estimator.units import format_number, format_tokens_short, parse_tokens
    from estimator.zoo import load_all_specs

    if sort not in SORT_KEYS:
        raise EstimatorError(f"--sort {sort!r} is not a column to sort by; give one of {', '.join(SORT_KEYS)}")
    t = parse_tokens(tokens)
    records = sorted((model_record(s, t) for s in load_all_specs()), key=_sort_key(sort))
    if as_json:
        typer.echo(json.dumps(records, indent=2))
        return
    label = format_tokens_short(t)
    headers = ["name", "model", "parameters", "active (MoE)", f"KV B/token at {label}", "held at " + label]
    headers += ["window", "layers", "heads q/kv", "context", "pretrained on", "source"]
    body = [
        [
            r["name"],
            r["display_name"],
            f"{r['params']:,}",
            f"{r['active_params']:,}" if r["active_params"] != r["params"] else "—",
            "—" if r["kv_bytes_per_token"] is None else format_number(r["kv_bytes_per_token"]),
            "state only"
            if r["tokens_held"] is None
            else f"{r['tokens_held']:,}" + ("" if r["holds_all_tokens"] else " (window)"),
            "—" if r["sliding_window_tokens"] is None else f"{r['sliding_window_tokens']:,}",
            str(r["num_hidden_layers"]),
            f"{r['num_attention_heads']}/{r['num_key_value_heads']}",
            "none"
            if r["context_window_tokens"] is None
            else f"{r['context_window_tokens']:,}" + ("" if not r["beyond_context_window"] else " <"),
            "—" if r["pretraining_tokens"] is None else format_tokens_short(r["pretraining_tokens"]),
            r["source"],
        ]
        for r in records
    ]
    typer.echo(format_table(headers, body, right={2, 3, 4, 5, 6, 7, 8, 9, 10}))
    typer.echo("")
    typer.echo(
        f"KV cache in bf16, one sequence of {t:,} tokens, bytes per token of text (fixed states included); "
        f"'—' where every layer keeps only a window and so holds only the last tokens; '<' marks a context "
        f"window shorter than {label}. `estimate models --sort kv` orders by that rate."
    )
