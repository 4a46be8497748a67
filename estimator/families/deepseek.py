"""DeepSeek V2 and V3: multi-head latent attention (MLA) and fine-grained mixtures of experts.

Attention (per layer): queries through ``q_proj`` (d -> H · (nope + rope)), or when
``q_lora_rank`` is set through ``q_a_proj`` (d -> q_lora_rank), RMSNorm, ``q_b_proj``; keys and
values through ``kv_a_proj_with_mqa`` (d -> kv_lora_rank + rope), RMSNorm on the latent, and
``kv_b_proj`` (kv_lora_rank -> H · (nope + v_head_dim)); ``o_proj`` (H · v_head_dim -> d).
``attention_bias`` adds biases to q_a, kv_a and o.

MLP: the first ``first_k_dense_replace`` layers are dense (``intermediate_size``); the others hold
``n_routed_experts`` experts of width ``moe_intermediate_size``, a shared MLP of width
``n_shared_experts`` × ``moe_intermediate_size``, and a router weight (E × d, a bare parameter,
never an ``nn.Linear``). V3's ``e_score_correction_bias`` is a buffer, not a parameter; the
multi-token-prediction layer of the V3 checkpoint is not part of the transformers model.

``head_dim`` in the spec is the query/key head width, qk_nope_head_dim + qk_rope_head_dim.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from estimator.families import Family, Reader
from estimator.families.conventions import Conventions, PeftConventions, TransformersConventions
from estimator.families.moe import GATED_NAMES, routed_experts
from estimator.layout import LayerGroup, Layout, LinearMap, ParamTensor
from estimator.layout.groups import embedding_and_final_norm, gated_mlp, grouped, rms_norms, roles
from estimator.layout.latent import LatentAttention
from estimator.layout.moe import MoE

if TYPE_CHECKING:
    from collections.abc import Hashable

    from estimator.specs import ModelSpec

_DEFAULTS = {  # transformers' DeepseekV2Config / DeepseekV3Config defaults for absent keys
    "deepseek_v2": {"n_routed_experts": 64, "moe_intermediate_size": 1407, "n_shared_experts": 2,
                    "first_k_dense_replace": 0, "max_position_embeddings": 2048},
    "deepseek_v3": {"n_routed_experts": 256, "moe_intermediate_size": 2048, "n_shared_experts": 1,
                    "first_k_dense_replace": 3, "max_position_embeddings": 4096, "num_experts_per_tok": 8},
}  # fmt: skip


def read(r: Reader) -> dict[str, Any]:
    defaults = _DEFAULTS[r.model_type]

    def field(key: str) -> Any:
        return r.field(key, defaults)

    heads, n = r.need("num_attention_heads"), r.need("num_hidden_layers")
    rope = r.get("qk_rope_head_dim", 64, "64 (config default)")
    nope = r.get("qk_nope_head_dim", 128, "128 (config default)")
    first_dense = field("first_k_dense_replace")
    fields: dict[str, Any] = {
        "num_hidden_layers": n,
        "hidden_size": r.need("hidden_size"),
        "intermediate_size": r.need("intermediate_size"),
        "num_attention_heads": heads,
        "num_key_value_heads": r.get("num_key_value_heads", heads),
        "head_dim": nope + rope if isinstance(nope, int) and isinstance(rope, int) else None,
        "vocab_size": r.need("vocab_size"),
        "max_position_embeddings": field("max_position_embeddings"),
        "tie_word_embeddings": r.get("tie_word_embeddings", False),
        "attention_bias": r.get("attention_bias", False),
        "kv_lora_rank": r.get("kv_lora_rank", 512, "512 (config default)"),
        "q_lora_rank": r.get("q_lora_rank", 1536, "1,536 (config default)", null_is_default=False),
        "qk_rope_head_dim": rope,
        "qk_nope_head_dim": nope,
        "v_head_dim": r.get("v_head_dim", 128, "128 (config default)"),
        "n_routed_experts": field("n_routed_experts"),
        "num_experts_per_tok": field("num_experts_per_tok"),
        "moe_intermediate_size": field("moe_intermediate_size"),
        "n_shared_experts": field("n_shared_experts"),
        "mlp_layer_types": tuple("dense" if i < first_dense else "sparse" for i in range(n))
        if isinstance(first_dense, int) and isinstance(n, int)
        else None,
    }
    if r.model_type == "deepseek_v2":
        fields["mlp_bias"] = r.get("mlp_bias", False)
    if r.config.get("num_nextn_predict_layers"):
        r.note(
            f"the checkpoint's {r.config['num_nextn_predict_layers']} multi-token-prediction layer(s) are not part "
            "of the transformers model and are not counted"
        )
    return fields


def _attention(spec: ModelSpec) -> tuple[LinearMap, ...]:
    d, h, bias = spec.hidden_size, spec.attention_heads, spec.attention_bias
    kv_rank, rope = spec.kv_lora_rank or 0, spec.qk_rope_head_dim or 0
    nope, v = spec.qk_nope_head_dim or 0, spec.v_head_dim or 0
    q = roles("q")
    if spec.q_lora_rank is None:
        maps: tuple[LinearMap, ...] = (
            LinearMap("self_attn.q_proj", d, h * spec.attention_head_dim, False, q, "attention"),
        )
    else:
        maps = (
            LinearMap("self_attn.q_a_proj", d, spec.q_lora_rank, bias, q, "attention"),
            LinearMap("self_attn.q_b_proj", spec.q_lora_rank, h * spec.attention_head_dim, False, q, "attention"),
        )
    kv = roles("k", "v")
    return (
        *maps,
        LinearMap("self_attn.kv_a_proj_with_mqa", d, kv_rank + rope, bias, kv, "attention"),
        LinearMap("self_attn.kv_b_proj", kv_rank, h * (nope + v), False, kv, "attention"),
        LinearMap("self_attn.o_proj", h * v, d, bias, roles("o"), "attention"),
    )


def mixer(spec: ModelSpec) -> LatentAttention:
    """The latent attention every DeepSeek layer has."""
    return LatentAttention(
        spec.attention_heads,
        spec.kv_lora_rank or 0,
        spec.qk_rope_head_dim or 0,
        spec.qk_nope_head_dim or 0,
        spec.v_head_dim or 0,
    )


def build(spec: ModelSpec) -> Layout:
    """Two groups: the first_k_dense_replace dense layers, then the sparse ones (router weight, routed
    experts, shared experts). Every layer: MLA with its latent norms."""
    d = spec.hidden_size
    attention = _attention(spec)
    shared = (spec.n_shared_experts or 0) * (spec.moe_intermediate_size or 0)
    experts = routed_experts(spec, "mlp.experts", GATED_NAMES, "mlp.gate", False)  # MoEGate holds a bare weight
    mlps: dict[str, tuple[LinearMap | MoE, ...]] = {
        "dense": gated_mlp("mlp", d, spec.mlp_width, spec.mlp_bias),
        "sparse": (experts, *(gated_mlp("mlp.shared_experts", d, shared, spec.mlp_bias) if shared else ())),
    }
    norms = rms_norms(d, ("input_layernorm", "post_attention_layernorm"))
    norms += (ParamTensor("self_attn.kv_a_layernorm", spec.kv_lora_rank or 0, "norm"),)
    if spec.q_lora_rank is not None:
        norms += (ParamTensor("self_attn.q_a_layernorm", spec.q_lora_rank, "norm"),)

    def group(kind: Hashable, layers: int) -> LayerGroup:
        return LayerGroup(layers, mixer(spec), (*attention, *mlps[cast(str, kind)]), norms)

    tensors = embedding_and_final_norm(spec.vocab_size, d, spec.tie_word_embeddings)
    return Layout(grouped(spec.mlp_layer_types or (), group), tensors)


def to_config(spec: ModelSpec) -> dict[str, Any]:
    types = spec.mlp_layer_types or ()
    config: dict[str, Any] = {
        "hidden_size": spec.hidden_size,
        "intermediate_size": spec.mlp_width,
        "num_attention_heads": spec.attention_heads,
        "num_key_value_heads": spec.kv_heads,
        "max_position_embeddings": spec.max_position_embeddings,
        "attention_bias": spec.attention_bias,
        "kv_lora_rank": spec.kv_lora_rank,
        "q_lora_rank": spec.q_lora_rank,
        "qk_rope_head_dim": spec.qk_rope_head_dim,
        "qk_nope_head_dim": spec.qk_nope_head_dim,
        "v_head_dim": spec.v_head_dim,
        "n_routed_experts": spec.n_routed_experts,
        "num_experts_per_tok": spec.num_experts_per_tok,
        "moe_intermediate_size": spec.moe_intermediate_size,
        "n_shared_experts": spec.n_shared_experts,
        "first_k_dense_replace": types.index("sparse") if "sparse" in types else len(types),
        "n_group": 1,
        "topk_group": 1,
    }
    if spec.model_type == "deepseek_v2":
        config["mlp_bias"] = spec.mlp_bias
    return config


_PEFT = PeftConventions(converts_experts=True)  # peft converts the expert and router names
# transformers keeps the router in float32 from 5.24 (DeepseekV2Moe's MoEGate.weight, DeepseekV3TopkRouter.weight)
_ROUTER = TransformersConventions(fp32_weights=("mlp.gate",), fp32_since=(5, 24))
CONVENTIONS = {
    "deepseek_v2": Conventions(peft=_PEFT, transformers=_ROUTER),
    "deepseek_v3": Conventions(peft=_PEFT, transformers=_ROUTER, aliases=("kimi_k2",)),  # Kimi K2: its code
}


FAMILIES = [Family(("deepseek_v2", "deepseek_v3"), read, build, to_config, conventions=CONVENTIONS)]
