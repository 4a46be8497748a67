"""``GET /api/options``: the question's options as :data:`estimator.query.options.OPTIONS` declares them (names,
defaults, help, how a client gives each, and its closed set of values), so the page writes no list of options,
defaults or choices of its own; and under ``commands`` the options of ``serve-memory``, ``train-memory`` and
``compare``, as :mod:`estimator.query.commands` declares them."""

from __future__ import annotations

from typing import Any


def option_records() -> dict[str, Any]:
    """Every query option a client may send, in ``--help`` order, and the methods ``all`` stands for."""
    from estimator.query.options import DEFAULT_MODEL, OPTIONS
    from estimator.query.vocabulary import CORE
    from estimator.stores.targets import PRESETS

    records = []
    for option in OPTIONS:
        if not option.from_client:
            continue
        record: dict[str, Any] = {
            "name": option.name,
            "default": DEFAULT_MODEL if option.name == "model" else option.default,
            "help": option.help,
            "kind": "list" if option.words is not None else option.kind.value,
            "choices": list(option.words if option.words is not None else option.choices or ()) or None,
        }
        if option.name == "targets":
            record["suggestions"] = list(PRESETS)  # presets, or any comma list of maps
        records.append(record)
    return {"options": records, "all_methods": [m.value for m in CORE], "commands": command_records()}


def choices() -> dict[str, list[str]]:
    """Each closed option's values (a list's words: ``methods``), by name."""
    from estimator.query.options import OPTIONS

    return {o.name: list(o.choices or o.words or ()) for o in OPTIONS if (o.choices or o.words) is not None}


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
    """Each command's options for the page (name, default, help, kind, choices), as the CLI parses them."""
    import importlib

    from estimator.accelerators import accelerator_names
    from estimator.query.commands import COMMANDS
    from estimator.web.commands import command_params

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
            kind = "flag" if param.is_flag else "list" if param.name in COMMANDS[name].lists else "text"
            default = param.default if param.name != "model" or name != "serve-memory" else None
            records.append({"name": param.name, "default": None if default is None else str(default).lower()
                            if isinstance(default, bool) else str(default), "help": param.help or "",
                            "kind": kind, "choices": values})  # fmt: skip
        out[name] = records
    return out
