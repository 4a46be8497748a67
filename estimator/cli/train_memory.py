"""``estimate train-memory``: memory per GPU to fine-tune with LoRA, DoRA, QLoRA or in full: the persistent
part (weights, master weights, optimizer states) and the peak of a step, phase by phase (the loss at the start
of backward, the layers' backward, the optimizer step), under data parallelism with ZeRO sharding; fits or
not on the accelerator, the longest sequence and the largest micro-batch that fit."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from estimator.cli.app import app, say
from estimator.cli.options import JsonOpt, query_command
from estimator.cli.serve_memory import AcceleratorOpt, MemoryOpt
from estimator.errors import EstimatorError
from estimator.query.options import TRAINING_OPTIONS
from estimator.units import format_bytes

GiB = 2**30
TOKEN_LIMIT = 10_000_000  # the longest sequence searched for
PERSISTENT = (  # (field, row label): held between steps
    ("frozen_weights_bytes", "frozen weights"),
    ("trainable_weights_bytes", "trainable weights"),
    ("master_weights_bytes", "fp32 master weights"),
    ("optimizer_bytes", "optimizer states"),
)
COMPONENTS = (*PERSISTENT, ("gradient_bytes", "gradients"), ("activation_bytes", "activations"),
              ("logits_bytes", "logits (bf16)"))  # fmt: skip


LABELS = {"lora": "LoRA", "dora": "DoRA", "qlora": "QLoRA", "full": "full"}


def ways_of(text: str) -> tuple[Any, ...]:
    from estimator.memory.training import Way
    from estimator.query import choice

    words = [w for w in (part.strip() for part in text.split(",")) if w]
    if not words:
        raise EstimatorError("--way is empty; give e.g. lora,qlora,full")
    return tuple(dict.fromkeys(choice(w, Way, "--way") for w in words))


def plans(query: Any, ways: tuple[Any, ...], options: dict[str, Any]) -> list[tuple[Any, Any, str]]:
    """(way, TrainSetup, label) for each way of fine-tuning the query's model."""
    from estimator.memory.activations import lora_ranks
    from estimator.memory.training import TrainSetup, Way, adapter_tensor_sizes, full_tensor_sizes
    from estimator.stores.kinds import targets_of

    out = []
    fused = query.experts.fused_weights
    outside = query.whole_model[1] if query.part == "all" else {}  # --part all: the tower and projector
    for way in ways:
        ranks = None
        if way is Way.full:  # each part outside the language model one tensor (see outside_words)
            sizes, label = (*full_tensor_sizes(query.spec, fused), *outside.values()), "full"
        else:
            targets = targets_of(query)
            sizes = adapter_tensor_sizes(targets, query.rank, magnitudes=way is Way.dora)
            ranks = lora_ranks(targets, query.rank)
            label = f"{LABELS[way.value]} r={query.rank}"
        own = {k: v for k, v in options.items() if way is Way.qlora or k != "kbit_prepare"}
        setup = TrainSetup(way, sizes, query.tokens, ranks, **own, fused_experts=fused,
                           outside_params=sum(outside.values()))  # fmt: skip
        out.append((way, setup, label))
    return out


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
    as_json: JsonOpt = False,
    *,
    query: Any,
) -> None:
    """Memory per GPU to fine-tune: the weights, master weights and optimizer states held between steps, and the
    peak of a step (the loss's tensors at the start of backward, the recomputed layer, gradients, the optimizer
    step); fits or not, the longest sequence and the largest micro-batch that fit. Mixtures of experts are as
    transformers >= 5 builds them (--experts fused), which bitsandbytes leaves unquantised."""
    settings = {k: v for k, v in locals().items() if k not in ("query", "as_json")}
    from estimator.present.words import query_part_words

    rows, words, record, device_name = train_report(query, **settings)
    if as_json:
        typer.echo(json.dumps(record, indent=2))
        return
    typer.echo(
        f"{query.spec.display_name} fine-tuned on sequences of {query.tokens:,} tokens, micro-batch {micro_batch}, "
        f"{gpus} GPU(s) at ZeRO stage {zero}, on {device_name}{query_part_words(query)}"
    )
    typer.echo("")
    for line in table_lines(rows, record["memory_bytes"], query.tokens):
        typer.echo(line)
    typer.echo("")
    for word in words:
        say(word, "- ")


