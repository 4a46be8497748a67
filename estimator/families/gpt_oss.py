"""OpenAI gpt-oss (gpt-oss-20b, gpt-oss-120b): a mixture of experts with attention sinks.

What transformers 5.24's ``GptOssForCausalLM`` builds, per layer:

- attention: q, k, v, o with biases (``attention_bias``, default true), H query and K KV heads of
  ``head_dim`` (64 by default, not hidden / H: gpt-oss has d = 2,880 and H · d_h = 4,096), and
  ``self_attn.sinks``: one learned logit per query head (H parameters; weights, not cache);
- ``layer_types``: sliding-window (``sliding_window`` 128) and full attention alternating, sliding
  first; transformers keeps w − 1 = 127 tokens in a full window;
- every MLP is sparse: ``num_local_experts`` experts of width ``intermediate_size``, top
  ``num_experts_per_tok``; the router ``mlp.router`` is a bare weight E × d with a bias E, and the
  experts ``mlp.experts.gate_up_proj`` (E × d × 2F, transposed against the other families) and
  ``down_proj`` (E × F × d) carry biases ``gate_up_proj_bias`` (E × 2F) and ``down_proj_bias`` (E × d);
- two RMSNorms; untied embeddings.

peft 0.21 has no conversion for gpt_oss (transformers has no v4 checkpoint mapping for it: its
checkpoint was fused from the start), so all-linear adapts q, k, v and o only, the experts and the
router keep no adapter. The per-expert layout is the convention of gate, up and down per expert.

Parameters, gpt-oss-20b: 24 layers of 823,186,976 (attention maps 26,550,080, sinks 64, router
92,192, experts 32 · 24,891,840, norms 5,760), embedding and head 2 · 201,088 · 2,880, final norm
2,880: 20,914,757,184 (OpenAI: 20.91B). Active: 4,187,440,704; OpenAI's "3.61B" leaves out the input
embedding: 4,187,440,704 − 201,088 · 2,880 = 3,608,307,264.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from estimator.families import Family, Reader, attention_config, windowed_attention_layout
from estimator.families.named_experts import NamedMoE, named_moe
from estimator.layout import Layout, LinearMap, ParamTensor
from estimator.layout.groups import Group, attention_maps, embedding_and_final_norm, rms_norms

if TYPE_CHECKING:
    from estimator.layout.moe import MoE
    from estimator.specs import ModelSpec

ATTENTION_GROUP: Group = "attention"  # sinks belong to attention in the breakdown (param_breakdown's parts)
_DEFAULTS = {  # GptOssConfig's defaults for absent keys
    "num_attention_heads": 64,
    "num_key_value_heads": 8,
    "vocab_size": 201088,
    "max_position_embeddings": 131072,
    "intermediate_size": 2880,
}


def _layer_types(r: Reader, n: Any) -> list[str]:
    """``layer_types``, or GptOssConfig's default: sliding on even layers (0, 2, ...), full on odd."""
    types = r.config.get("layer_types")
    if types is None:
        r.note("config.json has no layer_types: sliding and full attention alternate, sliding first (default)")
        types = (
            ["sliding_attention" if (i + 1) % 2 else "full_attention" for i in range(n)] if isinstance(n, int) else []
        )
    return list(types)


def read(r: Reader) -> dict[str, Any]:
    hidden, heads, n = r.need("hidden_size"), r.field("num_attention_heads", _DEFAULTS), r.need("num_hidden_layers")
    width = r.field("intermediate_size", _DEFAULTS)
    kv = r.get("num_key_value_heads", _DEFAULTS["num_key_value_heads"], "8 KV heads (gpt_oss config default)",
               null_is_default=False)  # fmt: skip
    head_dim = r.get("head_dim", 64, "64 (gpt_oss config default)", null_is_default=False)
    fields: dict[str, Any] = {
        "num_hidden_layers": n,
        "hidden_size": hidden,
        "intermediate_size": width,
        "moe_intermediate_size": width,
        "num_attention_heads": heads,
        "num_key_value_heads": heads if kv is None else kv,
        "head_dim": hidden // heads if head_dim is None and isinstance(hidden, int) else head_dim,
        "vocab_size": r.field("vocab_size", _DEFAULTS),
        "max_position_embeddings": r.field("max_position_embeddings", _DEFAULTS),
        "tie_word_embeddings": r.get("tie_word_embeddings", False),
        "attention_bias": r.get("attention_bias", True, "true: biases on q, k, v, o (gpt_oss config default)"),
        "n_routed_experts": r.get("num_local_experts", 128, "128 (gpt_oss config default)"),
        "num_experts_per_tok": r.get("num_experts_per_tok", 4, "4 (gpt_oss config default)"),
        "mlp_layer_types": ("sparse",) * n if isinstance(n, int) else None,
    }
    window = r.get("sliding_window", 128, "128 (gpt_oss config default)", null_is_default=False)
    types = _layer_types(r, n)
    if window is not None and "sliding_attention" in types:
        fields.update(sliding_window=window, layer_types=tuple(types))
    return fields


def experts(spec: ModelSpec) -> NamedMoE:
    """The routed experts of a layer: biases on the router and on every expert projection."""
    return named_moe(
        spec,
        router="mlp.router",
        router_linear=False,  # GptOssTopKRouter: a bare weight and bias, in every transformers release
        fused_router="mlp.router",
        router_bias=True,
        expert_bias=True,
    )


def build(spec: ModelSpec) -> Layout:
    """One group per window (sliding, full); every layer: biased attention, H sinks, routed experts."""
    d, h = spec.hidden_size, spec.attention_heads
    q_out, kv_out = h * spec.attention_head_dim, spec.kv_heads * spec.attention_head_dim
    bias = spec.attention_bias
    maps: tuple[LinearMap | MoE, ...] = (*attention_maps(d, q_out, kv_out, bias, bias), experts(spec))
    norms = rms_norms(d, ("input_layernorm", "post_attention_layernorm"))
    tensors = (ParamTensor("self_attn.sinks", h, ATTENTION_GROUP), *norms)

    head = embedding_and_final_norm(spec.vocab_size, d, spec.tie_word_embeddings)
    return windowed_attention_layout(spec, maps, tensors, head)


def to_config(spec: ModelSpec) -> dict[str, Any]:
    types = spec.layer_types or ("full_attention",) * spec.num_hidden_layers
    return {
        **attention_config(spec),
        "intermediate_size": spec.moe_intermediate_size,
        "num_local_experts": spec.n_routed_experts,
        "num_experts_per_tok": spec.num_experts_per_tok,
        "attention_bias": spec.attention_bias,
        "sliding_window": spec.sliding_window,
        "layer_types": list(types),
    }


FAMILIES = [Family(("gpt_oss",), read, build, to_config)]
