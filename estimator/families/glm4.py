"""GLM-4 (GLM-4-0414: 9B, 32B): fused gate_up, biases on q, k, v, four RMSNorms per layer.

transformers 5's ``Glm4DecoderLayer``: ``self_attn.q_proj``, ``k_proj``, ``v_proj`` with biases
from ``attention_bias`` (true by default), ``o_proj`` never biased; ``mlp.gate_up_proj``
(d -> 2F) and ``mlp.down_proj`` (F -> d), no biases; RMSNorms ``input_layernorm``,
``post_attention_layernorm``, ``post_self_attn_layernorm`` and ``post_mlp_layernorm`` (d each).
Glm4Config's defaults differ from Llama's: 2 KV heads, head_dim 128 (not hidden / heads), and a
partial rotary embedding (half of each head rotates; no count changes). Untied by default.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from estimator.families import Family, Reader, attention_config, head_dim_or_derived
from estimator.layout import Attention, LayerGroup, Layout, LinearMap
from estimator.layout.groups import attention_maps, embedding_and_final_norm, rms_norms, roles

if TYPE_CHECKING:
    from estimator.specs import ModelSpec

_NORMS = ("input_layernorm", "post_attention_layernorm", "post_self_attn_layernorm", "post_mlp_layernorm")


def read(r: Reader) -> dict[str, Any]:
    hidden, heads = r.need("hidden_size"), r.need("num_attention_heads")
    return {
        "num_hidden_layers": r.need("num_hidden_layers"),
        "hidden_size": hidden,
        "intermediate_size": r.need("intermediate_size"),
        "num_attention_heads": heads,
        "num_key_value_heads": r.get("num_key_value_heads", 2, "2 KV heads (Glm4Config default)"),
        "head_dim": head_dim_or_derived(r, hidden, heads, 128),
        "vocab_size": r.get("vocab_size", 151552, "151,552 (Glm4Config default)"),
        "max_position_embeddings": r.get("max_position_embeddings", 131072, "131,072 (Glm4Config default)"),
        "tie_word_embeddings": r.get("tie_word_embeddings", False),
        "attention_bias": r.get("attention_bias", True, "biases on q, k and v (Glm4Config default)"),
    }


def build(spec: ModelSpec) -> Layout:
    """One group: q, k, v (biased), o, fused gate_up and down, four RMSNorms.

    GLM-4-9B-0414: 40 · (4,096² + 4,096 + 2 · (4,096 · 256 + 256) + 4,096² + 4,096 · 27,392
    + 13,696 · 4,096 + 4 · 4,096) + 2 · 151,552 · 4,096 + 4,096 = 9,400,279,040 parameters.
    """
    d, dh, f = spec.hidden_size, spec.attention_head_dim, spec.mlp_width
    maps = (
        *attention_maps(d, spec.attention_heads * dh, spec.kv_heads * dh, spec.attention_bias, False),
        LinearMap("mlp.gate_up_proj", d, 2 * f, False, roles("gate", "up"), "mlp"),
        LinearMap("mlp.down_proj", f, d, False, roles("down"), "mlp"),
    )
    mixer = Attention(spec.attention_heads, spec.kv_heads, dh)
    layers = LayerGroup(spec.num_hidden_layers, mixer, maps, rms_norms(d, _NORMS))
    return Layout((layers,), embedding_and_final_norm(spec.vocab_size, d, spec.tie_word_embeddings))


def to_config(spec: ModelSpec) -> dict[str, Any]:
    return {**attention_config(spec), "attention_bias": spec.attention_bias}


FAMILIES = [Family(("glm4",), read, build, to_config)]
