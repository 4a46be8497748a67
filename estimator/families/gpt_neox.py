"""GPT-NeoX (Pythia, GPT-NeoX-20B): fused query_key_value with biases, two LayerNorms per layer.

transformers 5's ``GPTNeoXLayer``: ``input_layernorm`` and ``post_attention_layernorm`` (LayerNorm,
weight and bias: 2d each) whether or not ``use_parallel_residual`` runs attention and MLP side by
side (it changes no count); ``attention.query_key_value`` (d -> 3d) and ``attention.dense``
(d -> d), biased by ``attention_bias`` (true by default); ``mlp.dense_h_to_4h`` (d -> F) and
``mlp.dense_4h_to_h`` (F -> d), always biased. Outside the layers: ``embed_in`` (V × d),
``final_layer_norm`` (2d) and the head (d -> V, no bias; the checkpoints' ``embed_out``, named
``lm_head`` in transformers 5), untied by default. Every head is hidden / heads wide: a
config.json ``head_dim`` only sizes the rotary embedding, never the attention.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from estimator.families import Family, Reader
from estimator.families.conventions import Conventions, PeftConventions
from estimator.layout import Attention, LayerGroup, Layout, LinearMap, ParamTensor
from estimator.layout.groups import output_head, roles

if TYPE_CHECKING:
    from estimator.specs import ModelSpec


def read(r: Reader) -> dict[str, Any]:
    hidden, heads = r.need("hidden_size"), r.need("num_attention_heads")
    numeric = isinstance(hidden, int) and isinstance(heads, int) and heads > 0
    head_dim = hidden // heads if numeric else None
    given = r.config.get("head_dim")
    if given is not None and given != head_dim:
        r.note(f"head_dim {given} sizes only the rotary embedding; attention heads are hidden / heads = {head_dim}")
    return {
        "num_hidden_layers": r.need("num_hidden_layers"),
        "hidden_size": hidden,
        "intermediate_size": r.need("intermediate_size"),
        "num_attention_heads": heads,
        "num_key_value_heads": heads,
        "head_dim": head_dim,
        "vocab_size": r.get("vocab_size", 50432, "50,432 (GPTNeoXConfig default)"),
        "max_position_embeddings": r.get("max_position_embeddings", 2048, "2,048 (GPTNeoXConfig default)"),
        "tie_word_embeddings": r.get("tie_word_embeddings", False),
        "attention_bias": r.get("attention_bias", True, "biases on query_key_value and dense (config default)"),
    }


def build(spec: ModelSpec) -> Layout:
    """One group: query_key_value and dense (biased by ``attention_bias``), the biased MLP, two LayerNorms.

    Pythia 6.9B: 32 · (4,096 · 12,288 + 12,288 + 4,096² + 4,096 + 2 · 4,096 · 16,384 + 16,384 + 4,096
    + 4 · 4,096) + 2 · 50,432 · 4,096 + 2 · 4,096 = 6,857,302,016 parameters.
    """
    d, f, bias = spec.hidden_size, spec.mlp_width, spec.attention_bias
    qkv_out = (spec.attention_heads + 2 * spec.kv_heads) * spec.attention_head_dim
    maps = (
        LinearMap("attention.query_key_value", d, qkv_out, bias, roles("q", "k", "v"), "attention"),
        LinearMap("attention.dense", spec.attention_heads * spec.attention_head_dim, d, bias, roles("o"), "attention"),
        LinearMap("mlp.dense_h_to_4h", d, f, True, roles("up"), "mlp"),
        LinearMap("mlp.dense_4h_to_h", f, d, True, roles("down"), "mlp"),
    )
    norms = (ParamTensor("input_layernorm", 2 * d, "norm"), ParamTensor("post_attention_layernorm", 2 * d, "norm"))
    mixer = Attention(spec.attention_heads, spec.kv_heads, spec.attention_head_dim)
    tensors = (
        ParamTensor("embed_in", spec.vocab_size * d, "embedding"),
        ParamTensor("final_layer_norm", 2 * d, "norm"),
        *output_head(spec.vocab_size, d, spec.tie_word_embeddings),
    )
    return Layout((LayerGroup(spec.num_hidden_layers, mixer, maps, norms),), tensors)


def to_config(spec: ModelSpec) -> dict[str, Any]:
    return {
        "hidden_size": spec.hidden_size,
        "intermediate_size": spec.mlp_width,
        "num_attention_heads": spec.attention_heads,
        "max_position_embeddings": spec.max_position_embeddings,
        "attention_bias": spec.attention_bias,
    }


def twin(spec: ModelSpec, update: dict[str, Any]) -> dict[str, Any]:
    """head_dim is hidden / heads: the twin keeps hidden_size (and so head_dim)."""
    return {**update, "hidden_size": spec.hidden_size}


# peft's IA3 default
CONVENTIONS = {
    "gpt_neox": Conventions(peft=PeftConventions(ia3=(("query_key_value", "dense_4h_to_h"), ("dense_4h_to_h",))))
}

FAMILIES = [Family(("gpt_neox",), read, build, to_config, twin=twin, conventions=CONVENTIONS)]
