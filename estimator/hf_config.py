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

from estimator.checkpoint.files import printable
from estimator.errors import EstimatorError, UnknownFamilyError
from estimator.families import Reader, family, supported
from estimator.families.towers import language_model_note
from estimator.specs import ModelSpec, validate_spec

# Read before a family is known, so kept here as indexes of what the families declare (``Conventions.wrappers``
# and ``.aliases``); tests/test_family_conventions.py ties both to the families.
TEXT_MODEL_TYPES = {
    "gemma3": "gemma3_text",
    "llama4": "llama4_text",
    "gemma3n": "gemma3n_text",
    "qwen3_5": "qwen3_5_text",
    "qwen3_5_moe": "qwen3_5_moe_text",
    "gemma4": "gemma4_text",
}  # wrapper -> its LM
ALIASES = {"kimi_k2": "deepseek_v3"}  # model types transformers builds with another family's code


MAX_CONFIG_BYTES = 1_000_000  # a config.json is a few kB; the largest multimodal ones ~50 kB
MAX_DEPTH = 32  # nesting of objects and arrays; real configs nest 3 or 4 deep


def read_config_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; one-line errors for a missing file, a folder, an oversized or
    too deeply nested file, or bad JSON. Nothing beyond ``MAX_CONFIG_BYTES`` is read."""
    if path.is_dir():
        raise EstimatorError(f"{path} is a folder; pass the config.json inside it (--config {path / 'config.json'})")
    if not path.is_file():
        raise EstimatorError(f"config file {str(path)!r} not found; pass the path of a Hugging Face config.json")
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise EstimatorError(
            f"cannot read {path} ({exc.strerror or exc}); check the path and its permissions"
        ) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise EstimatorError(f"{path} is over {MAX_CONFIG_BYTES:,} bytes; pass a Hugging Face config.json (a few kB)")
    return parse_config_json(raw, str(path))


def parse_config_json(raw: bytes, where: str) -> dict[str, Any]:
    """A config.json's bytes as a JSON object, nested at most ``MAX_DEPTH`` deep; one line otherwise."""
    fix = "pass a Hugging Face config.json"
    if _depth(raw) > MAX_DEPTH:
        raise EstimatorError(f"{where} nests objects or arrays more than {MAX_DEPTH} deep; {fix}")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        detail = " ".join(str(exc).split())[:120]
        raise EstimatorError(f"{where} is not valid JSON ({detail}); {fix}") from None
    if not isinstance(data, dict):
        raise EstimatorError(f"{where} holds JSON but not an object; {fix}")
    return data


def _depth(raw: bytes) -> int:
    """The deepest nesting of [ and { outside strings (an upper bound where the JSON is broken)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def model_name(config: dict[str, Any], path: Path, given: str | None = None) -> tuple[str, str]:
    """(name, display name) of a config.json's model: ``given`` (``--name``); else the config's own
    ``_name_or_path``; else the file's name unless it is just ``config``; else its architecture
    (``LlamaForCausalLM``). Never the folder's: a Hub snapshot's folder is a commit hash."""
    architectures = config.get("architectures")
    first = (
        architectures[0]
        if isinstance(architectures, list) and architectures and isinstance(architectures[0], str)
        else None
    )
    own = config.get("_name_or_path") if isinstance(config.get("_name_or_path"), str) else None
    named_file = path.stem if path.stem.lower() != "config" else None
    display = printable(given or own or named_file or first or path.stem)  # no terminal escapes from a file
    slug = re.sub(r"[^a-z0-9._-]+", "-", display.rstrip("/").rsplit("/", 1)[-1].lower()).strip("-._")
    return slug or "model", display


def _language_model(config: dict[str, Any], path: Path) -> tuple[dict[str, Any], str, list[str]]:
    """The config of the language model, its model_type, and notes on what was left out."""
    model_type = config.get("model_type")
    if model_type is None:
        raise EstimatorError(f"{path}: config.json lacks 'model_type'; use the model's complete config.json")
    if not isinstance(model_type, str):
        raise EstimatorError(f"{path}: model_type is {model_type!r}, not a string; fix the config.json")
    if model_type in ALIASES:
        note = f"model_type {model_type} is read as {ALIASES[model_type]}, whose code transformers builds it with"
        return config, ALIASES[model_type], [note]
    text = config.get("text_config")
    if model_type in TEXT_MODEL_TYPES and not isinstance(text, dict):
        raise EstimatorError(
            f"{path}: a {model_type} config keeps its language model in text_config, which is "
            f"{'missing' if text is None else repr(text)[:40]}; use the model's complete config.json"
        )
    if isinstance(text, dict) and (model_type in TEXT_MODEL_TYPES or text.get("model_type") in supported()):
        text_type = text.get("model_type") or TEXT_MODEL_TYPES[model_type]
        if not isinstance(text_type, str):
            raise EstimatorError(f"{path}: text_config.model_type is {text_type!r}, not a string; fix the config.json")
        # (the wrapper class's default, its text configs'): Mistral 3 ties by default, Mistral and Ministral 3 not
        tied = {"qwen3_5": (False, False), "qwen3_5_moe": (False, False), "gemma4": (True, True),
                "mistral3": (True, False), "paligemma": (True, True)}.get(model_type)  # fmt: skip
        if tied is not None and config.get("tie_word_embeddings", tied[0]) != text.get("tie_word_embeddings", tied[1]):
            # the wrapper ties its lm_head by its own flag, a text-only model by text_config's
            raise EstimatorError(
                f"{path}: tie_word_embeddings differs between the {model_type} config and its text_config (the "
                f"wrapper ties by its own, a text-only model by text_config's); set both to the same value"
            )
        return text, text_type, [language_model_note(config, path)]
    if model_type not in supported():
        raise UnknownFamilyError(
            f"{path}: model_type {model_type!r} is not a family the estimator knows (the main query, `estimate "
            f"--config FILE`, measures it from transformers); supported: {', '.join(supported())}",
            path,
            model_type,
            config,
        )
    return config, model_type, []


def spec_from_hf_config(path: str | Path, name: str | None = None) -> ModelSpec:
    """A spec from a real config.json of a supported family."""
    path = Path(path)
    return spec_from_config(read_config_json(path), path, name)


def spec_from_config(
    outer: dict[str, Any], path: Path, name: str | None = None, notes: tuple[str, ...] = ()
) -> ModelSpec:
    """A spec from a config's fields as config.json names them (read from ``path``: a file, or a GGUF
    file's metadata mapped to them), with ``notes`` on how they were found."""
    config, model_type, found = _language_model(outer, path)
    notes = (*notes, *found)
    chosen = family(model_type)
    reader = Reader(config, path, model_type, chosen.fields)
    fields = chosen.read(reader)
    slug, display = model_name(outer, path, name.strip() if name else None)
    dtype = outer.get("torch_dtype") or outer.get("dtype") or config.get("torch_dtype") or "float32"
    identity = {
        "name": slug,
        "display_name": display,
        "source": path.resolve().as_uri(),
        "model_type": model_type,
        "torch_dtype": str(dtype),
        "notes": (*notes, *reader.notes),
    }
    return validate_spec({**identity, **fields}, str(path), "fix the config.json")
