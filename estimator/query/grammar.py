"""How a command line gives each option (typer's declaration of an :class:`~estimator.query.options.Option`:
its type, flags and help), shared by the faces that read command-line values: the CLI's commands and the web
API's panels, which parse a client's values with the same parser, so each refusal is the same line."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated, Any

import typer

from estimator.query.options import OPTIONS, Kind, Option

_TYPES: dict[Kind, Any] = {Kind.text: str, Kind.integer: int, Kind.number: float, Kind.flag: bool, Kind.path: Path}


def annotation(option: Option) -> Any:
    """The typer parameter of ``option``: its type (``T | None`` where None is a value), flags and help."""
    base = _TYPES[option.kind]
    return Annotated[base | None if option.optional else base, typer.Option(*option.cli_flags, help=option.help)]


def parameters(
    own: tuple[Option, ...], offered: tuple[str, ...], defaults: dict[str, Any], taken: set[str]
) -> list[inspect.Parameter]:
    """Keyword parameters for a command: its ``own`` options, then the query's ``offered`` options (at the
    command's ``defaults``), leaving out the names in ``taken`` (parameters the command declares itself)."""
    chosen = [*own, *(o for o in OPTIONS if o.name in offered and o.name not in {m.name for m in own})]
    return [
        inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY, default=defaults.get(o.name, o.default),
                          annotation=annotation(o))
        for o in chosen
        if o.name not in taken
    ]  # fmt: skip
