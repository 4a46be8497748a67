"""Granite SWA (``granite_swa``): Granite's layout with sliding-window layers and learned attention sinks.

What transformers 5.24's ``GraniteSWADecoderLayer`` builds per layer: q, k, v, o (biases on all four from
``attention_bias``), ``self_attn.sinks`` (one learned logit per query head: H parameters, weights and not
cache), gate, up, down (biases from ``mlp_bias``), two RMSNorms of d. Each layer slides by ``layer_types``;
absent, every fourth layer from layer 0 is full and the others slide (i % 4 == 0 is full), over
``sliding_window`` (128 by default). The multipliers and ``layer_rope_theta`` scale or rotate activations,
never add parameters. GraniteSWAConfig: K = 4 by default (null: as many as the query heads), head_dim
hidden / heads unless given, tied embeddings. The activation changes no count (one with parameters is
refused).

GraniteSWAConfig's own defaults (d 2,560, F 8,192, 24 layers, 20 heads of 128, 4 KV heads, vocabulary 100,352,
tied): 24 · (2 · 2,560² + 2 · 2,560 · 512 + 20 + 3 · 2,560 · 8,192 + 2 · 2,560) + 100,352 · 2,560 + 2,560
= 2,144,463,840 parameters; layers 0, 4, 8, ... full, the others hold 128 tokens (127 as transformers keeps them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from estimator.errors import EstimatorError
from estimator.families import Family, Reader, attention_config, head_dim_or_derived, windowed_attention_layout
from estimator.families.activation import activation
from estimator.families.schema import text
from estimator.layout import Layout, ParamTensor
from estimator.layout.groups import attention_maps, embedding_and_final_norm, gated_mlp, rms_norms

if TYPE_CHECKING:
    from estimator.specs import ModelSpec

_DEFAULTS = {  # GraniteSWAConfig's defaults for absent keys
    "vocab_size": 100352, "hidden_size": 2560, "intermediate_size": 8192, "num_hidden_layers": 24,
    "num_attention_heads": 20, "max_position_embeddings": 8192,
}  # fmt: skip
WINDOW = 128  # GraniteSWAConfig.sliding_window
FULL_EVERY = 4  # GraniteSWAConfig's default layer_types: layers 0, 4, 8, ... full


def _windows(r: Reader, n: int) -> dict[str, Any]:
    types = r.config.get("layer_types")
    if types is None:
        r.note(f"config.json has no layer_types: every {FULL_EVERY}th layer from 0 full, the others sliding (default)")
        types = ["full_attention" if i % FULL_EVERY == 0 else "sliding_attention" for i in range(n)]
    window = r.get("sliding_window", WINDOW, f"{WINDOW} (GraniteSWAConfig default)", null_is_default=False)
    if "sliding_attention" not in types:
        return {}
    if window is None:
        raise EstimatorError(
            f"{r.path}: layer_types has sliding_attention layers but sliding_window is null; "
            "give the window or make every layer full_attention"
        )
    return {"sliding_window": window, "layer_types": tuple(types)}


def read(r: Reader) -> dict[str, Any]:
    hidden, heads = r.field("hidden_size", _DEFAULTS), r.field("num_attention_heads", _DEFAULTS)
    n = r.field("num_hidden_layers", _DEFAULTS)
    kv = r.get("num_key_value_heads", 4, "4 KV heads (GraniteSWAConfig default)", null_is_default=False)
    activation(r, "hidden_act", "silu")
    return {
        "num_hidden_layers": n,
        "hidden_size": hidden,
        "intermediate_size": r.field("intermediate_size", _DEFAULTS),
        "num_attention_heads": heads,
        "num_key_value_heads": heads if kv is None else kv,
        "head_dim": head_dim_or_derived(r, hidden, heads),
        "vocab_size": r.field("vocab_size", _DEFAULTS),
        "max_position_embeddings": r.field("max_position_embeddings", _DEFAULTS),
        "tie_word_embeddings": r.get("tie_word_embeddings", True, "tied embeddings (GraniteSWAConfig default)"),
        "attention_bias": r.get("attention_bias", False),
        "mlp_bias": r.get("mlp_bias", False),
        **_windows(r, n),
    }


def build(spec: ModelSpec) -> Layout:
    """One group per window: Granite's seven maps, H sinks, two RMSNorms of d."""
    d, dh, bias = spec.hidden_size, spec.attention_head_dim, spec.attention_bias
    maps = attention_maps(d, spec.attention_heads * dh, spec.kv_heads * dh, bias, bias)
    maps += gated_mlp("mlp", d, spec.mlp_width, spec.mlp_bias)
    tensors = (
        ParamTensor("self_attn.sinks", spec.attention_heads, "attention"),
        *rms_norms(d, ("input_layernorm", "post_attention_layernorm")),
    )
    outside = embedding_and_final_norm(spec.vocab_size, d, spec.tie_word_embeddings)
    return windowed_attention_layout(spec, maps, tensors, outside)


def to_config(spec: ModelSpec) -> dict[str, Any]:
    return {
        **attention_config(spec),
        "attention_bias": spec.attention_bias,
        "mlp_bias": spec.mlp_bias,
        "sliding_window": spec.sliding_window,
        "layer_types": list(spec.layer_types or ("full_attention",) * spec.num_hidden_layers),
    }


FAMILIES = [Family(("granite_swa",), read, build, to_config, fields={"hidden_act": text})]
