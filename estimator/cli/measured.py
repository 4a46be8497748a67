"""The main query for a model no family knows: measured from transformers and peft, printed as a table, JSON
or CSV, with each measured row labelled and each refused row saying why (:mod:`estimator.validate.unknown`)."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer

from estimator.cli.app import say
from estimator.errors import EstimatorError

MEASURE_SECONDS = 300  # a model of DeepSeek-V3's size builds and measures on the meta device in under a minute
MEASURE_MEMORY_BYTES = 8 * 2**30  # address space of the child: torch and a large meta model take ~2 GiB
CHILD_COMMAND = ("-m", "estimator.validate.unknown")  # the child: python with these arguments

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
    from estimator.stores import parse_methods
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
    from estimator.validate.unknown import check_bounds

    tokens = parse_tokens(options["tokens"])
    methods = {m.value for m in parse_methods(options["methods"])}
    name, display = model_name(unknown.config, unknown.path, options.get("name"))
    kv_dtype = parse_dtype(options["kv_dtype"], "KV dtype", KV_DTYPES)
    adapter_dtype = parse_dtype(options["adapter_dtype"], "adapter dtype", ADAPTER_DTYPES)
    check_bounds(unknown.config, unknown.path)
    request = {"path": str(unknown.path), "model_type": unknown.model_type, "config": unknown.config,
               "name": display, "tokens": tokens, "rank": options["rank"], "kv_dtype": kv_dtype.value,
               "adapter_dtype": adapter_dtype.value, "virtual_tokens": options["virtual_tokens"]}  # fmt: skip
    result = measure_in_child(request)
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


def _limit_child() -> None:  # pragma: no cover - runs in the child, between fork and exec
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEASURE_MEMORY_BYTES, MEASURE_MEMORY_BYTES))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def whole_params_in_child(config: dict[str, Any]) -> tuple[int, str]:
    """(parameters, class) of a whole multimodal checkpoint, measured on the meta device in the bounded child
    (:func:`estimator.validate.unknown.whole_model_params_measured`)."""
    answer = _child({"kind": "whole_params", "model_type": config.get("model_type"), "config": config}, "whole_params")
    return int(answer[0]), str(answer[1])


def measure_in_child(request: dict[str, Any]) -> Any:
    """Run :func:`estimator.validate.unknown.measure_unknown` in a child process under a time and a memory
    limit, offline; its result, or one line saying why there is none (torch's own log is never shown)."""
    from estimator.validate.unknown import measured_from

    return measured_from(_child(request, "measured"))


def _child(request: dict[str, Any], key: str) -> Any:
    """The child's answer under ``key`` to ``request``, or one line saying why there is none."""
    import os
    import subprocess

    from estimator.checkpoint.files import printable
    from estimator.offline import OFFLINE_ENV

    what = f"measuring model_type {request['model_type']!r} from transformers"
    try:
        done = subprocess.run(
            [sys.executable, *CHILD_COMMAND], input=json.dumps(request), capture_output=True,
            text=True, timeout=MEASURE_SECONDS, env={**os.environ, **OFFLINE_ENV},
            preexec_fn=_limit_child if os.name == "posix" else None,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise EstimatorError(f"{what} took over {MEASURE_SECONDS} s and was stopped; pass a smaller config") from None
    try:
        answer = json.loads(done.stdout) if done.returncode == 0 else None
    except ValueError:
        answer = None
    if isinstance(answer, dict) and isinstance(answer.get("error"), str):
        raise EstimatorError(answer["error"])
    if not isinstance(answer, dict) or answer.get(key) is None:
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        why = printable(lines[-1], 200) if lines else f"exit status {done.returncode}"
        if done.returncode < 0:
            import signal

            try:
                why = f"killed by signal {signal.Signals(-done.returncode).name}"
            except ValueError:
                why = f"killed by signal {-done.returncode}"
            if done.returncode != -signal.SIGKILL:  # a crash inside torch or transformers, not a limit
                raise EstimatorError(f"{what} crashed its child process ({why}); nothing is measured for it")
        if "MemoryError" in done.stderr or "std::bad_alloc" in done.stderr or done.returncode == -9:
            why = f"it needed more than the {MEASURE_MEMORY_BYTES / 2**30:.0f} GiB it may use"
        limits = f"{MEASURE_MEMORY_BYTES / 2**30:.1f} GiB and {MEASURE_SECONDS} s"
        raise EstimatorError(f"{what} failed in its child process ({why}; it may use {limits}); pass a smaller config")
    return answer[key]


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
