"""The calculator as a local web page over a JSON API (the ``web`` extra: Starlette, served by uvicorn).

Routes (every query parameter is a CLI option's name, ``kv_dtype`` or ``kv-dtype``; values as the CLI
takes them, ``tokens=100k``):

- ``GET /api/estimate``: the main query, the JSON of ``estimate --json`` plus each row's label; ``POST``
  with ``{"config": {...}, ...options}`` for a pasted config.json (read by the ``--config`` reader,
  capped at 1 MB, never executed). ``format=csv`` gives the CLI's CSV.
- ``GET|POST /api/sweep``: KV against LoRA over ``tokens`` × ``ranks`` grids (``1k:1B:log50``, ``8,32``),
  the rows of ``estimate sweep --json``, at most 20,000 points.
- ``GET /api/options``: every query option a client may send (name, default, help, kind, the values the CLI
  takes), from the CLI's own declarations; the page builds its controls from it.
- ``GET /api/serve-memory``, ``/api/train-memory``, ``/api/compare``: ``estimate serve-memory|train-memory|compare
  --json``, the options read by the CLI's own parser (:mod:`estimator.web.commands`).
- ``GET /api/models``: the zoo at ``tokens`` (``estimate models --json``), with each model's KV ÷ LoRA at
  ``tokens`` and ``rank`` for the comparison.
Bad input is HTTP 400 with ``{"error": "<the CLI's one line>"}`` (413 for a body over 1 MB, 415 for a POST
not declared JSON, 403 from another site, 503 when busy), the line quoting at most a short excerpt; no
client-supplied path is ever read and no server path is ever sent (a posted config's ``model.source``).
Requests are checked before the app sees them (:mod:`estimator.web.guard`), read and bounded on the event loop
(:mod:`estimator.web.inputs`), and computed on a bounded pool with a time limit (:mod:`estimator.web.work`).
"""

from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from estimator.checkpoint.files import printable
from estimator.errors import EstimatorError
from estimator.web.guard import Guard
from estimator.web.inputs import (
    MAX_BODY_BYTES,
    grid_points_at_most,
    option_value,
    options_from,
    query_params,
    read_request,
    short,
)
from estimator.web.work import Pool

STATIC = Path(__file__).with_name("static")
MAX_SWEEP_POINTS = 20_000
SWEEP_WORKERS, SWEEPS_WAITING = 2, 30  # a sweep's pool: at most 32 sweeps in flight (each under 10 MB of JSON)
POSTED_SOURCE = "config.json (posted to this server)"  # never the server's working directory


def spec_from_posted(config: Any) -> Any:
    """A spec from a posted config.json object, through the same reader as ``--config``."""
    from estimator.hf_config import parse_config_json, spec_from_config

    if not isinstance(config, dict):
        raise EstimatorError("'config' must be a config.json object; paste the whole file")
    try:
        raw = json.dumps(config).encode()
    except (RecursionError, ValueError):
        raise EstimatorError("the config nests too deeply; paste a Hugging Face config.json") from None
    if len(raw) > MAX_BODY_BYTES:
        raise EstimatorError(f"the config is over {MAX_BODY_BYTES:,} bytes; a config.json is a few kB")
    return spec_from_config(parse_config_json(raw, "posted config.json"), Path("config.json"))


def build(params: dict[str, Any], config: Any, extra: tuple[str, ...] = ()) -> tuple[Any, dict[str, str]]:
    """The validated query (on a pool thread), and the parameters in ``extra`` that are the endpoint's own."""
    from estimator.query.options import DEFAULT_MODEL, build_query

    params = dict(params)
    own = {key: str(option_value(key, params.pop(key))) for key in extra if key in params}
    spec = spec_from_posted(config) if config is not None else None
    return build_query(options_from(params), DEFAULT_MODEL, spec=spec), own


def labelled(est: Any) -> dict[str, Any]:
    """``estimate --json`` with each method's row label, as the CLI's table names it."""
    from estimator.present.records import estimate_record
    from estimator.present.tables import method_label
    from estimator.present.words import assumptions, crossover_line, holding_line, model_line, parity_line

    data: dict[str, Any] = estimate_record(est)
    labels = {row.method.value: method_label(est, row.method) for row in est.rows}
    for row in data["methods"]:
        row["label"] = labels.get(row["method"], row["method"])
    data["assumptions"] = assumptions(est)
    data["summary"] = [model_line(est), crossover_line(est), holding_line(est) or parity_line(est)]
    data["table"] = table_cells(est)
    return data


