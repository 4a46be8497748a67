"""The calculator as a local web page over a JSON API (the ``web`` extra: Starlette, served by uvicorn).

Routes (every query parameter is a CLI option's name, ``kv_dtype`` or ``kv-dtype``; values as the CLI
takes them, ``tokens=100k``):

- ``GET /api/estimate``: the main query, the JSON of ``estimate --json`` plus each row's label; ``POST``
  with ``{"config": {...}, ...options}`` for a pasted config.json (read by the ``--config`` reader,
  capped at 1 MB, never executed). ``format=csv`` gives the CLI's CSV.
- ``GET|POST /api/sweep``: KV against LoRA over ``tokens`` × ``ranks`` grids (``1k:1B:log50``, ``8,32``),
  the rows of ``estimate sweep --json``, at most 20,000 points.
- ``GET /api/models``: the zoo at ``tokens`` (``estimate models --json``), with each model's KV ÷ LoRA at
  ``tokens`` and ``rank`` for the comparison.
Bad input is HTTP 400 with ``{"error": "<the CLI's one line>"}``; no client-supplied path is ever read.
"""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from estimator.errors import EstimatorError

STATIC = Path(__file__).with_name("static")
MAX_BODY_BYTES = 1_000_000
MAX_SWEEP_POINTS = 20_000
INTEGERS = ("rank", "kv_group_size", "virtual_tokens", "loreft_rank")
FLAGS = ("kv_zero_point", "loreft_untied")
REFUSED = ("config", "name")  # a path on the server, or a name for one: never taken from a client


def options_from(params: dict[str, Any]) -> dict[str, Any]:
    """The query's option values: the CLI's defaults, replaced by the client's (names as the CLI's)."""
    from estimator.cli.options import QUERY_OPTIONS

    values = {name: default for name, _, default in QUERY_OPTIONS}
    for key, raw in params.items():
        name = key.replace("-", "_")
        if name in REFUSED or name not in values:
            allowed = ", ".join(n for n in values if n not in REFUSED)
            raise EstimatorError(f"unknown parameter {key!r}; use one of: {allowed} (POST a config.json as 'config')")
        if raw is None:
            continue
        text = str(raw).strip() if not isinstance(raw, bool | int) else raw
        if name in INTEGERS:
            try:
                values[name] = int(text)
            except ValueError:
                raise EstimatorError(f"{name} {raw!r} is not a whole number; give e.g. 32") from None
        elif name in FLAGS:
            values[name] = text in (True, 1, "1", "true", "yes", "on")
        else:
            values[name] = str(text)
    return values


def spec_from_posted(config: Any) -> Any:
    """A spec from a posted config.json object, through the same reader as ``--config``."""
    from estimator.hf_config import parse_config_json, spec_from_config

    if not isinstance(config, dict):
        raise EstimatorError("'config' must be a config.json object; paste the whole file")
    raw = json.dumps(config).encode()
    if len(raw) > MAX_BODY_BYTES:
        raise EstimatorError(f"the config is over {MAX_BODY_BYTES:,} bytes; a config.json is a few kB")
    return spec_from_config(parse_config_json(raw, "posted config.json"), Path("config.json"))


async def query_of(request: Request, extra: tuple[str, ...] = ()) -> tuple[Any, dict[str, str]]:
    """The validated query of a GET (its parameters) or a POST (a JSON body, ``config`` optional), and the
    parameters in ``extra`` that are the endpoint's own."""
    from estimator.cli.options import DEFAULT_MODEL, build_query

    params: dict[str, Any] = dict(request.query_params)
    spec = None
    if request.method == "POST":
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            raise EstimatorError(f"the request is over {MAX_BODY_BYTES:,} bytes; a config.json is a few kB")
        try:
            posted = json.loads(body or b"{}")
        except (ValueError, UnicodeDecodeError) as exc:
            raise EstimatorError(f"the request body is not JSON ({exc}); send a JSON object") from None
        if not isinstance(posted, dict):
            raise EstimatorError("the request body must be a JSON object of options and an optional 'config'")
        params.update({k: v for k, v in posted.items() if k != "config"})
        if posted.get("config") is not None:
            spec = spec_from_posted(posted["config"])
            params.pop("model", None)
    own = {key: str(params.pop(key)) for key in extra if key in params}
    return build_query(options_from(params), DEFAULT_MODEL, spec=spec), own


