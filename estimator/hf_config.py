"""Reading a real Hugging Face ``config.json`` into a :class:`~estimator.specs.ModelSpec`.

Each family's reader applies what that family's transformers configuration and modelling code
do with the keys, including keys that override others and defaults for absent keys:

- every family: ``num_key_value_heads`` absent -> the number of query heads (Mistral: 8);
  ``head_dim`` absent -> hidden_size / num_attention_heads.
- mistral: ``sliding_window`` absent -> 4096 (MistralConfig's default); null -> full attention.
- qwen2: ``sliding_window`` only counts when ``use_sliding_window`` is true, and then only on
  layers from ``max_window_layers`` on (or as ``layer_types`` says).
- falcon: ``multi_query`` (without ``new_decoder_architecture``) means one KV head, whatever
  ``num_kv_heads`` says; ``ffn_hidden_size`` absent -> 4 · hidden_size; embeddings tied by default.
- gpt2: ``n_embd``/``n_layer``/``n_head``/``n_positions``; ``n_inner`` null -> 4 · n_embd; tied.

Every default applied is recorded in the spec's ``notes`` and printed with the estimate.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from estimator.errors import EstimatorError
from estimator.specs import ModelSpec, describe_validation_error

SUPPORTED = ("llama", "mistral", "qwen2", "phi3", "falcon", "gpt2")


class _Reader:
    """Field access on one config.json that names what is missing and records defaults."""

    def __init__(self, config: dict[str, Any], path: Path) -> None:
        self.config = config
        self.path = path
        self.model_type = str(config.get("model_type"))
        self.notes: list[str] = []

    def need(self, *keys: str) -> Any:
        """The first of ``keys`` present (aliases); an error naming the field when none is."""
        for key in keys:
            if self.config.get(key) is not None:
                return self.config[key]
        raise EstimatorError(
            f"{self.path}: config.json lacks {keys[0]!r}, which a {self.model_type} model needs; "
            f"use the model's complete config.json"
        )

    def get(self, key: str, default: Any, why: str | None = None) -> Any:
        """The value of ``key``; when absent (or null), ``default``, noted with ``why`` if given."""
        value = self.config.get(key)
        if value is None:
            if why is not None:
                self.notes.append(f"config.json has no {key}: {why}")
            return default
        return value


def _common(r: _Reader, kv_default_heads: int | None = None) -> dict[str, Any]:
    hidden, heads = r.need("hidden_size"), r.need("num_attention_heads")
    kv_heads = kv_default_heads if kv_default_heads is not None else heads
    fields = {
        "num_hidden_layers": r.need("num_hidden_layers"),
        "hidden_size": hidden,
        "num_attention_heads": heads,
        "vocab_size": r.need("vocab_size"),
        "num_key_value_heads": r.get(
            "num_key_value_heads",
            kv_heads,
            f"{kv_heads} KV heads, as transformers' {r.model_type} config does",
        ),
    }
    fields["head_dim"] = r.get(
        "head_dim",
        _divide(r, hidden, heads),
        "head_dim = hidden_size / num_attention_heads, as transformers does",
    )
    return fields


def _divide(r: _Reader, hidden: Any, heads: Any) -> Any:
    if isinstance(hidden, int) and isinstance(heads, int) and heads > 0:
        return hidden // heads
    return None  # the spec's validation names the bad field


def _llama(r: _Reader) -> dict[str, Any]:
    return {
        **_common(r),
        "intermediate_size": r.need("intermediate_size"),
        "max_position_embeddings": r.get("max_position_embeddings", 2048, "2,048 tokens (LlamaConfig default)"),
        "tie_word_embeddings": r.get("tie_word_embeddings", False),
        "attention_bias": r.get("attention_bias", False),
        "mlp_bias": r.get("mlp_bias", False),
    }


def _mistral(r: _Reader) -> dict[str, Any]:
    if "sliding_window" in r.config:
        window = r.config["sliding_window"]
    else:
        window = 4096
        r.notes.append("config.json has no sliding_window: 4,096 (MistralConfig's default)")
    return {
        **_common(r, kv_default_heads=8),
        "intermediate_size": r.need("intermediate_size"),
        "max_position_embeddings": r.get("max_position_embeddings", 131072, "131,072 (MistralConfig default)"),
        "tie_word_embeddings": r.get("tie_word_embeddings", False),
        "sliding_window": window,
    }


def _qwen2(r: _Reader) -> dict[str, Any]:
    fields = {
        **_common(r),
        "intermediate_size": r.need("intermediate_size"),
        "max_position_embeddings": r.get("max_position_embeddings", 32768, "32,768 (Qwen2Config default)"),
        "tie_word_embeddings": r.get("tie_word_embeddings", False),
    }
    if r.get("use_sliding_window", False):
        window = r.get("sliding_window", 4096, "4,096 (Qwen2Config default)")
        layers = fields["num_hidden_layers"]
        first_windowed = r.get("max_window_layers", 28, "28 (Qwen2Config default)")
        types = r.config.get("layer_types") or [
            "sliding_attention" if i >= first_windowed else "full_attention" for i in range(layers)
        ]
        if "sliding_attention" in types:
            fields.update(sliding_window=window, layer_types=tuple(types))
    elif r.config.get("sliding_window") is not None:
        r.notes.append("sliding_window is ignored because use_sliding_window is false (as in transformers)")
    return fields


def _phi3(r: _Reader) -> dict[str, Any]:
    return {
        **_common(r),
        "intermediate_size": r.need("intermediate_size"),
        "max_position_embeddings": r.get("max_position_embeddings", 4096, "4,096 (Phi3Config default)"),
        "tie_word_embeddings": r.get("tie_word_embeddings", False),
        "sliding_window": r.get("sliding_window", None),
    }


def _falcon(r: _Reader) -> dict[str, Any]:
    hidden, heads = r.need("hidden_size", "n_embed"), r.need("num_attention_heads")
    new_arch = bool(r.get("new_decoder_architecture", False))
    multi_query = bool(r.get("multi_query", True))
    if new_arch or not multi_query:
        kv_heads = r.get("num_kv_heads", heads)
    else:
        kv_heads = 1
        if r.config.get("num_kv_heads") not in (None, 1):
            r.notes.append(
                f"multi_query is true: 1 KV head, whatever num_kv_heads ({r.config['num_kv_heads']}) says, "
                "as transformers' FalconAttention does"
            )
    fields = {
        "num_hidden_layers": r.need("num_hidden_layers"),
        "hidden_size": hidden,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": _divide(r, hidden, heads),
        "vocab_size": r.need("vocab_size"),
        "intermediate_size": r.get("ffn_hidden_size", 4 * hidden if isinstance(hidden, int) else None),
        "max_position_embeddings": r.get("max_position_embeddings", 2048, "2,048 (FalconConfig default)"),
        "tie_word_embeddings": r.get("tie_word_embeddings", True),
        "bias": r.get("bias", False),
        "new_decoder_architecture": new_arch,
        "parallel_attn": r.get("parallel_attn", True),
    }
    if r.config.get("num_ln_in_parallel_attn") is not None:
        fields["num_ln_in_parallel_attn"] = r.config["num_ln_in_parallel_attn"]
    return fields


def _gpt2(r: _Reader) -> dict[str, Any]:
    hidden = r.need("n_embd", "hidden_size")
    heads = r.need("n_head", "num_attention_heads")
    inner = r.config.get("n_inner")
    return {
        "num_hidden_layers": r.need("n_layer", "num_hidden_layers"),
        "hidden_size": hidden,
        "num_attention_heads": heads,
        "num_key_value_heads": heads,
        "head_dim": _divide(r, hidden, heads),
        "vocab_size": r.need("vocab_size"),
        "intermediate_size": inner if inner is not None else (4 * hidden if isinstance(hidden, int) else None),
        "max_position_embeddings": r.need("n_positions", "max_position_embeddings"),
        "tie_word_embeddings": r.get("tie_word_embeddings", True),
    }


_FAMILIES = {
    "llama": _llama,
    "mistral": _mistral,
    "qwen2": _qwen2,
    "phi3": _phi3,
    "falcon": _falcon,
    "gpt2": _gpt2,
}


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


def spec_from_hf_config(path: Path, name: str | None = None) -> ModelSpec:
    """A spec from a real config.json of a supported family (see the module docstring)."""
    config = read_config_json(path)
    model_type = config.get("model_type")
    if model_type is None:
        raise EstimatorError(f"{path}: config.json lacks 'model_type'; use the model's complete config.json")
    if model_type not in _FAMILIES:
        raise EstimatorError(
            f"{path}: model_type {model_type!r} is not supported yet; supported: {', '.join(SUPPORTED)}"
        )
    reader = _Reader(config, path)
    fields = _FAMILIES[model_type](reader)
    slug = name or _default_name(config, path)
    try:
        return ModelSpec(
            name=slug,
            display_name=str(config.get("_name_or_path") or slug),
            source=path.resolve().as_uri(),
            model_type=model_type,
            torch_dtype=str(config.get("torch_dtype") or config.get("dtype") or "float32"),
            notes=tuple(reader.notes),
            **fields,
        )
    except ValidationError as exc:
        raise EstimatorError(f"{path}: {describe_validation_error(exc)}; fix the config.json") from None
