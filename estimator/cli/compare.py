"""``estimate compare``: several models (zoo names and config.json files) side by side at several token
counts; the answer is a :class:`~estimator.present.comparison.ComparisonReport`, printed as a table, JSON, CSV
or Markdown by :func:`~estimator.cli.output.emit`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from estimator.cli.app import app
from estimator.cli.headline import warn_full_rank
from estimator.cli.options import query_command
from estimator.cli.output import emit, with_format
from estimator.present.report import Format
from estimator.query.commands import COMPARE

ConfigsOpt = Annotated[
    list[Path] | None,
    typer.Option("--config", "-c", help="A config.json to compare (repeat for several); named as in `estimate`."),
]


@app.command("compare")
@query_command(command=COMPARE, build=False)
@with_format
def compare_command(
    config: ConfigsOpt = None,
    *,
    fmt: Format,
    options: dict[str, Any],
    settings: dict[str, Any],
) -> None:
    """Models side by side at each token count: KV and state bytes per token, tokens held, LoRA bytes,
    KV ÷ LoRA, crossover, parity rank and context window; every other option as in `estimate`."""
    from estimator.present.comparison import ComparisonReport
    from estimator.present.comparison_answer import compared

    estimates, skipped = compared(settings["model"], config, settings["tokens"], options)
    for est in estimates:
        warn_full_rank(est.query)
    report = ComparisonReport(estimates, skipped)
    if report.left_out and fmt in (Format.json, Format.csv):  # on stderr, so JSON and CSV stay one document
        typer.echo(report.left_out, err=True)
    emit(report, fmt)
