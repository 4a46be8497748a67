"""``estimate validate``: measure with transformers and peft what the formulas predict (the validate extra),
printed through the one output seam (:class:`~estimator.present.validation.ValidationReport`)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from estimator.cli.app import app
from estimator.cli.options import query_command
from estimator.cli.output import emit, with_format
from estimator.errors import EstimatorError
from estimator.present.report import Format
from estimator.query.options import build_query

AllOpt = Annotated[bool, typer.Option("--all", help="Validate every zoo model.")]


@app.command("validate")
@query_command(default_model=None, defaults={"experts": "fused"}, build=False)
@with_format
def validate_command(
    all_models: AllOpt = False,
    memory: Annotated[
        bool, typer.Option("--memory", help="Check fine-tuning memory: activations, gradients, optimizer, QLoRA.")
    ] = False,
    *,
    fmt: Format,
    options: dict[str, Any],
) -> None:
    """Measure with transformers and peft what the formulas predict (needs the validate extra).

    Mixtures of experts are measured as transformers 5 builds them (--experts fused), with one
    per-expert block for the per-expert layout."""
    from estimator.validate import require_extra
    from estimator.zoo import load_all_specs

    if all_models and (options["model"] is not None or options["config"] is not None):
        raise EstimatorError("--all and a model exclude each other; give --all, or --model/--config, not both")
    queries = [build_query(options, spec=s) for s in load_all_specs()] if all_models else [build_query(options)]
    if any(q.spec.n_routed_experts is not None for q in queries) and options["experts"] != "fused":
        raise EstimatorError(
            "validate measures mixtures of experts as transformers 5 builds them (--experts fused); drop --experts"
        )
    from estimator.validate.hf import check_twin_memory

    for q in queries:
        check_twin_memory(q.with_(experts="fused") if q.spec.n_routed_experts is not None else q)
    require_extra()
    import resource

    from rich.console import Console
    from rich.progress import track

    from estimator.validate.checks import validate

    progress = Console(stderr=True)
    looped = track(queries, description="validating", transient=True, console=progress) if all_models else queries
    if memory:
        from estimator.validate.training import memory_validation

        results = [memory_validation(q.spec) for q in looped]
    else:
        results = [validate(q) for q in looped]
    peak_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    from estimator.present.validation import ValidationReport

    emit(ValidationReport(results, peak_bytes), fmt)
    if not all(r.ok for r in results):
        raise typer.Exit(1)
