"""``estimate validate``: measure with transformers and peft what the formulas predict (the validate extra)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from estimator.cli.app import app, say
from estimator.cli.options import JsonOpt, query_command
from estimator.errors import EstimatorError
from estimator.query.options import build_query

AllOpt = Annotated[bool, typer.Option("--all", help="Validate every zoo model.")]
MARKS = {"ok": "✔", "differs": "✗", "explained": "✔*"}


@app.command("validate")
@query_command(default_model=None, defaults={"experts": "fused"}, build=False)
def validate_command(
    all_models: AllOpt = False,
    memory: Annotated[
        bool, typer.Option("--memory", help="Check fine-tuning memory: activations, gradients, optimizer, QLoRA.")
    ] = False,
    as_json: JsonOpt = False,
    *,
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
    if as_json:
        typer.echo(json.dumps(validation_record(results, peak_bytes), indent=2))
    else:
        print_validations(results, peak_bytes)
    if not all(r.ok for r in results):
        raise typer.Exit(1)


def print_validations(results: list[Any], peak_bytes: int) -> None:
    from estimator.units import format_bytes

    for result in results:
        print_validation(result)
    if len(results) > 1:
        failed = [r.spec.name for r in results if not r.ok]
        say(
            f"{len(results)} models, {sum(len(r.checks) for r in results)} checks: "
            + ("all agree." if not failed else f"disagreements in {', '.join(failed)}.")
        )
    total = sum(r.seconds for r in results)
    say(results[0].versions.line())
    say(f"Validated in {total:.1f} s; peak memory of this process {format_bytes(peak_bytes, iec=True)} (RSS).")


def print_validation(result: Any) -> None:
    from estimator.present.tables import format_table
    from estimator.units import format_number

    def show(value: object) -> str:
        return format_number(value) if isinstance(value, int | float) else str(value)

    say(f"{result.spec.display_name} ({result.spec.name}): estimate against transformers and peft")
    body = [[c.quantity, show(c.estimate), show(c.measured), c.difference, MARKS[c.status]] for c in result.checks]
    typer.echo(format_table(["quantity", "estimate", "measured", "difference", ""], body, right={1, 2, 3}))
    for check in (c for c in result.checks if c.note):
        say(f"{MARKS[check.status]} {check.quantity}: {check.note}", bullet="- ")
    say("How it was measured:")
    for line in result.method:
        say(line, bullet="- ")
    typer.echo("")


def validation_record(results: list[Any], peak_bytes: int) -> dict[str, Any]:
    """``validate --json``: the versions measured with, and every check of every model."""
    versions = results[0].versions
    return {
        "versions": versions.installed,
        "tested_versions": versions.tested,
        "outside_tested_versions": list(versions.outside),
        "versions_note": versions.line(),
        "ok": all(r.ok for r in results),
        "seconds": sum(r.seconds for r in results),
        "peak_rss_bytes": peak_bytes,
        "models": [
            {
                "name": r.spec.name,
                "display_name": r.spec.display_name,
                "ok": r.ok,
                "seconds": r.seconds,
                "checks": [
                    {
                        "quantity": c.quantity,
                        "estimate": c.estimate,
                        "measured": c.measured,
                        "status": c.status,
                        "note": c.note,
                    }
                    for c in r.checks
                ],
                "method": list(r.method),
            }
            for r in results
        ],
    }
