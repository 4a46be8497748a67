"""The query's options (:data:`estimator.query.options.OPTIONS`) as typer options, and the decorator that gives
them all to a command.

A command decorated with :func:`query_command` receives ``query`` (a validated
:class:`~estimator.query.Query`); its own parameters come first, and a parameter of the same name as
a query option replaces that option (``sweep`` reads ``--tokens`` as a grid). ``tests/test_cli.py``
introspects the CLI and fails when a command that takes a query lacks one of these options.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from estimator.query.options import DEFAULT_MODEL, OPTION_NAMES, OPTIONS, Kind, Option, build_query, complete

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON; every key names its unit.")]
CsvOpt = Annotated[bool, typer.Option("--csv", help="One CSV row per mechanism.")]
_TYPES: dict[Kind, Any] = {Kind.text: str, Kind.integer: int, Kind.flag: bool, Kind.path: Path}


def annotation(option: Option) -> Any:
    """The typer parameter of one option of the question: its type, flags and help, as declared once in
    :data:`estimator.query.options.OPTIONS`."""
    base = _TYPES[option.kind]
    return Annotated[base | None if option.optional else base, typer.Option(*option.cli_flags, help=option.help)]


# name, annotation, default: the query's options in the order --help lists them.
QUERY_OPTIONS: tuple[tuple[str, Any, Any], ...] = tuple((o.name, annotation(o), o.default) for o in OPTIONS)


def query_command(
    *,
    default_model: str | None = DEFAULT_MODEL,
    defaults: dict[str, Any] | None = None,
    build: bool = True,
    only: tuple[str, ...] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command every query option. It is called with ``query`` (built and validated), or with
    ``options`` (the raw values, for a command that builds its queries itself) when ``build`` is False.

    ``default_model``: the model when neither --model nor --config is given (None: one is required);
    ``defaults``: other defaults for this command (``{"methods": "kv,lora,pretraining"}``);
    ``only``: the query options this command takes (the others keep their defaults, out of its --help).
    """
    chosen = dict(defaults or {})
    offered = OPTION_NAMES if only is None else only

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        own = inspect.signature(func, eval_str=True)
        kept = [p for p in own.parameters.values() if p.name not in ("query", "options")]
        taken = {p.name for p in kept}
        added = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=chosen.get(name, default), annotation=kind)
            for name, kind, default in QUERY_OPTIONS
            if name not in taken and name in offered
        ]
        names = [p.name for p in added]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = complete({name: kwargs.pop(name) for name in names}, offered, chosen)
            if not build:
                return func(*args, options=values, **kwargs)
            return func(*args, query=build_query(values, default_model), **kwargs)

        positional = [p for p in kept if p.kind is not inspect.Parameter.KEYWORD_ONLY]
        keyword = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in kept if p not in positional]
        wrapper.__signature__ = own.replace(parameters=[*positional, *keyword, *added])  # type: ignore[attr-defined]
        wrapper.query_options = tuple(offered)  # type: ignore[attr-defined]
        return wrapper

    return decorate
