"""``estimate breakeven``: when fine-tuning pays for itself, in FLOPs and in time on an accelerator; a
thin wrapper over :mod:`estimator.cost`."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from estimator.cli.app import app, say
from estimator.cli.options import JsonOpt, query_command
from estimator.cost import EXPOSURES_FOR_CAPACITY, FineTune
from estimator.errors import EstimatorError
from estimator.query.options import CACHE_OPTIONS, MODEL_OPTIONS

AcceleratorOpt = Annotated[
    str, typer.Option("--accelerator", help="Device for time per query (roofline): h100-sxm, a100-80gb, mi300x, ...")
]
TpOpt = Annotated[
    int | None,
    typer.Option(
        "--tp", "--gpus", help="GPUs in tensor parallel; default the smallest of 1, 2, 4, 8 that holds the batch."
    ),
]
BatchOpt = Annotated[int, typer.Option("--batch", "-b", help="Queries served together (they share weight reads).")]
QueriesOpt = Annotated[
    str | None, typer.Option("--queries", help="Also the cumulative FLOPs and time after this many queries: 10k.")
]
# The query options break-even reads: the model, its cache, the adapter (rank, targets, experts, dtypes). The
# rest (--methods, --virtual-tokens, LoReFT, IA3, --pretraining-tokens) would be ignored, so they are refused.
BREAKEVEN_OPTIONS = (*MODEL_OPTIONS, *CACHE_OPTIONS, "rank", "targets", "experts", "adapter_dtype", "weights_dtype")


@app.command("breakeven")
@query_command(defaults={"methods": "kv,lora"}, only=BREAKEVEN_OPTIONS)
def breakeven_command(
    finetune: Annotated[FineTune, typer.Option(help="lora (4N + 6P per token) or full (6N).")] = (FineTune.lora),
    epochs: Annotated[int, typer.Option(help="Passes over the text in fine-tuning.")] = 1,
    augmentation: Annotated[
        int, typer.Option(help="Training tokens per token of text: 1, or A − 1 generated rewrites (augmented FT).")
    ] = 1,
    train_sequence_tokens: Annotated[int, typer.Option(help="Tokens per training sequence.")] = 4_096,
    query_tokens: Annotated[int, typer.Option(help="Tokens of each question.")] = 100,
    generated_tokens: Annotated[int, typer.Option(help="Tokens generated per answer.")] = 100,
    accelerator: AcceleratorOpt = "h100-sxm",
    tp: TpOpt = None,
    batch: BatchOpt = 1,
    queries: QueriesOpt = None,
    as_json: JsonOpt = False,
    *,
    query: Any,
) -> None:
    """When fine-tuning pays for itself, in FLOPs and in time on an accelerator: the text in every prompt
    against training it in once, at your epochs and at the ~1,000 exposures behind 2 bits per parameter."""
    from estimator.accelerators import accelerator as device_named
    from estimator.compare import evaluate
    from estimator.cost import breakeven, capacity_epochs
    from estimator.timing import breakeven_time

    for value, option in (
        (epochs, "--epochs"),
        (augmentation, "--augmentation"),
        (train_sequence_tokens, "--train-sequence-tokens"),
    ):
        if value < 1:
            raise EstimatorError(f"{option} {value} must be at least 1; give e.g. 1")
    for value, option in ((query_tokens, "--query-tokens"), (generated_tokens, "--generated-tokens")):
        if value < 0:
            raise EstimatorError(f"{option} {value} must be 0 or more; give e.g. 100")
    from estimator.breakeven_deployment import deployment
    from estimator.units import parse_tokens

    count = None if queries is None else parse_tokens(queries, "--queries")
    est = evaluate(query)
    device = deployment(est, device_named(accelerator), batch, est.tokens + query_tokens + generated_tokens, tp)
    kind = finetune
    runs = [breakeven(est, epochs, augmentation, query_tokens, generated_tokens, kind, train_sequence_tokens)]
    if epochs * augmentation < EXPOSURES_FOR_CAPACITY:  # the regime the capacity constants assume
        epochs_1k = capacity_epochs(augmentation)
        runs.append(
            breakeven(est, epochs_1k, augmentation, query_tokens, generated_tokens, kind, train_sequence_tokens)
        )
    times = [breakeven_time(run, device, batch) for run in runs]
    words = breakeven_assumptions(runs[0], device)
    if as_json:
        record = {**runs[0].to_dict(), **time_record(times[0]), "deployment": deployment_record(device)}
        if len(runs) > 1:
            record["at_capacity_exposures"] = {**exposure_record(runs[1]), **time_record(times[1])}
        if count is not None:
            record["after_queries"] = cumulative_record(runs, times, count)
        from estimator import __version__

        typer.echo(json.dumps({"estimator_version": __version__, **record, "assumptions": words}, indent=2))
        return
    _print_breakeven(runs, times, words, count)


def deployment_record(device: Any) -> dict[str, Any]:
    """The deployment the times are on: GPUs, batch, and the pool that holds the batch."""
    return {
        "accelerator": device.name,
        "gpus": device.gpus,
        "chosen": "smallest that fits" if device.chosen else "given",
        "batch": device.batch,
        "sequence_tokens": device.sequence_tokens,
        "pool_bytes_per_gpu": device.pool_bytes,
        "sequence_bytes_per_gpu": device.sequence_bytes,
        "most_sequences": device.most_sequences,
    }


def cumulative_record(runs: list[Any], times: list[Any], queries: int) -> dict[str, Any]:
    """Total FLOPs and seconds after ``queries`` queries: in context, prefix cached, and each fine-tuning run."""
    flops, seconds = runs[0].cumulative_flops(queries), times[0].cumulative_seconds(queries)
    record: dict[str, Any] = {"queries": queries}
    for key in ("in_context", "in_context_prefix_cached"):
        record[f"{key}_flops"], record[f"{key}_seconds"] = flops[key], seconds[key]
    for run, t in zip(runs, times, strict=True):
        name = f"fine_tuned_{run.epochs * run.augmentation}_exposures"
        record[f"{name}_flops"] = run.cumulative_flops(queries)["fine_tuned"]
        record[f"{name}_seconds"] = t.cumulative_seconds(queries)["fine_tuned"]
    return record


def exposure_record(result: Any) -> dict[str, Any]:
    """The fine-tuning run at the capacity regime: its exposures, epochs, FLOPs and break-even."""
    return {
        "exposures": result.epochs * result.augmentation,
        "epochs": result.epochs,
        "finetune_once_flops": result.finetune_once_flops,
        "breakeven_queries": result.queries,
        "breakeven_queries_prefix_cached": result.queries_prefix_cached,
    }


def time_record(times: Any) -> dict[str, Any]:
    """Seconds on the accelerator, every key with its unit."""
    return {
        "accelerator": getattr(times.device, "name", None),
        "batch": times.batch,
        "in_context_query_seconds": times.in_context_query_seconds,
        "in_context_prefix_cached_once_seconds": times.in_context_prefix_cached_once_seconds,
        "in_context_prefix_cached_query_seconds": times.in_context_prefix_cached_query_seconds,
        "finetune_once_seconds": times.finetune_once_seconds,
        "fine_tuned_query_seconds": times.fine_tuned_query_seconds,
        "in_context_decode_seconds_per_token": times.in_context_decode_seconds_per_token,
        "fine_tuned_decode_seconds_per_token": times.fine_tuned_decode_seconds_per_token,
        "in_context_decode_bound": times.in_context_decode_bound,
        "breakeven_queries_by_time": times.queries,
        "breakeven_queries_prefix_cached_by_time": times.queries_prefix_cached,
    }


def finetune_label(result: Any) -> str:
    exposures = result.epochs * result.augmentation
    epochs = f"{result.epochs:,} epoch{'s' if result.epochs != 1 else ''}"
    augmented = f", {result.augmentation}x augmented" if result.augmentation > 1 else ""
    regime = f" ({exposures:,} exposures)" if exposures >= EXPOSURES_FOR_CAPACITY else ""
    if result.finetune.value == "full":
        return f"full fine-tuning, {epochs}{augmented}{regime}"
    return f"LoRA r={result.est.rank}, {result.est.targets.described}, {epochs}{augmented}{regime}"


def _attention_words(spec: Any, kv: Any) -> str:
    """The attention FLOPs per attended position, in the form the cache format implies."""
    from estimator.architecture import layout_of
    from estimator.layout.latent import LatentAttention

    latent = next((g.mixer for g in layout_of(spec).groups if isinstance(g.mixer, LatentAttention)), None)
    if latent is None:
        from estimator.cost import attention_width

        return (
            f"attention 2 · H · (d_qk + d_v) = {2 * attention_width(spec):,} FLOPs per layer per attended position "
            "(causal; sliding windows and chunks cap the positions; recurrent layers' state updates not counted)"
        )
    width = latent.flops_width(kv)
    form = (
        "absorbed, as from the latent cache: 2 · H · (2 · kv_lora_rank + qk_rope)"
        if kv.mla.value == "latent"
        else "per head, as from the expanded cache: 2 · H · (qk_nope + qk_rope + v_head_dim)"
    )
    sparse = (
        f"; the indexer's 2 · {latent.index_heads} · {latent.index_head_dim} per earlier position, then the main "
        f"attention over the top {latent.index_topk:,}"
        if latent.index_topk
        else ""
    )
    return (
        f"MLA attention {form} = {2 * width:,} FLOPs per layer per attended position{sparse} (training, with no "
        "cache, runs per head)"
    )


def breakeven_assumptions(result: Any, device: Any) -> list[str]:
    from estimator.cost import forward_params

    est = result.est
    spec = est.spec
    n_f = forward_params(spec)
    train = (
        "6 · N_f FLOPs per training token (full fine-tuning)"
        if result.finetune.value == "full"
        else f"4 · N_f + 6 · P = 4 · {n_f:,} + 6 · {result.active_adapter_params:,} FLOPs per training token (LoRA: "
        "frozen weights pass gradients on but keep none"
        + ("; P counts the routed experts' adapters at their k/E share" if spec.is_moe else "")
        + ")"
    )
    exposures = result.epochs * result.augmentation
    return [
        f"Forward: 2 · N_f FLOPs per token with N_f = {n_f:,} (active parameters without the input embedding"
        + (", the tied output head counted)" if spec.tie_word_embeddings else ")")
        + f", plus {_attention_words(spec, est.kv)}.",
        f"Each query: {result.query_tokens} question tokens and {result.generated_tokens} generated tokens, after the "
        f"{est.tokens:,}-token context (in context) or alone (fine-tuned, whose unmerged LoRA adds 2 · P "
        "FLOPs per token).",
        "Prefix caching: the context's KV cache is computed once and kept, so each query pays only its own tokens "
        "and their attention over the context.",
        f"Fine-tuning once: {train}, over {est.tokens:,} tokens × {result.augmentation} (augmentation) × "
        f"{result.epochs} epoch{'s' if result.epochs != 1 else ''}, plus training attention in sequences of "
        f"{result.train_sequence_tokens:,} tokens (backward costs twice the forward).",
        f"Exposures: each fact is seen epochs × augmentation = {exposures:,} time{'s' if exposures != 1 else ''}; the "
        f"2 bits per parameter of the capacity figures needs about {EXPOSURES_FOR_CAPACITY:,} (Allen-Zhu & Li 2024, "
        "Physics of Language Models 3.3), so a second row trains that long"
        + (" (yours already does)." if exposures >= EXPOSURES_FOR_CAPACITY else "."),
        *(
            [
                f"Augmentation: {result.augmentation - 1} rewrite(s) of the text generated with it in context "
                "(augmented fine-tuning, Lampinen et al. 2025), counted as forward FLOPs."
            ]
            if result.augmentation > 1
            else []
        ),
        f"Time on {device.display_name}: a roofline per phase, max(FLOPs / "
        f"{device.bf16_dense_flops_per_s / 1e12:,.1f} TFLOP/s bf16 dense, bytes / "
        f"{device.memory_bandwidth_bytes_per_s / 1e12:,.2f} TB/s), the GPUs as one (ideal tensor parallelism, no "
        f"communication), at peak (real kernels reach perhaps half); "
        + (
            "one query at a time"
            if device.batch == 1
            else f"{device.batch:,} queries served together, each paying the batch's time over {device.batch:,}"
        )
        + ": prefill reads every weight once, each decoding step the routed weights "
        f"({est.weights_dtype.value}) and the adapter once and every query's cache so far; fine-tuning "
        f"compute-bound on the same GPUs. Source: {device.source}.",
        f"Deployment: {device.words()}; vLLM 0.19's pool as `estimate serve-memory` plans it (its budget of the "
        "memory torch reports, the weights' shard, its reserves), for the in-context query, the larger cache.",
        *(
            [
                f"{est.tokens:,} tokens exceed {spec.display_name}'s context window of "
                f"{est.context_window_tokens:,} tokens: the in-context figures are those of a context that long."
            ]
            if est.beyond_context_window
            else []
        ),
    ]


def _after(queries: int | None) -> str:
    if queries is None:
        return "never"
    if queries == 0:
        return "from the start (it costs less than the context alone)"
    return f"after {queries:,} quer{'y' if queries == 1 else 'ies'}"


def _seconds(value: float) -> str:
    """3.2 ms, 51.3 s, 2.1 h: three significant figures in the largest fitting unit."""
    for limit, unit, scale in ((1e-3, "µs", 1e6), (1.0, "ms", 1e3), (120.0, "s", 1.0), (7200.0, "min", 1 / 60)):
        if value < limit:
            return f"{value * scale:.3g} {unit}"
    return f"{value / 3600:,.3g} h" if value < 86_400 * 3 else f"{value / 86_400:,.3g} days"


def _print_breakeven(runs: list[Any], times: list[Any], words: list[str], count: int | None) -> None:
    from estimator.present.tables import format_table
    from estimator.units import format_bytes, format_flops

    result, device = runs[0], times[0].device
    est = result.est
    say(
        f"{est.spec.display_name} ({est.spec.name}): {est.tokens:,} tokens of text in every prompt, or trained in "
        f"once; {device.words()}"
    )
    typer.echo("")
    first = times[0]
    rows = [
        ("in context", 0, result.in_context_query_flops, 0.0, first.in_context_query_seconds),
        ("in context, prefix cached", result.in_context_prefix_cached_once_flops,
         result.in_context_prefix_cached_query_flops, first.in_context_prefix_cached_once_seconds,
         first.in_context_prefix_cached_query_seconds),
        *[(finetune_label(run), run.finetune_once_flops, run.fine_tuned_query_flops, t.finetune_once_seconds,
           t.fine_tuned_query_seconds) for run, t in zip(runs, times, strict=True)],
    ]  # fmt: skip
    body = [
        [name, format_flops(once), format_flops(each), _seconds(once_s) if once_s else "0 s", _seconds(each_s)]
        for name, once, each, once_s, each_s in rows
    ]
    headers = ["", "FLOPs once", "FLOPs per query", "time once", "time per query"]
    if count is not None:  # cumulative totals: what is paid once, plus every query
        headers += [f"FLOPs, {count:,} queries", f"time, {count:,} queries"]
        for cells, (_, once, each, once_s, each_s) in zip(body, rows, strict=True):
            cells += [format_flops(once + count * each), _seconds(once_s + count * each_s)]
    typer.echo(format_table(headers, body, right=set(range(1, len(headers)))))
    typer.echo(f"(times on {device.display_name}, batch {device.batch:,}, per query; exact FLOPs in --json)")
    typer.echo("")
    for run, t in zip(runs, times, strict=True):
        lead = "Fine-tuning" if run is result else f"Trained to {run.epochs * run.augmentation:,} exposures, it"
        say(
            f"{lead} is cheaper in FLOPs {_after(run.queries)} against the text in every prompt and "
            f"{_after(run.queries_prefix_cached)} against a prefix-cached context; in time, "
            f"{_after(t.queries)} and {_after(t.queries_prefix_cached)}."
        )
    each = f"each of the {device.batch:,} queries' " if device.batch > 1 else "the "
    say(
        f"Decoding one token after the context takes {_seconds(times[0].in_context_decode_seconds_per_token)} "
        f"({times[0].in_context_decode_bound}-bound: it reads the weights and {each}{format_bytes(est.kv_cache_bytes)} "
        f"cache), fine-tuned {_seconds(times[0].fine_tuned_decode_seconds_per_token)}."
    )
    adapter = f"the adapter {format_bytes(est.lora_bytes)}" if result.finetune.value == "lora" else "no adapter"
    cache = f"the KV cache of the context {format_bytes(est.kv_cache_bytes)} ({est.kv.describe()})"
    say(f"Memory held while serving: {cache}; {adapter}.")
    typer.echo("")
    typer.echo("Assumptions:")
    for line in words:
        say(line, bullet="- ")