# fmt: off
def train_report(query: Any, *, way: str, micro_batch: int, optimizer: str, precision: str, checkpointing: str,
                 loss: str, loss_chunk: int, kbit_prepare: bool, lora_dropout: float, offload: str, autocast: bool,
                 gpus: int, zero: int, accelerator: str, memory: str | None) -> tuple[list[Any], list[str], Any, str]:
    # fmt: on
    """(rows, assumptions, the ``--json`` record, the device's words) of ``estimate train-memory``."""
    from estimator.accelerators import accelerator as device_named
    from estimator.memory.activations import Checkpointing
    from estimator.memory.loss import Loss
    from estimator.memory.sizes import parse_bytes
    from estimator.memory.training import Offload, Optimizer, Precision
    from estimator.present.words import part_counted
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
        "loss": choice(loss, Loss, "--loss"),
        "loss_chunk": loss_chunk,
        "kbit_prepare": kbit_prepare,
        "lora_dropout": lora_dropout,
        "offload": choice(offload, Offload, "--offload"),
    }
    device = device_named(accelerator)
    usable = getattr(device, "usable_memory_bytes", device.memory_bytes)
    capacity = parse_bytes(memory, "--memory") if memory is not None else usable
    rows = [
        (w, *outcome(query.spec, setup, capacity), label) for w, setup, label in plans(query, ways_of(way), options)
    ]
    if memory is not None:
        device_name = f"{format_bytes(capacity, iec=True)} (--memory)"
    elif usable != device.memory_bytes:
        device_name = f"{device.display_name}, {format_bytes(capacity, iec=True)} usable (what torch reports)"
    else:
        device_name = f"{device.display_name}, all of its {format_bytes(capacity, iec=True)} (no usable size recorded)"
    words = train_assumptions(query, options, device_name)
    words.insert(-2, per_layer_words(query, tuple(w for w, *_ in rows), autocast))
    if estimated := [label for _, _, peak, *_, label in rows if not peak.memory.activations_exact]:
        words.insert(-2, f"Activations for {', '.join(estimated)}: an estimate from the same terms, not measured to "
                     "the byte for these layer kinds (windows and other norms change what SDPA and the norms save; "
                     "peft merges adapted fused experts in the forward pass, counted as one bf16 copy, and on twins "
                     "LoRA on experts saved 1-16% more than this estimate).")  # fmt: skip
    if query.spec.is_moe and query.experts.fused_weights:
        words.insert(1, "Experts fused, as transformers >= 5 builds them: bitsandbytes quantises only nn.Linear "
                     "modules, so QLoRA leaves the 3-D expert tensors in bf16 (measured).")  # fmt: skip
    if kbit_prepare and checkpointing == "none" and any(w.value == "qlora" for w, *_ in rows):
        words.insert(1, KBIT_NO_CHECKPOINTS)
    window = query.spec.max_position_embeddings
    if any(longest > window for *_, longest, _, _ in rows):
        words.append(f"The longest sequences beyond {window:,} tokens exceed the model's context window: they fit in "
                     "memory, but the model was not trained on positions that far.")  # fmt: skip
    if query.part == "all" and query.whole_model[1]:
        words.insert(-2, outside_words(query.whole_model[1], kbit_prepare))
    record = {
        "model": query.spec.name,
        "params": query.counted_params,
        "part": query.part,
        "part_counted": part_counted(query),
        "tokens": query.tokens,
        "memory_bytes": capacity,
        "accelerator": None if memory is not None else device.name,
        "ways": [way_record(w, peak, label, capacity, longest, most) for w, _, peak, longest, most, label in rows],
        "assumptions": words,
    }
    return rows, words, record, device_name


