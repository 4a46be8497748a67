"""Qwen3.5 (``qwen3_5_text``, ``qwen3_5_moe_text``): Qwen3-Next's gated DeltaNet and gated attention, with
the DeltaNet's input projection split in four and, in the MoE, experts in every layer.

What transformers 5.24's ``Qwen3_5DecoderLayer`` / ``Qwen3_5MoeDecoderLayer`` builds, by ``layer_types``
(absent: every ``full_attention_interval``-th layer full attention, 4 by default, the others linear):

- ``linear_attention`` (``Qwen3_5GatedDeltaNet``): ``in_proj_qkv`` (d -> 2 H_k d_k + H_v d_v), ``in_proj_z``
  (d -> H_v d_v, the output gate), ``in_proj_b`` and ``in_proj_a`` (d -> H_v each), ``out_proj``
  (H_v d_v -> d), no biases; the depthwise ``conv1d`` (2 H_k d_k + H_v d_v channels, kernel K, no bias),
  ``dt_bias`` and ``A_log`` (H_v each), a gated RMSNorm of d_v. Its state is Qwen3-Next's (see
  :func:`estimator.families.qwen3_next.delta_net`): conv channels × K columns in the model's dtype, and
  H_v · d_k · d_v in float32.
- ``full_attention``: Qwen3-Next's gated attention (q_proj d -> 2 H d_h, q and k RMSNorm of d_h; biases
  from ``attention_bias``).
- MLP: ``qwen3_5_text`` a gated MLP of ``intermediate_size`` in every layer; ``qwen3_5_moe_text`` in every
  layer ``num_experts`` routed experts of ``moe_intermediate_size`` (fused 3-D tensors, the router a bare
  weight E × d), one gated shared expert of ``shared_expert_intermediate_size`` and its gate (d -> 1). The
  MoE config has no ``intermediate_size``, ``mlp_only_layers`` or ``decoder_sparse_step``.

Two RMSNorms per layer, the final norm; embeddings untied by default. The multimodal wrappers
(``qwen3_5``, ``qwen3_5_moe``) are counted through their ``text_config``.

peft's all-linear (0.21, transformers 5.24): every ``nn.Linear`` of DeltaNet, attention, the dense MLP, the
shared expert and its gate; peft does not convert qwen3_5_moe_text's fused experts (unlike Qwen3-Next's), so
the experts and the router keep no adapter. The checkpoints' multi-token-prediction layer
(``mtp_num_hidden_layers``) is not part of the transformers model: noted, not counted.

Qwen3.5-35B-A3B's DeltaNet per linear layer (d 2,048, H_k 16, d_k 128, H_v 32, d_v 128, K 4):
2,048 · (8,192 + 4,096 + 64) + 4,096 · 2,048 + 8,192 · 4 + 2 · 32 + 128 = 33,718,464 parameters, as in
Qwen3-Next (the same maps, split).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from estimator.families import Family, Reader
from estimator.families.conventions import Conventions, TransformersConventions
from estimator.families.qwen3_next import LAYER_KINDS, _attention_parts, _sparse_mlp, delta_net, delta_net_tensors
from estimator.families.schema import SIZE, count, words
from estimator.layout import Attention, LayerGroup, Layout, LinearMap, ParamTensor
from estimator.layout.groups import embedding_and_final_norm, gated_mlp, grouped, rms_norms, roles
from estimator.units import DType

if TYPE_CHECKING:
    from estimator.layout import Mixer
    from estimator.layout.moe import MoE
    from estimator.specs import ModelSpec

_SHARED: dict[str, Any] = {  # Qwen3_5TextConfig's and Qwen3_5MoeTextConfig's common defaults
    "vocab_size": 248320,
    "num_attention_heads": 16,
    "max_position_embeddings": 32768,
    "head_dim": 256,
    "linear_conv_kernel_dim": 4,
    "linear_key_head_dim": 128,
    "linear_value_head_dim": 128,
    "linear_num_key_heads": 16,
    "linear_num_value_heads": 32,
    "full_attention_interval": 4,  # read by __post_init__ only when layer_types is absent
}
DEFAULTS: dict[str, dict[str, Any]] = {
    "qwen3_5_text": {
        **_SHARED, "hidden_size": 4096, "intermediate_size": 12288, "num_hidden_layers": 32, "num_key_value_heads": 4,
    },
    "qwen3_5_moe_text": {
        **_SHARED, "hidden_size": 2048, "num_hidden_layers": 40, "num_key_value_heads": 2,
        "moe_intermediate_size": 512, "shared_expert_intermediate_size": 512, "num_experts_per_tok": 8,
        "num_experts": 256,
    },
}  # fmt: skip
_LINEAR = ("linear_num_key_heads", "linear_key_head_dim", "linear_num_value_heads", "linear_value_head_dim")

FIELDS = {
    "layer_types": words(*LAYER_KINDS),
    "full_attention_interval": count(1, 100_000),
    "num_experts": SIZE,
    "mtp_num_hidden_layers": count(0, 100_000),
    "linear_conv_kernel_dim": count(1, 1024),
    **dict.fromkeys(_LINEAR, SIZE),
}


def _field(r: Reader, key: str) -> Any:
    return r.field(key, DEFAULTS[r.model_type])


def _layer_types(r: Reader, n: Any) -> tuple[str, ...] | None:
    """The config's layer_types, else linear attention with every interval-th layer full (__post_init__'s rule)."""
    types = r.config.get("layer_types")
    if types is not None:
        return tuple(types)
    interval = _field(r, "full_attention_interval")
    if not isinstance(n, int):
        return None
    return tuple("full_attention" if (i + 1) % interval == 0 else "linear_attention" for i in range(n))


def read(r: Reader) -> dict[str, Any]:
    n = _field(r, "num_hidden_layers")
    fields: dict[str, Any] = {
        "num_hidden_layers": n,
        "hidden_size": _field(r, "hidden_size"),
        "num_attention_heads": _field(r, "num_attention_heads"),
        "num_key_value_heads": _field(r, "num_key_value_heads"),
        "head_dim": _field(r, "head_dim"),
        "vocab_size": _field(r, "vocab_size"),
        "max_position_embeddings": _field(r, "max_position_embeddings"),
        "tie_word_embeddings": r.get("tie_word_embeddings", False),
        "attention_bias": r.get("attention_bias", False),
        "layer_types": _layer_types(r, n),
        "linear_conv_kernel_dim": _field(r, "linear_conv_kernel_dim"),
        **{key: _field(r, key) for key in _LINEAR},
    }
    if r.config.get("sliding_window") is not None:
        r.note("sliding_window is not read: Qwen3.5's attention and transformers' cache keep every token")
    if r.config.get("mtp_num_hidden_layers"):
        r.note("the checkpoint's multi-token-prediction layer is not part of the transformers model: not counted")
    if r.model_type == "qwen3_5_text":
        return {**fields, "intermediate_size": _field(r, "intermediate_size")}
    return {
        **fields,
        "n_routed_experts": _field(r, "num_experts"),
        "num_experts_per_tok": _field(r, "num_experts_per_tok"),
        "moe_intermediate_size": _field(r, "moe_intermediate_size"),
        "shared_expert_intermediate_size": _field(r, "shared_expert_intermediate_size"),
        "mlp_layer_types": ("sparse",) * n if isinstance(n, int) else None,
    }


def _delta_net_parts(spec: ModelSpec) -> tuple[tuple[LinearMap, ...], tuple[ParamTensor, ...]]:
    """The DeltaNet's four input projections and its output (q, k, v, z from d; b, a per value head)."""
    d = spec.hidden_size
    hk, dk = spec.need("linear_num_key_heads"), spec.need("linear_key_head_dim")
    hv, dv = spec.need("linear_num_value_heads"), spec.need("linear_value_head_dim")
    qkv = roles("q", "k", "v")
    maps = (
        LinearMap("linear_attn.in_proj_qkv", d, 2 * hk * dk + hv * dv, False, qkv, "attention"),
        LinearMap("linear_attn.in_proj_z", d, hv * dv, False, qkv, "attention"),
        LinearMap("linear_attn.in_proj_b", d, hv, False, qkv, "attention"),
        LinearMap("linear_attn.in_proj_a", d, hv, False, qkv, "attention"),
        LinearMap("linear_attn.out_proj", hv * dv, d, False, roles("o"), "attention"),
    )
    return maps, delta_net_tensors(spec)


