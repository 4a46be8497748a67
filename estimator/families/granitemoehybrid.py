"""Granite 4.0-H (IBM's granitemoehybrid: granite-4.0-h-tiny, -small, -micro): Mamba-2 and attention layers
listed in ``layer_types``, each with a mixture of experts beside a shared MLP.

Every layer: ``input_layernorm``, ``post_attention_layernorm`` (d each); the mixer ``mamba`` (Mamba-2 under
Bamba's key names, d_inner = mamba_expand · d; see :mod:`estimator.families.bamba`) or ``self_attn`` (q, k, v, o
with ``attention_bias``, head_dim = d / heads); ``shared_mlp`` (``input_linear`` d -> 2S, ``output_linear``
S -> d, S = ``shared_intermediate_size``); and, when ``num_local_experts`` > 0, ``block_sparse_moe`` with a
router (E × d, a bare weight) and E experts of width F = ``intermediate_size`` (fused in transformers >= 5:
``gate_up_proj`` E × 2F × d, ``down_proj`` E × d × F). ``norm`` at the end; ``lm_head`` unless tied.
The granite multipliers (embedding, attention, residual, logits) scale activations and add no parameters.

With no experts the shared MLP is the layer's only MLP: the spec holds S as its ``intermediate_size``.
The recurrent state is float32 in transformers (as Bamba's), the convolution state K columns in the model dtype.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from estimator.errors import EstimatorError
from estimator.families import Family, Reader, attention_config, head_dim_or_derived, schema
from estimator.families.bamba import FIELDS as BAMBA_FIELDS
from estimator.families.bamba import attention, mamba_config, read_mamba, twin
from estimator.families.conventions import Conventions, TransformersConventions
from estimator.families.moe import GATED_NAMES
from estimator.families.ssm import mamba2_maps, mamba2_state, mamba2_tensors
from estimator.layout import LayerGroup, Layout, LinearMap
from estimator.layout.groups import embedding_and_final_norm, grouped, rms_norms, roles
from estimator.layout.moe import MoE
from estimator.units import DType

if TYPE_CHECKING:
    from collections.abc import Hashable

    from estimator.specs import ModelSpec

# transformers reads the legacy names "mamba" and "attention" as "linear_attention" and "full_attention".
_MIXERS = {
    "mamba": "mamba",
    "linear_attention": "mamba",
    "attention": "full_attention",
    "full_attention": "full_attention",
}
FIELDS: dict[str, schema.Check] = {
    **{k: v for k, v in BAMBA_FIELDS.items() if k != "attn_layer_indices"},
    "layer_types": schema.words(*_MIXERS),
    "num_local_experts": schema.SIZE_OR_ZERO,
    "shared_intermediate_size": schema.SIZE,
}


def read(r: Reader) -> dict[str, Any]:
    hidden, heads = r.need("hidden_size"), r.need("num_attention_heads")
    n = r.need("num_hidden_layers")
    types = r.get("layer_types", ["mamba"] * n, "every layer Mamba-2 (config default)")
    if len(types) != n:
        raise EstimatorError(f"{r.path}: layer_types has {len(types)} entries for {n} layers; fix the config.json")
    experts = r.get("num_local_experts", 8, "8 experts (config default)")
    width = r.get("intermediate_size", 11008, "11,008 (config default)")
    shared = r.get("shared_intermediate_size", 1024, "1,024 (config default)")
    fields: dict[str, Any] = {
        "num_hidden_layers": n,
        "hidden_size": hidden,
        "intermediate_size": width if experts else shared,
        "num_attention_heads": heads,
        "num_key_value_heads": r.get("num_key_value_heads", heads),
        "head_dim": head_dim_or_derived(r, hidden, heads),
        "vocab_size": r.get("vocab_size", 32000, "32,000 (config default)"),
        "max_position_embeddings": r.get("max_position_embeddings", 2048, "2,048 (config default)"),
        "tie_word_embeddings": r.get("tie_word_embeddings", False),
        "attention_bias": r.get("attention_bias", False),
        "layer_types": tuple(_MIXERS[t] for t in types),
        **read_mamba(r),
    }
    if experts:
        fields.update(
            n_routed_experts=experts,
            num_experts_per_tok=r.get("num_experts_per_tok", 2, "2 (config default)"),
            moe_intermediate_size=width,
            shared_expert_intermediate_size=shared,
            mlp_layer_types=("sparse",) * n,
        )
    return fields


def _mlp(spec: ModelSpec) -> tuple[LinearMap | MoE, ...]:
    """The experts (if any), then the shared MLP input_linear (d -> 2S) and output_linear (S -> d)."""
    d = spec.hidden_size
    shared = spec.shared_expert_intermediate_size or spec.mlp_width
    maps: tuple[LinearMap | MoE, ...] = (
        LinearMap("shared_mlp.input_linear", d, 2 * shared, False, roles("gate", "up"), "mlp"),
        LinearMap("shared_mlp.output_linear", shared, d, False, roles("down"), "mlp"),
    )
    if spec.is_moe:
        experts = MoE(spec.need("n_routed_experts"), spec.need("num_experts_per_tok"), d,
                      spec.need("moe_intermediate_size"), "block_sparse_moe.experts",
                      GATED_NAMES, "block_sparse_moe.router", router_linear=False)  # fmt: skip
        maps = (experts, *maps)
    return maps


def build(spec: ModelSpec) -> Layout:
    """Two groups: Mamba-2 layers and attention layers, both with the same MLPs and norms."""
    d = spec.hidden_size
    mlp = _mlp(spec)
    norms = rms_norms(d, ("input_layernorm", "post_attention_layernorm"))
    mixer, attention_linears = attention(spec)

    def group(kind: Hashable, layers: int) -> LayerGroup:
        if cast(str, kind) == "mamba":
            return LayerGroup(layers, mamba2_state(spec), (*mamba2_maps(spec, "mamba"), *mlp),
                              (*norms, *mamba2_tensors(spec, "mamba")))  # fmt: skip
        return LayerGroup(layers, mixer, (*attention_linears, *mlp), norms)

    tensors = embedding_and_final_norm(spec.vocab_size, d, spec.tie_word_embeddings)
    return Layout(grouped(spec.layer_types or (), group), tensors)


def to_config(spec: ModelSpec) -> dict[str, Any]:
    config = {
        **attention_config(spec),
        "attention_bias": spec.attention_bias,
        "layer_types": ["linear_attention" if t == "mamba" else "full_attention" for t in spec.layer_types or ()],
        "num_local_experts": spec.n_routed_experts or 0,
        "shared_intermediate_size": spec.shared_expert_intermediate_size or spec.mlp_width,
        **mamba_config(spec),
    }
    if spec.is_moe:
        config.update(intermediate_size=spec.moe_intermediate_size, num_experts_per_tok=spec.num_experts_per_tok)
    return config


# its Mamba scan returns the last state in float32, which the cache keeps
CONVENTIONS = {"granitemoehybrid": Conventions(transformers=TransformersConventions(state_dtype=DType.fp32))}

FAMILIES = [Family(("granitemoehybrid",), read, build, to_config, fields=FIELDS, twin=twin, conventions=CONVENTIONS)]
