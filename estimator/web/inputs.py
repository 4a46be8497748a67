"""What a client sends, read strictly and bounded before anything is built: the body (at most 1 MB, counted
while it arrives), its JSON (no repeated keys, nesting bounded), each option's value (its type and length),
and a sweep's grid (its points counted from the text, before any is computed). Every refusal is one line
that quotes at most a short excerpt of the input."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

from estimator.checkpoint.files import printable
from estimator.errors import EstimatorError
from estimator.query.options import OPTIONS, Kind
from estimator.web.work import RefusedError

MAX_BODY_BYTES = 1_000_000
BODY_SECONDS = 10.0  # from the end of the headers to the end of the body (1 MB arrives in milliseconds here)
MAX_VALUE_CHARS = 200  # an option's value: a grid or a list of methods is a few dozen characters
MAX_MESSAGE_CHARS = 600  # an error line (the longest the tool writes lists --methods' 48 names, ~450 characters)
INTEGERS = tuple(o.name for o in OPTIONS if o.kind is Kind.integer)
FLAGS = tuple(o.name for o in OPTIONS if o.kind is Kind.flag)
TRUE, FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")
REFUSED = tuple(o.name for o in OPTIONS if not o.from_client)  # a path on the server, or a name for one
STEP = re.compile(r"\s*(log|lin)\s*(\d+)\s*$", re.IGNORECASE)
MAX_X_POINTS = 64  # 1:10^18:x2 has 60 points


def excerpt(value: Any, limit: int = 60) -> str:
    """A value as a message may quote it: its repr, at most ``limit`` characters, no control characters."""
    return printable(repr(value), limit)


def short(message: str) -> str:
    """An error line of at most about :data:`MAX_MESSAGE_CHARS` characters: its start and its end."""
    if len(message) <= MAX_MESSAGE_CHARS:
        return message
    return f"{message[: MAX_MESSAGE_CHARS // 2]} … {message[-MAX_MESSAGE_CHARS // 2 :]}"


async def read_body(stream: AsyncIterator[bytes], declared: str | None) -> bytes:
    """The request body, refused with 413 as soon as it passes :data:`MAX_BODY_BYTES` (by its Content-Length
    before a byte is read, else while it arrives), and with 408 if it has not all arrived within
    :data:`BODY_SECONDS` (a client trickling its body holds nothing for long)."""
    too_big = f"the request is over {MAX_BODY_BYTES:,} bytes; a config.json is a few kB"
    if declared is not None and (not declared.strip().isdigit() or int(declared) > MAX_BODY_BYTES):
        raise RefusedError(too_big, 413)
    chunks: list[bytes] = []

    async def gather() -> None:
        size = 0
        async for chunk in stream:
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise RefusedError(too_big, 413)
            chunks.append(chunk)

    try:
        await asyncio.wait_for(gather(), BODY_SECONDS)
    except TimeoutError:
        raise RefusedError(f"the request body did not arrive within {BODY_SECONDS:g} s; send it at once", 408) from None
    return b"".join(chunks)


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise EstimatorError(f"the request gives {excerpt(key)} twice; give each key once")
        found[key] = value
    return found


def parse_body(raw: bytes) -> dict[str, Any]:
    """A JSON object of options (and an optional ``config``); one line for anything else."""
    try:
        posted = json.loads(raw or b"{}", object_pairs_hook=_unique)
    except EstimatorError:
        raise
    except RecursionError:
        raise EstimatorError("the request body nests too deeply; send a JSON object of options") from None
    except (ValueError, UnicodeDecodeError) as exc:
        detail = printable(str(exc).split(":")[0], 80)
        raise EstimatorError(f"the request body is not JSON ({detail}); send a JSON object") from None
    if not isinstance(posted, dict):
        raise EstimatorError("the request body must be a JSON object of options and an optional 'config'")
    return posted


def query_params(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """A query string's parameters, each given once."""
    return _unique(list(pairs))


def option_value(name: str, raw: Any) -> Any:
    """One option's value as the CLI would take it: a whole number, a flag, or a short string."""
    if isinstance(raw, str) and len(raw) > MAX_VALUE_CHARS:
        raise EstimatorError(f"{name} is {len(raw):,} characters long; give at most {MAX_VALUE_CHARS}")
    if name in FLAGS:
        text = str(raw).strip().lower() if isinstance(raw, str) else raw
        if text is True or text in TRUE:
            return True
        if text is False or text in FALSE:
            return False
        raise EstimatorError(f"{name} {excerpt(raw)} is not a flag; give true or false")
    if name in INTEGERS:
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().isascii() and raw.strip().isdigit():
            return int(raw.strip())
        raise EstimatorError(f"{name} {excerpt(raw)} is not a whole number; give e.g. 32")
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise EstimatorError(f"{name} {excerpt(raw)} is not a string or a number; give e.g. {name}=100k")
    return str(raw).strip()


def options_from(params: dict[str, Any]) -> dict[str, Any]:
    """The query's option values: their defaults, replaced by the client's (names as the CLI's)."""
    from estimator.query.options import defaults

    values = defaults()
    for key, raw in params.items():
        name = key.replace("-", "_")
        if name in REFUSED or name not in values:
            allowed = ", ".join(n for n in values if n not in REFUSED)
            raise EstimatorError(
                f"unknown parameter {excerpt(key)}; use one of: {allowed} (POST a config.json as 'config')"
            )
        if raw is not None:
            values[name] = option_value(name, raw)
    return values


def grid_points_at_most(text: str) -> int:
    """The most points a grid's text can give (``1k:1B:log50`` -> 50, ``8,32`` -> 2, ``1:1M:x2`` -> 64),
    read from the text alone, so a sweep's size is checked before its grid is built."""
    parts = text.split(":")
    if len(parts) == 3:
        step = STEP.match(parts[2])
        if step is not None:
            return int(step[2]) if len(step[2]) <= 9 else 10**9
        return MAX_X_POINTS
    return text.count(",") + 1


async def read_request(request: Any) -> tuple[dict[str, Any], Any]:
    """The options of a GET (its query string) or a POST (a JSON body, ``config`` optional), and the posted
    config's object (None without one); read and bounded on the event loop, nothing built yet."""
    params: dict[str, Any] = query_params(request.query_params.multi_items())
    config = None
    if request.method == "POST":
        posted = parse_body(await read_body(request.stream(), request.headers.get("content-length")))
        params.update({k: v for k, v in posted.items() if k != "config"})
        config = posted.get("config")
        if config is not None:
            params.pop("model", None)
    return params, config
