"""``estimate breakeven``: when fine-tuning pays for itself, in FLOPs and in time on an accelerator; a
thin wrapper over :mod:`estimator.cost`, printed through the one output seam
(:class:`~estimator.present.breakeven.BreakevenReport`)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from estimator.cli.app import app
from estimator.cli.options import query_command
from estimator.cli.output import emit, with_format
from estimator.cost import EXPOSURES_FOR_CAPACITY, breakeven_method
from estimator.errors import EstimatorError
from estimator.present.report import Format
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
@with_format
def breakeven_command(
    finetune: Annotated[str, typer.Option(help="lora (4N + 6P per token) or full (6N).")] = "lora",
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
    *,
    fmt: Format,
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
    kind = breakeven_method(finetune)
    runs = [breakeven(est, epochs, augmentation, query_tokens, generated_tokens, kind, train_sequence_tokens)]
    if epochs * augmentation < EXPOSURES_FOR_CAPACITY:  # the regime the capacity constants assume
        epochs_1k = capacity_epochs(augmentation)
        runs.append(
            breakeven(est, epochs_1k, augmentation, query_tokens, generated_tokens, kind, train_sequence_tokens)
        )
    times = [breakeven_time(run, device, batch) for run in runs]
    from estimator.present.breakeven import BreakevenReport

    emit(BreakevenReport(runs, times, count), fmt)