def outcome(spec: Any, setup: Any, capacity: int) -> tuple[Any, Any, int, int]:
    """(setup, TrainPeak, longest sequence, largest micro-batch) of one way on a device of ``capacity`` bytes."""
    from estimator.memory.peak import largest_micro_batch, longest_tokens, train_peak

    longest = longest_tokens(spec, setup, capacity, TOKEN_LIMIT)
    return setup, train_peak(spec, setup), longest, largest_micro_batch(spec, setup, capacity)


def table_lines(rows: list[Any], capacity: int, tokens: int) -> list[str]:
    """The table, its columns padded: the first to the left, the rest right."""
    table = table_cells(rows, capacity, tokens)
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    return [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in table
    ]


def table_cells(rows: list[Any], capacity: int, tokens: int) -> list[tuple[str, ...]]:
    """The table: the persistent rows, then the deciding phase's parts, the peak and the verdicts."""
    table = [("per GPU, GiB", *(label for *_, label in rows))]
    for field, name in PERSISTENT:
        table.append((name, *(_gib(getattr(peak.memory, field)) for _, _, peak, *_ in rows)))
    table.append(("held between steps", *(_gib(peak.persistent_bytes) for _, _, peak, *_ in rows)))
    parts = list(dict.fromkeys(part for _, _, peak, *_ in rows for part in peak.parts[peak.phase]))
    for part in parts:
        table.append((f"+ {part}", *(_gib(peak.parts[peak.phase].get(part, 0)) for _, _, peak, *_ in rows)))
    table.append(("peak of a step", *(_gib(peak.peak_bytes) for _, _, peak, *_ in rows)))
    table.append(("  at", *(PHASE_WORDS[peak.phase] for _, _, peak, *_ in rows)))
    if any(peak.memory.off_gpu_bytes for _, _, peak, *_ in rows):
        table.append(("off the GPU (paged/CPU)", *(_gib(peak.memory.off_gpu_bytes) for _, _, peak, *_ in rows)))
    table.append((f"fits in {capacity / GiB:,.2f} GiB", *("yes" if p.peak_bytes <= capacity else "no"
                                                          for _, _, p, *_ in rows)))  # fmt: skip
    table.append(("longest sequence (tokens)", *(f"{longest:,}" for *_, longest, _, _ in rows)))
    table.append((f"largest micro-batch at {tokens:,}", *(f"{most:,}" for *_, most, _ in rows)))
    return table


PHASE_WORDS = {
    "forward": "the loss's forward",
    "loss": "loss, backward start",
    "layers": "layers' backward",
    "optimizer": "optimizer step",
}


