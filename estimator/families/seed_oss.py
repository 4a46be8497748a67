"""Seed-OSS (ByteDance Seed-OSS-36B): Llama's layout with biases on q, k, v and a separate o bias.

What transformers 5.24's ``SeedOssDecoderLayer`` builds: q, k, v with biases from ``attention_bias``
(true by default), o_proj with a bias from ``attention_out_bias`` (false by default), gate, up, down with
biases from ``mlp_bias``, two RMSNorms of d. SeedOssConfig: head_dim 128 by default (null: hidden / heads),
8 KV heads (null: as many as the query heads), untied embeddings. No window: a ``sliding_window`` is
refused (:data:`estimator.families.WINDOWLESS`). The activation changes no count (one with parameters is
refused).

Seed-OSS-36B (ByteDance-Seed/Seed-OSS-36B-Instruct config.json: d 5,120, F 27,648, 64 layers, 80 heads,
8 KV heads of 128, vocabulary 155,136, untied): 64 · (5,120 · 10,240 + 10,240 + 2 · (5,120 · 1,024 + 1,024)
+ 10,240 · 5,120 + 3 · 5,120 · 27,648 + 2 · 5,120) + 2 · 155,136 · 5,120 + 5,120 = 36,151,104,512 parameters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from estimator.families import Family, Reader, attention_config
from estimator.families.activation import activation
from estimator.families.schema import flag, text
from estimator.layout import Attention, LayerGroup, Layout
from estimator.layout.groups import attention_maps, embedding_and_final_norm, gated_mlp, rms_norms

if TYPE_CHECKING:
    from estimator.specs import ModelSpec

_DEFAULTS = {  # SeedOssConfig's defaults for absent keys
    "vocab_size": 155136, "hidden_size": 4096, "intermediate_size": 27648, "num_hidden_layers": 64,
    "num_attention_heads": 80, "max_position_embeddings": 524288,
}  # fmt: skip


def read(r: Reader) -> dict[str, Any]:
    hidden, heads = r.field("hidden_size", _DEFAULTS), r.field("num_attention_heads", _DEFAULTS)
    kv = r.get("num_key_value_heads", 8, "8 KV heads (SeedOssConfig default)", null_is_default=False)
    head_dim = r.get("head_dim", 128, "128 (SeedOssConfig default)", null_is_default=False)
    if head_dim is None and isinstance(hidden, int) and isinstance(heads, int):
        head_dim = hidden // heads
        r.note("head_dim is null: hidden_size / num_attention_heads, as SeedOssConfig does")
    activation(r, "hidden_act", "silu")
    return {
        "num_hidden_layers": r.field("num_hidden_layers", _DEFAULTS),
        "hidden_size": hidden,
        "intermediate_size": r.field("intermediate_size", _DEFAULTS),
        "num_attention_heads": heads,
        "num_key_value_heads": heads if kv is None else kv,
        "head_dim": head_dim,
        "vocab_size": r.field("vocab_size", _DEFAULTS),
        "max_position_embeddings": r.field("max_position_embeddings", _DEFAULTS),
        "tie_word_embeddings": r.get("tie_word_embeddings", False),
        "attention_bias": r.get("attention_bias", True, "true: biases on q, k, v (SeedOssConfig default)"),
        "mlp_bias": r.get("mlp_bias", False),
        "family_fields": (("attention_out_bias", r.get("attention_out_bias", False)),),
    }


def build(spec: ModelSpec) -> Layout:
    """One group: q, k, v (biases from attention_bias), o (bias from attention_out_bias), the gated MLP,
    two RMSNorms of d."""
    d, dh = spec.hidden_size, spec.attention_head_dim
    out_bias = bool(spec.option("attention_out_bias", False))
    maps = attention_maps(d, spec.attention_heads * dh, spec.kv_heads * dh, spec.attention_bias, out_bias)
    maps += gated_mlp("mlp", d, spec.mlp_width, spec.mlp_bias)
    norms = rms_norms(d, ("input_layernorm", "post_attention_layernorm"))
    mixer = Attention(spec.attention_heads, spec.kv_heads, dh)
    tensors = embedding_and_final_norm(spec.vocab_size, d, spec.tie_word_embeddings)
    return Layout((LayerGroup(spec.num_hidden_layers, mixer, maps, norms),), tensors)


def to_config(spec: ModelSpec) -> dict[str, Any]:
    return {
        **attention_config(spec),
        "attention_bias": spec.attention_bias,
        "attention_out_bias": bool(spec.option("attention_out_bias", False)),
        "mlp_bias": spec.mlp_bias,
    }


FAMILIES = [Family(("seed_oss",), read, build, to_config, fields={"attention_out_bias": flag, "hidden_act": text})]
