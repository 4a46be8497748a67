"""IBM Granite 3.x MoE (model type granitemoe): Mixtral's shape under Granite's names and multipliers.

What transformers 5.24's ``GraniteMoeForCausalLM`` builds, per layer:

- attention: q, k, v, o (biases from ``attention_bias``, default false); the µP multipliers
  (``embedding_multiplier``, ``attention_multiplier``, ``residual_multiplier``, ``logits_scaling``)
  scale activations and hold no parameters;
- every MLP is sparse, under ``block_sparse_moe``: the router ``router`` (a bare weight E × d) and
  ``num_local_experts`` experts of width ``intermediate_size`` as transformers 5's fused tensors
  ``experts.gate_up_proj`` (E × 2F × d) and ``experts.down_proj`` (E × d × F); top
  ``num_experts_per_tok``;
- two RMSNorms; embeddings tied when ``tie_word_embeddings`` (Granite 3.1 MoE: true).

The checkpoint is fused as well: ``block_sparse_moe.input_linear`` (E × 2F × d, gate and up),
``output_linear`` (E × d × F) and the router ``router.layer`` (an ``nn.Linear`` in the checkpoint's
code). No code holds an ``nn.Linear`` per expert, so the per-expert layout here is the convention of
separate gate, up and down maps per expert (``block_sparse_moe.experts.{i}.gate_proj`` ...).

peft 0.21 does not convert granitemoe (no entry in transformers' ``_MODEL_TO_CONVERSION_PATTERN``):
all-linear adapts q, k, v and o only.

granite-3.1-1b-a400m: 24 layers of 53,512,192 (attention 3,145,728, router 32,768, experts
32 · 1,572,864, norms 2,048) + tied embedding 49,155 · 1,024 + 1,024 = 1,334,628,352 (IBM: 1.3B);
active 428,658,688 (the "a400m" of its name).
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
from estimator.layout import Layout, LinearMap
from estimator.layout.groups import attention_maps, embedding_and_final_norm, rms_norms

if TYPE_CHECKING:
    from estimator.layout.moe import MoE
    from estimator.specs import ModelSpec

_DEFAULTS = {  # GraniteMoeConfig's defaults for absent keys
    "num_attention_heads": 32,
    "vocab_size": 32000,
    "max_position_embeddings": 2048,
    "intermediate_size": 11008,
}


def read(r: Reader) -> dict[str, Any]:
    return all_sparse_fields(r, _DEFAULTS, "num_local_experts", 8, 2)


def experts(spec: ModelSpec) -> NamedMoE:
    """Routed experts under ``block_sparse_moe``: a bare router in transformers 5, ``router.layer``
    (an ``nn.Linear``) in the checkpoint's code."""
    return named_moe(
        spec,
        prefix="block_sparse_moe.experts",
        router="block_sparse_moe.router.layer",
        router_linear=True,
        fused_prefix="block_sparse_moe.experts",
        fused_router="block_sparse_moe.router",
    )


def build(spec: ModelSpec) -> Layout:
    """One group: attention, routed experts, two RMSNorms."""
    d, h = spec.hidden_size, spec.attention_heads
    q_out, kv_out = h * spec.attention_head_dim, spec.kv_heads * spec.attention_head_dim
    bias = spec.attention_bias
    maps: tuple[LinearMap | MoE, ...] = (*attention_maps(d, q_out, kv_out, bias, bias), experts(spec))
    norms = rms_norms(d, ("input_layernorm", "post_attention_layernorm"))

    tensors = embedding_and_final_norm(spec.vocab_size, d, spec.tie_word_embeddings)
    return windowed_attention_layout(spec, maps, norms, tensors)


def to_config(spec: ModelSpec) -> dict[str, Any]:
    return {
        **attention_config(spec),
        "intermediate_size": spec.moe_intermediate_size,
        "num_local_experts": spec.n_routed_experts,
        "num_experts_per_tok": spec.num_experts_per_tok,
        "attention_bias": spec.attention_bias,
    }


FAMILIES = [Family(("granitemoe",), read, build, to_config)]
