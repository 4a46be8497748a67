"""``estimate serve-memory``: what a serving engine leaves for the KV cache on each GPU, row by row as the
engine prints it (budget, weights, each reserve, the pool, blocks, tokens, concurrency), and the verdict for
batches of sequences at --tokens: fits or not, headroom, most sequences, longest context."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from estimator.cli.app import app
from estimator.cli.options import query_command
from estimator.cli.output import FormatOpt, JsonOpt, chosen_format, emit
from estimator.query.options import SERVING_OPTIONS

AcceleratorOpt = Annotated[
    str, typer.Option("--accelerator", help="Device: h100-sxm, h200, b200, a100-80gb, l40s, rtx-4090, mi300x, ...")
]
MemoryOpt = Annotated[
    str | None,
    typer.Option("--memory", help="A custom device size with its unit instead (80GiB; 24GB is 10^9 bytes each)."),
]
Count = Annotated[int | None, typer.Option(min=0)]
DEFAULTS = {"methods": "kv", "tokens": "8192"}  # this command's query defaults


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
    output: FormatOpt = None,
    as_json: JsonOpt = False,
    *,
    options: Any,
) -> None:
    """What the engine leaves for the KV cache on each GPU, row by row as it prints it, and whether batches of
    --tokens fit: headroom, the most sequences and the longest context (the model's context window a hard limit)."""
    from estimator.present.serving_answer import build_report
    from estimator.query.options import DEFAULT_MODEL, build_query

    fmt = chosen_format(output, as_json)
    query = build_query(options, DEFAULT_MODEL)
    settings = {k: v for k, v in locals().items() if k not in ("options", "query", "output", "as_json", "fmt")}
    emit(build_report(query, settings, options["config"]), fmt)
