"""``estimate serve-memory``: what a serving engine leaves for the KV cache on each GPU, row by row as the
engine prints it (budget, weights, each reserve, the pool, blocks, tokens, concurrency), and the verdict for
batches of sequences at --tokens: fits or not, headroom, most sequences, longest context."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

import typer

from estimator.cli.app import app, say
from estimator.cli.options import JsonOpt, query_command
from estimator.errors import EstimatorError
from estimator.query.options import SERVING_OPTIONS
from estimator.units import parse_tokens

AcceleratorOpt = Annotated[
    str, typer.Option("--accelerator", help="Device: h100-sxm, h200, b200, a100-80gb, l40s, rtx-4090, mi300x, ...")
]
MemoryOpt = Annotated[
    str | None,
    typer.Option("--memory", help="A custom device size with its unit instead (80GiB; 24GB is 10^9 bytes each)."),
]
Count = Annotated[int | None, typer.Option(min=0)]
DEFAULTS = {"methods": "kv", "tokens": "8192"}  # this command's query defaults


def counts(text: str, what: str) -> tuple[int, ...]:
    """A comma list of whole numbers ≥ 1 (``1,8``), in order, without repeats."""
    values = tuple(dict.fromkeys(parse_tokens(part, what, limit=1_000_000) for part in text.split(",") if part.strip()))
    if not values:
        raise EstimatorError(f"{what} is empty; give e.g. 1 or 1,8")
    return values


def weights_help() -> str:
    from estimator.memory.formats import WeightFormat

    return "Weight format: " + ", ".join(f.value for f in WeightFormat) + "."


@app.command("serve-memory")
@query_command(defaults=DEFAULTS, only=SERVING_OPTIONS, build=False)
def serve_memory_command(
    batch: Annotated[str, typer.Option("--batch", "-b", help="Sequences of --tokens at once: 1, or a list 1,8.")] = "1",
    tp: Annotated[str, typer.Option("--tp", help="Tensor-parallel GPUs: 1, or a list 1,2,4,8.")] = "1",
    weights_dtype: Annotated[
        str,
        typer.Option(
            "--weights-dtype", help="Weight format, or auto: as the --config checkpoint stores it, else bf16."
        ),
    ] = "auto",
    engine: Annotated[
        str, typer.Option(help="Serving engine's memory rule: vllm (0.19), vllm-0.11, sglang (0.4.6), none.")
    ] = "vllm",
    accelerator: AcceleratorOpt = "h100-sxm",
    memory: MemoryOpt = None,
    memory_fraction: Annotated[
        float | None, typer.Option(help="Share the engine budgets (vLLM's gpu_memory_utilization); default its own.")
    ] = None,
    block_size: Annotated[int | None, typer.Option(help="Tokens per cache block (vLLM: 16).")] = None,
    max_num_seqs: Annotated[int | None, typer.Option(help="The engine's max_num_seqs; default its own.")] = None,
    max_num_batched_tokens: Annotated[
        int | None, typer.Option("--max-num-batched-tokens", "--chunk", help="Prefill chunk; default the engine's.")
    ] = None,
    max_model_len: Annotated[
        str | None,
        typer.Option(help="The engine's max_model_len (concurrency is per request of it); default --tokens."),
    ] = None,
    overhead: Annotated[str, typer.Option(help="More memory per GPU to keep free, with its unit (e.g. 1GiB).")] = "0",
    max_loras: Annotated[int, typer.Option(help="LoRA adapters served at once (vLLM's --max-loras); 0: none.")] = 0,
    max_lora_rank: Annotated[int, typer.Option(help="Their largest rank (vLLM's --max-lora-rank).")] = 16,
    draft_model: Annotated[
        str | None, typer.Option(help="A zoo model as the draft for speculative decoding (its weights and cache).")
    ] = None,
    kv_offload: Annotated[
        str | None, typer.Option(help="CPU memory per GPU for offloaded KV blocks, with its unit (e.g. 64GiB).")
    ] = None,
    as_json: JsonOpt = False,
    *,
    options: Any,
) -> None:
    """What the engine leaves for the KV cache on each GPU, row by row as it prints it, and whether batches of
    --tokens fit: headroom, the most sequences and the longest context (the model's context window a hard limit)."""
    from estimator.query.options import DEFAULT_MODEL, build_query

    query = build_query(options, DEFAULT_MODEL)
    settings = {k: v for k, v in locals().items() if k not in ("options", "query", "build_query", "DEFAULT_MODEL")}
    report = build_report(query, settings, options["config"])
    fits = kv_method_fits(query, report, settings)
    if as_json:
        import json

        typer.echo(json.dumps(with_kv_methods(report.record(), query, fits), indent=2, allow_nan=False))
        return
    typer.echo(report.headline())
    typer.echo("")
    print_table(report.pool_table(), left=1)
    typer.echo("")
    typer.echo("per GPU, GiB (2^30 bytes)")
    print_table(report.verdict_table(), left=2)
    typer.echo("")
    if fits:
        from estimator.memory import frontier_fit

        print_table(frontier_fit.fit_rows(fits, query.tokens), left=1)
        typer.echo("")
        report = replace(report, assumptions=(*report.assumptions, *frontier_fit.fit_assumptions(query)))
    for word in report.assumptions:
        say(word, "- ")


def kv_method_fits(query: Any, report: Any, options: dict[str, Any]) -> tuple[Any, ...]:
    """``--kv-method``: each method's cache for each --batch against the first pool (none without the option)."""
    if not query.kv_methods:
        return ()
    from estimator.memory.frontier_fit import method_fits

    return method_fits(query, report.pools[0], counts(options["batch"], "--batch"))


def with_kv_methods(record: dict[str, Any], query: Any, fits: tuple[Any, ...]) -> dict[str, Any]:
    """The JSON with the ``kv_methods`` rows and their assumption, where --kv-method is given."""
    if fits:
        from estimator.memory.frontier_fit import fit_assumptions, fit_records

        record["kv_methods"] = fit_records(fits)
        record["assumptions"] = [*record["assumptions"], *fit_assumptions(query)]
    return record


def print_table(rows: list[list[str]], left: int) -> None:
    """Columns padded to their widest cell; the first ``left`` columns to the left, the rest right."""
    widths = [max(len(line[i]) for line in rows) for i in range(len(rows[0]))]
    for line in rows:
        cells = [c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True))]
        typer.echo("  ".join(cells).rstrip())


