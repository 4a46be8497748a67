"""``estimate serve-memory``: memory per GPU to serve a model in context, for batches and tensor-parallel
sizes, against an accelerator; fits or not, the headroom, the longest context and most sequences."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Annotated, Any

import typer

from estimator.cli.app import app, say
from estimator.cli.options import JsonOpt, query_command
from estimator.errors import EstimatorError
from estimator.units import MAX_COUNT, format_bytes, parse_tokens

GiB = 2**30
AcceleratorOpt = Annotated[
    str, typer.Option("--accelerator", help="Device: h100-sxm, h200, b200, a100-80gb, l40s, rtx-4090, mi300x, ...")
]
MemoryOpt = Annotated[
    str | None, typer.Option("--memory", help="A custom device size instead (80GiB, 24GB); overrides its memory.")
]


def counts(text: str, what: str) -> tuple[int, ...]:
    """A comma list of whole numbers ≥ 1 (``1,8``), in order, without repeats."""
    values = tuple(dict.fromkeys(parse_tokens(part, what, limit=1_000_000) for part in text.split(",") if part.strip()))
    if not values:
        raise EstimatorError(f"{what} is empty; give e.g. 1 or 1,8")
    return values


@dataclass(frozen=True)
class ServeRow:
    tp: int
    batch: int
    memory: Any  # ServeMemory
    most_sequences: int
    longest_tokens: int
    any_length: bool  # the cache stops growing and fits at its largest


def serve_rows(
    spec: Any, tokens: int, batches: tuple[int, ...], tps: tuple[int, ...], setup: Any, budget: int
) -> list[ServeRow]:
    """One row per (TP size, batch): the components per GPU and the two inverse answers."""
    from estimator.kv import kv_max_cache_bytes
    from estimator.memory.serving import longest_tokens, most_sequences, serve_memory
    from estimator.memory.weights import weight_bytes_per_gpu

    bounded = kv_max_cache_bytes(spec, setup.kv) is not None
    rows = []
    for tp in tps:
        at = replace(setup, tp=tp)
        weights = weight_bytes_per_gpu(spec, at.weights, tp)
        for batch in batches:
            memory = serve_memory(spec, tokens, batch, at, budget, weights=weights)
            longest = longest_tokens(spec, batch, at, budget, MAX_COUNT)
            rows.append(ServeRow(tp, batch, memory, most_sequences(spec, tokens, at, budget), longest,
                                 bounded and longest == MAX_COUNT))  # fmt: skip
    return rows


def row_record(row: ServeRow) -> dict[str, Any]:
    m = row.memory
    return {
        "tensor_parallel": row.tp,
        "batch": row.batch,
        "weights_bytes_per_gpu": m.weights_bytes,
        "cache_bytes_per_gpu": m.cache_bytes,
        "state_bytes_per_gpu": m.state_bytes,
        "logits_bytes_per_gpu": m.logits_bytes,
        "prefill_activation_bytes_per_gpu": m.activation_bytes,
        "overhead_bytes_per_gpu": m.overhead_bytes,
        "total_bytes_per_gpu": m.total_bytes,
        "budget_bytes_per_gpu": m.budget_bytes,
        "fits": m.fits,
        "headroom_bytes": m.headroom_bytes,
        "short_bytes": m.short_bytes,
        "most_sequences": row.most_sequences,
        "longest_tokens": None if row.any_length else row.longest_tokens,
        "any_length": row.any_length,
    }


def _gib(n: int) -> str:
    return f"{n / GiB:,.2f}"


@app.command("serve-memory")
@query_command(defaults={"methods": "kv"})
def serve_memory_command(
    batch: Annotated[str, typer.Option("--batch", "-b", help="Sequences served at once: 1, or a list 1,8.")] = "1",
    tp: Annotated[str, typer.Option("--tp", help="Tensor-parallel GPUs: 1, or a list 1,2,4,8.")] = "1",
    weights_dtype: Annotated[
        str,
        typer.Option(
            "--weights-dtype",
            help="Weight format: bf16, fp16, fp32, fp8, fp8-block, int8, int4-gptq, int4-awq, nf4, nf4-no-dq.",
        ),
    ] = "bf16",
    accelerator: AcceleratorOpt = "h100-sxm",
    memory: MemoryOpt = None,
    memory_fraction: Annotated[
        float, typer.Option(help="Share of the device the engine may use (vLLM's gpu_memory_utilization).")
    ] = 0.9,
    block_size: Annotated[int, typer.Option(help="Tokens per paged-cache block (vLLM: 16); 0 for no paging.")] = 16,
    chunk: Annotated[int, typer.Option(help="Prefill chunk, tokens (vLLM's max_num_batched_tokens).")] = 8192,
    overhead: Annotated[
        str, typer.Option(help="Runtime overhead per GPU (CUDA context, NCCL, graphs), e.g. 2GiB; default none.")
    ] = "0",
    as_json: JsonOpt = False,
    *,
    query: Any,
) -> None:
    """Memory per GPU to serve the model in context: weights, the cache of a batch, the prefill peak; fits or
    not on the accelerator, with the headroom, the longest context that fits and the most sequences."""
    from estimator.accelerators import accelerator as device_named
    from estimator.memory.formats import WeightFormat
    from estimator.memory.serving import ServeSetup, budget_bytes
    from estimator.memory.sizes import parse_bytes
    from estimator.query import choice

    if block_size < 0 or chunk < 1:
        raise EstimatorError("--block-size must be 0 or more and --chunk at least 1; give e.g. 16 and 8192")
    device = device_named(accelerator)
    capacity = parse_bytes(memory, "--memory") if memory is not None else device.memory_bytes
    if capacity == 0:
        raise EstimatorError("--memory 0 holds nothing; give a device's size such as 80GiB")
    setup = ServeSetup(
        choice(weights_dtype, WeightFormat, "--weights-dtype"),
        query.kv,
        1,
        block_size,
        chunk,
        parse_bytes(overhead, "--overhead"),
    )
    budget = budget_bytes(capacity, memory_fraction)
    spec = query.spec
    rows = serve_rows(spec, query.tokens, counts(batch, "--batch"), counts(tp, "--tp"), setup, budget)
    device_name = f"{format_bytes(capacity, iec=True)} (--memory)" if memory is not None else device.display_name
    words = serve_assumptions(spec, setup, capacity, memory_fraction, device_name)
    if as_json:
        record = {
            "model": spec.name,
            "tokens": query.tokens,
            "accelerator": None if memory is not None else device.name,
            "memory_bytes": capacity,
            "memory_fraction": memory_fraction,
            "weights_format": setup.weights.value,
            "rows": [row_record(r) for r in rows],
            "assumptions": words,
        }
        typer.echo(json.dumps(record, indent=2))
        return
    typer.echo(f"{spec.display_name} served in context: {query.tokens:,} tokens per sequence, on {device_name}")
    typer.echo("")
    _print_table(rows, spec)
    typer.echo("")
    for word in words:
        say(word, "- ")


def _print_table(rows: list[ServeRow], spec: Any) -> None:
    head = ("TP", "batch", "weights", "cache", "activations", "total", "budget", "fits", "headroom or short by",
            "most seqs", "longest context")  # fmt: skip
    table = [head]
    for r in rows:
        m = r.memory
        longest = "any length" if r.any_length else f"{r.longest_tokens:,}" if r.longest_tokens else "none"
        if not r.any_length and r.longest_tokens > spec.max_position_embeddings:
            longest += " (past context)"
        table.append((str(r.tp), str(r.batch), _gib(m.weights_bytes), _gib(m.cache_bytes),
                      _gib(m.activation_bytes + m.logits_bytes + m.overhead_bytes), _gib(m.total_bytes),
                      _gib(m.budget_bytes), "yes" if m.fits else "no",
                      _gib(m.headroom_bytes) if m.fits else f"short by {_gib(m.short_bytes)}",
                      f"{r.most_sequences:,}", longest))  # fmt: skip
    widths = [max(len(line[i]) for line in table) for i in range(len(head))]
    typer.echo("per GPU, GiB (2^30 bytes)")
    for line in table:
        pairs = enumerate(zip(line, widths, strict=True))
        cells = [cell.ljust(w) if i in (0, 1, 7) else cell.rjust(w) for i, (cell, w) in pairs]
        typer.echo("  ".join(cells).rstrip())


def serve_assumptions(spec: Any, setup: Any, capacity: int, fraction: float, device: str) -> list[str]:
    """Every assumption behind the table, one sentence each."""
    paging = (
        f"the cache is paged in blocks of {setup.block_tokens} tokens (vLLM's default), each layer's tokens rounded up"
        if setup.block_tokens
        else "the cache is not paged"
    )
    return [
        f"Budget: {fraction:g} of {format_bytes(capacity, iec=True)} per GPU ({device}); vLLM's default "
        "gpu_memory_utilization is 0.9.",
        f"Weights: the linear maps in {setup.weights.describe()}; embeddings, head, norms and routers in 16 bits. "
        "Tensor parallelism splits q, o, the MLP and experts by t, k and v by KV head (max(1, K/t) per GPU), the "
        "vocabulary padded to 64 rows; norms, routers and MLA's down-projections are replicated.",
        f"Cache: {setup.kv.describe()}; {paging}; an MLA latent cache is held whole on every GPU.",
        f"Activations: an estimate of one prefill chunk of {setup.chunk_tokens:,} tokens (residual stream and the "
        "widest layer's intermediates, 16 bits), plus one fp32 logits row per sequence; not measured.",
        f"Runtime overhead: {format_bytes(setup.overhead_bytes, iec=True)} (CUDA context, NCCL buffers, CUDA "
        "graphs); set it with --overhead, e.g. 2GiB.",
        "Longest context: the largest T whose total fits at that batch; most sequences: at --tokens.",
    ]