def build(spec: ModelSpec) -> Layout:
    """One group per token mixer: 30 DeltaNet and 10 attention layers in Qwen3.5-35B-A3B."""
    d = spec.hidden_size
    mixers: dict[str, tuple[Mixer, tuple[LinearMap, ...], tuple[ParamTensor, ...]]] = {
        "linear_attention": (delta_net(spec), *_delta_net_parts(spec)),
        "full_attention": (
            Attention(spec.attention_heads, spec.kv_heads, spec.attention_head_dim),
            *_attention_parts(spec),
        ),
    }
    mlp: tuple[LinearMap | MoE, ...] = _sparse_mlp(spec) if spec.is_moe else gated_mlp("mlp", d, spec.mlp_width)
    norms = rms_norms(d, ("input_layernorm", "post_attention_layernorm"))

    def group(kind: Any, layers: int) -> LayerGroup:
        mixer, maps, tensors = mixers[cast(str, kind)]
        return LayerGroup(layers, mixer, (*maps, *mlp), (*tensors, *norms))

    types = spec.layer_types or ("full_attention",) * spec.num_hidden_layers
    return Layout(grouped(list(types), group), embedding_and_final_norm(spec.vocab_size, d, spec.tie_word_embeddings))


def to_config(spec: ModelSpec) -> dict[str, Any]:
    config: dict[str, Any] = {
        "num_hidden_layers": spec.num_hidden_layers,
        "hidden_size": spec.hidden_size,
        "num_attention_heads": spec.num_attention_heads,
        "num_key_value_heads": spec.num_key_value_heads,
        "head_dim": spec.head_dim,
        "vocab_size": spec.vocab_size,
        "max_position_embeddings": spec.max_position_embeddings,
        "tie_word_embeddings": spec.tie_word_embeddings,
        "attention_bias": spec.attention_bias,
        "layer_types": list(spec.layer_types or ()),
        "linear_conv_kernel_dim": spec.linear_conv_kernel_dim,
        **{key: getattr(spec, key) for key in _LINEAR},
    }
    if not spec.is_moe:
        return {**config, "intermediate_size": spec.intermediate_size}
    return {
        **config,
        "num_experts": spec.n_routed_experts,
        "num_experts_per_tok": spec.num_experts_per_tok,
        "moe_intermediate_size": spec.moe_intermediate_size,
        "shared_expert_intermediate_size": spec.shared_expert_intermediate_size,
    }


# Qwen3-Next's gated DeltaNet: its scan runs and returns float32; the multimodal qwen3_5 and qwen3_5_moe wrap them
_STATE = TransformersConventions(state_dtype=DType.fp32)
CONVENTIONS = {
    "qwen3_5_text": Conventions(transformers=_STATE, wrappers=("qwen3_5",)),
    "qwen3_5_moe_text": Conventions(transformers=_STATE, wrappers=("qwen3_5_moe",)),
}


FAMILIES = [
    Family(("qwen3_5_text", "qwen3_5_moe_text"), read, build, to_config, fields=FIELDS, conventions=CONVENTIONS)
]
