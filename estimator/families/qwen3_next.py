"""Qwen3-Next: gated DeltaNet layers mixed with gated full attention, and a sparse mixture of experts.

What transformers' ``Qwen3NextDecoderLayer`` builds, by ``layer_types`` (absent: every
``full_attention_interval``-th layer full attention, 4 by default, the others linear attention):

- ``linear_attention`` (``Qwen3NextGatedDeltaNet``): ``in_proj_qkvz`` (d -> 2 H_k d_k + 2 H_v d_v: q, k,
  v and the output gate z), ``in_proj_ba`` (d -> 2 H_v: the write strength b and the decay a),
  ``out_proj`` (H_v d_v -> d), no biases; a depthwise ``conv1d`` over the 2 H_k d_k + H_v d_v channels of
  q, k, v (kernel K, no bias), ``dt_bias`` and ``A_log`` (H_v each) and a gated RMSNorm of d_v.
  It keeps a convolution state (those channels × K columns, in the model's dtype) and a recurrent state
  of H_v · d_k · d_v elements, which transformers computes and keeps in float32.
- ``full_attention`` (``Qwen3NextAttention``): q_proj twice as wide (d -> 2 H d_h: queries and the
  output gate), k_proj and v_proj (d -> K d_h), o_proj (H d_h -> d), biases from ``attention_bias``;
  RMSNorm on q and k per head (d_h each).
- MLP: routed experts (``num_experts`` of ``moe_intermediate_size``, router d -> E) with one gated shared
  expert (``shared_expert_intermediate_size``) and its scalar gate (d -> 1), unless the layer is in
  ``mlp_only_layers``, not a multiple of ``decoder_sparse_step``, or ``num_experts`` is 0 (then a dense
  MLP of ``intermediate_size``). Two RMSNorms per layer; embeddings untied by default.

The checkpoint's multi-token-prediction layer (``mtp.*``) is not part of the transformers model.

peft's all-linear (transformers >= 5): every ``nn.Linear`` of DeltaNet and attention; the experts and the router
converted as qwen2_moe's names (gate_up at 2r, down and router at r), which takes the names gate_proj, up_proj
and down_proj from the shared expert (it keeps no adapter); ``shared_expert_gate`` keeps its own. DeltaNet's
input projections count as q, k and v (``in_proj_ba`` computes the write strength and decay the delta rule
applies to k and v), its ``out_proj`` as o.

Qwen3-Next-80B-A3B, per linear layer: 2,048 · (12,288 + 64) + 4,096 · 2,048 + 8,192 · 4 + 2 · 32 + 128
= 33,718,464 parameters in its DeltaNet; its fixed state in transformers (bf16 model) is
8,192 · 4 · 2 + 32 · 128 · 128 · 4 = 2,162,688 bytes per layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from estimator.families import Family, Reader
from estimator.families.conventions import Conventions, PeftConventions, TransformersConventions
from estimator.families.moe import GATED_NAMES, routed_experts
from estimator.families.schema import SIZE, SIZE_OR_ZERO, count, counts, words
from estimator.layout import Attention, Layout, LinearMap, ParamTensor
from estimator.layout.groups import (
    attention_maps,
    embedding_and_final_norm,
    gated_mlp,
    rms_norms,
    roles,
    typed_layers,
)
from estimator.layout.recurrent import RecurrentState
from estimator.units import DType

if TYPE_CHECKING:
    from estimator.layout import Mixer
    from estimator.layout.moe import MoE
    from estimator.specs import ModelSpec

LAYER_KINDS = ("linear_attention", "full_attention")

_DEFAULTS: dict[str, Any] = {  # Qwen3NextConfig's defaults for absent keys
    "vocab_size": 151936,
    "intermediate_size": 5632,
    "max_position_embeddings": 32768,
    "num_key_value_heads": 2,
    "head_dim": 256,
    "linear_num_key_heads": 16,
    "linear_key_head_dim": 128,
    "linear_num_value_heads": 32,
    "linear_value_head_dim": 128,
    "linear_conv_kernel_dim": 4,
    "num_experts": 512,
    "num_experts_per_tok": 10,
    "moe_intermediate_size": 512,
    "shared_expert_intermediate_size": 512,
    "full_attention_interval": 4,
    "decoder_sparse_step": 1,
}

FIELDS = {
    "layer_types": words(*LAYER_KINDS),
    "full_attention_interval": count(1, 100_000),
    "mtp_num_hidden_layers": count(0, 100_000),  # multi-token-prediction layers: noted, not counted
    "num_experts": SIZE_OR_ZERO,
    "linear_num_key_heads": SIZE,
    "linear_key_head_dim": SIZE,
    "linear_num_value_heads": SIZE,
    "linear_value_head_dim": SIZE,
    "linear_conv_kernel_dim": count(1, 1024),
    "mlp_only_layers": counts(),
}


def _default(r: Reader, key: str) -> Any:
    return r.get(key, _DEFAULTS[key], f"{_DEFAULTS[key]:,} (Qwen3NextConfig default)")


def _layer_types(r: Reader, n: Any) -> tuple[str, ...] | None:
    """The config's layer_types, else linear attention with every interval-th layer full (transformers' rule)."""
    types = r.config.get("layer_types")
    if types is not None:
        return tuple(types)
    interval = _default(r, "full_attention_interval")
    if not isinstance(n, int):
        return None
    return tuple("full_attention" if (i + 1) % interval == 0 else "linear_attention" for i in range(n))


def _experts(r: Reader, n: Any) -> dict[str, Any]:
    """Routed and shared experts, and which layers route (none when num_experts is 0)."""
    experts = _default(r, "num_experts")
    if experts == 0:
        r.note("num_experts is 0: every layer has a dense MLP of intermediate_size, as transformers builds it")
    if experts == 0 or not isinstance(n, int):
        return {}
    dense = set(r.get("mlp_only_layers", []) or [])
    step = _default(r, "decoder_sparse_step")
    return {
        "n_routed_experts": experts,
        "num_experts_per_tok": _default(r, "num_experts_per_tok"),
        "moe_intermediate_size": _default(r, "moe_intermediate_size"),
        "shared_expert_intermediate_size": _default(r, "shared_expert_intermediate_size"),
        "mlp_layer_types": tuple("sparse" if i not in dense and (i + 1) % step == 0 else "dense" for i in range(n)),
    }


def read(r: Reader) -> dict[str, Any]:
    n = r.need("num_hidden_layers")
    fields: dict[str, Any] = {
        "num_hidden_layers": n,
        "hidden_size": r.need("hidden_size"),
        "intermediate_size": _default(r, "intermediate_size"),
        "num_attention_heads": r.need("num_attention_heads"),
        "num_key_value_heads": _default(r, "num_key_value_heads"),
        "head_dim": _default(r, "head_dim"),
        "vocab_size": _default(r, "vocab_size"),
        "max_position_embeddings": _default(r, "max_position_embeddings"),
        "tie_word_embeddings": r.get("tie_word_embeddings", False),
        "attention_bias": r.get("attention_bias", False),
        "layer_types": _layer_types(r, n),
        **{key: _default(r, key) for key in _DEFAULTS if key.startswith("linear_")},
        **_experts(r, n),
    }
    if r.config.get("mtp_num_hidden_layers"):
        r.note("the checkpoint's multi-token-prediction layer is not part of the transformers model: not counted")
    return fields


def delta_net(spec: ModelSpec) -> RecurrentState:
    """The gated DeltaNet's state: conv over C = 2 H_k d_k + H_v d_v channels, recurrent H_v · d_k · d_v
    (Qwen3-Next-80B-A3B: C = 8,192, S = 524,288)."""
    hk, dk = spec.need("linear_num_key_heads"), spec.need("linear_key_head_dim")
    hv, dv = spec.need("linear_num_value_heads"), spec.need("linear_value_head_dim")
    return RecurrentState("gated DeltaNet", 2 * hk * dk + hv * dv, spec.need("linear_conv_kernel_dim"), hv * dk * dv)


def delta_net_tensors(spec: ModelSpec) -> tuple[ParamTensor, ...]:
    """The DeltaNet's tensors outside its maps: the depthwise conv (C · K), dt_bias and A_log per value head, and
    the gated norm over d_v (Qwen3-Next-80B-A3B: 32,768 + 32 + 32 + 128)."""
    state = delta_net(spec)
    hv, dv = spec.need("linear_num_value_heads"), spec.need("linear_value_head_dim")
    return (
        ParamTensor("linear_attn.conv1d", state.conv_channels * state.conv_kernel, "recurrent"),
        ParamTensor("linear_attn.dt_bias", hv, "recurrent"),
        ParamTensor("linear_attn.A_log", hv, "recurrent"),
        ParamTensor("linear_attn.norm", dv, "norm"),
    )


def _delta_net_parts(spec: ModelSpec) -> tuple[tuple[LinearMap, ...], tuple[ParamTensor, ...]]:
    d = spec.hidden_size
    hk, dk = spec.need("linear_num_key_heads"), spec.need("linear_key_head_dim")
    hv, dv = spec.need("linear_num_value_heads"), spec.need("linear_value_head_dim")
    qkv = roles("q", "k", "v")
    maps = (
        LinearMap("linear_attn.in_proj_qkvz", d, 2 * hk * dk + 2 * hv * dv, False, qkv, "attention"),
        LinearMap("linear_attn.in_proj_ba", d, 2 * hv, False, qkv, "attention"),
        LinearMap("linear_attn.out_proj", hv * dv, d, False, roles("o"), "attention"),
    )
    return maps, delta_net_tensors(spec)


def _attention_parts(spec: ModelSpec) -> tuple[tuple[LinearMap, ...], tuple[ParamTensor, ...]]:
    """Gated attention: q_proj d -> 2 H d_h (queries and their output gate), per-head q and k norms."""
    d, h, dh = spec.hidden_size, spec.attention_heads, spec.attention_head_dim
    bias = spec.attention_bias
    q, k, v, o = attention_maps(d, h * dh, spec.kv_heads * dh, bias, bias)
    gated_q = LinearMap(q.name, d, 2 * h * dh, bias, q.roles, "attention")
    return (gated_q, k, v, o), rms_norms(dh, ("self_attn.q_norm", "self_attn.k_norm"))


def _sparse_mlp(spec: ModelSpec) -> tuple[LinearMap | MoE, ...]:
    """Routed experts (router an nn.Linear in the checkpoints' code), the shared expert and its gate."""
    d = spec.hidden_size
    return (
        routed_experts(spec, "mlp.experts", GATED_NAMES, "mlp.gate", True),
        *gated_mlp("mlp.shared_expert", d, spec.need("shared_expert_intermediate_size")),
        LinearMap("mlp.shared_expert_gate", d, 1, False, roles("router"), "mlp"),
    )


def build(spec: ModelSpec) -> Layout:
    """One group per (token mixer, MLP) kind: 36 (DeltaNet, MoE) and 12 (attention, MoE) layers in the 80B."""
    d = spec.hidden_size
    mixers: dict[str, tuple[Mixer, tuple[LinearMap, ...], tuple[ParamTensor, ...]]] = {
        "linear_attention": (delta_net(spec), *_delta_net_parts(spec)),
        "full_attention": (
            Attention(spec.attention_heads, spec.kv_heads, spec.attention_head_dim),
            *_attention_parts(spec),
        ),
    }
    mlps: dict[str, tuple[LinearMap | MoE, ...]] = {"dense": gated_mlp("mlp", d, spec.mlp_width)}
    if spec.is_moe:
        mlps["sparse"] = _sparse_mlp(spec)
    norms = rms_norms(d, ("input_layernorm", "post_attention_layernorm"))

    types = spec.layer_types or ("full_attention",) * spec.num_hidden_layers
    kinds = list(zip(types, spec.mlp_layer_types or ("dense",) * spec.num_hidden_layers, strict=True))
    groups = typed_layers(kinds, mixers.__getitem__, mlps, norms)
    return Layout(groups, embedding_and_final_norm(spec.vocab_size, d, spec.tie_word_embeddings))


def to_config(spec: ModelSpec) -> dict[str, Any]:
    types = spec.mlp_layer_types or ()
    config: dict[str, Any] = {
        "hidden_size": spec.hidden_size,
        "intermediate_size": spec.intermediate_size,
        "num_attention_heads": spec.num_attention_heads,
        "num_key_value_heads": spec.num_key_value_heads,
        "head_dim": spec.head_dim,
        "max_position_embeddings": spec.max_position_embeddings,
        "attention_bias": spec.attention_bias,
        "layer_types": list(spec.layer_types or ()),
        **{key: getattr(spec, key) for key in _DEFAULTS if key.startswith("linear_")},
        "num_experts": spec.n_routed_experts or 0,
        "decoder_sparse_step": 1,
        "mlp_only_layers": [i for i, t in enumerate(types) if t == "dense"],
    }
    if spec.is_moe:
        config.update(
            num_experts_per_tok=spec.num_experts_per_tok,
            moe_intermediate_size=spec.moe_intermediate_size,
            shared_expert_intermediate_size=spec.shared_expert_intermediate_size,
        )
    return config


# peft converts its expert names; the gated DeltaNet's scan runs and returns float32
CONVENTIONS = {
    "qwen3_next": Conventions(
        peft=PeftConventions(converts_experts=True), transformers=TransformersConventions(state_dtype=DType.fp32)
    )
}

FAMILIES = [Family(("qwen3_next",), read, build, to_config, fields=FIELDS, conventions=CONVENTIONS)]