def build_report(query: Any, options: dict[str, Any], config: Any = None) -> Any:
    """Read the options, plan the pool per TP size and judge each (TP size, batch); ``config``: the path of
    --config, whose checkpoint's own format (quantization_config, GGUF types) is the default."""
    from estimator.accelerators import accelerator as device_named
    from estimator.architecture import total_params
    from estimator.memory.engine_rules import default_knobs, mxfp4_backend, plan_pool
    from estimator.memory.engines import Engine, Reserve, check_knobs
    from estimator.memory.formats import WeightFormat
    from estimator.memory.serve_options import offload_tokens, option_reserves
    from estimator.memory.serving import ServeSetup, cache_bytes_per_gpu
    from estimator.memory.sizes import parse_bytes
    from estimator.memory.verdict import verdict
    from estimator.memory.weights import NO_PADDING, VLLM_MXFP4_PADDING, outside_weight_bytes_per_gpu
    from estimator.present.serving import ServingReport, memory_words
    from estimator.present.serving_words import outside_weights_words, serving_assumptions
    from estimator.present.words import part_counted, query_part_words
    from estimator.query import choice
    from estimator.units import MAX_COUNT
    from estimator.zoo import load_spec

    spec, tokens = query.spec, query.tokens
    engine = choice(options["engine"], Engine, "--engine")
    if query.kv_methods:  # --kv-method: refused before the pool is planned where it is not modelled
        from estimator.memory.frontier_fit import check_serving

        check_serving(query, engine.value, counts(options["tp"], "--tp"))
    device = device_named(options["accelerator"])
    if options["memory"] is not None:
        capacity, name, reported = parse_bytes(options["memory"], "--memory"), "(--memory)", True
        if capacity == 0:
            raise EstimatorError("--memory 0 holds nothing; give a device's size such as 80GiB")
    else:
        capacity, name, reported = device.usable_memory_bytes, device.display_name, device.reported
    stored_format, stored_bytes = (None, None)
    if config is not None:
        from estimator.memory.checkpoint_format import stored_weights

        stored_format, stored_bytes = stored_weights(str(config))
    if options["weights_dtype"].strip().lower() == "auto":
        weights = stored_format or WeightFormat.bf16
    else:
        weights, stored_bytes = choice(options["weights_dtype"], WeightFormat, "--weights-dtype"), None
    max_len = parse_tokens(options["max_model_len"], "--max-model-len") if options["max_model_len"] else tokens
    draft = load_spec(options["draft_model"]) if options["draft_model"] else None
    for flag in ("max_loras", "max_lora_rank"):
        if options[flag] < (0 if flag == "max_loras" else 1):
            raise EstimatorError(f"--{flag.replace('_', '-')} {options[flag]} is out of range; give e.g. 4 and 16")
    offload = parse_bytes(options["kv_offload"], "--kv-offload") if options["kv_offload"] else 0
    tps, batches = counts(options["tp"], "--tp"), counts(options["batch"], "--batch")
    padding = VLLM_MXFP4_PADDING[mxfp4_backend(name)] if engine.is_vllm else NO_PADDING
    outside = query.counted_params - total_params(spec)  # --part all: the tower and projector (else 0)
    pools: list[Any] = []
    verdicts: list[Any] = []
    tiers: list[int] = []
    for t in tps:
        knobs = default_knobs(engine, capacity, name, max_len, t)
        knobs = replace(knobs, **{k: options[k] for k in ("memory_fraction", "max_num_seqs") if options[k] is not None})
        if options["block_size"] is not None:
            knobs = replace(knobs, block_tokens=options["block_size"])
        if options["max_num_batched_tokens"] is not None:
            knobs = replace(knobs, max_num_batched_tokens=options["max_num_batched_tokens"])
        check_knobs(knobs)
        setup = ServeSetup(weights, query.kv, t, knobs.block_tokens, knobs.max_num_batched_tokens,
                           parse_bytes(options["overhead"], "--overhead"), padding)  # fmt: skip
        extra = option_reserves(spec, t, weights, options["max_loras"], options["max_lora_rank"], draft)
        if setup.overhead_bytes and engine is not Engine.none:
            extra = (*extra, Reserve(label="kept free (--overhead)", bytes=setup.overhead_bytes, source="--overhead"))
        pool = plan_pool(spec, setup, engine, knobs, capacity, extra, draft, stored_bytes,
                         outside_weight_bytes_per_gpu(outside, weights, t))  # fmt: skip
        pools.append(pool)
        flat = replace(setup, block_tokens=0)
        per_token = sum(cache_bytes_per_gpu(m, 1, flat) - cache_bytes_per_gpu(m, 0, flat) for m in (spec, draft) if m)
        tiers.append(offload_tokens(offload // t, per_token))
        verdicts.extend(verdict(spec, setup, pool, tokens, b, MAX_COUNT, draft) for b in batches)
    return ServingReport(
        spec=spec, tokens=tokens, device=device.name if name != "(--memory)" else name,
        device_words=memory_words(capacity, reported, name), weights_words=weights.value, tps=tps,
        pools=tuple(pools), verdicts=tuple(verdicts), offload_tokens=tuple(tiers),
        assumptions=tuple(serving_assumptions(spec, pools[0], weights, reported, options, draft)) + (
            (outside_weights_words(query.whole_model[1], weights),) if outside else ()),
        params=query.counted_params, part=query.part, part_words=query_part_words(query),
        part_counted=part_counted(query),
    )  # fmt: skip
