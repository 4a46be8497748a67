"""``estimate models``: the zoo, one line per model."""

from __future__ import annotations

import json

import typer

from estimator.cli.app import app
from estimator.cli.options import JsonOpt


@app.command("models")
def models(as_json: JsonOpt = False) -> None:
    """List the model zoo: name, parameters, KV bytes per token (bf16), source."""
    from estimator.architecture import active_params, total_params
    from estimator.kv import kv_bytes_per_token
    from estimator.present.tables import format_table
    from estimator.units import DType, format_tokens_short
    from estimator.zoo import load_all_specs

    specs = load_all_specs()
    if as_json:
        records = [
            {
                "name": s.name,
                "display_name": s.display_name,
                "params": total_params(s),
                "active_params": active_params(s),
                "kv_bytes_per_token_bf16": kv_bytes_per_token(s, DType.bf16),
                "num_hidden_layers": s.num_hidden_layers,
                "num_attention_heads": s.num_attention_heads,
                "num_key_value_heads": s.num_key_value_heads,
                "head_dim": s.head_dim,
                "sliding_window_tokens": s.sliding_window,
                "max_position_embeddings_tokens": s.max_position_embeddings,
                "pretraining_tokens": s.pretraining_tokens,
                "source": s.source,
            }
            for s in specs
        ]
        typer.echo(json.dumps(records, indent=2))
        return
    headers = ["name", "model", "parameters", "active (MoE)", "KV bytes/token (bf16)", "window", "layers", "heads q/kv"]
    headers += ["context", "pretrained on", "source"]
    body = [
        [
            s.name,
            s.display_name,
            f"{total_params(s):,}",
            f"{active_params(s):,}" if s.is_moe else "—",
            f"{kv_bytes_per_token(s, DType.bf16):,}",
            "—" if s.sliding_window is None else f"{s.sliding_window:,}",
            str(s.num_hidden_layers),
            f"{s.num_attention_heads}/{s.num_key_value_heads}",
            f"{s.max_position_embeddings:,}",
            "—" if s.pretraining_tokens is None else format_tokens_short(s.pretraining_tokens),
            s.source,
        ]
        for s in specs
    ]
    typer.echo(format_table(headers, body, right={2, 3, 4, 5, 6, 7, 8, 9}))
