"""The only writer of results: :func:`emit` prints a :class:`~estimator.present.report.Report` in the format
asked for with ``--format table|json|csv|markdown`` (``--json``, ``--csv`` and ``--markdown`` are kept as its
aliases). Everything else a command writes is a warning on stderr."""

from __future__ import annotations

import csv
import functools
import inspect
import json
import sys
from collections.abc import Callable
from typing import Annotated, Any, TextIO

import typer

from estimator.cli.app import say
from estimator.errors import EstimatorError
from estimator.present.report import Format, Report, Streamed

FormatOpt = Annotated[
    Format | None,
    typer.Option("--format", help="Output: table (for a person), json (every key names its unit), csv, markdown."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Same as --format json.")]
CsvOpt = Annotated[bool, typer.Option("--csv", help="Same as --format csv.")]
MarkdownOpt = Annotated[bool, typer.Option("--markdown", help="Same as --format markdown.")]


def chosen_format(fmt: Format | None, as_json: bool = False, as_csv: bool = False, markdown: bool = False) -> Format:
    """The format of ``--format`` or of one of its aliases; two that disagree are refused in one line."""
    asked = {f for f, on in ((Format.json, as_json), (Format.csv, as_csv), (Format.markdown, markdown)) if on}
    if fmt is not None:
        asked.add(fmt)
    if len(asked) > 1:
        names = " and ".join(sorted(f.value for f in asked))
        raise EstimatorError(f"output formats {names} exclude each other; give one --format (--json, --csv and "
                             "--markdown are its aliases)")  # fmt: skip
    return asked.pop() if asked else Format.table


FORMAT_OPTIONS: tuple[tuple[str, Any, Any], ...] = (
    ("output", FormatOpt, None),
    ("as_json", JsonOpt, False),
    ("as_csv", CsvOpt, False),
    ("markdown", MarkdownOpt, False),
)


def with_format(func: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command ``--format`` and its aliases (``--json``, ``--csv``, ``--markdown``), read once into the
    ``fmt`` it is called with (two that disagree are one line)."""
    signature = inspect.signature(func, eval_str=True)
    kept = [p for p in signature.parameters.values() if p.name != "fmt"]
    added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind)
             for name, kind, default in FORMAT_OPTIONS]  # fmt: skip

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return func(*args, fmt=chosen_format(*(kwargs.pop(name) for name, _, _ in FORMAT_OPTIONS)), **kwargs)

    positional = [p for p in kept if p.kind is not inspect.Parameter.KEYWORD_ONLY]
    keyword = [p for p in kept if p.kind is inspect.Parameter.KEYWORD_ONLY]
    wrapper.__signature__ = signature.replace(parameters=[*positional, *added, *keyword])  # type: ignore[attr-defined]
    return wrapper


def emit(report: Report, fmt: Format) -> None:
    """Print ``report`` in ``fmt``: the one place an answer is written to stdout."""
    match fmt:
        case Format.json | Format.csv:
            write(report, fmt, sys.stdout)
        case Format.markdown:
            typer.echo(report.markdown())
        case Format.table:
            for block in report.text():
                if block.wrap:
                    say(block.body, bullet=block.bullet)
                else:
                    typer.echo(block.body)
        case _:
            from typing import assert_never

            assert_never(fmt)


def write(report: Report, fmt: Format, stream: TextIO) -> None:
    """Write ``report`` as one JSON or CSV document to ``stream``: stdout (through :func:`emit`) or the file a
    command's ``--out`` names. A :class:`~estimator.present.report.Streamed` report writes its own JSON."""
    if fmt is Format.json and isinstance(report, Streamed):
        report.write_json(stream)
    elif fmt is Format.json:
        stream.write(json.dumps(report.record(), indent=2, allow_nan=False) + "\n")
    elif fmt is Format.csv:
        csv.writer(stream, lineterminator="\n").writerows(report.rows())
    else:
        raise EstimatorError(f"a {fmt.value} answer is no file; name the file .csv or .json")
