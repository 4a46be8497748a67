"""``estimate train-memory``: memory per GPU to fine-tune with LoRA, DoRA, QLoRA or in full: frozen and
trainable weights, gradients, optimizer states, master weights and activations, under data parallelism
with ZeRO sharding; fits or not on the accelerator."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from estimator.cli.app import app, say
from estimator.cli.options import JsonOpt, query_command
from estimator.cli.serve_memory import AcceleratorOpt, MemoryOpt
from estimator.errors import EstimatorError
from estimator.units import format_bytes

GiB = 2**30
COMPONENTS = (  # (field, row label)
    ("frozen_weights_bytes", "frozen weights"),
    ("trainable_weights_bytes", "trainable weights"),
    ("master_weights_bytes", "fp32 master weights"),
    ("gradient_bytes", "gradients"),
    ("optimizer_bytes", "optimizer states"),
    ("activation_bytes", "activations"),
    ("logits_bytes", "logits (bf16)"),
)


LABELS = {"lora": "LoRA", "dora": "DoRA", "qlora": "QLoRA", "full": "full"}


def ways_of(text: str) -> tuple[Any, ...]:
    from estimator.memory.training import Way
    from estimator.query import choice

    words = [w for w in (part.strip() for part in text.split(",")) if w]
    if not words:
        raise EstimatorError("--way is empty; give e.g. lora,qlora,full")
    return tuple(dict.fromkeys(choice(w, Way, "--way") for w in words))


def plans(query: Any, ways: tuple[Any, ...], options: dict[str, Any]) -> list[tuple[Any, Any, str]]:
    """(way, TrainMemory, label) for each way of fine-tuning the query's model."""
    from estimator.memory.activations import lora_ranks
    from estimator.memory.training import TrainSetup, Way, adapter_tensor_sizes, full_tensor_sizes, train_memory
    from estimator.stores.kinds import targets_of

    out = []
    fused = query.experts.fused_weights
    for way in ways:
        ranks = None
        if way is Way.full:
            sizes, label = full_tensor_sizes(query.spec, fused), "full"
        else:
            targets = targets_of(query)
            sizes = adapter_tensor_sizes(targets, query.rank, magnitudes=way is Way.dora)
            ranks = lora_ranks(targets, query.rank)
            label = f"{LABELS[way.value]} r={query.rank}"
        setup = TrainSetup(way, sizes, query.tokens, ranks, **options, fused_experts=fused)
        out.append((way, train_memory(query.spec, setup), label))
    return out


