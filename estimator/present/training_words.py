"""The fine-tuning answer's assumptions in words: the adapters and the frozen base, the peak's phases, precision
and optimizer, what is saved for backward, ZeRO, the device, and the parts of a multimodal checkpoint."""

from __future__ import annotations

from typing import Any

TOKEN_LIMIT = 10_000_000  # the longest sequence searched for


def per_layer_words(query: Any, setups: tuple[Any, ...], autocast: bool) -> str:
    """Bytes each kind of layer saves per token, adapters and full fine-tuning apart, in the order ``setups`` name
    them: 'full fine-tuning: 80 attention + MLP layers 397,576 B/token'."""
    from estimator.memory.activations import layer_kinds, lora_ranks
    from estimator.stores.kinds import targets_of

    parts = []
    for adapted in dict.fromkeys(setup.adapted for setup in setups):
        ranks = lora_ranks(targets_of(query), query.rank) if adapted else None
        kinds = ", ".join(f"{n} {kind} layers {token:,} B/token" for n, kind, token, _ in layer_kinds(query.spec, ranks,
                          autocast))  # fmt: skip
        parts.append(f"{'adapters' if adapted else 'full fine-tuning'}: {kinds}")
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
