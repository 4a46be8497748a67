"""``/api/serve-memory``, ``/api/train-memory`` and ``/api/compare``: a command's options, as
:mod:`estimator.query.commands` declares them, read by the parser the CLI reads them with (click, through the
shared grammar of :mod:`estimator.query.grammar`: the same types, ranges and one-line refusals), then the
answers of :mod:`estimator.present` (``build_report``, ``train_report``, ``compared``), so each answer is that
command's ``--json``. Nothing here imports the CLI.

Parameters are the command's option names (``memory_fraction`` or ``memory-fraction``), values as the CLI takes
them; a flag is ``true`` or ``false``. Paths (``config``, ``name``) and output switches are never taken."""

from __future__ import annotations

import functools
from typing import Any

from estimator.errors import EstimatorError
from estimator.web.inputs import FALSE, TRUE, excerpt, option_value, read_request

MAX_MODELS_CHARS = 4_000  # compare's list of models: some 250 zoo names
NOT_TAKEN = ("config", "name", "as_json", "as_csv", "markdown", "output")


@functools.cache
def _command(name: str) -> tuple[Any, Any]:
    """(a group, the command ``name``) as click sees them: the command's own options and the query options it
    offers, declared as the CLI declares them (those a client may give); built once."""
    import inspect

    import typer

    from estimator.query.commands import COMMANDS
    from estimator.query.grammar import parameters
    from estimator.query.options import OPTION, OPTION_NAMES

    command = COMMANDS[name]
    offered = tuple(n for n in command.offered or OPTION_NAMES if OPTION[n].from_client)

    def read(**values: Any) -> None:
        """Parses only."""

    read.__signature__ = inspect.Signature(parameters(command.options, offered, command.defaults, set()))  # type: ignore[attr-defined]
    app = typer.Typer(add_completion=False)
    app.callback()(lambda: None)
    app.command(name)(read)
    group = typer.main.get_command(app)
    return group, group.commands[name]  # type: ignore[attr-defined]


def command_params(name: str) -> list[Any]:
    """The click parameters of subcommand ``name`` a client may give."""
    return [p for p in _command(name)[1].params if p.name not in NOT_TAKEN and p.opts]


def _args(name: str, params: dict[str, Any]) -> list[str]:
    """The command line that gives ``params``."""
    by_name = {p.name: p for p in command_params(name)}
    args: list[str] = []
    for key, raw in params.items():
        param = by_name.get(key.replace("-", "_"))
        if param is None:
            allowed = ", ".join(by_name)
            raise EstimatorError(f"unknown parameter {excerpt(key)}; /api/{name} takes: {allowed}")
        if param.is_flag:
            text = str(raw).strip().lower() if isinstance(raw, str) else raw
            if text is True or text in TRUE:
                args.append(param.opts[0])
            elif text is False or text in FALSE:
                if param.secondary_opts:
                    args.append(param.secondary_opts[0])
            else:
                raise EstimatorError(f"{key} {excerpt(raw)} is not a flag; give true or false")
            continue
        if name == "compare" and param.name == "model" and isinstance(raw, str):  # a list of models: longer
            if len(raw) > MAX_MODELS_CHARS:
                raise EstimatorError(f"model is {len(raw):,} characters long; give at most {MAX_MODELS_CHARS:,}")
            args += [param.opts[0], raw.strip()]
            continue
        args += [param.opts[0], str(option_value(key, raw))]
    return args


