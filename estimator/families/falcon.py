"""Falcon: fused query_key_value, parallel attention and MLP, LayerNorm, tied embeddings.

transformers' ``FalconAttention``: ``multi_query`` (without ``new_decoder_architecture``) means one
KV head, whatever ``num_kv_heads`` says; the new decoder architecture (40B, 180B) has
``num_kv_heads`` KV heads and two LayerNorms per layer. head_dim is always hidden_size / heads.
MLP: ``dense_h_to_4h`` (d -> ffn_hidden_size, default 4d) and ``dense_4h_to_h``; ``bias`` puts
biases on every linear map.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from estimator.families import Family, Reader
from estimator.families.conventions import Conventions, PeftConventions, TransformersConventions
from estimator.layout import Attention, LayerGroup, Layout, LinearMap, ParamTensor
from estimator.layout.groups import output_head, roles

if TYPE_CHECKING:
    from estimator.specs import ModelSpec


def read(r: Reader) -> dict[str, Any]:
    hidden, heads = r.need("hidden_size", "n_embed"), r.need("num_attention_heads")
    new_arch = bool(r.get("new_decoder_architecture", False))
    multi_query = bool(r.get("multi_query", True))
    if new_arch or not multi_query:
        kv_heads = r.get("num_kv_heads", heads)
    else:
        kv_heads = 1
        if r.config.get("num_kv_heads") not in (None, 1):
            r.note(
                f"multi_query is true: 1 KV head, whatever num_kv_heads ({r.config['num_kv_heads']}) says, "
                "as transformers' FalconAttention does"
            )
    numeric = isinstance(hidden, int) and isinstance(heads, int) and heads > 0
    fields = {
        "num_hidden_layers": r.need("num_hidden_layers"),
        "hidden_size": hidden,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": hidden // heads if numeric else None,
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


def norms_per_layer(spec: ModelSpec) -> int:
    """LayerNorms in a Falcon layer: 2 if sequential; in parallel 1 (7B) or 2 (new architecture)."""
    if not spec.parallel_attn:
        return 2
    if spec.num_ln_in_parallel_attn is not None:
        return spec.num_ln_in_parallel_attn
    return 2 if spec.new_decoder_architecture else 1


def build(spec: ModelSpec) -> Layout:
    """One group: fused query_key_value, dense, the MLP, and LayerNorms (weight and bias, 2d each)."""
    d, f, b = spec.hidden_size, spec.mlp_width, spec.bias
    qkv_out = (spec.attention_heads + 2 * spec.kv_heads) * spec.attention_head_dim
    maps = (
        LinearMap("self_attention.query_key_value", d, qkv_out, b, roles("q", "k", "v"), "attention"),
        LinearMap("self_attention.dense", d, d, b, roles("o"), "attention"),
        LinearMap("mlp.dense_h_to_4h", d, f, b, roles("up"), "mlp"),
        LinearMap("mlp.dense_4h_to_h", f, d, b, roles("down"), "mlp"),
    )
    norms = (ParamTensor("layer norms", 2 * d, "norm", norms_per_layer(spec)),)
    mixer = Attention(spec.attention_heads, spec.kv_heads, spec.attention_head_dim)
    tensors = (
        ParamTensor("word_embeddings", spec.vocab_size * d, "embedding"),
        ParamTensor("ln_f", 2 * d, "norm"),
        *output_head(spec.vocab_size, d, spec.tie_word_embeddings),
    )
    return Layout((LayerGroup(spec.num_hidden_layers, mixer, maps, norms),), tensors)


def to_config(spec: ModelSpec) -> dict[str, Any]:
    return {
        "hidden_size": spec.hidden_size,
        "num_attention_heads": spec.attention_heads,
        "num_kv_heads": spec.kv_heads,
        "multi_query": not spec.new_decoder_architecture and spec.kv_heads == 1,
        "new_decoder_architecture": spec.new_decoder_architecture,
        "parallel_attn": spec.parallel_attn,
        "num_ln_in_parallel_attn": spec.num_ln_in_parallel_attn,
        "bias": spec.bias,
        "ffn_hidden_size": spec.mlp_width,
        "max_position_embeddings": spec.max_position_embeddings,
    }


def peft_prefix(spec: ModelSpec, virtual_tokens: int) -> tuple[int, str] | None:
    """peft sizes a prefix from config.json's heads: without ``num_key_value_heads`` there, all H heads of hidden / H
    (Falcon-7B, n = 20: 20 · 2 · 32 · 71 · 64, where the cache holds 1 KV head); None where they agree."""
    if spec.num_key_value_heads == spec.num_attention_heads:
        return None
    why = (
        "Falcon's config has no num_key_value_heads, so peft sizes the prefix for all heads; the estimate is the "
        f"cache of n tokens with the model's {spec.num_key_value_heads} KV head(s)"
    )
    return virtual_tokens * 2 * spec.num_hidden_layers * spec.attention_heads * spec.attention_head_dim, why


def cached_kv_heads(spec: ModelSpec) -> int:
    """KV heads transformers' cache holds: the new decoder architecture (40B, 180B) broadcasts K and V to all H query
    heads before caching (``FalconAttention._split_heads``), Falcon-40B 128 where the model has 8; else K."""
    if spec.new_decoder_architecture:
        return spec.attention_heads
    return spec.num_key_value_heads or 0


# peft's IA3 default; its LN-tuning default names norms the layout keeps together
CONVENTIONS = {
    "falcon": Conventions(
        peft=PeftConventions(
            ia3=(("query_key_value", "dense_4h_to_h"), ("dense_4h_to_h",)), ln_tuning_unnamed=True, prefix=peft_prefix
        ),
        transformers=TransformersConventions(cached_kv_heads=cached_kv_heads, linear_subclass="FalconLinear"),
    )
}


FAMILIES = [Family(("falcon",), read, build, to_config, conventions=CONVENTIONS)]