def way_record(way: Any, peak: Any, label: str, capacity: int, longest: int, most: int) -> dict[str, Any]:
    """One way of fine-tuning in the JSON: every component per GPU in bytes, each phase of the step and its parts,
    the peak, whether it fits, the longest sequence and the largest micro-batch that fit."""
    memory = peak.memory
    return {
        "way": way.value,
        "label": label,
        **{field: getattr(memory, field) for field, _ in COMPONENTS},
        "off_gpu_bytes": memory.off_gpu_bytes,
        "persistent_bytes": peak.persistent_bytes,
        "phases_bytes": peak.phases,
        "phase_parts_bytes": peak.parts,
        "peak_phase": peak.phase,
        "peak_bytes": peak.peak_bytes,
        "fits": peak.peak_bytes <= capacity,
        "longest_tokens": longest,
        "largest_micro_batch": most,
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
    kbit = (
        "peft's prepare_model_for_kbit_training casts embeddings, head and norms to fp32 (--no-kbit-prepare leaves "
        "them bf16), so the residual stream is fp32 and each checkpointed layer input 4d bytes per token"
        if options["kbit_prepare"]
        else "embeddings, head and norms stay bf16 (--no-kbit-prepare)"
    )
    loss = options["loss"].described.format(chunk=options["loss_chunk"])
    return [
        f"Adapters: LoRA/DoRA/QLoRA r={query.rank} on {targets_of(query).described}, trained in fp32 (peft keeps "
        "adapter weights in fp32), lora_dropout "
        f"{options['lora_dropout']:g}{DROPOUT_WORDS if options['lora_dropout'] else ''}"
        f"; the frozen base in bf16, or NF4 with double quantisation for QLoRA (bitsandbytes; {kbit}).",
        f"Peak of a step: the largest of four phases above what is held between steps. Loss: {loss}; at the start "
        "of backward its saved log-softmax and two gradients are alive at once (measured to the byte under "
        "FakeTensorMode, `estimate validate --memory`). Layers: what is still saved, the recomputed layer, the "
        "gradients in flight inside it and, for QLoRA, bitsandbytes' bf16 copy of the largest NF4 matrix (an "
        "estimate). Forward: the logits, their fp32 copy (and 4.43-4.47's shifted copy at micro-batch > 1), the "
        "log-softmax and autocast's bf16 copies of the adapters. Optimizer: the gradients (torch's fused AdamW and "
        "bitsandbytes' kernels add no transients). One micro-batch per step (gradients freed after each step); "
        "the allocator's slack and CUDA workspaces are not counted.",
        f"Full fine-tuning in {options['precision'].value} precision: mixed is bf16 weights and gradients with an "
        "fp32 master copy and fp32 optimizer states (the ZeRO paper's 16 bytes per parameter with AdamW).",
        f"Optimizer: {options['optimizer'].value}; torch keeps its states in the trained weights' dtype; "
        "bitsandbytes' 8-bit AdamW keeps two uint8 states with fp32 block scales (fp32 for tensors under 4,096); "
        "its paged variants keep them in CUDA unified memory, outside torch's allocator (not counted on the GPU). "
        + OFFLOAD_WORDS[options["offload"].value],
        f"Saved for backward: the bytes transformers' code saves with SDPA attention, {autocast}, checkpointing "
        f"{options['checkpointing'].value} (with it, each layer's input, and one layer recomputed in backward); "
        "measured to the byte on twins for dense attention, and for experts in full fine-tuning (`estimate "
        "validate --memory`). The bf16 logits the model returns are freed before backward (HF Trainer keeps only "
        "the loss).",
        f"ZeRO stage {options['zero']} over {options['gpus']} GPU(s): stage 1 shards optimizer states and master "
        "weights, 2 also gradients, 3 (FSDP full shard) also weights; activations are per GPU.",
        f"Device: {device}; the longest sequence is found by bisection up to {TOKEN_LIMIT:,} tokens.",
    ]


def outside_words(parts: dict[str, int], kbit_prepare: bool) -> str:
    """The assumption behind a multimodal checkpoint's parts outside its language model (``--part all``)."""
    listed = " and ".join(f"{name} {count:,}" for name, count in parts.items())
    qlora = "cast to fp32 by prepare_model_for_kbit_training" if kbit_prepare else "bf16 (--no-kbit-prepare)"
    return (
        f"Whole model (--part all): the parts outside the language model ({listed} parameters) are trained by full "
        "fine-tuning (their weights, gradients, master weights and optimizer states; each part one tensor for the "
        "optimizer's per-tensor terms) and frozen under the adapters, which stay on the language model: bf16, and "
        "for QLoRA assumed left unquantised (bitsandbytes' llm_int8_skip_modules naming the tower and projector; "
        f"quantised, they would hold less), {qlora}. Activations are "
        "the language model's on text alone: images add the tower's activations and their tokens, not counted."
    )


KBIT_NO_CHECKPOINTS = (
    "QLoRA without checkpointing: prepare_model_for_kbit_training turns checkpointing on by default; with it off, "
    "the fp32 residual stream's saved bytes are counted as for bf16 hidden states (an underestimate, not measured); "
    "give --checkpointing layers as the recipe runs."
)
DROPOUT_WORDS = " (a 1-byte mask per adapted input element, as CUDA's native_dropout keeps)"
OFFLOAD_WORDS = {
    "none": "No CPU offload.",
    "optimizer": "Offload optimizer: optimizer states and fp32 master weights on the CPU (DeepSpeed ZeRO-Offload).",
    "params": "Offload params: parameters, gradients and optimizer states on the CPU (FSDP CPUOffload); the GPU "
    "holds two layers' share of the weights (in use and prefetched) and one layer's gradients, an estimate.",
}