def parsed(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """The command's parameter values, read by its click parser: a refusal is the CLI's one line."""
    from typer._click.core import Context  # typer >= 0.24 carries its own click, as estimator.cli.main reads it
    from typer._click.exceptions import UsageError

    group, command = _command(name)
    try:
        ctx = command.make_context(name, _args(name, params), parent=Context(group, info_name="estimate"))
    except UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "estimate"
        raise EstimatorError(f"{' '.join(exc.format_message().split()).rstrip('.')}; see `{where} --help`") from None
    return dict(ctx.params)


def own_names(name: str) -> set[str]:
    """The command's own options (not the query's)."""
    from estimator.query.commands import COMMANDS

    return {option.name for option in COMMANDS[name].options}


def split(name: str, values: dict[str, Any], offered: tuple[str, ...], defaults: dict[str, Any]) -> tuple[Any, Any]:
    """(the query's option values as ``query_command`` gives them, the command's own values)."""
    from estimator.query.options import complete

    own = own_names(name)
    options = complete({k: values[k] for k in offered if k in values and k not in own}, offered, defaults)
    return options, {k: v for k, v in values.items() if k in own}


def serve_memory_record(params: dict[str, Any]) -> Any:
    """``estimate serve-memory --json`` (with ``cells``: its headline and its two tables as the CLI prints them)."""
    from estimator.present.serving_answer import build_report
    from estimator.query.commands import SERVE_MEMORY
    from estimator.query.options import DEFAULT_MODEL, SERVING_OPTIONS, build_query

    params, cells = with_cells(params)
    options, settings = split("serve-memory", parsed("serve-memory", params), SERVING_OPTIONS, SERVE_MEMORY.defaults)
    query = build_query(options, DEFAULT_MODEL)
    report = build_report(query, settings, None)
    record = report.record()
    if cells:
        record["tables"] = {"headline": report.headline(), "pool": report.pool_table(),
                            "verdict": report.verdict_table()}  # fmt: skip
    return record


def train_memory_record(params: dict[str, Any]) -> Any:
    """``estimate train-memory --json`` (with ``cells``: its table as the CLI prints it)."""
    from estimator.present.training_answer import train_report
    from estimator.query.commands import TRAIN_MEMORY
    from estimator.query.options import DEFAULT_MODEL, TRAINING_OPTIONS, build_query

    params, cells = with_cells(params)
    options, settings = split("train-memory", parsed("train-memory", params), TRAINING_OPTIONS, TRAIN_MEMORY.defaults)
    query = build_query(options, DEFAULT_MODEL)
    report = train_report(query, **settings)
    record = report.record()
    if cells:
        record["tables"] = {"components": report.table()}
    return record


def compare_records(params: dict[str, Any]) -> Any:
    """``estimate compare --json`` (the models it leaves out, and why, in ``left_out``: the CLI's note)."""
    from estimator.present import comparison
    from estimator.present.comparison_answer import compared
    from estimator.query.options import OPTION_NAMES as QUERY_OPTION_NAMES

    params, cells = with_cells(params)
    options, own = split("compare", parsed("compare", params), QUERY_OPTION_NAMES, {})
    estimates, skipped = compared(own["model"], None, own["tokens"], options)
    records: Any = [comparison.comparison_record(e) for e in estimates]
    if cells:  # one table per token count, as `estimate compare` prints them
        tables = [{"caption": f"At {comparison.caption(first, group)}", "head": [h for _, h in comparison.COLUMNS],
                   "rows": [[comparison._cell(key, r) for key, _ in comparison.COLUMNS] for r in group],
                   "notes": comparison.full_rank_notes([e for e in estimates if e.tokens == first.tokens])}
                  for first, group in comparison.by_tokens(estimates)]  # fmt: skip
        records = {"records": records, "tables": tables, "footnote": comparison.FOOTNOTE}
    return records, comparison.left_out_note(skipped)


def with_cells(params: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The parameters without ``cells`` (the page's: the CLI's tables as it prints them), and whether it was asked."""
    params = dict(params)
    raw = params.pop("cells", "false")
    text = str(raw).strip().lower() if isinstance(raw, str) else raw
    if text is True or text in TRUE:
        return params, True
    if text is False or text in FALSE:
        return params, False
    raise EstimatorError(f"cells {excerpt(raw)} is not a flag; give true or false")


async def _params(request: Any) -> dict[str, Any]:
    params, config = await read_request(request)
    if config is not None:
        raise EstimatorError(f"{request.url.path} takes zoo models, not a posted config; give model=NAME")
    return params


async def serve_memory_endpoint(request: Any) -> Any:
    from starlette.responses import JSONResponse

    params = await _params(request)
    return JSONResponse(await request.app.state.queries.run(serve_memory_record, params))


async def train_memory_endpoint(request: Any) -> Any:
    from starlette.responses import JSONResponse

    params = await _params(request)
    return JSONResponse(await request.app.state.queries.run(train_memory_record, params))


async def compare_endpoint(request: Any) -> Any:
    """The records of ``estimate compare --json``; the note of the models it leaves out (the CLI's stderr line)
    percent-encoded in the ``X-Left-Out`` header."""
    from urllib.parse import quote

    from starlette.responses import JSONResponse

    params = await _params(request)
    records, note = await request.app.state.queries.run(compare_records, params)
    return JSONResponse(records, headers={"X-Left-Out": quote(note)} if note else None)
