"""Ministral (Ministral-8B) and Ministral 3: Mistral's layout, windows per layer or on every layer.

What transformers 5.24 builds per layer, for both: q, k, v, o and gate, up, down, never with biases
(hard-coded), two RMSNorms of d; untied embeddings by default.

- ministral: each layer slides or not by ``layer_types`` (absent: every layer sliding where
  ``sliding_window`` is set, 4,096 by default, else every layer full). MinistralConfig leaves ``head_dim``
  null and its attention cannot be built without it: a config without one is refused. K = 8 by default
  (null is refused by the config class, as a null head_dim is by Ministral 3's).
- ministral3: one ``sliding_window`` (none by default) for every layer, as Mistral; the attention reads no
  ``layer_types``, so one that says otherwise is refused. head_dim 128 by default.

Ministral3Config's own defaults (d 4,096, F 14,336, 34 layers, 32 heads, 8 KV heads of 128, vocabulary
131,072, untied): 34 · (2 · 4,096² + 2 · 4,096 · 1,024 + 3 · 4,096 · 14,336 + 2 · 4,096) + 2 · 131,072 · 4,096
+ 4,096 = 8,489,553,920 parameters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from estimator.errors import EstimatorError
from estimator.families import Family, Reader, attention_config, windowed_attention_layout
from estimator.families.activation import activation
from estimator.families.schema import text
from estimator.layout import Layout
from estimator.layout.groups import attention_maps, embedding_and_final_norm, gated_mlp, rms_norms

if TYPE_CHECKING:
    from estimator.specs import ModelSpec

_DEFAULTS: dict[str, dict[str, Any]] = {  # MinistralConfig's and Ministral3Config's defaults for absent keys
    "ministral": {
        "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
        "num_attention_heads": 32, "max_position_embeddings": 131072,
    },
    "ministral3": {
        "vocab_size": 131072, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 34,
        "num_attention_heads": 32, "max_position_embeddings": 262144,
    },
}  # fmt: skip
_SHAPE = ("num_hidden_layers", "hidden_size", "intermediate_size", "num_attention_heads", "vocab_size")


def _head_dim(r: Reader, hidden: Any, heads: Any) -> Any:
    if r.model_type == "ministral":
        if r.config.get("head_dim") is None:
            raise EstimatorError(
                f"{r.path}: config.json has no head_dim; transformers 5.24's ministral attention cannot be built "
                "without one (MinistralConfig leaves it null): give head_dim"
            )
        return r.config["head_dim"]
    return r.get("head_dim", 128, "128 (Ministral3Config default)")


def _windows(r: Reader, n: int) -> dict[str, Any]:
    """Ministral: layer_types (absent: all sliding with a window, else all full); Ministral 3: every layer
    slides with a window, and a layer_types saying otherwise is refused."""
    if r.model_type == "ministral":
        window = r.get("sliding_window", 4096, "4,096 (MinistralConfig default)", null_is_default=False)
    else:
        window = r.get("sliding_window", None)
    every = ["sliding_attention" if window is not None else "full_attention"] * n
    types = r.config.get("layer_types")
    if r.model_type == "ministral3" and types is not None and list(types) != every:
        raise EstimatorError(
            f"{r.path}: layer_types is given, but a ministral3 model's attention reads none (with sliding_window "
            f"{window} every layer is {every[0]}) while transformers' cache would follow it; remove layer_types"
        )
    types = every if types is None else list(types)
    if "sliding_attention" not in types:
        return {}
    if window is None:
        raise EstimatorError(
            f"{r.path}: layer_types has sliding_attention layers but sliding_window is null; "
            "give the window or make every layer full_attention"
        )
    return {"sliding_window": window, "layer_types": tuple(types)}


def read(r: Reader) -> dict[str, Any]:
    defaults = _DEFAULTS[r.model_type]
    fields: dict[str, Any] = {key: r.field(key, defaults) for key in _SHAPE}
    heads = fields["num_attention_heads"]
    for key in ("num_key_value_heads", *("head_dim",) * (r.model_type == "ministral3")):
        if key in r.config and r.config[key] is None:  # the config classes type both as int, strictly
            raise EstimatorError(f"{r.path}: {key} is null, which a {r.model_type} config refuses; give a number")
    activation(r, "hidden_act", "silu")
    fields.update(
        num_key_value_heads=r.get("num_key_value_heads", 8, f"8 KV heads ({r.model_type} config default)"),
        head_dim=_head_dim(r, fields["hidden_size"], heads),
        max_position_embeddings=r.field("max_position_embeddings", defaults),
        tie_word_embeddings=r.get("tie_word_embeddings", False),
        **_windows(r, fields["num_hidden_layers"]),
    )
    return fields


def build(spec: ModelSpec) -> Layout:
    """One group per window: q, k, v, o, gate, up, down without biases, two RMSNorms of d."""
    d, dh = spec.hidden_size, spec.attention_head_dim
    maps = attention_maps(d, spec.attention_heads * dh, spec.kv_heads * dh, False, False)
    maps += gated_mlp("mlp", d, spec.mlp_width)
    norms = rms_norms(d, ("input_layernorm", "post_attention_layernorm"))
    tensors = embedding_and_final_norm(spec.vocab_size, d, spec.tie_word_embeddings)
    return windowed_attention_layout(spec, maps, norms, tensors)


def to_config(spec: ModelSpec) -> dict[str, Any]:
    config = {**attention_config(spec), "sliding_window": spec.sliding_window}
    if spec.model_type == "ministral":
        config["layer_types"] = list(spec.layer_types or ("full_attention",) * spec.num_hidden_layers)
    return config


FAMILIES = [Family(("ministral", "ministral3"), read, build, to_config, fields={"hidden_act": text})]
