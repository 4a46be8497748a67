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

from typing import TYPE_CHECKING, Any

from estimator.families import (
    Family,
    Reader,
    all_sparse_fields,
    attention_config,
    windowed_attention_layout,
)
from estimator.families.named_experts import NamedMoE, named_moe
from estimator.families.schema import flag
from estimator.layout import Layout, LinearMap, ParamTensor
from estimator.layout.groups import attention_maps, output_head

if TYPE_CHECKING:
    from estimator.layout.moe import MoE
    from estimator.specs import ModelSpec

_DEFAULTS = {  # PhimoeConfig's defaults for absent keys
    "num_attention_heads": 32,
    "vocab_size": 32064,
    "max_position_embeddings": 131072,
    "intermediate_size": 6400,
}


def read(r: Reader) -> dict[str, Any]:
    fields = all_sparse_fields(r, _DEFAULTS, "num_local_experts", 16, 2, kv_default=8)
    fields["sliding_window"] = r.get("sliding_window", None)
    fields["family_fields"] = (("lm_head_bias", r.get("lm_head_bias", False)),)
    return fields


def experts(spec: ModelSpec) -> NamedMoE:
    """Routed experts: the checkpoint's ``block_sparse_moe`` names per expert; transformers 5's fused
    tensors under ``mlp`` with an ``nn.Linear`` router ``mlp.router``."""
    return named_moe(
        spec,
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

    head_bias = (ParamTensor("lm_head.bias", spec.vocab_size, "lm_head"),) if spec.option("lm_head_bias") else ()
    tensors = (
        ParamTensor("embed_tokens", spec.vocab_size * d, "embedding"),
        *layer_norms(d, ("norm",)),
        *output_head(spec.vocab_size, d, spec.tie_word_embeddings),
        *head_bias,
    )
    return windowed_attention_layout(spec, maps, norms, tensors)


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