@app.command("train-memory")
@query_command(defaults={"tokens": "4096", "methods": "lora", "experts": "fused"})
def train_memory_command(
    way: Annotated[str, typer.Option("--way", help="Comma list: lora, dora, qlora (LoRA on NF4 weights), full.")] = (
        "lora,qlora,full"
    ),
    micro_batch: Annotated[int, typer.Option(help="Sequences of --tokens per step on each GPU.")] = 1,
    optimizer: Annotated[str, typer.Option(help="adamw, adamw-8bit (bitsandbytes), sgd, sgd-momentum.")] = "adamw",
    precision: Annotated[
        str, typer.Option(help="Full fine-tuning: mixed (bf16 + fp32 master, 16 B/param with AdamW), bf16 or fp32.")
    ] = "mixed",
    checkpointing: Annotated[
        str, typer.Option(help="Gradient checkpointing: none, or layers (keep each layer's input, recompute)")
    ] = "none",
    autocast: Annotated[
        bool, typer.Option(help="Forward under torch.autocast(bf16), as HF Trainer's bf16=True (LoRA activations).")
    ] = True,
    gpus: Annotated[int, typer.Option(help="Data-parallel GPUs.")] = 1,
    zero: Annotated[int, typer.Option(help="ZeRO stage: 0, 1 (optimizer), 2 (+ gradients), 3 / FSDP (+ weights).")] = 0,
    accelerator: AcceleratorOpt = "h100-sxm",
    memory: MemoryOpt = None,
    as_json: JsonOpt = False,
    *,
    query: Any,
) -> None:
    """Memory per GPU to fine-tune: frozen and trainable weights, gradients, optimizer states, master weights
    and the activations saved for backward; fits or not on the accelerator. Mixtures of experts are as
    transformers >= 5 builds them (--experts fused), which bitsandbytes leaves unquantised."""
    from estimator.accelerators import accelerator as device_named
    from estimator.memory.activations import Checkpointing
    from estimator.memory.sizes import parse_bytes
    from estimator.memory.training import Optimizer, Precision
    from estimator.query import choice

    if micro_batch < 1 or gpus < 1:
        raise EstimatorError("--micro-batch and --gpus must be at least 1; give e.g. 1")
    options = {
        "micro_batch": micro_batch,
        "precision": choice(precision, Precision, "--precision"),
        "optimizer": choice(optimizer, Optimizer, "--optimizer"),
        "checkpointing": choice(checkpointing, Checkpointing, "--checkpointing"),
        "autocast": autocast,
        "gpus": gpus,
        "zero": zero,
    }
    device = device_named(accelerator)
    capacity = parse_bytes(memory, "--memory") if memory is not None else device.memory_bytes
    rows = plans(query, ways_of(way), options)
    device_name = f"{format_bytes(capacity, iec=True)} (--memory)" if memory is not None else device.display_name
    words = train_assumptions(query, options, device_name)
    words.insert(-2, per_layer_words(query, tuple(w for w, _, _ in rows), autocast))
    if estimated := [label for _, m, label in rows if not m.activations_exact]:
        words.insert(-2, f"Activations for {', '.join(estimated)}: an estimate from the same terms, not measured to "
                     "the byte for these layer kinds (windows and other norms change what SDPA and the norms save; "
                     "peft merges adapted fused experts in the forward pass, counted as one bf16 copy, and on twins "
                     "LoRA on experts saved 1-16% more than this estimate).")  # fmt: skip
    if query.spec.is_moe and query.experts.fused_weights:
        words.insert(1, "Experts fused, as transformers >= 5 builds them: bitsandbytes quantises only nn.Linear "
                     "modules, so QLoRA leaves the 3-D expert tensors in bf16 (measured).")  # fmt: skip
    if as_json:
        record = {
            "model": query.spec.name,
            "tokens": query.tokens,
            "memory_bytes": capacity,
            "accelerator": None if memory is not None else device.name,
            "ways": [way_record(w, m, label, capacity) for w, m, label in rows],
            "assumptions": words,
        }
        typer.echo(json.dumps(record, indent=2))
        return
    typer.echo(
        f"{query.spec.display_name} fine-tuned on sequences of {query.tokens:,} tokens, micro-batch {micro_batch}, "
        f"{gpus} GPU(s) at ZeRO stage {zero}, on {device_name}"
    )
    typer.echo("")
    table = [("per GPU, GiB", *(label for _, _, label in rows))]
    for field, name in COMPONENTS:
        table.append((name, *(_gib(getattr(m, field)) for _, m, _ in rows)))
    table.append(("total", *(_gib(m.total_bytes) for _, m, _ in rows)))
    table.append(
        (f"fits in {capacity / GiB:g} GiB", *("yes" if m.total_bytes <= capacity else "no" for _, m, _ in rows))
    )
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    for line in table:
        pairs = enumerate(zip(line, widths, strict=True))
        typer.echo("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in pairs).rstrip())
    typer.echo("")
    for word in words:
        say(word, "- ")


def way_record(way: Any, memory: Any, label: str, capacity: int) -> dict[str, Any]:
    """One way of fine-tuning in the JSON: every component per GPU in bytes, the total, whether it fits."""
    return {
        "way": way.value,
        "label": label,
        **{field: getattr(memory, field) for field, _ in COMPONENTS},
        "total_bytes": memory.total_bytes,
        "fits": memory.total_bytes <= capacity,
        "activations_exact": memory.activations_exact,
    }


def _gib(n: int) -> str:
    return "–" if n == 0 else f"{n / GiB:,.2f}"


def per_layer_words(query: Any, ways: tuple[Any, ...], autocast: bool) -> str:
    """Bytes each kind of layer saves per token, per way: 'full: 80 attention + MLP layers, 397,576 B/token'."""
    from estimator.memory.activations import layer_kinds, lora_ranks
    from estimator.memory.training import Way
    from estimator.stores.kinds import targets_of

    parts = []
    for way in dict.fromkeys(Way.full if w is Way.full else Way.lora for w in ways):
        ranks = None if way is Way.full else lora_ranks(targets_of(query), query.rank)
        kinds = ", ".join(f"{n} {kind} layers {token:,} B/token" for n, kind, token, _ in layer_kinds(query.spec, ranks,
                          autocast))  # fmt: skip
        parts.append(f"{'full fine-tuning' if way is Way.full else 'adapters'}: {kinds}")
    return "Saved per token and layer without checkpointing: " + "; ".join(parts) + " (2d per layer with it)."


def train_assumptions(query: Any, options: dict[str, Any], device: str) -> list[str]:
    from estimator.stores.kinds import targets_of

    autocast = "under torch.autocast(bf16) (HF Trainer's bf16=True)" if options["autocast"] else "without autocast"
    return [
        f"Adapters: LoRA/DoRA/QLoRA r={query.rank} on {targets_of(query).described}, trained in fp32 (peft keeps "
        "adapter weights in fp32); the frozen base in bf16, or NF4 with double quantisation for QLoRA "
        "(bitsandbytes; embeddings, head and norms stay bf16).",
        f"Full fine-tuning in {options['precision'].value} precision: mixed is bf16 weights and gradients with an "
        "fp32 master copy and fp32 optimizer states (the ZeRO paper's 16 bytes per parameter with AdamW).",
        f"Optimizer: {options['optimizer'].value}; torch keeps its states in the trained weights' dtype; "
        "bitsandbytes' 8-bit AdamW keeps two uint8 states with fp32 block scales (fp32 for tensors under 4,096).",
        f"Activations: the bytes transformers' code saves for backward with SDPA attention, {autocast}, "
        f"checkpointing {options['checkpointing'].value} (with it, one layer recomputed in backward is added), "
        "the loss in fp32 and the bf16 logits returned; measured to the byte on twins for dense attention, and "
        "for experts in full fine-tuning (`estimate validate --memory`); CUDA kernels' workspaces and the "
        "allocator's slack are not counted.",
        f"ZeRO stage {options['zero']} over {options['gpus']} GPU(s): stage 1 shards optimizer states and master "
        "weights, 2 also gradients, 3 (FSDP full shard) also weights; activations are per GPU.",
        f"Device: {device}, all of its memory.",
    ]
