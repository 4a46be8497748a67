"""Falcon-H1 (TII's Falcon-H1 0.5B to 34B): attention and Mamba-2 side by side in every layer, then an MLP.

Every layer: ``input_layernorm`` and ``pre_ff_layernorm`` (d each); ``self_attn`` (q, k, v, o with
``attention_bias``, ``head_dim`` from the config) and ``mamba`` (Mamba-2 of d_inner = ``mamba_d_ssm``, or
mamba_expand · d where it is null; ``mamba_n_heads`` heads of ``mamba_d_head``; in_proj bias from
``mamba_proj_bias``, out_proj bias from ``projectors_bias``; the gated RMSNorm of d_inner only with
``mamba_rms_norm``) on the same input; ``feed_forward`` gated MLP (``mlp_bias``). ``final_layernorm``;
``lm_head`` unless tied. The µP multipliers (embedding, lm_head, key, attention and SSM in/out, MLP, the
``mup_vector`` buffer) scale activations and add no parameters.

Each layer caches its attention's keys and values and keeps a Mamba-2 state (a :class:`Parallel` mixer);
transformers keeps that recurrent state in float32. peft's LoRA refuses the Mamba ``out_proj`` on this model type.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from estimator.families import Family, Reader, attention_config, head_dim_or_derived, schema
from estimator.families.bamba import MAMBA_DEFAULTS, MAMBA_NAMES, attention
from estimator.families.conventions import Conventions, PeftConventions, TransformersConventions
from estimator.families.ssm import (
    mamba2_checks,
    mamba2_config,
    mamba2_fields,
    mamba2_maps,
    mamba2_state,
    mamba2_tensors,
    mamba2_twin,
)
from estimator.layout import LayerGroup, Layout
from estimator.layout.groups import embedding_and_final_norm, gated_mlp, rms_norms
from estimator.layout.recurrent import Parallel
from estimator.units import DType

if TYPE_CHECKING:
    from estimator.specs import ModelSpec

FIELDS: dict[str, schema.Check] = {
    **mamba2_checks(MAMBA_NAMES),
    **dict.fromkeys(("mamba_d_ssm", "mamba_expand"), schema.SIZE),
    **dict.fromkeys(("projectors_bias", "mamba_rms_norm"), schema.flag),
}


def read(r: Reader) -> dict[str, Any]:
    hidden, heads = r.need("hidden_size"), r.need("num_attention_heads")
    d_ssm = r.get("mamba_d_ssm", 1024, "mamba_d_ssm 1,024 (config default)", null_is_default=False)
    if d_ssm is None:
        expand = r.get("mamba_expand", 2, "mamba_expand 2 (config default)")
        d_ssm = expand * hidden
        r.note(f"mamba_d_ssm null: d_inner = mamba_expand · hidden_size = {d_ssm:,}, as transformers derives it")
    options = (("projectors_bias", r.get("projectors_bias", False)), ("mamba_rms_norm", r.get("mamba_rms_norm", False)))
    return {
        "num_hidden_layers": r.need("num_hidden_layers"),
        "hidden_size": hidden,
        "intermediate_size": r.get("intermediate_size", 14336, "14,336 (config default)"),
        "num_attention_heads": heads,
        "num_key_value_heads": r.get("num_key_value_heads", 8, "8 KV heads (config default)"),
        "head_dim": head_dim_or_derived(r, hidden, heads),
        "vocab_size": r.get("vocab_size", 128000, "128,000 (config default)"),
        "max_position_embeddings": r.get("max_position_embeddings", 8192, "8,192 (config default)"),
        "tie_word_embeddings": r.get("tie_word_embeddings", False),
        "attention_bias": r.get("attention_bias", False),
        "mlp_bias": r.get("mlp_bias", False),
        "layer_types": ("hybrid",) * r.need("num_hidden_layers"),
        **mamba2_fields(r, MAMBA_NAMES, MAMBA_DEFAULTS, d_ssm),
        "family_fields": options,
    }


def build(spec: ModelSpec) -> Layout:
    """One group: every layer holds attention and Mamba-2 side by side, and the MLP."""
    d = spec.hidden_size
    mixer, attention_linears = attention(spec)
    maps = (*attention_linears, *mamba2_maps(spec, "mamba", spec.option("projectors_bias", False)),
            *gated_mlp("feed_forward", d, spec.mlp_width, spec.mlp_bias))  # fmt: skip
    tensors = (*rms_norms(d, ("input_layernorm", "pre_ff_layernorm")),
               *mamba2_tensors(spec, "mamba", gated_norm=spec.option("mamba_rms_norm", False)))  # fmt: skip
    group = LayerGroup(spec.num_hidden_layers, Parallel((mixer, mamba2_state(spec))), maps, tensors)
    return Layout((group,), embedding_and_final_norm(spec.vocab_size, d, spec.tie_word_embeddings))


def to_config(spec: ModelSpec) -> dict[str, Any]:
    return {
        **attention_config(spec),
        "attention_bias": spec.attention_bias,
        "mlp_bias": spec.mlp_bias,
        "mamba_d_ssm": spec.mamba_d_inner,
        "projectors_bias": spec.option("projectors_bias", False),
        "mamba_rms_norm": spec.option("mamba_rms_norm", False),
        **mamba2_config(spec, MAMBA_NAMES),
    }


def twin(spec: ModelSpec, update: dict[str, Any]) -> dict[str, Any]:
    """d_inner 64 in 4 Mamba heads of 16."""
    return mamba2_twin(update, 64)


# peft's Mamba check refuses LoRA on out_proj; the Mamba-2 scan returns its last state in float32
CONVENTIONS = {
    "falcon_h1": Conventions(
        peft=PeftConventions(all_linear_skips=("out_proj",)),
        transformers=TransformersConventions(state_dtype=DType.fp32),
    )
}

FAMILIES = [Family(("falcon_h1",), read, build, to_config, fields=FIELDS, twin=twin, conventions=CONVENTIONS)]
