"""Microsoft Phi-3.5-MoE (model type phimoe): Mixtral's shape with LayerNorms and biases.

What transformers 5.24's ``PhimoeForCausalLM`` builds, per layer:

- attention: q, k, v, o, each with a bias when ``attention_bias`` (Phi-3.5-MoE: true);
- a sliding window of ``sliding_window`` on every layer when set (Phi-3.5-MoE: 131,072; transformers
  keeps w − 1 tokens), else full attention;
- ``num_local_experts`` experts of width ``intermediate_size``, top ``num_experts_per_tok``: fused
  ``mlp.experts.gate_up_proj`` and ``down_proj`` without biases, and the router ``mlp.router``, an
  ``nn.Linear`` subclass (d -> E, no bias);
- ``input_layernorm`` and ``post_attention_layernorm`` are ``nn.LayerNorm``: d weights and d biases
  each, as the final norm; the output head has a bias of V when ``lm_head_bias``.

peft 0.21 does not convert phimoe's experts (transformers' ``_MODEL_TO_CONVERSION_PATTERN`` has no
entry for it): all-linear adapts q, k, v, o and the router (an ``nn.Linear``), not the experts. The
per-expert layout is the checkpoint's: ``block_sparse_moe.experts.{i}.w1/w3/w2`` and the router
``block_sparse_moe.gate``.

Phi-3.5-MoE: 32 layers of 1,300,326,400 (attention 41,953,280, router 65,536, experts 16 · 78,643,200,
norms 16,384) + embedding and head 2 · 32,064 · 4,096 + head bias 32,064 + final norm 8,192
= 41,873,153,344 (Microsoft: 41.9B); active 6,640,999,744 (Microsoft: 6.6B).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from estimator.families import Family, Reader, attention_config, head_dim_or_derived
from estimator.families.named_experts import NamedMoE
from estimator.families.schema import flag
from estimator.layout import Attention, LayerGroup, Layout, LinearMap, ParamTensor
from estimator.layout.groups import attention_maps, grouped, output_head

if TYPE_CHECKING:
    from collections.abc import Hashable

    from estimator.layout.moe import MoE
    from estimator.specs import ModelSpec

_DEFAULTS = {  # PhimoeConfig's defaults for absent keys
    "num_attention_heads": 32,
    "vocab_size": 32064,
    "max_position_embeddings": 131072,
    "intermediate_size": 6400,
}


def read(r: Reader) -> dict[str, Any]:
    hidden, heads, n = r.need("hidden_size"), r.field("num_attention_heads", _DEFAULTS), r.need("num_hidden_layers")
    width = r.field("intermediate_size", _DEFAULTS)
    kv = r.get("num_key_value_heads", 8, "8 KV heads (phimoe config default)", null_is_default=False)
    return {
        "num_hidden_layers": n,
        "hidden_size": hidden,
        "intermediate_size": width,
        "moe_intermediate_size": width,
        "num_attention_heads": heads,
        "num_key_value_heads": heads if kv is None else kv,
        "head_dim": head_dim_or_derived(r, hidden, heads),
        "vocab_size": r.field("vocab_size", _DEFAULTS),
        "max_position_embeddings": r.field("max_position_embeddings", _DEFAULTS),
        "tie_word_embeddings": r.get("tie_word_embeddings", False),
        "attention_bias": r.get("attention_bias", False),
        "sliding_window": r.get("sliding_window", None),
        "n_routed_experts": r.get("num_local_experts", 16, "16 (phimoe config default)"),
        "num_experts_per_tok": r.get("num_experts_per_tok", 2, "2 (phimoe config default)"),
        "mlp_layer_types": ("sparse",) * n if isinstance(n, int) else None,
        "family_fields": (("lm_head_bias", r.get("lm_head_bias", False)),),
    }


def experts(spec: ModelSpec) -> NamedMoE:
    """Routed experts: the checkpoint's ``block_sparse_moe`` names per expert; transformers 5's fused
    tensors under ``mlp`` with an ``nn.Linear`` router ``mlp.router``."""
    return NamedMoE(
        experts=spec.n_routed_experts or 0,
        top_k=spec.num_experts_per_tok or 0,
        d_model=spec.hidden_size,
        width=spec.moe_intermediate_size or 0,
        prefix="block_sparse_moe.experts",
        names=("w1", "w3", "w2"),
        router="block_sparse_moe.gate",
        router_linear=True,
        fused_router="mlp.router",
        fused_router_linear=True,
    )


def layer_norms(d: int, names: tuple[str, ...]) -> tuple[ParamTensor, ...]:
    """``nn.LayerNorm`` with affine weights and biases: 2 · d each."""
    return tuple(ParamTensor(name, 2 * d, "norm") for name in names)


def build(spec: ModelSpec) -> Layout:
    """One group (every layer alike): biased attention, routed experts, two LayerNorms."""
    d, h = spec.hidden_size, spec.attention_heads
    q_out, kv_out = h * spec.attention_head_dim, spec.kv_heads * spec.attention_head_dim
    bias = spec.attention_bias
    maps: tuple[LinearMap | MoE, ...] = (*attention_maps(d, q_out, kv_out, bias, bias), experts(spec))
    norms = layer_norms(d, ("input_layernorm", "post_attention_layernorm"))

    def group(window: Hashable, layers: int) -> LayerGroup:
        mixer = Attention(h, spec.kv_heads, spec.attention_head_dim, cast(int | None, window))
        return LayerGroup(layers, mixer, maps, norms)

    head_bias = (ParamTensor("lm_head.bias", spec.vocab_size, "lm_head"),) if spec.option("lm_head_bias") else ()
    tensors = (
        ParamTensor("embed_tokens", spec.vocab_size * d, "embedding"),
        *layer_norms(d, ("norm",)),
        *output_head(spec.vocab_size, d, spec.tie_word_embeddings),
        *head_bias,
    )
    return Layout(grouped(spec.layer_windows(), group), tensors)


def to_config(spec: ModelSpec) -> dict[str, Any]:
    return {
        **attention_config(spec),
        "intermediate_size": spec.moe_intermediate_size,
        "num_local_experts": spec.n_routed_experts,
        "num_experts_per_tok": spec.num_experts_per_tok,
        "attention_bias": spec.attention_bias,
        "sliding_window": spec.sliding_window,
        "lm_head_bias": bool(spec.option("lm_head_bias", False)),
    }


FAMILIES = [Family(("phimoe",), read, build, to_config, fields={"lm_head_bias": flag})]
