"""``estimate``: the headline query, and what happens to its options when a subcommand follows them.

Bad input of any kind becomes one line on stderr, ``error: <problem>; <fix>``, and exit status 2
(:func:`estimator.cli.main.main`). The plain query imports neither numpy, pandas, matplotlib nor torch.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from estimator.cli.app import app
from estimator.cli.options import query_command
from estimator.cli.output import emit, with_format
from estimator.errors import EstimatorError, UnknownFamilyError
from estimator.present.report import Format
from estimator.query.options import build_query


def show_version(value: bool) -> None:
    """``--version``: the package's version (as in every JSON answer's ``estimator_version``), then stop."""
    if value:
        from estimator import __version__

        typer.echo(f"estimator {__version__}")
        raise typer.Exit()


VersionOpt = Annotated[
    bool, typer.Option("--version", help="Print the version and exit.", is_eager=True, callback=show_version)
]


def forward_to_subcommand(ctx: typer.Context, given: dict[str, Any]) -> None:
    """Options given before a subcommand apply to it (as its defaults); one it does not take is refused."""
    from typer._click.core import ParameterSource

    name = ctx.invoked_subcommand or ""
    command = ctx.command.get_command(ctx, name)  # type: ignore[attr-defined]
    accepted = {p.name for p in command.params} if command is not None else set()
    flags = {p.name: p.opts[0] for p in ctx.command.params}
    chosen = {k: v for k, v in given.items() if ctx.get_parameter_source(k) is ParameterSource.COMMANDLINE}
    for key in chosen:
        if key not in accepted:
            raise EstimatorError(
                f"{flags[key]} does not apply to `estimate {name}`; drop it, or see `estimate {name} --help`"
            )
    if chosen:
        ctx.default_map = {name: chosen}


@app.callback()
@query_command(default_model=None, build=False)
@with_format
def headline(
    ctx: typer.Context,
    version: VersionOpt = False,
    *,
    fmt: Format,
    options: dict[str, Any],
) -> None:
    """Compare the KV cache, adapters, full fine-tuning and pretraining for one model and token count."""
    if ctx.invoked_subcommand is not None:
        forward_to_subcommand(ctx, dict(ctx.params))  # the options as given, --format and its aliases too
        return
    from estimator.compare import evaluate
    from estimator.present.estimate import EstimateReport

    try:
        query = build_query(options)
    except UnknownFamilyError as unknown:  # no family knows it: measure it from transformers, or say what it needs
        from estimator.cli.measured import measured_query

        measured_query(unknown, options, fmt)
        return
    warn_full_rank(query)
    est = evaluate(query)
    emit(EstimateReport(est, checkpoint_check(est.spec)), fmt)


def warn_full_rank(query: Any) -> None:
    """A rank beyond full rank that the query allows (``--allow-beyond-full-rank``): said on stderr."""
    if query.beyond_full_rank:
        typer.echo(f"warning: {query.full_rank_note()}", err=True)


def checkpoint_check(spec: Any) -> Any:
    """The cross-check of a model read from a local folder or GGUF file with its tensor table; else None."""
    if not spec.source.startswith("file://"):
        return None
    from estimator.checkpoint.crosscheck import folder_check

    return folder_check(spec)
