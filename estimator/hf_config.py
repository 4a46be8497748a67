"""Reading a real Hugging Face ``config.json`` into a :class:`~estimator.specs.ModelSpec`.

Each family's reader (:mod:`estimator.families`) applies what that family's transformers
configuration and modelling code do with the keys, including keys that override others and
defaults for absent keys; every default applied is recorded in the spec's ``notes``.
A multimodal config (Gemma 3's ``text_config``) is read for its language model alone.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from estimator.errors import EstimatorError
from estimator.families import Reader, family, supported
from estimator.specs import ModelSpec, validate_spec

TEXT_MODEL_TYPES = {"gemma3": "gemma3_text"}  # multimodal wrapper -> its language model


def read_config_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; one-line errors for a missing file or bad JSON."""
    if not path.is_file():
        raise EstimatorError(f"config file {str(path)!r} not found; pass the path of a Hugging Face config.json")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EstimatorError(f"{path} is not valid JSON ({exc}); pass a Hugging Face config.json") from None
    if not isinstance(data, dict):
        raise EstimatorError(f"{path} holds JSON but not an object; pass a Hugging Face config.json")
    return data


def _default_name(config: dict[str, Any], path: Path) -> str:
    raw = str(config.get("_name_or_path") or path.resolve().parent.name or path.stem)
    slug = re.sub(r"[^a-z0-9._-]+", "-", raw.rsplit("/", 1)[-1].lower()).strip("-.")
    return slug or "config"


def _language_model(config: dict[str, Any], path: Path) -> tuple[dict[str, Any], str, list[str]]:
    """The config of the language model, its model_type, and notes on what was left out."""
    model_type = config.get("model_type")
    if model_type is None:
        raise EstimatorError(f"{path}: config.json lacks 'model_type'; use the model's complete config.json")
    text = config.get("text_config")
    if isinstance(text, dict) and (model_type in TEXT_MODEL_TYPES or text.get("model_type") in supported()):
        text_type = text.get("model_type") or TEXT_MODEL_TYPES[model_type]
        note = f"language model only (text_config of {model_type}): the vision tower and projector are not counted"
        return text, text_type, [note]
    if model_type not in supported():
        raise EstimatorError(
            f"{path}: model_type {model_type!r} is not supported yet; supported: {', '.join(supported())}"
        )
    return config, model_type, []


def spec_from_hf_config(path: str | Path, name: str | None = None) -> ModelSpec:
    """A spec from a real config.json of a supported family."""
    path = Path(path)
    outer = read_config_json(path)
    config, model_type, notes = _language_model(outer, path)
    reader = Reader(config, path, model_type)
    fields = family(model_type).read(reader)
    slug = name or _default_name(outer, path)
    dtype = outer.get("torch_dtype") or outer.get("dtype") or config.get("torch_dtype") or "float32"
    identity = {
        "name": slug,
        "display_name": str(outer.get("_name_or_path") or slug),
        "source": path.resolve().as_uri(),
        "model_type": model_type,
        "torch_dtype": str(dtype),
        "notes": (*notes, *reader.notes),
    }
    return validate_spec({**identity, **fields}, str(path), "fix the config.json")
