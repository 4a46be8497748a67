"""``estimate train-memory``: memory per GPU to fine-tune with LoRA, DoRA, QLoRA or in full: the persistent
part (weights, master weights, optimizer states) and the peak of a step, phase by phase (the loss at the start
of backward, the layers' backward, the optimizer step), under data parallelism with ZeRO sharding; fits or
not on the accelerator, the longest sequence and the largest micro-batch that fit."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from estimator.cli.app import app
from estimator.cli.options import query_command
from estimator.cli.output import FormatOpt, JsonOpt, chosen_format, emit
from estimator.cli.serve_memory import AcceleratorOpt, MemoryOpt
from estimator.query.options import TRAINING_OPTIONS

DEFAULTS = {"tokens": "4096", "methods": "lora", "experts": "fused"}  # this command's query defaults


@app.command("train-memory")
@query_command(defaults=DEFAULTS, only=TRAINING_OPTIONS)
def train_memory_command(
    way: Annotated[str, typer.Option("--way", help="Comma list: lora, dora, qlora (LoRA on NF4 weights), full.")] = (
        "lora,qlora,full"
    ),
    micro_batch: Annotated[int, typer.Option(help="Sequences of --tokens per step on each GPU.")] = 1,
    optimizer: Annotated[
        str,
        typer.Option(
            help="adamw (torch's fused, HF Trainer's default), adamw-8bit, paged-adamw, paged-adamw-8bit "
            "(bitsandbytes; paged states live in unified memory, not counted on the GPU), sgd, sgd-momentum."
        ),
    ] = "adamw",
    precision: Annotated[
        str, typer.Option(help="Full fine-tuning: mixed (bf16 + fp32 master, 16 B/param with AdamW), bf16 or fp32.")
    ] = "mixed",
    checkpointing: Annotated[
        str, typer.Option(help="Gradient checkpointing: none, or layers (keep each layer's input, recompute)")
    ] = "none",
    loss: Annotated[
        str,
        typer.Option(
            help="Loss path: fp32 (transformers 5's ForCausalLMLoss), fp32-shifted (transformers 4.43-4.47), bf16 "
            "(no upcast, outside autocast), chunked (--loss-chunk positions at a time)."
        ),
    ] = "fp32",
    loss_chunk: Annotated[int, typer.Option(help="Positions per chunk of --loss chunked.")] = 1024,
    kbit_prepare: Annotated[
        bool,
        typer.Option(
            "--kbit-prepare/--no-kbit-prepare",
            help="QLoRA: peft's prepare_model_for_kbit_training (embeddings, head, norms to fp32), as usually run.",
        ),
    ] = True,
    lora_dropout: Annotated[float, typer.Option(help="LoRA dropout (peft's lora_dropout); 0 by default.")] = 0.0,
    offload: Annotated[
        str, typer.Option(help="CPU offload: none, optimizer (ZeRO-Offload), params (FSDP CPUOffload).")
    ] = "none",
    autocast: Annotated[
        bool, typer.Option(help="Forward under torch.autocast(bf16), as HF Trainer's bf16=True (LoRA activations).")
    ] = True,
    gpus: Annotated[int, typer.Option(help="Data-parallel GPUs.")] = 1,
    zero: Annotated[int, typer.Option(help="ZeRO stage: 0, 1 (optimizer), 2 (+ gradients), 3 / FSDP (+ weights).")] = 0,
    accelerator: AcceleratorOpt = "h100-sxm",
    memory: MemoryOpt = None,
    output: FormatOpt = None,
    as_json: JsonOpt = False,
    *,
    query: Any,
) -> None:
    """Memory per GPU to fine-tune: the weights, master weights and optimizer states held between steps, and the
    peak of a step (the loss's tensors at the start of backward, the recomputed layer, gradients, the optimizer
    step); fits or not, the longest sequence and the largest micro-batch that fit. Mixtures of experts are as
    transformers >= 5 builds them (--experts fused), which bitsandbytes leaves unquantised."""
    fmt = chosen_format(output, as_json)
    settings = {k: v for k, v in locals().items() if k not in ("query", "output", "as_json", "fmt")}
    from estimator.present.training_answer import train_report

    emit(train_report(query, **settings), fmt)
