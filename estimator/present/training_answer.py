"""The fine-tuning answer gathered: ``train-memory``'s options read, each way of fine-tuning planned
(:class:`~estimator.memory.training.TrainSetup`), its peak, longest sequence and largest micro-batch found on
the device, into one :class:`~estimator.present.training.TrainingReport` that the CLI and the web API print."""

from __future__ import annotations

from typing import Any, assert_never

from estimator.errors import EstimatorError
from estimator.present.training import TrainingReport, way_record
from estimator.present.training_words import (
    KBIT_NO_CHECKPOINTS,
    TOKEN_LIMIT,
    outside_words,
    per_layer_words,
    train_assumptions,
)
from estimator.units import format_bytes

LABELS = {"lora": "LoRA", "dora": "DoRA", "qlora": "QLoRA", "full": "full"}


def ways_of(text: str) -> tuple[Any, ...]:
    """``--way``'s comma list as (method, quantised base) pairs, each once
    (:func:`~estimator.memory.training.read_way`)."""
    from estimator.memory.training import read_way

    words = [w for w in (part.strip() for part in text.split(",")) if w]
    if not words:
        raise EstimatorError("--way is empty; give e.g. lora,qlora,full")
    return tuple(dict.fromkeys(read_way(w) for w in words))


def plans(query: Any, ways: tuple[Any, ...], options: dict[str, Any]) -> list[tuple[str, Any, str]]:
    """(way's word, TrainSetup, label) for each (method, quantised base) of fine-tuning the query's model."""
    from estimator.memory.activations import lora_ranks
    from estimator.memory.training import TrainSetup
    from estimator.query.vocabulary import Method
    from estimator.stores import STORES
    from estimator.stores.kinds import targets_of

    out = []
    fused = query.experts.fused_weights
    outside = query.whole_model[1] if query.part == "all" else {}  # --part all: the tower and projector
    for method, quantised in ways:
        sizes = STORES[method].tensors(query)  # each part outside the language model one tensor (outside_words)
        match method:
            case Method.full:
                ranks = None
            case Method.lora | Method.dora:
                ranks = lora_ranks(targets_of(query), query.rank)
            case _:
                assert_never(method)
        own = {k: v for k, v in options.items() if quantised or k != "kbit_prepare"}
        setup = TrainSetup(method, sizes, query.tokens, ranks, quantised_base=quantised, **own, fused_experts=fused,
                           outside_params=sum(outside.values()))  # fmt: skip
        label = f"{LABELS[setup.way]} r={query.rank}" if setup.adapted else "full"
        out.append((setup.way, setup, label))
    return out


# fmt: off
def train_report(query: Any, *, way: str, micro_batch: int, optimizer: str, precision: str, checkpointing: str,
                 loss: str, loss_chunk: int, kbit_prepare: bool, lora_dropout: float, offload: str, autocast: bool,
                 gpus: int, zero: int, accelerator: str, memory: str | None) -> TrainingReport:
    # fmt: on
    """``estimate train-memory``'s answer for ``query`` and the command's own options."""
    from estimator.accelerators import accelerator as device_named
    from estimator.memory.activations import Checkpointing
    from estimator.memory.loss import Loss
    from estimator.memory.sizes import parse_bytes
    from estimator.memory.training import Offload, Optimizer, Precision
    from estimator.present.words import part_counted, query_part_words
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
    words.insert(-2, per_layer_words(query, tuple(setup for _, setup, *_ in rows), autocast))
    if estimated := [label for _, _, peak, *_, label in rows if not peak.memory.activations_exact]:
        words.insert(-2, f"Activations for {', '.join(estimated)}: an estimate from the same terms, not measured to "
                     "the byte for these layer kinds (windows and other norms change what SDPA and the norms save; "
                     "peft merges adapted fused experts in the forward pass, counted as one bf16 copy, and on twins "
                     "LoRA on experts saved 1-16% more than this estimate).")  # fmt: skip
    if query.spec.is_moe and query.experts.fused_weights:
        words.insert(1, "Experts fused, as transformers >= 5 builds them: bitsandbytes quantises only nn.Linear "
                     "modules, so QLoRA leaves the 3-D expert tensors in bf16 (measured).")  # fmt: skip
    if kbit_prepare and checkpointing == "none" and any(setup.quantised_base for _, setup, *_ in rows):
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
    headline = (
        f"{query.spec.display_name} fine-tuned on sequences of {query.tokens:,} tokens, micro-batch {micro_batch}, "
        f"{gpus} GPU(s) at ZeRO stage {zero}, on {device_name}{query_part_words(query)}"
    )
    return TrainingReport(headline, rows, capacity, query.tokens, words, record)


def outcome(spec: Any, setup: Any, capacity: int) -> tuple[Any, Any, int, int]:
    """(setup, TrainPeak, longest sequence, largest micro-batch) of one way on a device of ``capacity`` bytes."""
    from estimator.memory.peak import largest_micro_batch, longest_tokens, train_peak

    longest = longest_tokens(spec, setup, capacity, TOKEN_LIMIT)
    return setup, train_peak(spec, setup), longest, largest_micro_batch(spec, setup, capacity)
