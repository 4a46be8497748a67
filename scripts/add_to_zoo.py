"""Add a model to the zoo from its real config.json: the TOML is written from what the reader makes of the
config (never typed by hand), the config copied to tests/data/hf_configs/, and the provenance given here.

    python scripts/add_to_zoo.py tests/data/hf_configs/extra/qwen3-next-80b-a3b-instruct.json \\
        --name qwen3-next-80b-a3b --display-name "Qwen3-Next-80B-A3B" \\
        --source https://huggingface.co/Qwen/Qwen3-Next-80B-A3B-Instruct/blob/main/config.json \\
        --pretraining-tokens 15e12 --pretraining-source "https://qwenlm.github.io/... ('15T tokens')"

Then run `python -m estimator.zoo_manifest` to record the new file in the zoo's manifest.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

from estimator.hf_config import spec_from_hf_config
from estimator.specs import ModelSpec

ROOT = Path(__file__).resolve().parent.parent
PROVENANCE = ("name", "display_name", "source")


def toml_value(value: Any) -> str:
    """A TOML literal for the spec's value types: str, bool, int (with separators), float, lists of them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value:_}" if abs(value) >= 100_000 else str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def zoo_toml(config: Path, name: str, display_name: str, source: str, extra: dict[str, Any]) -> str:
    spec = spec_from_hf_config(config, name=name)
    defaults = {f.name: f.default for f in dataclasses.fields(ModelSpec)}
    fields = {
        k: v
        for k, v in spec.to_dict().items()
        if k not in (*PROVENANCE, "notes") and v is not None and v != defaults.get(k) and v not in ([], ())
    }  # only what differs from the spec's defaults, as the hand-written zoo files
    lines = [f"# {display_name}: architecture values from the published config.json (`source`).",
             f"name = {toml_value(name)}", f"display_name = {toml_value(display_name)}",
             f"source = {toml_value(source)}", ""]  # fmt: skip
    lines += [f"{key} = {toml_value(value)}" for key, value in fields.items()]
    lines.append("")
    lines += [f"{key} = {toml_value(value)}" for key, value in extra.items() if value is not None]
    notes = [*spec.notes, *extra.get("_notes", ())]
    if notes:
        lines.append("notes = [")
        lines += [f"    {toml_value(note)}," for note in notes]
        lines.append("]")
    return "\n".join(line for line in lines if not line.startswith("_notes")) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", type=Path)
    parser.add_argument("--name", required=True)
    parser.add_argument("--display-name", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--pretraining-tokens", type=float)
    parser.add_argument("--pretraining-source")
    parser.add_argument("--reported-params")
    parser.add_argument("--reported-params-source")
    parser.add_argument("--reported-active-params")
    parser.add_argument("--active-excludes-input-embedding", action="store_true")
    parser.add_argument("--note", action="append", default=[])
    args = parser.parse_args()
    extra: dict[str, Any] = {
        "pretraining_tokens": None if args.pretraining_tokens is None else int(args.pretraining_tokens),
        "pretraining_tokens_source": args.pretraining_source,
        "reported_params": args.reported_params,
        "reported_params_source": args.reported_params_source,
        "reported_active_params": args.reported_active_params,
        "reported_active_params_exclude_input_embedding": args.active_excludes_input_embedding or None,
    }
    if args.pretraining_tokens is None and not any("pretraining-tokens" in note for note in args.note):
        args.note.append(f"{args.display_name}: no published pretraining token count; pass --pretraining-tokens.")
    text = zoo_toml(args.config, args.name, args.display_name, args.source, {**extra, "_notes": args.note})
    (ROOT / "model_specs" / f"{args.name}.toml").write_text(text)
    shutil.copyfile(args.config, ROOT / "tests" / "data" / "hf_configs" / f"{args.name}.json")
    print(f"model_specs/{args.name}.toml and tests/data/hf_configs/{args.name}.json written")


if __name__ == "__main__":
    main()
