"""Jamba (AI21's Jamba-v0.1, Jamba 1.5/1.6 Mini and Large): Mamba-1 and attention layers, dense and MoE MLPs.

Layer i is attention where i % ``attn_layer_period`` == ``attn_layer_offset`` (every 8th from 4 by default),
Mamba-1 otherwise; its MLP routes to ``num_experts`` experts where i % ``expert_layer_period`` ==
``expert_layer_offset`` (every other layer from 1), and is a gated MLP ``feed_forward.{gate,up,down}_proj``
otherwise. Every layer has ``input_layernorm`` and ``pre_ff_layernorm`` (d each).

Mamba-1 mixer ``mamba`` (see :mod:`estimator.families.ssm`): d_inner = mamba_expand · d, state N, kernel K,
time-step rank R = ``mamba_dt_rank`` ("auto": ⌈d / 16⌉); ``in_proj``/``out_proj`` biases from
``mamba_proj_bias``, the conv bias from ``mamba_conv_bias``, ``dt_proj`` always biased, and RMSNorms on dt (R),
B and C (N each): ``dt_layernorm``, ``b_layernorm``, ``c_layernorm``. Attention: q, k, v, o without biases,
head_dim = d / heads. Experts: ``feed_forward.router`` (E × d) and the experts (transformers >= 5: fused
``gate_up_proj`` E × 2F × d and ``down_proj`` E × d × F; per expert in the checkpoints).

transformers' Mamba-1 scan returns its last state in float32 (the discretised A is float32), and the cache keeps
that tensor; the convolution state is in the model's dtype with K columns.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, cast

from estimator.families import Family, Reader, attention_config, head_dim_or_derived, schema
from estimator.families.conventions import Conventions, TransformersConventions
from estimator.families.moe import GATED_NAMES, routed_experts
from estimator.families.ssm import INPUT_ROLES, mamba1_state
from estimator.layout import Attention, LayerGroup, Layout, LinearMap, ParamTensor
from estimator.layout.groups import attention_maps, embedding_and_final_norm, gated_mlp, grouped, rms_norms, roles
from estimator.units import DType

if TYPE_CHECKING:
    from collections.abc import Hashable

    from estimator.layout.moe import MoE
    from estimator.specs import ModelSpec


def _dt_rank(value: Any) -> str | None:
    return None if value == "auto" else schema.SIZE(value)


FIELDS: dict[str, schema.Check] = {
    **dict.fromkeys(("attn_layer_period", "expert_layer_period"), schema.LAYERS),
    **dict.fromkeys(("attn_layer_offset", "expert_layer_offset"), schema.LAYER_INDEX),
    **dict.fromkeys(("mamba_d_state", "mamba_d_conv", "mamba_expand"), schema.SIZE),
    "mamba_dt_rank": _dt_rank,
    "mamba_conv_bias": schema.flag,
    "mamba_proj_bias": schema.flag,
}


def _layer_map(r: Reader, n: int, kind: str, default: tuple[int, int]) -> list[bool]:
    """Which layers are of ``kind`` (attn, expert): i % period == offset, offset below period."""
    period = r.get(f"{kind}_layer_period", default[0], f"{kind}_layer_period {default[0]} (config default)")
    offset = r.get(f"{kind}_layer_offset", default[1], f"{kind}_layer_offset {default[1]} (config default)")
    if offset >= period:
        from estimator.errors import EstimatorError

        raise EstimatorError(f"{r.path}: {kind}_layer_offset ({offset}) must be below {kind}_layer_period ({period})")
    return [i % period == offset for i in range(n)]


def read(r: Reader) -> dict[str, Any]:
    hidden, heads = r.need("hidden_size"), r.need("num_attention_heads")
    n = r.need("num_hidden_layers")
    attention, sparse = _layer_map(r, n, "attn", (8, 4)), _layer_map(r, n, "expert", (2, 1))
    expand = r.get("mamba_expand", 2, "mamba_expand 2 (config default)")
    rank = r.get("mamba_dt_rank", "auto", "auto (config default)")
    if rank == "auto":
        rank = math.ceil(hidden / 16)
        r.note(f"mamba_dt_rank auto = ⌈{hidden:,} / 16⌉ = {rank}, as transformers derives it")
    fields: dict[str, Any] = {
        "num_hidden_layers": n,
        "hidden_size": hidden,
        "intermediate_size": r.get("intermediate_size", 14336, "14,336 (config default)"),
        "num_attention_heads": heads,
        "num_key_value_heads": r.get("num_key_value_heads", heads),
        "head_dim": head_dim_or_derived(r, hidden, heads),
        "vocab_size": r.get("vocab_size", 65536, "65,536 (config default)"),
        "max_position_embeddings": r.get("max_position_embeddings", 262144, "262,144 (config default)"),
        "tie_word_embeddings": r.get("tie_word_embeddings", False),
        "layer_types": tuple("full_attention" if a else "mamba" for a in attention),
        "mamba_version": 1,
        "mamba_d_state": r.get("mamba_d_state", 16, "state 16 (config default)"),
        "mamba_d_conv": r.get("mamba_d_conv", 4, "kernel 4 (config default)"),
        "mamba_d_inner": expand * hidden,
        "mamba_dt_rank": rank,
        "mamba_conv_bias": r.get("mamba_conv_bias", True),
        "mamba_proj_bias": r.get("mamba_proj_bias", False),
    }
    experts = r.get("num_experts", 16, "16 experts (config default)")
    if experts > 1 and any(sparse):  # transformers builds a plain MLP where a layer has a single expert
        fields.update(
            n_routed_experts=experts,
            num_experts_per_tok=r.get("num_experts_per_tok", 2, "2 (config default)"),
            moe_intermediate_size=fields["intermediate_size"],
            mlp_layer_types=tuple("sparse" if s else "dense" for s in sparse),
        )
    return fields


def _mamba(spec: ModelSpec) -> tuple[tuple[LinearMap, ...], tuple[ParamTensor, ...]]:
    d, inner, n = spec.hidden_size, spec.need("mamba_d_inner"), spec.need("mamba_d_state")
    rank, kernel, bias = spec.need("mamba_dt_rank"), spec.need("mamba_d_conv"), spec.mamba_proj_bias
    maps = (
        LinearMap("mamba.in_proj", d, 2 * inner, bias, INPUT_ROLES, "attention"),
        LinearMap("mamba.x_proj", inner, rank + 2 * n, False, INPUT_ROLES, "attention"),
        LinearMap("mamba.dt_proj", rank, inner, True, INPUT_ROLES, "attention"),
        LinearMap("mamba.out_proj", inner, d, bias, roles("o"), "attention"),
    )
    tensors = [ParamTensor("mamba.conv1d.weight", inner * kernel, "recurrent")]
    if spec.mamba_conv_bias:
        tensors.append(ParamTensor("mamba.conv1d.bias", inner, "recurrent"))
    tensors += [ParamTensor("mamba.A_log", inner * n, "recurrent"), ParamTensor("mamba.D", inner, "recurrent")]
    tensors += [ParamTensor("mamba.dt_layernorm", rank, "norm")]
    tensors += rms_norms(n, ("mamba.b_layernorm", "mamba.c_layernorm"))
    return maps, tuple(tensors)


def build(spec: ModelSpec) -> Layout:
    """One group per (mixer, MLP) kind: Mamba or attention, dense or sparse."""
    d = spec.hidden_size
    heads, kv, hd = spec.attention_heads, spec.kv_heads, spec.attention_head_dim
    mamba_maps, mamba_tensors = _mamba(spec)
    mixers = {
        "mamba": (mamba1_state(spec), mamba_maps, mamba_tensors),
        "full_attention": (Attention(heads, kv, hd), attention_maps(d, heads * hd, kv * hd, False, False), ()),
    }
    mlps: dict[str, tuple[LinearMap | MoE, ...]] = {"dense": gated_mlp("feed_forward", d, spec.mlp_width)}
    if spec.is_moe:
        mlps["sparse"] = (routed_experts(spec, "feed_forward.experts", GATED_NAMES, "feed_forward.router", True),)
    norms = rms_norms(d, ("input_layernorm", "pre_ff_layernorm"))

    def group(kind: Hashable, layers: int) -> LayerGroup:
        layer_type, mlp = cast(tuple[str, str], kind)
        mixer, maps, tensors = mixers[layer_type]
        return LayerGroup(layers, mixer, (*maps, *mlps[mlp]), (*norms, *tensors))

    kinds = list(zip(spec.layer_types or (), spec.mlp_layer_types or ("dense",) * spec.num_hidden_layers, strict=True))
    return Layout(grouped(kinds, group), embedding_and_final_norm(spec.vocab_size, d, spec.tie_word_embeddings))


def _period(flags: list[bool]) -> tuple[int, int]:
    """The (period, offset) that marks exactly ``flags`` (a period of n and an offset of n marks none)."""
    n = len(flags)
    for period in range(1, n + 1):
        for offset in range(period):
            if [i % period == offset for i in range(n)] == flags:
                return period, offset
    return n + 1, n  # no layer marked


def to_config(spec: ModelSpec) -> dict[str, Any]:
    attn_period, attn_offset = _period([t == "full_attention" for t in spec.layer_types or ()])
    sparse = [t == "sparse" for t in spec.mlp_layer_types or ("dense",) * spec.num_hidden_layers]
    expert_period, expert_offset = _period(sparse)
    return {
        **attention_config(spec),
        "attn_layer_period": attn_period,
        "attn_layer_offset": attn_offset,
        "expert_layer_period": expert_period,
        "expert_layer_offset": expert_offset,
        "num_experts": spec.n_routed_experts or 1,
        "num_experts_per_tok": spec.num_experts_per_tok or 1,
        "mamba_d_state": spec.mamba_d_state,
        "mamba_d_conv": spec.mamba_d_conv,
        "mamba_expand": spec.need("mamba_d_inner") // spec.hidden_size,
        "mamba_dt_rank": spec.mamba_dt_rank,
        "mamba_conv_bias": spec.mamba_conv_bias,
        "mamba_proj_bias": spec.mamba_proj_bias,
    }


def twin(spec: ModelSpec, update: dict[str, Any]) -> dict[str, Any]:
    """d_inner = mamba_expand · the twin's hidden size; time-step rank ⌈hidden / 16⌉; state 16."""
    hidden = update["hidden_size"]
    expand = spec.need("mamba_d_inner") // spec.hidden_size
    return {**update, "mamba_d_inner": expand * hidden, "mamba_dt_rank": math.ceil(hidden / 16), "mamba_d_state": 16}


# its Mamba scan returns the last state in float32, which the cache keeps
CONVENTIONS = {"jamba": Conventions(transformers=TransformersConventions(state_dtype=DType.fp32))}

FAMILIES = [Family(("jamba",), read, build, to_config, fields=FIELDS, twin=twin, conventions=CONVENTIONS)]
