"""The zoo: one TOML file per model in ``model_specs/``, looked up by exact name.

``model_specs/_validated.json`` records, for each file whose text was validated in full, that text
and its fields: a file whose text is byte for byte the recorded one is built from the recorded
fields without parsing or validating again (no TOML parser, no schema, on the path of a plain query).
Any edited or new file is validated in full. ``python -m estimator.zoo_manifest`` rewrites the record.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from estimator.errors import EstimatorError
from estimator.specs import ModelSpec, validate_spec

VALIDATED_MANIFEST = "_validated.json"  # {file name: {"text": ..., "fields": ...}}


def specs_dir() -> Path:
    """The folder of zoo files: packaged in the wheel, or ``model_specs/`` beside the source tree."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_model_specs", here.parent / "model_specs"):
        if candidate.is_dir():
            return candidate
    raise EstimatorError("the model_specs folder is missing from this installation; reinstall estimator")


def _natural_key(name: str) -> list[tuple[int, str]]:
    """Sort key that puts llama2-7b before llama2-13b: digit runs compare as numbers."""
    return [(int(part), "") if part.isdigit() else (-1, part) for part in re.split(r"(\d+)", name)]


def model_names() -> list[str]:
    """Every zoo name, in natural order (llama2-7b, llama2-13b, llama2-70b, llama3-8b, ...)."""
    return sorted((p.stem for p in specs_dir().glob("*.toml")), key=_natural_key)


def load_spec(name: str) -> ModelSpec:
    """The zoo spec with exactly this name (case-insensitive); unknown names suggest close ones.

    Only names: a path (``../x``, ``a/b``) is never looked up; pass a config.json with ``--config``.
    """
    key = name.strip().lower()
    names = model_names()
    if key not in names:
        import difflib

        close = difflib.get_close_matches(key, names, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise EstimatorError(f"unknown model {name!r}; {hint}run `estimate models` to list all, or pass --config")
    return load_spec_file(specs_dir() / f"{key}.toml")


@cache
def _validated(folder: Path) -> dict[str, Any]:
    path = folder / VALIDATED_MANIFEST
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def _parse(path: Path, text: str) -> dict[str, Any]:
    import tomllib

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise EstimatorError(f"{path}: not valid TOML ({exc}); fix the file") from None


def _tuples(value: Any) -> Any:
    """JSON's lists back as the spec's tuples, at any depth."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def load_spec_file(path: Path) -> ModelSpec:
    """Parse and validate one TOML spec file; errors name the file and the field.

    A zoo file whose text is the one recorded when the manifest was written is built from the
    recorded fields (the test suite checks both paths give equal specs); any edited or new file is
    parsed and validated in full.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EstimatorError(f"cannot read {path} ({exc}); reinstall estimator or fix the file") from None
    record = _validated(path.parent).get(path.name)
    if isinstance(record, dict) and record.get("text") == text:
        fields: dict[str, Any] = {k: _tuples(v) for k, v in record["fields"].items()}
        return ModelSpec(**fields)
    spec = validate_spec(_parse(path, text), str(path), "fix the file")
    if spec.name != path.stem:
        raise EstimatorError(f"{path}: name {spec.name!r} differs from the file name; make them equal")
    return spec


def load_all_specs() -> list[ModelSpec]:
    """Every zoo spec, sorted by name."""
    return [load_spec_file(specs_dir() / f"{n}.toml") for n in model_names()]


def write_validated_manifest(folder: Path | None = None) -> Path:
    """Validate every zoo file in full and record the text and fields of each that passed."""
    folder = folder or specs_dir()
    records = {}
    for path in sorted(folder.glob("*.toml")):
        text = path.read_text(encoding="utf-8")
        spec = validate_spec(_parse(path, text), str(path), "fix the file")
        if spec.name != path.stem:
            raise EstimatorError(f"{path}: name {spec.name!r} differs from the file name; make them equal")
        records[path.name] = {"text": text, "fields": spec.to_dict()}
    manifest = folder / VALIDATED_MANIFEST
    manifest.write_text(json.dumps(records, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    _validated.cache_clear()
    return manifest