def table_cells(est: Any) -> list[dict[str, Any]]:
    """The CLI's table as its cells (the same rows, :func:`estimator.present.tables.table_rows`), one dict a row."""
    from estimator.present.tables import table_rows

    return [{"method": method, "cells": [cells[0].strip(), *cells[1:]]} for method, cells in table_rows(est)]


def finite(value: Any) -> Any:
    """JSON has no infinity or NaN: such a float becomes null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def estimate_answer(params: dict[str, Any], config: Any) -> Response:
    from estimator.compare import evaluate

    query, own = build(params, config, ("format",))
    est = evaluate(query)
    if own.get("format") == "csv":
        import csv
        import io

        from estimator.present.tables import csv_rows

        stream = io.StringIO()
        csv.writer(stream, lineterminator="\n").writerows(csv_rows(est))
        return PlainTextResponse(stream.getvalue(), media_type="text/csv")
    data = labelled(est)
    if config is not None:
        data["model"]["source"] = POSTED_SOURCE
    return JSONResponse(data)


def sweep_answer(params: dict[str, Any], config: Any) -> Response:
    from estimator.compare import evaluate
    from estimator.sweep import sweep
    from estimator.units import MAX_RANK, parse_grid

    query, own = build({**params, "allow_beyond_full_rank": True}, config, ("ranks", "tokens"))  # marked per rank
    tokens_text, ranks_text = own.get("tokens", "1k:1B:log50"), own.get("ranks", str(query.rank))
    most = grid_points_at_most(tokens_text) * grid_points_at_most(ranks_text)
    if most > MAX_SWEEP_POINTS:
        raise EstimatorError(f"up to {most:,} points are too many; ask for at most {MAX_SWEEP_POINTS:,}")
    tokens = parse_grid(tokens_text)
    ranks = parse_grid(ranks_text, "ranks", MAX_RANK)
    est = evaluate(query.with_(tokens=1, rank=min(ranks), allow_beyond_full_rank=True))
    columns = sweep(est, tokens, ranks).columns()
    names = list(columns)
    values = [columns[name].tolist() for name in names]
    rows = [{n: finite(v) for n, v in zip(names, row, strict=True)} for row in zip(*values, strict=True)]
    return JSONResponse({"model": est.spec.name, "display_name": est.spec.display_name, "rows": rows})


async def estimate_endpoint(request: Request) -> Response:
    params, config = await read_request(request)
    answer: Response = await request.app.state.queries.run(estimate_answer, params, config)
    return answer


async def sweep_endpoint(request: Request) -> Response:
    params, config = await read_request(request)
    answer: Response = await request.app.state.sweeps.run(sweep_answer, params, config)
    return answer


async def models_endpoint(request: Request) -> Response:
    from estimator.query.options import OPTION
    from estimator.units import parse_tokens

    params = query_params(request.query_params.multi_items())
    unknown = sorted(set(params) - {"tokens", "rank"})
    if unknown:
        raise EstimatorError(f"unknown parameter {printable(repr(unknown[0]), 60)}; /api/models takes tokens and rank")
    tokens = parse_tokens(str(option_value("tokens", params.get("tokens", OPTION["tokens"].default))))
    rank = option_value("rank", params.get("rank", str(OPTION["rank"].default)))
    text: str = await request.app.state.queries.run(zoo_records_cached, tokens, rank)
    return Response(text, media_type="application/json")


MODELS_CACHED = 128  # (tokens, rank) answers of /api/models kept, about 20 kB each: at most ~2.5 MB
_models: OrderedDict[tuple[int, int], str] = OrderedDict()
_models_lock = threading.Lock()


def zoo_records_cached(tokens: int, rank: int) -> str:
    """The zoo's records at (tokens, rank) as JSON, the :data:`MODELS_CACHED` most recently asked kept."""
    with _models_lock:
        if (tokens, rank) in _models:
            _models.move_to_end((tokens, rank))
            return _models[(tokens, rank)]
    text = zoo_records_json(tokens, rank)
    with _models_lock:
        _models[(tokens, rank)] = text
        while len(_models) > MODELS_CACHED:
            _models.popitem(last=False)
    return text


