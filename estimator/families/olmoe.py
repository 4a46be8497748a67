"""AllenAI OLMoE (OLMoE-1B-7B): 64 small experts, top 8, and RMSNorms on the whole q and k projections.

What transformers 5.24's ``OlmoeForCausalLM`` builds, per layer:

- attention: q, k, v, o (biases from ``attention_bias``, default false); ``q_norm`` is an RMSNorm
  over the whole query projection, hidden_size wide, and ``k_norm`` over the whole key projection,
  (hidden_size / H) · K wide (not per head as Qwen3's);
- every MLP is sparse: ``num_experts`` experts of width ``intermediate_size``, top
  ``num_experts_per_tok``; the router ``mlp.gate`` is a bare weight E × d in transformers 5 (an
  ``nn.Linear`` in the checkpoint's code) and the experts transformers 5's fused tensors;
- two RMSNorms; untied embeddings by default.

peft 0.21 converts OLMoE (its conversion pattern is qwen2_moe's): an all-linear LoRA becomes LoRAs on
``mlp.experts.gate_up_proj`` (rank 2r), ``down_proj`` (r) and the router weight ``mlp.gate`` (r).

OLMoE-1B-7B-0924: 16 layers of 419,569,664 (attention 16,777,216, q and k norms 4,096, router 131,072,
experts 64 · 6,291,456, norms 4,096) + 2 · 50,304 · 2,048 + 2,048 = 6,919,161,856 (AllenAI: 6.9B);
active 1,282,017,280 (AllenAI: 1.3B).
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
from estimator.families.conventions import Conventions, PeftConventions
from estimator.families.moe import GATED_NAMES, routed_experts
from estimator.layout import Layout, LinearMap, ParamTensor
from estimator.layout.groups import attention_maps, embedding_and_final_norm, rms_norms

if TYPE_CHECKING:
    from estimator.layout.moe import MoE
    from estimator.specs import ModelSpec

_DEFAULTS = {  # OlmoeConfig's defaults for absent keys
    "num_attention_heads": 16,
    "vocab_size": 50304,
    "max_position_embeddings": 4096,
    "intermediate_size": 2048,
}


def read(r: Reader) -> dict[str, Any]:
    return all_sparse_fields(r, _DEFAULTS, "num_experts", 64, 8)


def qk_norms(spec: ModelSpec) -> tuple[ParamTensor, ...]:
    """``q_norm`` over hidden_size and ``k_norm`` over (hidden_size // H) · K, as OlmoeAttention sizes them
    (OLMoE-1B-7B: 2,048 and 2,048)."""
    per_head = spec.hidden_size // spec.attention_heads
    return (
        ParamTensor("self_attn.q_norm", spec.hidden_size, "norm"),
        ParamTensor("self_attn.k_norm", per_head * spec.kv_heads, "norm"),
    )


def build(spec: ModelSpec) -> Layout:
    """One group: attention with whole-projection q and k norms, routed experts."""
    d, h = spec.hidden_size, spec.attention_heads
    q_out, kv_out = h * spec.attention_head_dim, spec.kv_heads * spec.attention_head_dim
    bias = spec.attention_bias
    experts = routed_experts(spec, "mlp.experts", GATED_NAMES, "mlp.gate", True)  # an nn.Linear router in v4
    maps: tuple[LinearMap | MoE, ...] = (
        *attention_maps(d, q_out, kv_out, bias, bias),
        experts,
    )
    norms = (*qk_norms(spec), *rms_norms(d, ("input_layernorm", "post_attention_layernorm")))

    tensors = embedding_and_final_norm(spec.vocab_size, d, spec.tie_word_embeddings)
    return windowed_attention_layout(spec, maps, norms, tensors)


def to_config(spec: ModelSpec) -> dict[str, Any]:
    return {
        **attention_config(spec),
        "intermediate_size": spec.moe_intermediate_size,
        "num_experts": spec.n_routed_experts,
        "num_experts_per_tok": spec.num_experts_per_tok,
        "attention_bias": spec.attention_bias,
    }


# peft converts its expert and router names to transformers 5's fused tensors
CONVENTIONS = {"olmoe": Conventions(peft=PeftConventions(converts_experts=True))}

FAMILIES = [Family(("olmoe",), read, build, to_config, conventions=CONVENTIONS)]
