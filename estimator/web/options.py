"""``GET /api/options``: the query's options as the CLI declares them (:data:`estimator.cli.options.QUERY_OPTIONS`:
names, defaults, help) with the values the CLI's own readers take (its dtype tuples and enums), so the page
writes no list of options, defaults or choices of its own."""

from __future__ import annotations

import typing
from typing import Any

from estimator.errors import EstimatorError
from estimator.web.inputs import FLAGS, INTEGERS, REFUSED


def _values(items: Any) -> list[str]:
    return [str(getattr(item, "value", item)) for item in items]


def _state_dtypes() -> list[str]:
    """``--state-dtype``: auto and every dtype its reader takes."""
    from estimator.cli.options import state_dtype_of
    from estimator.units import DType

    taken = []
    for dtype in DType:
        try:
            state_dtype_of(dtype.value)
        except EstimatorError:
            continue
        taken.append(dtype.value)
    return ["auto", *taken]


def choices() -> dict[str, list[str]]:
    """Each closed option's values, from the tuples and enums ``build_query`` reads it with."""
    from estimator.layout import ConvCache, ExpertLayout, MlaCache, WindowCache
    from estimator.query import ADAPTER_DTYPES
    from estimator.stores.base import Method
    from estimator.units import KV_DTYPES, STORAGE_DTYPES

    return {
        "adapter_dtype": _values(ADAPTER_DTYPES),
        "kv_dtype": _values(KV_DTYPES),
        "weights_dtype": _values(STORAGE_DTYPES),  # parse_dtype's default set
        "experts": _values(ExpertLayout),
        "mla_cache": _values(MlaCache),
        "window_cache": _values(WindowCache),
        "conv_cache": _values(ConvCache),
        "state_dtype": _state_dtypes(),
        "methods": _values(Method),
    }


def kind_of(name: str, annotation: Any) -> str:
    """How a client gives the option: ``integer``, ``flag``, ``list`` (repeated; not taken here) or ``text``."""
    if name in FLAGS:
        return "flag"
    if name in INTEGERS:
        return "integer"
    base = typing.get_args(annotation)[0] if typing.get_origin(annotation) is typing.Annotated else annotation
    return "list" if "list" in str(base) else "text"


def help_of(annotation: Any) -> str:
    """The option's ``--help`` line, from its typer declaration."""
    for extra in typing.get_args(annotation)[1:]:
        if getattr(extra, "help", None):
            return str(extra.help)
    return ""


def option_records() -> dict[str, Any]:
    """Every query option a client may send, in ``--help`` order, and the methods ``all`` stands for."""
    from estimator.cli.options import DEFAULT_MODEL, QUERY_OPTIONS
    from estimator.stores.base import CORE
    from estimator.stores.targets import PRESETS

    closed = choices()
    records = []
    for name, annotation, default in QUERY_OPTIONS:
        if name in REFUSED:
            continue
        record: dict[str, Any] = {
            "name": name,
            "default": DEFAULT_MODEL if name == "model" else default,
            "help": help_of(annotation),
            "kind": kind_of(name, annotation),
            "choices": closed.get(name),
        }
        if name == "targets":
            record["suggestions"] = list(PRESETS)  # presets, or any comma list of maps
        records.append(record)
    from estimator.web.commands import command_records

    return {"options": records, "all_methods": _values(CORE), "commands": command_records()}
