"""Bamba (IBM's Bamba-9B): Mamba-2 layers, with full attention at ``attn_layer_indices``.

Every layer: ``input_layernorm``, ``pre_ff_layernorm`` (RMSNorm, d each) and a gated MLP
``feed_forward.{gate,up,down}_proj`` (``mlp_bias``). Mixer: ``mamba`` (Mamba-2 of d_inner = mamba_expand · d,
``mamba_n_heads`` heads of ``mamba_d_head``, ``mamba_n_groups``, ``mamba_d_state``, ``mamba_d_conv``; see
:mod:`estimator.families.ssm`) or ``self_attn`` (q, k, v, o with ``attention_bias``; head_dim = d / heads unless
the config gives it). ``final_layernorm``; an untied ``lm_head`` unless ``tie_word_embeddings``.

transformers keeps the Mamba-2 recurrent state in float32 (its chunked scan computes in float32 and the cache
holds that tensor), the convolution state in the model's dtype with K columns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from estimator.families import Family, Reader, attention_config, head_dim_or_derived, schema
from estimator.families.conventions import Conventions, TransformersConventions
from estimator.families.ssm import (
    mamba2_checks,
    mamba2_config,
    mamba2_fields,
    mamba2_maps,
    mamba2_state,
    mamba2_tensors,
    mamba2_twin,
)
from estimator.layout import Attention, LayerGroup, Layout, LinearMap
from estimator.layout.groups import attention_maps, embedding_and_final_norm, gated_mlp, grouped, rms_norms
from estimator.units import DType

if TYPE_CHECKING:
    from collections.abc import Hashable

    from estimator.specs import ModelSpec

# Bamba's and Granite 4.0-H's Mamba-2 config keys (the same names in both configs).
MAMBA_NAMES = {
    "heads": "mamba_n_heads",
    "head_dim": "mamba_d_head",
    "groups": "mamba_n_groups",
    "state": "mamba_d_state",
    "kernel": "mamba_d_conv",
    "conv_bias": "mamba_conv_bias",
    "proj_bias": "mamba_proj_bias",
}
MAMBA_DEFAULTS = {"heads": 128, "groups": 1, "state": 256, "kernel": 4}
FIELDS = {
    **mamba2_checks(MAMBA_NAMES),
    "mamba_expand": schema.SIZE,
    "attn_layer_indices": schema.counts(0, schema.MAX_LAYERS),
}


def read_mamba(r: Reader) -> dict[str, Any]:
    """Mamba-2 fields with d_inner = mamba_expand · hidden_size (expand 2 by default)."""
    expand = r.get("mamba_expand", 2, "mamba_expand 2 (config default)")
    hidden = r.need("hidden_size")
    fields = mamba2_fields(r, MAMBA_NAMES, MAMBA_DEFAULTS, expand * hidden)
    fields["family_fields"] = (("mamba_expand", expand),)
    return fields


def read(r: Reader) -> dict[str, Any]:
    hidden, heads = r.need("hidden_size"), r.need("num_attention_heads")
    n = r.need("num_hidden_layers")
    attention = set(r.get("attn_layer_indices", [], "no attention layers (config default)") or [])
    return {
        "num_hidden_layers": n,
        "hidden_size": hidden,
        "intermediate_size": r.get("intermediate_size", 14336, "14,336 (config default)"),
        "num_attention_heads": heads,
        "num_key_value_heads": r.get("num_key_value_heads", 8, "8 KV heads (config default)"),
        "head_dim": head_dim_or_derived(r, hidden, heads),
        "vocab_size": r.get("vocab_size", 128000, "128,000 (config default)"),
        "max_position_embeddings": r.get("max_position_embeddings", 262144, "262,144 (config default)"),
        "tie_word_embeddings": r.get("tie_word_embeddings", False),
        "attention_bias": r.get("attention_bias", False),
        "mlp_bias": r.get("mlp_bias", False),
        "layer_types": tuple("full_attention" if i in attention else "mamba" for i in range(n)),
        **read_mamba(r),
    }


def attention(spec: ModelSpec, prefix: str = "self_attn") -> tuple[Attention, tuple[LinearMap, ...]]:
    """The attention mixer and its q, k, v, o maps (biases from attention_bias on all four)."""
    heads, kv, hd = spec.attention_heads, spec.kv_heads, spec.attention_head_dim
    maps = attention_maps(spec.hidden_size, heads * hd, kv * hd, spec.attention_bias, spec.attention_bias, prefix)
    return Attention(heads, kv, hd), maps


def build(spec: ModelSpec) -> Layout:
    """Two groups: the Mamba-2 layers and the attention layers, each with the MLP and two norms."""
    d = spec.hidden_size
    mlp = gated_mlp("feed_forward", d, spec.mlp_width, spec.mlp_bias)
    norms = rms_norms(d, ("input_layernorm", "pre_ff_layernorm"))
    mixer, attention_linears = attention(spec)

    def group(kind: Hashable, layers: int) -> LayerGroup:
        if cast(str, kind) == "mamba":
            return LayerGroup(layers, mamba2_state(spec), (*mamba2_maps(spec, "mamba"), *mlp),
                              (*norms, *mamba2_tensors(spec, "mamba")))  # fmt: skip
        return LayerGroup(layers, mixer, (*attention_linears, *mlp), norms)

    return Layout(
        grouped(spec.layer_types or (), group), embedding_and_final_norm(spec.vocab_size, d, spec.tie_word_embeddings)
    )


def mamba_config(spec: ModelSpec) -> dict[str, Any]:
    """The Mamba-2 keys under Bamba's (and Granite 4.0-H's) names, with mamba_expand."""
    return {**mamba2_config(spec, MAMBA_NAMES), "mamba_expand": spec.option("mamba_expand", 2)}


def to_config(spec: ModelSpec) -> dict[str, Any]:
    types = spec.layer_types or ()
    return {
        **attention_config(spec),
        "attention_bias": spec.attention_bias,
        "mlp_bias": spec.mlp_bias,
        "attn_layer_indices": [i for i, t in enumerate(types) if t == "full_attention"],
        **mamba_config(spec),
    }


def twin(spec: ModelSpec, update: dict[str, Any]) -> dict[str, Any]:
    """d_inner = mamba_expand · the twin's hidden size, in 4 heads."""
    return mamba2_twin(update, spec.option("mamba_expand", 2) * update["hidden_size"])


# its Mamba scan returns the last state in float32, which the cache keeps
CONVENTIONS = {"bamba": Conventions(transformers=TransformersConventions(state_dtype=DType.fp32))}

FAMILIES = [Family(("bamba",), read, build, to_config, fields=FIELDS, twin=twin, conventions=CONVENTIONS)]
