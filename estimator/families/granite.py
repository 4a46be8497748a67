"""Granite (IBM Granite 3.x dense): Llama's layout, with multipliers that change no count.

transformers 5's ``GraniteDecoderLayer`` is Llama's: q, k, v, o (biases on all four from
``attention_bias``), gate, up, down (biases from ``mlp_bias``), two RMSNorms of d. The
``embedding_multiplier``, ``attention_multiplier``, ``residual_multiplier`` and ``logits_scaling``
scale activations, never add parameters. head_dim is config.json's ``head_dim`` where given, else
hidden / heads. GraniteConfig unties the head by default, but the released Granite 3.x configs
set ``tie_word_embeddings`` true: the head is then counted once, with the embedding.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from estimator.families import Family, Reader, attention_config, head_dim_or_derived
from estimator.layout import Attention, LayerGroup, Layout
from estimator.layout.groups import attention_maps, embedding_and_final_norm, gated_mlp, rms_norms

if TYPE_CHECKING:
    from estimator.specs import ModelSpec


def read(r: Reader) -> dict[str, Any]:
    hidden, heads = r.need("hidden_size"), r.need("num_attention_heads")
    return {
        "num_hidden_layers": r.need("num_hidden_layers"),
        "hidden_size": hidden,
        "intermediate_size": r.need("intermediate_size"),
        "num_attention_heads": heads,
        "num_key_value_heads": r.get("num_key_value_heads", heads, "as many KV heads as query heads (config default)"),
        "head_dim": head_dim_or_derived(r, hidden, heads),
        "vocab_size": r.get("vocab_size", 32000, "32,000 (GraniteConfig default)"),
        "max_position_embeddings": r.get("max_position_embeddings", 2048, "2,048 (GraniteConfig default)"),
        "tie_word_embeddings": r.get("tie_word_embeddings", False, "an untied head (GraniteConfig default)"),
        "attention_bias": r.get("attention_bias", False),
        "mlp_bias": r.get("mlp_bias", False),
    }


def build(spec: ModelSpec) -> Layout:
    """One group: Llama's seven maps and two RMSNorms.

    Granite 3.3 8B: 40 · (2 · 4,096² + 2 · 4,096 · 1,024 + 3 · 4,096 · 12,800 + 2 · 4,096)
    + 49,159 · 4,096 + 4,096 = 8,170,864,640 parameters (tied head).
    """
    d, dh = spec.hidden_size, spec.attention_head_dim
    q_out, kv_out, bias = spec.attention_heads * dh, spec.kv_heads * dh, spec.attention_bias
    maps = attention_maps(d, q_out, kv_out, bias, bias) + gated_mlp("mlp", d, spec.mlp_width, spec.mlp_bias)
    norms = rms_norms(d, ("input_layernorm", "post_attention_layernorm"))
    mixer = Attention(spec.attention_heads, spec.kv_heads, dh)
    tensors = embedding_and_final_norm(spec.vocab_size, d, spec.tie_word_embeddings)
    return Layout((LayerGroup(spec.num_hidden_layers, mixer, maps, norms),), tensors)


def to_config(spec: ModelSpec) -> dict[str, Any]:
    return {**attention_config(spec), "attention_bias": spec.attention_bias, "mlp_bias": spec.mlp_bias}


FAMILIES = [Family(("granite",), read, build, to_config)]
