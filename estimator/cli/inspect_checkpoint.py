"""``estimate inspect PATH``: what a local checkpoint stores, read from its headers only (a model folder, a
``.gguf`` file, a repo id in the local Hub cache, or a peft adapter folder next to its estimate), printed
through the one output seam (:mod:`estimator.present.checkpoint`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from estimator.cli.app import app
from estimator.cli.output import emit, with_format
from estimator.errors import EstimatorError
from estimator.present.report import Format
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
@with_format
def inspect_command(
    path: PathArg, base_model: BaseModelOpt = None, base_config: BaseConfigOpt = None, *, fmt: Format
) -> None:
    """What a local checkpoint stores, from its safetensors or GGUF headers (no tensor data is read): parameters,
    bytes per dtype, the quantisation, the layout's count beside them; for a peft adapter folder, its rank,
    targets and bytes beside the estimate for the same settings (--base-model or --base-config names the base;
    the adapter's own base_model_name_or_path is shown, never opened)."""
    from estimator.checkpoint.locate import model_path

    folder, _ = model_path(path)
    if folder.is_dir() and (folder / "adapter_config.json").is_file() and not (folder / "config.json").is_file():
        inspect_adapter(folder, base_model, base_config, fmt)
        return
    if base_model is not None or base_config is not None:
        raise EstimatorError("--base-model and --base-config name an adapter's base; drop them for a model checkpoint")
    inspect_model(path, fmt)


def inspect_model(path: str, fmt: Format) -> None:
    """The checkpoint at ``path`` read from its headers, beside the layout's count."""
    from estimator.checkpoint.crosscheck import folder_check
    from estimator.checkpoint.locate import spec_from_path
    from estimator.present.checkpoint import CheckpointReport

    spec = spec_from_path(path)
    check = folder_check(spec)
    if check is None:
        raise EstimatorError(f"{path}: no safetensors or GGUF weights beside its config; pass a model folder")
    emit(CheckpointReport(spec, path, check), fmt)


def inspect_adapter(folder: Path, model: str | None, config: Path | None, fmt: Format) -> None:
    """The peft adapter in ``folder``, beside the estimate on the base named by ``model`` or ``config``."""
    from estimator.checkpoint.adapter import read_adapter
    from estimator.checkpoint.files import printable
    from estimator.present.checkpoint import AdapterReport

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
    emit(AdapterReport(adapter, base, why), fmt)
