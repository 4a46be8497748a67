"""``estimate inspect PATH``: what a local checkpoint stores, read from its headers only (a model folder, a
``.gguf`` file, a repo id in the local Hub cache, or a peft adapter folder next to its estimate)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer

from estimator.cli.app import app, say
from estimator.cli.options import JsonOpt
from estimator.errors import EstimatorError
from estimator.query.options import spec_of

BaseModelOpt = Annotated[str | None, typer.Option("--base-model", help="A peft adapter's base: a zoo name.")]
BaseConfigOpt = Annotated[
    Path | None, typer.Option("--base-config", help="A peft adapter's base: a config.json, folder, .gguf or repo id.")
]
PathArg = Annotated[
    str,
    typer.Argument(help="A model folder, a .gguf file, a repo id in the local Hub cache, or a peft adapter folder."),
]


@app.command("inspect")
def inspect_command(
    path: PathArg, base_model: BaseModelOpt = None, base_config: BaseConfigOpt = None, as_json: JsonOpt = False
) -> None:
    """What a local checkpoint stores, from its safetensors or GGUF headers (no tensor data is read): parameters,
    bytes per dtype, the quantisation, the layout's count beside them; for a peft adapter folder, its rank,
    targets and bytes beside the estimate for the same settings (--base-model or --base-config names the base;
    the adapter's own base_model_name_or_path is shown, never opened)."""
    from estimator.checkpoint.locate import model_path

    folder, _ = model_path(path)
    if folder.is_dir() and (folder / "adapter_config.json").is_file() and not (folder / "config.json").is_file():
        inspect_adapter(folder, base_model, base_config, as_json)
        return
    if base_model is not None or base_config is not None:
        raise EstimatorError("--base-model and --base-config name an adapter's base; drop them for a model checkpoint")
    inspect_model(path, as_json)


def inspect_model(path: str, as_json: bool) -> None:
    from estimator.checkpoint.crosscheck import folder_check
    from estimator.checkpoint.files import printable
    from estimator.checkpoint.locate import spec_from_path

    spec = spec_from_path(path)
    check = folder_check(spec)
    if check is None:
        raise EstimatorError(f"{path}: no safetensors or GGUF weights beside its config; pass a model folder")
    rows = dtype_rows(check.stored)
    if as_json:
        typer.echo(json.dumps({"model": spec.name, "model_type": spec.model_type, **check.record(),
                               "by_dtype": rows}, indent=2))  # fmt: skip
        return
    say(f"{printable(spec.display_name)} ({spec.model_type}), read from {printable(str(Path(path)))}")
    typer.echo("")
    from estimator.present.tables import format_table

    body = [[r["dtype"], f"{r['tensors']:,}", f"{r['elements']:,}", f"{r['bytes']:,}"] for r in rows]
    typer.echo(format_table(["stored as", "tensors", "elements", "bytes"], body, right={1, 2, 3}))
    typer.echo("")
    say(check.line())


def dtype_rows(stored: Any) -> list[dict[str, Any]]:
    """Tensors, elements and bytes per stored dtype (safetensors' names, or GGUF's tensor types)."""
    tensors: Counter[str] = Counter()
    elements: Counter[str] = Counter()
    for t in stored.tensors:
        tensors[t.dtype] += 1
        elements[t.dtype] += t.numel
    order = sorted(stored.bytes_by_dtype, key=lambda d: -stored.bytes_by_dtype[d])
    return [
        {"dtype": d, "tensors": tensors[d], "elements": elements[d], "bytes": stored.bytes_by_dtype[d]} for d in order
    ]


def inspect_adapter(folder: Path, model: str | None, config: Path | None, as_json: bool) -> None:
    from estimator.checkpoint.adapter import comparison_line, estimate_for, read_adapter
    from estimator.checkpoint.files import printable

    adapter = read_adapter(folder)
    base, why = None, ""
    if model is not None or config is not None:
        base = spec_of(model, config)
    elif adapter.base is not None:  # a path in a downloaded file is never opened unless the user names it
        why = (
            f"its base {printable(adapter.base, 120)!r} is only read when named: give --base-config with that path "
            "or repo id, or --base-model with a zoo name"
        )
    else:
        why = "the adapter names no base model; give --base-model or --base-config"
    if as_json:
        record: dict[str, Any] = {
            "folder": str(folder),
            "peft_type": adapter.peft_type,
            "rank": adapter.rank,
            "ranks_found": list(adapter.ranks_found),
            "modules": list(adapter.modules),
            "use_dora": adapter.dora,
            "params": adapter.params,
            "modules_to_save_params": adapter.saved_modules_params,
            "bytes_by_dtype": adapter.bytes_by_dtype,
            "base": base.name if base is not None else None,
        }
        if base is not None:
            record["estimate_params"] = estimate_for(adapter, base)[0]
        typer.echo(json.dumps(record, indent=2))
        return
    say(adapter.describe())
    say(comparison_line(adapter, base) if base is not None else f"No estimate: {why}.")
