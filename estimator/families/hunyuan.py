"""Tencent Hunyuan (model types hunyuan_v1_dense and hunyuan_v1_moe): per-head q and k RMSNorms.

What transformers 5.24's ``HunYuanDenseV1ForCausalLM`` and ``HunYuanMoEV1ForCausalLM`` build, per layer:

- attention: q, k, v, o (biases on all four from ``attention_bias``, default false), H query and K KV heads
  (KV heads default to H) of ``head_dim``, which the attention reads as it is: its config classes default
  it to null, on which transformers cannot build (``head_dim ** -0.5``), so it is needed; then
  ``self_attn.query_layernorm`` and ``key_layernorm``, RMSNorms of head_dim each;
- hunyuan_v1_dense: gate, up, down of ``intermediate_size``, never biased;
- hunyuan_v1_moe: every layer routes: the router ``mlp.gate.wg`` (an ``nn.Linear`` d -> E, float32),
  ``num_experts`` experts of ``intermediate_size`` (transformers 5's fused tensors; top ``moe_topk``,
  renormalised) and a shared MLP ``mlp.shared_mlp`` of ``intermediate_size`` too. ``moe_topk`` may be a
  per-layer list (Hunyuan's checkpoints write one): read where all its values agree, refused where
  they differ (not modelled); a per-layer list of expert counts is refused (transformers 5.24's experts
  cannot build one). transformers' attribute map: ``num_experts_per_tok`` is ``moe_topk``,
  ``num_local_experts`` ``num_experts``;
- two RMSNorms; untied embeddings by default; a head without bias.

transformers 5.24 reads no other width: a checkpoint's ``moe_intermediate_size``, ``num_shared_expert``,
``use_qk_norm``, ``use_cla`` and ``use_mixed_mlp_moe`` are not read by its code. Where one says what its model
builds anyway (intermediate_size, 1, true, false, true; per-layer lists of that value) it is accepted; any other
value (cross-layer KV sharing, say) describes a model transformers does not build, and is refused.

peft 0.21 converts hunyuan_v1_moe (qwen2_moe's pattern): all-linear puts LoRAs on
``mlp.experts.gate_up_proj`` (2r) and ``down_proj`` (r); the router ``mlp.gate.wg`` keeps its LoRA as an
``nn.Linear`` (r); the shared MLP, whose maps are named gate_proj, up_proj and down_proj, loses its.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from estimator.errors import EstimatorError
from estimator.families import Family, Reader, attention_config, windowed_attention_layout
from estimator.families.conventions import Conventions, PeftConventions, TransformersConventions
from estimator.families.named_experts import NamedMoE, named_moe
from estimator.layout.groups import attention_maps, embedding_and_final_norm, gated_mlp, rms_norms

if TYPE_CHECKING:
    from estimator.layout import Layout, LinearMap
    from estimator.layout.moe import MoE
    from estimator.specs import ModelSpec

_DEFAULTS = {  # HunYuanDenseV1Config's and HunYuanMoEV1Config's defaults for absent keys
    "vocab_size": 290943,
    "intermediate_size": 11008,
    "num_attention_heads": 32,
    "max_position_embeddings": 2048,
    "num_experts": 1,
    "moe_topk": 1,
}


def _top_k(value: Any) -> str | None:
    """A whole number from 1, or a per-layer list of them (moe_topk, and the widths Hunyuan's checkpoints list)."""
    ok = isinstance(value, int) or (isinstance(value, list) and all(isinstance(v, int) for v in value))
    ok = ok and all(not isinstance(v, bool) and v >= 1 for v in (value if isinstance(value, list) else [value]))
    return None if ok else "a whole number from 1, or a list of them"


def _one_per_model(r: Reader, key: str, n: int) -> Any:
    """``key`` as one number: the config's, or the one value of its per-layer list (moe_topk); else one line.
    (A per-layer list of num_experts is refused by the schema: transformers' experts take one count.)"""
    value = r.field(key, _DEFAULTS)
    if not isinstance(value, list):
        return value
    if len(value) != n or len(set(value)) != 1:
        raise EstimatorError(
            f"{r.path}: moe_topk lists {len(value)} per-layer values {str(sorted(set(value)))[:40]}; a top-k that "
            f"differs between layers (or a list not of num_hidden_layers = {n}) is not modelled: give one number"
        )
    r.note(f"moe_topk lists {value[0]} for every layer: top {value[0]}")
    return value[0]


# Fields of Hunyuan's own checkpoints that transformers 5.24's code does not read, with the one value its model
# agrees with; another value describes a model transformers does not build, so it is refused.
_UNREAD = {"use_qk_norm": True, "use_cla": False, "use_mixed_mlp_moe": True, "num_shared_expert": 1}


def _refuse_unbuilt(r: Reader, width: Any) -> None:
    """One line for a checkpoint field whose value transformers 5.24 does not build (cross-layer KV sharing, no
    q/k norms, no or several shared MLPs, expert widths other than intermediate_size)."""
    given = {
        **{k: r.config[k] for k in _UNREAD if k in r.config},
        "moe_intermediate_size": r.config.get("moe_intermediate_size"),
    }
    expected = {**_UNREAD, "moe_intermediate_size": width}
    for key, value in given.items():
        values = value if isinstance(value, list) else [value]
        if value is not None and any(v != expected[key] for v in values):
            raise EstimatorError(
                f"{r.path}: {key} is {json.dumps(value)[:30]}, which transformers 5.24's {r.model_type} code does not "
                f"read (it builds {key} = {json.dumps(expected[key])}); not modelled: remove it or give "
                f"{json.dumps(expected[key])}"
            )


def read(r: Reader) -> dict[str, Any]:
    hidden, n = r.need("hidden_size"), r.need("num_hidden_layers")
    heads = r.field("num_attention_heads", _DEFAULTS)
    _refuse_unbuilt(r, r.field("intermediate_size", _DEFAULTS))
    fields: dict[str, Any] = {
        "num_hidden_layers": n,
        "hidden_size": hidden,
        "intermediate_size": r.field("intermediate_size", _DEFAULTS),
        "num_attention_heads": heads,
        "num_key_value_heads": r.get("num_key_value_heads", heads, "as many KV heads as query heads (config default)"),
        "head_dim": r.need("head_dim"),
        "vocab_size": r.field("vocab_size", _DEFAULTS),
        "max_position_embeddings": r.field("max_position_embeddings", _DEFAULTS),
        "tie_word_embeddings": r.get("tie_word_embeddings", False),
        "attention_bias": r.get("attention_bias", False),
    }
    if r.model_type == "hunyuan_v1_dense":
        return fields
    fields.update(
        n_routed_experts=_one_per_model(r, "num_experts", n),
        num_experts_per_tok=_one_per_model(r, "moe_topk", n),
        moe_intermediate_size=fields["intermediate_size"],
        mlp_layer_types=("sparse",) * n,
    )
    return fields


def experts(spec: ModelSpec) -> NamedMoE:
    """Routed experts; the router ``mlp.gate.wg`` is an ``nn.Linear`` in transformers 5 as in the checkpoint."""
    return named_moe(
        spec,
        router="mlp.gate.wg",
        router_linear=True,
        renormalised=True,
        fused_router="mlp.gate.wg",
        fused_router_linear=True,
    )


def build(spec: ModelSpec) -> Layout:
    """One group: attention with per-head q and k norms; a dense MLP, or experts beside a shared MLP.

    Per layer: (H + 2K) · d_h · d + H · d_h · d + 2 · d_h + 2 · d, plus 3 · d · F (dense) or
    d · E + E · 3 · d · F + 3 · d · F (moe); (H + 2K) · d_h + d biases with ``attention_bias``.
    """
    d, dh, bias = spec.hidden_size, spec.attention_head_dim, spec.attention_bias
    maps: tuple[LinearMap | MoE, ...] = attention_maps(d, spec.attention_heads * dh, spec.kv_heads * dh, bias, bias)
    if spec.is_moe:
        maps += (experts(spec), *gated_mlp("mlp.shared_mlp", d, spec.mlp_width))
    else:
        maps += gated_mlp("mlp", d, spec.mlp_width)
    norms = (
        *rms_norms(dh, ("self_attn.query_layernorm", "self_attn.key_layernorm")),
        *rms_norms(d, ("input_layernorm", "post_attention_layernorm")),
    )
    tensors = embedding_and_final_norm(spec.vocab_size, d, spec.tie_word_embeddings)
    return windowed_attention_layout(spec, maps, norms, tensors)


def to_config(spec: ModelSpec) -> dict[str, Any]:
    config = {**attention_config(spec), "attention_bias": spec.attention_bias}
    if spec.is_moe:
        if spec.moe_intermediate_size != spec.intermediate_size or spec.sparse_layers() != spec.num_hidden_layers:
            raise EstimatorError(
                f"{spec.name}: hunyuan_v1_moe's experts are intermediate_size wide in every layer; fix the spec"
            )
        config.update(num_experts=spec.n_routed_experts, moe_topk=spec.num_experts_per_tok)
    return config


# the MoE: peft converts its expert names; transformers keeps its router in float32 (the dense one: none)
CONVENTIONS = {
    "hunyuan_v1_moe": Conventions(
        peft=PeftConventions(converts_experts=True),
        # HunYuanMoEV1Gate.wg: nn.Linear(dtype=torch.float32) (seen on 5.24)
        transformers=TransformersConventions(fp32_weights=("mlp.gate.wg",), fp32_since=(5, 24)),
    )
}


FAMILIES = [
    Family(
        ("hunyuan_v1_dense", "hunyuan_v1_moe"),
        read,
        build,
        to_config,
        fields=dict.fromkeys(("moe_topk", "moe_intermediate_size", "num_shared_expert"), _top_k),
        conventions=CONVENTIONS,
    )
]
