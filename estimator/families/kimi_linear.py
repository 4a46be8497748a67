"""Kimi Linear (``kimi_linear``): Kimi delta attention (KDA) layers with a few multi-head latent attention (MLA)
layers, and DeepSeek-style experts with a shared expert after dense first layers.

What transformers 5.24's ``KimiLinearDecoderLayer`` builds, by ``layer_types`` (absent: the checkpoint's
``linear_attn_config`` lists, 1-indexed ``full_attn_layers`` and ``kda_layers``; else full attention on every 4th
layer after the first) and ``mlp_layer_types`` (absent: the first ``first_k_dense_replace`` layers dense, 1 by
default):

- ``linear_attention`` (``KimiLinearDeltaAttention``, H = ``linear_num_heads``, d_k = ``linear_head_dim``, both
  also read from ``linear_attn_config``'s ``num_heads``, ``head_dim``, ``short_conv_kernel_size``): q, k, v
  (d -> H d_k each), a depthwise ``conv1d`` over their 3 H d_k channels (kernel K, no bias), the forget gate
  ``f_a_proj`` (d -> d_k) and ``f_b_proj`` (d_k -> H d_k) with ``dt_bias`` (H d_k, float32) and ``A_log`` (H),
  ``b_proj`` (d -> H), the output gate ``g_a_proj`` (d -> d_k) and ``g_b_proj`` (d_k -> H d_k), a gated RMSNorm of
  d_k and ``o_proj`` (H d_k -> d), no biases. Its state: the convolution (3 H d_k channels × K columns in the
  model's dtype) and H · d_k · d_k elements, which transformers keeps in float32.
- ``full_attention`` (``KimiLinearAttention``): DeepSeek's MLA without RoPE on the heads' own part (q_proj, or
  q_a/q_b with ``q_lora_rank``; kv_a_proj_with_mqa, kv_b_proj, o_proj; the latent norms); the cache holds the
  latent (kv_lora_rank + qk_rope_head_dim per token).
- MLP: dense gate/up/down of ``intermediate_size``, or ``num_experts`` experts of ``moe_intermediate_size`` (top
  ``num_experts_per_token``; fused tensors, the router ``mlp.gate`` a bare float32 weight E × d) and a shared MLP of
  ``num_shared_experts`` × ``moe_intermediate_size``.
- Two RMSNorms per layer, the final norm, and an output head of its own even where ``tie_word_embeddings`` is true
  (``KimiLinearForCausalLM`` ties no weights).

Kimi's own code reads fields transformers does not (``mla_use_nope``, ``mla_use_output_gate``, ``moe_layer_freq``,
``routed_expert_hidden_size``, ``latent_moe_use_norm``, ``linear_attn_config.use_full_rank_gate`` and
``gate_lower_bound``: Kimi K3's): a value under which the model differs from what transformers builds is refused.

The config class's ``attribute_map`` names (``num_experts``, ``num_experts_per_token``, ``num_shared_experts``,
``model_max_length``, ``moe_renormalize``, ``num_expert_group``) are the ones it writes; the standard names are
their aliases.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from estimator.errors import EstimatorError
from estimator.families import Family, Reader
from estimator.families.conventions import Conventions, TransformersConventions
from estimator.families.deepseek import _attention as mla_maps
from estimator.families.deepseek import mixer as mla_mixer
from estimator.families.moe import GATED_NAMES, routed_experts
from estimator.families.schema import MAX_CONTEXT, SIZE, SIZE_OR_ZERO, count, words
from estimator.layout import Layout, LinearMap, ParamTensor
from estimator.layout.groups import embedding_and_final_norm, gated_mlp, rms_norms, roles, typed_layers
from estimator.layout.recurrent import RecurrentState
from estimator.units import DType

if TYPE_CHECKING:
    from estimator.layout import Mixer
    from estimator.layout.moe import MoE
    from estimator.specs import ModelSpec

_DEFAULTS: dict[str, Any] = {  # KimiLinearConfig's defaults for absent keys
    "vocab_size": 163840,
    "hidden_size": 2304,
    "intermediate_size": 9216,
    "moe_intermediate_size": 1024,
    "num_hidden_layers": 27,
    "num_attention_heads": 32,
    "num_shared_experts": 1,
    "kv_lora_rank": 512,
    "qk_rope_head_dim": 64,
    "v_head_dim": 128,
    "qk_nope_head_dim": 128,
    "num_experts_per_token": 8,
    "model_max_length": 1048576,
    "num_experts": 256,
    "linear_head_dim": 128,
    "linear_num_heads": 32,
    "linear_conv_kernel_dim": 4,
    "first_k_dense_replace": 1,  # read by __post_init__ only
}
_LINEAR_SUB = {"head_dim": "linear_head_dim", "num_heads": "linear_num_heads",
               "short_conv_kernel_size": "linear_conv_kernel_dim"}  # fmt: skip
LINEAR, FULL = "linear_attention", "full_attention"
FIELDS = {
    "layer_types": words(FULL, LINEAR),
    "mlp_layer_types": words("dense", "sparse"),
    "first_k_dense_replace": count(0, 100_000),
    **dict.fromkeys(("linear_head_dim", "linear_num_heads", "kv_lora_rank", "qk_nope_head_dim"), SIZE),
    "linear_conv_kernel_dim": count(1, 1024),
    "linear_attn_config": lambda value: None if isinstance(value, dict) else "an object or null",
    "model_max_length": count(1, MAX_CONTEXT),
    "num_experts_per_token": SIZE,
    "num_shared_experts": SIZE_OR_ZERO,
}


def _sub(r: Reader) -> dict[str, Any]:
    sub = r.config.get("linear_attn_config") or {}
    if not isinstance(sub, dict):
        raise EstimatorError(f"{r.path}: linear_attn_config is {str(sub)[:40]}, not an object; fix the config.json")
    return sub


def _linear(r: Reader, key: str) -> Any:
    """linear_head_dim, linear_num_heads, linear_conv_kernel_dim: linear_attn_config's value overrides (as
    ``__post_init__`` reads it), else the field, else the class default."""
    sub = _sub(r)
    name = next((k for k, v in _LINEAR_SUB.items() if v == key), None)
    if name is not None and sub.get(name) is not None:
        value = sub[name]
        if SIZE(value):
            raise EstimatorError(f"{r.path}: linear_attn_config.{name} is {str(value)[:20]}; fix the config.json")
        return value
    return r.field(key, _DEFAULTS)


def _layer_types(r: Reader, n: int) -> tuple[str, ...]:
    types = r.config.get("layer_types")
    sub = _sub(r)
    if types is None and "full_attn_layers" in sub and "kda_layers" in sub:
        listed: list[str | None] = [None] * n
        for key, kind in (("full_attn_layers", FULL), ("kda_layers", LINEAR)):
            for layer in sub[key]:
                if not isinstance(layer, int) or not 1 <= layer <= n:
                    raise EstimatorError(f"{r.path}: linear_attn_config.{key} holds {layer!r}; layers count from 1")
                listed[layer - 1] = kind
        if None in listed:
            raise EstimatorError(f"{r.path}: linear_attn_config leaves layer {listed.index(None) + 1} without a kind")
        types = listed
    if types is None:
        types = [FULL if i and i % 4 == 0 else LINEAR for i in range(n)]
    if len(types) != n:
        raise EstimatorError(f"{r.path}: layer_types has {len(types)} entries for {n} layers; fix the config.json")
    return tuple(types)


# Fields of Kimi's own code (Kimi Linear, Kimi K3) that transformers' kimi_linear does not read, with the one value
# under which what transformers builds is the model: any other value is refused.
_REMOTE_AS_BUILT: dict[str, Any] = {
    "mla_use_nope": True,  # transformers' MLA applies no RoPE to the heads' own part
    "mla_use_output_gate": False,  # no output gate on MLA
    "latent_moe_use_norm": False,  # no latent MoE
    "routed_expert_hidden_size": None,
    "moe_layer_freq": 1,  # every layer after the dense ones is sparse
}
_REMOTE_SUB_AS_BUILT: dict[str, Any] = {"use_full_rank_gate": False, "gate_lower_bound": None}


def _refuse_remote_fields(r: Reader) -> None:
    """One line for a field of Kimi's own code whose value makes a model transformers' kimi_linear does not build."""
    given = [(key, r.config.get(key), built) for key, built in _REMOTE_AS_BUILT.items()]
    sub = _sub(r)
    given += [(f"linear_attn_config.{key}", sub.get(key), built) for key, built in _REMOTE_SUB_AS_BUILT.items()]
    for key, value, built in given:
        if value is not None and value != built and not (built is False and value is None):
            raise EstimatorError(
                f"{r.path}: {key} is {str(value)[:30]}, which transformers' kimi_linear does not build (it builds "
                f"the model of {key} = {built}); not modelled"
            )


def _untied(r: Reader) -> bool:
    """False: ``KimiLinearForCausalLM`` ties no weights (its ``_tied_weights_keys`` is empty), whatever the flag."""
    if r.config.get("tie_word_embeddings"):
        r.note("tie_word_embeddings is true, but transformers' Kimi Linear ties no weights: the head is counted")
    return False


def read(r: Reader) -> dict[str, Any]:
    _refuse_remote_fields(r)
    n = r.field("num_hidden_layers", _DEFAULTS)
    heads = r.field("num_attention_heads", _DEFAULTS)
    kv = r.get("num_key_value_heads", 32, "32 (KimiLinearConfig default)", null_is_default=False)  # null: H
    rope, nope = r.field("qk_rope_head_dim", _DEFAULTS), r.field("qk_nope_head_dim", _DEFAULTS)
    first_dense = r.field("first_k_dense_replace", _DEFAULTS)
    mlps = r.config.get("mlp_layer_types") or ["dense" if i < first_dense else "sparse" for i in range(n)]
    if len(mlps) != n:
        raise EstimatorError(f"{r.path}: mlp_layer_types has {len(mlps)} entries for {n} layers; fix the config.json")
    sparse = "sparse" in mlps
    return {
        "num_hidden_layers": n,
        "hidden_size": r.field("hidden_size", _DEFAULTS),
        "intermediate_size": r.field("intermediate_size", _DEFAULTS),
        "num_attention_heads": heads,
        "num_key_value_heads": heads if kv is None else kv,
        "head_dim": nope + rope,
        "vocab_size": r.field("vocab_size", _DEFAULTS),
        "max_position_embeddings": r.field("model_max_length", _DEFAULTS),
        "tie_word_embeddings": _untied(r),
        "attention_bias": r.get("attention_bias", False),
        "layer_types": _layer_types(r, n),
        "kv_lora_rank": r.field("kv_lora_rank", _DEFAULTS),
        "q_lora_rank": r.get("q_lora_rank", None),
        "qk_rope_head_dim": rope,
        "qk_nope_head_dim": nope,
        "v_head_dim": r.field("v_head_dim", _DEFAULTS),
        "linear_num_value_heads": _linear(r, "linear_num_heads"),
        "linear_value_head_dim": _linear(r, "linear_head_dim"),
        "linear_conv_kernel_dim": _linear(r, "linear_conv_kernel_dim"),
        **(
            {
                "n_routed_experts": r.field("num_experts", _DEFAULTS),
                "num_experts_per_tok": r.field("num_experts_per_token", _DEFAULTS),
                "moe_intermediate_size": r.field("moe_intermediate_size", _DEFAULTS),
                "n_shared_experts": r.field("num_shared_experts", _DEFAULTS),
                "mlp_layer_types": tuple(mlps),
            }
            if sparse
            else {}
        ),
    }


def kda(spec: ModelSpec) -> RecurrentState:
    """KDA's state: the convolution over q, k, v (3 H d_k channels) and H · d_k · d_k (Kimi's defaults, H 32,
    d_k 128: 12,288 channels and 524,288 elements)."""
    h, dk = spec.need("linear_num_value_heads"), spec.need("linear_value_head_dim")
    return RecurrentState("Kimi delta attention", 3 * h * dk, spec.need("linear_conv_kernel_dim"), h * dk * dk)


def _kda_parts(spec: ModelSpec) -> tuple[tuple[LinearMap, ...], tuple[ParamTensor, ...]]:
    d, h, dk = spec.hidden_size, spec.need("linear_num_value_heads"), spec.need("linear_value_head_dim")
    inner, state = h * dk, kda(spec)
    qkv = roles("q", "k", "v")
    maps = (
        LinearMap("self_attn.q_proj", d, inner, False, roles("q"), "attention"),
        LinearMap("self_attn.k_proj", d, inner, False, roles("k"), "attention"),
        LinearMap("self_attn.v_proj", d, inner, False, roles("v"), "attention"),
        LinearMap("self_attn.forget_gate.f_a_proj", d, dk, False, qkv, "attention"),
        LinearMap("self_attn.forget_gate.f_b_proj", dk, inner, False, qkv, "attention"),
        LinearMap("self_attn.b_proj", d, h, False, qkv, "attention"),
        LinearMap("self_attn.g_a_proj", d, dk, False, qkv, "attention"),
        LinearMap("self_attn.g_b_proj", dk, inner, False, qkv, "attention"),
        LinearMap("self_attn.o_proj", inner, d, False, roles("o"), "attention"),
    )
    tensors = (
        ParamTensor("self_attn.conv1d", state.conv_channels * state.conv_kernel, "recurrent"),
        ParamTensor("self_attn.forget_gate.dt_bias", inner, "recurrent"),
        ParamTensor("self_attn.forget_gate.A_log", h, "recurrent"),
        ParamTensor("self_attn.o_norm", dk, "norm"),
    )
    return maps, tensors


def build(spec: ModelSpec) -> Layout:
    """One group per (token mixer, MLP) kind of layer."""
    d = spec.hidden_size
    latent_norms: tuple[ParamTensor, ...] = (ParamTensor("self_attn.kv_a_layernorm", spec.kv_lora_rank or 0, "norm"),)
    if spec.q_lora_rank is not None:
        latent_norms += (ParamTensor("self_attn.q_a_layernorm", spec.q_lora_rank, "norm"),)
    mixers: dict[str, tuple[Mixer, tuple[LinearMap, ...], tuple[ParamTensor, ...]]] = {
        LINEAR: (kda(spec), *_kda_parts(spec)),
        FULL: (mla_mixer(spec), mla_maps(spec), latent_norms),
    }
    mlps: dict[str, tuple[LinearMap | MoE, ...]] = {"dense": gated_mlp("mlp", d, spec.mlp_width)}
    if spec.is_moe:
        shared = (spec.n_shared_experts or 0) * (spec.moe_intermediate_size or 0)
        experts = routed_experts(spec, "mlp.experts", GATED_NAMES, "mlp.gate", False)
        mlps["sparse"] = (experts, *(gated_mlp("mlp.shared_experts", d, shared) if shared else ()))
    norms = rms_norms(d, ("input_layernorm", "post_attention_layernorm"))

    n = spec.num_hidden_layers
    kinds = list(zip(spec.layer_types or (FULL,) * n, spec.mlp_layer_types or ("dense",) * n, strict=True))
    groups = typed_layers(kinds, mixers.__getitem__, mlps, norms)
    return Layout(groups, embedding_and_final_norm(spec.vocab_size, d, spec.tie_word_embeddings))


def to_config(spec: ModelSpec) -> dict[str, Any]:
    n = spec.num_hidden_layers
    return {
        "hidden_size": spec.hidden_size,
        "intermediate_size": spec.intermediate_size,
        "num_attention_heads": spec.num_attention_heads,
        "num_key_value_heads": spec.num_key_value_heads,
        "max_position_embeddings": spec.max_position_embeddings,
        "attention_bias": spec.attention_bias,
        "layer_types": list(spec.layer_types or ()),
        "mlp_layer_types": list(spec.mlp_layer_types or ("dense",) * n),
        "kv_lora_rank": spec.kv_lora_rank,
        "q_lora_rank": spec.q_lora_rank,
        "qk_rope_head_dim": spec.qk_rope_head_dim,
        "qk_nope_head_dim": spec.qk_nope_head_dim,
        "v_head_dim": spec.v_head_dim,
        "linear_num_heads": spec.linear_num_value_heads,
        "linear_head_dim": spec.linear_value_head_dim,
        "linear_conv_kernel_dim": spec.linear_conv_kernel_dim,
        "num_local_experts": spec.n_routed_experts or 1,
        "num_experts_per_tok": spec.num_experts_per_tok or 1,
        "moe_intermediate_size": spec.moe_intermediate_size or 1,
        "n_shared_experts": spec.n_shared_experts or 1,
    }


# transformers keeps its router in float32 from 5.24 (KimiLinearTopkRouter.weight, dtype=torch.float32), and
# Kimi delta attention's torch scan returns its state in float32
CONVENTIONS = {
    "kimi_linear": Conventions(
        transformers=TransformersConventions(fp32_weights=("mlp.gate",), fp32_since=(5, 24), state_dtype=DType.fp32)
    )
}

FAMILIES = [Family(("kimi_linear",), read, build, to_config, fields=FIELDS, conventions=CONVENTIONS)]
