"""Zhipu GLM-4.5 and GLM-4.5-Air (model type glm4_moe): DeepSeek-V3's mixture on a GQA attention.

What transformers 5.24's ``Glm4MoeForCausalLM`` builds, per layer:

- attention: q, k, v with biases when ``attention_bias`` (GLM-4.5: true), o never biased; H query and
  K KV heads of ``head_dim`` (GLM-4.5-Air: 96 · 128 = 12,288 > d = 4,096); RoPE on a part of each head
  (``partial_rotary_factor``: no parameters, no change to the cache); RMSNorms on q and k per head
  (head_dim each) when ``use_qk_norm``;
- the first ``first_k_dense_replace`` layers a dense MLP of ``intermediate_size``; the others
  ``n_routed_experts`` experts of ``moe_intermediate_size`` (top ``num_experts_per_tok``), a shared MLP
  ``mlp.shared_experts`` of ``n_shared_experts`` · ``moe_intermediate_size``, and the router
  ``mlp.gate``: a bare weight E × d, kept in float32 from transformers 5.24 on; its
  ``e_score_correction_bias`` (E) is a buffer, not a parameter;
- two RMSNorms; untied embeddings.

The checkpoints also hold ``num_nextn_predict_layers`` multi-token-prediction layers that transformers
does not build: they are not counted (a note says so).

peft 0.21 converts glm4_moe (qwen2_moe's pattern): all-linear puts LoRAs on ``mlp.experts.gate_up_proj``
(2r), ``down_proj`` (r) and the router weight (r, in float32); the dense and shared MLPs, whose modules
are named gate_proj, up_proj and down_proj too, lose their adapters (as DeepSeek's).

GLM-4.5-Air: 46 · (attention 109,066,240 + norms 8,192) + one dense MLP 134,479,872 + 45 sparse MLPs of
2,232,418,304 + 2 · 151,552 · 4,096 + 4,096 = 106,852,245,504 (Zhipu: 106B); active without the
embeddings and the head 12,182,609,920 (Zhipu: 12B).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from estimator.families import Family, Reader, attention_config, head_dim_or_derived
from estimator.families.conventions import Conventions, PeftConventions, TransformersConventions
from estimator.families.moe import GATED_NAMES, routed_experts
from estimator.families.schema import flag
from estimator.layout import Attention, LayerGroup, Layout, LinearMap
from estimator.layout.groups import attention_maps, embedding_and_final_norm, gated_mlp, grouped, rms_norms

if TYPE_CHECKING:
    from collections.abc import Hashable

    from estimator.layout.moe import MoE
    from estimator.specs import ModelSpec

_DEFAULTS = {  # Glm4MoeConfig's defaults for absent keys
    "num_attention_heads": 96,
    "num_key_value_heads": 8,
    "vocab_size": 151552,
    "max_position_embeddings": 131072,
    "intermediate_size": 10944,
    "moe_intermediate_size": 1408,
    "n_routed_experts": 128,
    "num_experts_per_tok": 8,
    "n_shared_experts": 1,
    "first_k_dense_replace": 1,
}


def read(r: Reader) -> dict[str, Any]:
    def field(key: str) -> Any:
        return r.field(key, _DEFAULTS)

    hidden, heads, n = r.need("hidden_size"), field("num_attention_heads"), r.need("num_hidden_layers")
    first_dense = field("first_k_dense_replace")
    if r.config.get("num_nextn_predict_layers"):
        r.note(
            f"the checkpoint's {r.config['num_nextn_predict_layers']} multi-token-prediction layer(s) are not part "
            "of the transformers model and are not counted"
        )
    return {
        "num_hidden_layers": n,
        "hidden_size": hidden,
        "intermediate_size": field("intermediate_size"),
        "num_attention_heads": heads,
        "num_key_value_heads": field("num_key_value_heads"),
        "head_dim": head_dim_or_derived(r, hidden, heads),
        "vocab_size": field("vocab_size"),
        "max_position_embeddings": field("max_position_embeddings"),
        "tie_word_embeddings": r.get("tie_word_embeddings", False),
        "attention_bias": r.get("attention_bias", False),
        "n_routed_experts": field("n_routed_experts"),
        "num_experts_per_tok": field("num_experts_per_tok"),
        "moe_intermediate_size": field("moe_intermediate_size"),
        "n_shared_experts": field("n_shared_experts"),
        "mlp_layer_types": tuple("dense" if i < first_dense else "sparse" for i in range(n))
        if isinstance(n, int)
        else None,
        "family_fields": (("use_qk_norm", r.get("use_qk_norm", False)),),
    }


def build(spec: ModelSpec) -> Layout:
    """Two groups: the first_k_dense_replace dense layers, then the sparse ones (router, routed experts,
    shared experts)."""
    d, h = spec.hidden_size, spec.attention_heads
    q_out, kv_out = h * spec.attention_head_dim, spec.kv_heads * spec.attention_head_dim
    attention = attention_maps(d, q_out, kv_out, spec.attention_bias, False)
    shared = (spec.n_shared_experts or 0) * (spec.moe_intermediate_size or 0)
    routed = routed_experts(spec, "mlp.experts", GATED_NAMES, "mlp.gate", False)  # Glm4MoeTopkRouter: a bare weight
    mlps: dict[str, tuple[LinearMap | MoE, ...]] = {
        "dense": gated_mlp("mlp", d, spec.mlp_width),
        "sparse": (routed, *(gated_mlp("mlp.shared_experts", d, shared) if shared else ())),
    }
    norms = rms_norms(d, ("input_layernorm", "post_attention_layernorm"))
    if spec.option("use_qk_norm"):
        norms += rms_norms(spec.attention_head_dim, ("self_attn.q_norm", "self_attn.k_norm"))

    def group(kind: Hashable, layers: int) -> LayerGroup:
        mixer = Attention(h, spec.kv_heads, spec.attention_head_dim)
        return LayerGroup(layers, mixer, (*attention, *mlps[cast(str, kind)]), norms)

    tensors = embedding_and_final_norm(spec.vocab_size, d, spec.tie_word_embeddings)
    return Layout(grouped(spec.mlp_layer_types or (), group), tensors)


def to_config(spec: ModelSpec) -> dict[str, Any]:
    types = spec.mlp_layer_types or ()
    return {
        **attention_config(spec),
        "attention_bias": spec.attention_bias,
        "moe_intermediate_size": spec.moe_intermediate_size,
        "n_routed_experts": spec.n_routed_experts,
        "num_experts_per_tok": spec.num_experts_per_tok,
        "n_shared_experts": spec.n_shared_experts,
        "first_k_dense_replace": types.index("sparse") if "sparse" in types else len(types),
        "use_qk_norm": bool(spec.option("use_qk_norm", False)),
        "n_group": 1,
        "topk_group": 1,
    }


# peft converts its expert names; transformers keeps its router in float32 from 5.24
CONVENTIONS = {
    "glm4_moe": Conventions(
        peft=PeftConventions(converts_experts=True),
        # Glm4MoeTopkRouter.weight, dtype=torch.float32
        transformers=TransformersConventions(fp32_weights=("mlp.gate",), fp32_since=(5, 24)),
    )
}

FAMILIES = [Family(("glm4_moe",), read, build, to_config, fields={"use_qk_norm": flag}, conventions=CONVENTIONS)]
