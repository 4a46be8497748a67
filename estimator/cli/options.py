"""The query's options (:data:`estimator.query.options.OPTIONS`) and a command's own
(:mod:`estimator.query.commands`) as typer options (:mod:`estimator.query.grammar`), and the decorator that gives
them to a command.

A command decorated with :func:`query_command` receives ``query`` (a validated
:class:`~estimator.query.Query`), or ``options`` (the raw values); with a :class:`~estimator.query.commands.Command`
also ``settings``, its own options' values. A parameter the command declares itself replaces the query option of
its name (``sweep`` reads ``--tokens`` as a grid). ``tests/test_cli.py`` introspects the CLI and fails when a
command that takes a query lacks one of these options.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from estimator.query.grammar import parameters
from estimator.query.options import DEFAULT_MODEL, OPTION_NAMES, build_query, complete

if TYPE_CHECKING:
    from estimator.query.commands import Command


def query_command(
    *,
    default_model: str | None = DEFAULT_MODEL,
    defaults: dict[str, Any] | None = None,
    build: bool = True,
    only: tuple[str, ...] | None = None,
    command: Command | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command every query option. It is called with ``query`` (built and validated), or with
    ``options`` (the raw values, for a command that builds its queries itself) when ``build`` is False.

    ``default_model``: the model when neither --model nor --config is given (None: one is required);
    ``defaults``: other defaults for this command (``{"methods": "kv,lora,pretraining"}``);
    ``only``: the query options this command takes (the others keep their defaults, out of its --help);
    ``command``: a command declared in :mod:`estimator.query.commands` (its defaults, its query options and its
    own options, whose values it is given as ``settings``).
    """
    own = command.options if command is not None else ()
    chosen = dict(command.defaults if command is not None else defaults or {})
    offered = (command.offered if command is not None else only) or OPTION_NAMES

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(func, eval_str=True)
        kept = [p for p in signature.parameters.values() if p.name not in ("query", "options", "settings")]
        added = parameters(own, offered, chosen, {p.name for p in kept})
        mine = {o.name for o in own}
        asked = [p.name for p in added if p.name not in mine]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = complete({name: kwargs.pop(name) for name in asked}, offered, chosen)
            if own:
                kwargs["settings"] = {name: kwargs.pop(name) for name in list(kwargs) if name in mine}
            if not build:
                return func(*args, options=values, **kwargs)
            return func(*args, query=build_query(values, default_model), **kwargs)

        positional = [p for p in kept if p.kind is not inspect.Parameter.KEYWORD_ONLY]
        keyword = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in kept if p not in positional]
        wrapper.__signature__ = signature.replace(parameters=[*positional, *keyword, *added])  # type: ignore[attr-defined]
        wrapper.query_options = tuple(offered)  # type: ignore[attr-defined]
        return wrapper

    return decorate
