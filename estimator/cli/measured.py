"""The main query for a model no family knows: measured from transformers and peft, printed as a table, JSON
or CSV, with each measured row labelled and each refused row saying why (:mod:`estimator.validate.unknown`)."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer

from estimator.cli.app import say
from estimator.errors import EstimatorError

DEFAULTS_ONLY = {  # options that need a known family: only their defaults can be measured
    "targets": "all-linear",
    "experts": "per-expert",
    "ia3_targets": None,
    "mla_cache": "latent",
    "window_cache": "w",
}


def measured_query(unknown: Any, options: dict[str, Any], as_json: bool, as_csv: bool) -> None:
    """Measure and print the rows of the main query for ``unknown`` (an :class:`UnknownFamilyError`)."""
    import importlib.util

    from estimator.query import ADAPTER_DTYPES
    from estimator.query.vocabulary import parse_methods
    from estimator.units import KV_DTYPES, parse_dtype, parse_tokens
    from estimator.validate import EXTRA_PACKAGES, INSTALL_HINT

    if any(importlib.util.find_spec(name) is None for name in EXTRA_PACKAGES):
        raise EstimatorError(f"{unknown}; to measure it from transformers and peft, install the extra: {INSTALL_HINT}")
    for option, default in DEFAULTS_ONLY.items():
        if options.get(option) not in (default, None) and options.get(option) != default:
            flag = "--" + option.replace("_", "-")
            raise EstimatorError(
                f"{flag} needs a family the estimator knows; model_type {unknown.model_type!r} is measured with "
                f"the defaults only: drop {flag}"
            )
    wrapped = [
        key for key in ("text_config", "vision_config", "audio_config") if isinstance(unknown.config.get(key), dict)
    ]
    if options.get("part", "language") != "language" and wrapped:
        raise EstimatorError(
            f"--part all: the parts of a {unknown.model_type} checkpoint ({', '.join(wrapped)}) are not measured "
            "here; use --part language"
        )
    from estimator.hf_config import model_name
    from estimator.validate.bounds import check_bounds
    from estimator.validate.child import measure_in_child
    from estimator.validate.unknown import measured_from

    tokens = parse_tokens(options["tokens"])
    methods = {m.value for m in parse_methods(options["methods"])}
    name, display = model_name(unknown.config, unknown.path, options.get("name"))
    kv_dtype = parse_dtype(options["kv_dtype"], "KV dtype", KV_DTYPES)
    adapter_dtype = parse_dtype(options["adapter_dtype"], "adapter dtype", ADAPTER_DTYPES)
    check_bounds(unknown.config, unknown.path)
    request = {"path": str(unknown.path), "model_type": unknown.model_type, "config": unknown.config,
               "name": display, "tokens": tokens, "rank": options["rank"], "kv_dtype": kv_dtype.value,
               "adapter_dtype": adapter_dtype.value, "virtual_tokens": options["virtual_tokens"]}  # fmt: skip
    result = measured_from(measure_in_child(request))
    rows = [r for r in result.rows if r.method in methods]
    kv = result.row("kv").bytes
    if as_json:
        typer.echo(json.dumps(_record(result, rows, name, kv), indent=2))
    elif as_csv:
        import csv

        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(
            ["mechanism", "method", "params", "bytes", "bytes_per_token", "kv_to_this_bytes_ratio", "refused"]
        )
        for r in rows:
            ratio = "" if kv is None or not r.bytes else kv / r.bytes
            per_token = "" if r.bytes is None else r.bytes / tokens
            params, size = ("" if r.params is None else r.params), ("" if r.bytes is None else r.bytes)
            writer.writerow([r.label, r.method, params, size, per_token, ratio, r.refused or ""])
    else:
        _print(result, rows, name, kv)


def _record(result: Any, rows: list[Any], name: str, kv: int | None) -> dict[str, Any]:
    return {
        "model": {"name": name, "display_name": result.name, "model_type": result.model_type, "params": result.params},
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
            for r in rows
        ],
    }


def _print(result: Any, rows: list[Any], name: str, kv: int | None) -> None:
    from estimator.present.tables import format_ratio, format_table
    from estimator.units import format_bytes, format_number, format_tokens_short

    versions = ", ".join(f"{k} {v}" for k, v in result.versions.items())
    say(
        f"{result.name} ({name}): model_type {result.model_type}, which no family here knows; every number below is "
        f"measured from the model transformers builds ({versions}), in {result.seconds:.1f} s"
    )
    say(f"{result.params:,} parameters (meta device)")
    say(f"Learning {result.tokens:,} tokens ({format_tokens_short(result.tokens)}) of new text: bytes each way")
    typer.echo("")
    headers = ["stored as", "parameters", "bytes", "size (SI)", "bytes / token", "KV ÷ this"]
    body = [
        [
            r.label,
            "—" if r.params is None else f"{r.params:,}",
            "—" if r.bytes is None else f"{r.bytes:,}",
            "—" if r.bytes is None else format_bytes(r.bytes),
            "—" if r.bytes is None else format_number(r.bytes / result.tokens),
            "—" if kv is None or not r.bytes else format_ratio(kv / r.bytes),
        ]
        for r in rows
        if r.refused is None
    ]
    typer.echo(format_table(headers, body, right={1, 2, 3, 4, 5}))
    refused = [r for r in rows if r.refused is not None]
    if refused:
        typer.echo("")
        typer.echo("Not measured:")
        for r in refused:
            say(f"{r.label}: {r.refused}.", bullet="- ")
    typer.echo("")
    typer.echo("Assumptions:")
    notes = [
        "Parameters, LoRA and DoRA: the model built on the meta device and peft's all-linear adapter on it, "
        "trainable parameters counted (exact, whatever the architecture).",
        "Cache: one forward pass of the full-size model over the text under torch's FakeTensorMode (true shapes, "
        "no memory), the bytes of every tensor its cache holds, as transformers keeps them; where fake tensors "
        "cannot run the model, a copy with real tensors and two layers of each kind, scaled per layer (the "
        "cache row's note says which).",
        "Trained parameters are stored in the adapter dtype; no optimizer state, no base weights.",
    ]
    notes[2:2] = [f"{r.label}: {r.note}." for r in rows if r.note]
    if result.kv_state_bytes:
        notes.insert(2, f"Of the cache, {result.kv_state_bytes:,} bytes are a fixed state that does not grow with T.")
    for line in notes:
        say(line, bullet="- ")
