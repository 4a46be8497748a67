"""The serving answer gathered: ``serve-memory``'s options read, the pool planned per TP size, each (TP size,
batch) judged, and ``--kv-method``'s caches fitted in the first pool, into one
:class:`~estimator.present.serving.ServingReport` that the CLI and the web API print."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from estimator.errors import EstimatorError
from estimator.present.serving import ServingReport, memory_words
from estimator.units import parse_tokens


def counts(text: str, what: str) -> tuple[int, ...]:
    """A comma list of whole numbers ≥ 1 (``1,8``), in order, without repeats."""
    values = tuple(dict.fromkeys(parse_tokens(part, what, limit=1_000_000) for part in text.split(",") if part.strip()))
    if not values:
        raise EstimatorError(f"{what} is empty; give e.g. 1 or 1,8")
    return values


def with_fits(report: ServingReport, query: Any, batches: tuple[int, ...]) -> ServingReport:
    """``report`` with --kv-method's rows (each method's cache for each --batch in the first pool) and their
    assumption, where the option is given."""
    if not query.kv_methods:
        return report
    from estimator.memory.frontier_fit import fit_assumptions, fit_records, fit_rows, method_fits

    fits = method_fits(query, report.pools[0], batches)

    return replace(report, fit_table=tuple(tuple(r) for r in fit_rows(fits, query.tokens)),
                   fit_records=tuple(fit_records(fits)),
                   assumptions=(*report.assumptions, *fit_assumptions(query)))  # fmt: skip


def build_report(query: Any, options: dict[str, Any], config: Any = None) -> ServingReport:
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
    report = ServingReport(
        spec=spec, tokens=tokens, device=device.name if name != "(--memory)" else name,
        device_words=memory_words(capacity, reported, name), weights_words=weights.value, tps=tps,
        pools=tuple(pools), verdicts=tuple(verdicts), offload_tokens=tuple(tiers),
        assumptions=tuple(serving_assumptions(spec, pools[0], weights, reported, options, draft)) + (
            (outside_weights_words(query.whole_model[1], weights),) if outside else ()),
        params=query.counted_params, part=query.part, part_words=query_part_words(query),
        part_counted=part_counted(query),
    )  # fmt: skip
    return with_fits(report, query, batches)