def labelled(est: Any) -> dict[str, Any]:
    """``estimate --json`` with each method's row label, as the CLI's table names it."""
    from estimator.present.tables import method_label
    from estimator.present.words import assumptions, crossover_line, holding_line, model_line, parity_line

    data: dict[str, Any] = est.to_dict()
    labels = {row.method.value: method_label(est, row.method) for row in est.rows}
    for row in data["methods"]:
        row["label"] = labels.get(row["method"], row["method"])
    data["assumptions"] = assumptions(est)
    data["summary"] = [model_line(est), crossover_line(est), holding_line(est) or parity_line(est)]
    return data


def finite(value: Any) -> Any:
    """JSON has no infinity or NaN: such a float becomes null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


async def estimate_endpoint(request: Request) -> Response:
    from estimator.compare import evaluate

    query, own = await query_of(request, ("format",))
    est = evaluate(query)
    if own.get("format") == "csv":
        import csv
        import io

        from estimator.present.tables import csv_rows

        stream = io.StringIO()
        csv.writer(stream, lineterminator="\n").writerows(csv_rows(est))
        return PlainTextResponse(stream.getvalue(), media_type="text/csv")
    return JSONResponse(labelled(est))


async def sweep_endpoint(request: Request) -> Response:
    from estimator.compare import evaluate
    from estimator.sweep import sweep
    from estimator.units import MAX_RANK, parse_grid

    query, own = await query_of(request, ("ranks", "tokens"))
    tokens = parse_grid(own.get("tokens", "1k:1B:log50"))
    ranks = parse_grid(own.get("ranks", str(query.rank)), "ranks", MAX_RANK)
    if len(tokens) * len(ranks) > MAX_SWEEP_POINTS:
        raise EstimatorError(f"{len(tokens) * len(ranks):,} points are too many; ask for at most {MAX_SWEEP_POINTS:,}")
    est = evaluate(query.with_(tokens=1, rank=min(ranks)))
    columns = sweep(est, tokens, ranks).columns()
    names = list(columns)
    values = [columns[name].tolist() for name in names]
    rows = [{n: finite(v) for n, v in zip(names, row, strict=True)} for row in zip(*values, strict=True)]
    return JSONResponse({"model": est.spec.name, "display_name": est.spec.display_name, "rows": rows})


async def models_endpoint(request: Request) -> Response:
    from estimator.units import parse_tokens

    params = dict(request.query_params)
    unknown = sorted(set(params) - {"tokens", "rank"})
    if unknown:
        raise EstimatorError(f"unknown parameter {unknown[0]!r}; /api/models takes tokens and rank")
    tokens = parse_tokens(params.get("tokens", "100k"))
    rank = options_from({"rank": params.get("rank", "32")})["rank"]
    return JSONResponse(zoo_records(tokens, rank))


@cache
def zoo_records_cached(tokens: int, rank: int) -> str:
    from estimator.cli.models import model_record
    from estimator.compare import evaluate
    from estimator.query import Query
    from estimator.stores.base import Method
    from estimator.zoo import load_all_specs

    records = []
    for spec in load_all_specs():
        record = model_record(spec, tokens)
        try:
            est = evaluate(Query(spec, tokens=tokens, rank=rank, methods=(Method.kv, Method.lora)))
            record["kv_to_lora_bytes_ratio"] = finite(est.ratio)
        except EstimatorError:
            record["kv_to_lora_bytes_ratio"] = None
        records.append(record)
    return json.dumps(records)


def zoo_records(tokens: int, rank: int) -> Any:
    return json.loads(zoo_records_cached(tokens, rank))


async def page(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", media_type="text/html")


async def bad_input(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": str(exc)}, status_code=400)


async def not_found(request: Request, exc: Exception) -> Response:
    code = getattr(exc, "status_code", 404)
    return JSONResponse({"error": f"{request.method} {request.url.path}: {getattr(exc, 'detail', 'not found')}"},
                        status_code=code)  # fmt: skip


def create_app() -> Starlette:
    """The page, its assets and the JSON API."""
    routes = [
        Route("/", page),
        Route("/api/estimate", estimate_endpoint, methods=["GET", "POST"]),
        Route("/api/sweep", sweep_endpoint, methods=["GET", "POST"]),
        Route("/api/models", models_endpoint, methods=["GET"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    from starlette.exceptions import HTTPException

    handlers: dict[Any, Any] = {EstimatorError: bad_input, HTTPException: not_found}
    return Starlette(routes=routes, exception_handlers=handlers)