def zoo_records_json(tokens: int, rank: int) -> str:
    """``estimate models --json`` at ``tokens``, each record with the KV ÷ LoRA of ``estimate --methods kv,lora``
    at ``tokens`` and ``rank`` (null where the CLI gives none: a cache that keeps only a window, a rank the CLI
    refuses) and ``cells``, the page's row as the CLI prints its numbers."""
    from estimator.compare import evaluate
    from estimator.present.tables import format_ratio
    from estimator.present.zoo import model_record
    from estimator.query import Query
    from estimator.query.vocabulary import Method
    from estimator.units import format_number
    from estimator.zoo import load_all_specs

    records = []
    for spec in sorted(load_all_specs(), key=lambda s: s.name):  # as `estimate models` lists them
        record = model_record(spec, tokens)
        try:
            est = evaluate(Query(spec, tokens=tokens, rank=rank, methods=(Method.kv, Method.lora)))
            usable = est.holds_all_tokens and not est.beyond_full_rank
            ratio = finite(est.kv_to_lora_bytes_ratio) if usable else None
        except EstimatorError:
            ratio = None
        per_token = record["kv_bytes_per_token"]
        record["kv_to_lora_bytes_ratio"] = ratio
        record["cells"] = [record["display_name"], f"{record['params']:,}",
                           "—" if per_token is None else format_number(per_token),
                           "—" if ratio is None else format_ratio(ratio)]  # fmt: skip
        records.append(record)
    return json.dumps(records)


def zoo_records(tokens: int, rank: int) -> Any:
    return json.loads(zoo_records_cached(tokens, rank))


async def options_endpoint(request: Request) -> Response:
    from estimator.web.options import option_records

    if request.query_params:
        raise EstimatorError("/api/options takes no parameters; ask GET /api/options")
    return JSONResponse(option_records())


async def page(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", media_type="text/html")


async def bad_input(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status", 400)
    headers = {"Retry-After": "1"} if status == 503 else None
    return JSONResponse({"error": short(str(exc))}, status_code=status, headers=headers)


async def not_found(request: Request, exc: Exception) -> Response:
    code = getattr(exc, "status_code", 404)
    where = printable(request.url.path, 80)
    return JSONResponse({"error": f"{request.method} {where}: {getattr(exc, 'detail', 'not found')}"},
                        status_code=code)  # fmt: skip


def create_app(bound: str = "127.0.0.1") -> Any:
    """The page, its assets and the JSON API, behind the request checks of :mod:`estimator.web.guard` for a
    server bound to ``bound``; the computing runs on two bounded pools, sweeps (up to 20,000 points, half a
    second each) apart from single queries, so a query never waits behind sweeps."""
    from contextlib import asynccontextmanager

    from starlette.exceptions import HTTPException

    from estimator.offline import go_offline
    from estimator.web import commands

    go_offline()
    routes = [
        Route("/", page),
        Route("/api/estimate", estimate_endpoint, methods=["GET", "POST"]),
        Route("/api/sweep", sweep_endpoint, methods=["GET", "POST"]),
        Route("/api/models", models_endpoint, methods=["GET"]),
        Route("/api/options", options_endpoint, methods=["GET"]),
        Route("/api/serve-memory", commands.serve_memory_endpoint, methods=["GET", "POST"]),
        Route("/api/train-memory", commands.train_memory_endpoint, methods=["GET", "POST"]),
        Route("/api/compare", commands.compare_endpoint, methods=["GET", "POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    handlers: dict[Any, Any] = {EstimatorError: bad_input, HTTPException: not_found}
    queries, sweeps = Pool(), Pool(workers=SWEEP_WORKERS, waiting=SWEEPS_WAITING)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        yield
        queries.close()
        sweeps.close()

    app = Starlette(routes=routes, exception_handlers=handlers, lifespan=lifespan)
    app.state.queries, app.state.sweeps = queries, sweeps
    return Guard(app, bound)
