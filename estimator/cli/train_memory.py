"""``estimate train-memory``: memory per GPU to fine-tune with LoRA, DoRA, QLoRA or in full: the persistent
part (weights, master weights, optimizer states) and the peak of a step, phase by phase (the loss at the start
of backward, the layers' backward, the optimizer step), under data parallelism with ZeRO sharding; fits or
not on the accelerator, the longest sequence and the largest micro-batch that fit."""

from __future__ import annotations

from typing import Any

from estimator.cli.app import app
from estimator.cli.options import query_command
from estimator.cli.output import emit, with_format
from estimator.present.report import Format
from estimator.query.commands import TRAIN_MEMORY


@app.command("train-memory")
@query_command(command=TRAIN_MEMORY)
@with_format
def train_memory_command(
    *,
    fmt: Format,
    query: Any,
    settings: dict[str, Any],
) -> None:
    """Memory per GPU to fine-tune: the weights, master weights and optimizer states held between steps, and the
    peak of a step (the loss's tensors at the start of backward, the recomputed layer, gradients, the optimizer
    step); fits or not, the longest sequence and the largest micro-batch that fit. Mixtures of experts are as
    transformers >= 5 builds them (--experts fused), which bitsandbytes leaves unquantised."""
    from estimator.present.training_answer import train_report

    emit(train_report(query, **settings), fmt)
