"""``GET /api/options``: the query's options as the CLI declares them (:data:`estimator.cli.options.QUERY_OPTIONS`:
names, defaults, help) with the values the CLI's own readers take (its dtype tuples and enums), so the page
writes no list of options, defaults or choices of its own; and under ``commands`` the options of ``serve-memory``,
``train-memory`` and ``compare`` (:mod:`estimator.web.commands`), from their click declarations."""

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
    from estimator.query import ADAPTER_DTYPES, PARTS
    from estimator.query.vocabulary import Method
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
        "part": list(PARTS),
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
    from estimator.query.vocabulary import CORE
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
    return {"options": records, "all_methods": _values(CORE), "commands": command_records()}


PANEL_CHOICES = {  # the values of each closed option, from the enums the CLI reads it with
    "engine": ("estimator.memory.engines", "Engine"),
    "weights_dtype": ("estimator.memory.formats", "WeightFormat"),
    "optimizer": ("estimator.memory.training", "Optimizer"),
    "precision": ("estimator.memory.training", "Precision"),
    "offload": ("estimator.memory.training", "Offload"),
    "checkpointing": ("estimator.memory.activations", "Checkpointing"),
    "loss": ("estimator.memory.loss", "Loss"),
}


def command_records() -> dict[str, list[dict[str, Any]]]:
    """Each command's options for the page (name, default, help, kind, choices), from its click declaration."""
    import importlib

    from estimator.accelerators import accelerator_names
    from estimator.web.commands import COMMANDS, command_params

    closed = choices()
    out: dict[str, list[dict[str, Any]]] = {}
    for name in COMMANDS:
        records = []
        for param in command_params(name):
            values = closed.get(param.name)
            if param.name in PANEL_CHOICES and (param.name != "weights_dtype" or name == "serve-memory"):
                module, enum = PANEL_CHOICES[param.name]
                values = [str(m.value) for m in getattr(importlib.import_module(module), enum)]
                values = ["auto", *values] if param.name == "weights_dtype" else values  # serve-memory's own
            elif param.name == "accelerator":
                values = accelerator_names()
            elif param.name == "zero":
                values = ["0", "1", "2", "3"]
            kind = "flag" if param.is_flag else "list" if param.name in ("way", "model", "tp", "batch") else "text"
            default = param.default if param.name != "model" or name != "serve-memory" else None
            records.append({"name": param.name, "default": None if default is None else str(default).lower()
                            if isinstance(default, bool) else str(default), "help": param.help or "",
                            "kind": kind, "choices": values})  # fmt: skip
        out[name] = records
    return out
