"""EXAONE MoE (model type exaone_moe): EXAONE 4.0's windows and q/k norms, DeepSeek-V3's sigmoid routing.

What transformers 5.24's ``ExaoneMoeForCausalLM`` builds, per layer:

- attention: q, k, v, o without biases, H query and K KV heads (32 by default) of ``head_dim`` (read where
  given; hidden / H otherwise); ``q_norm`` and ``k_norm``: RMSNorms of head_dim; sliding windows of
  ``sliding_window`` (4,096 by default) on the layers ``layer_types`` marks (absent: full where
  (i + 1) % ``sliding_window_pattern`` is 0, as EXAONE 4.0; a null window or a string pattern leaves
  transformers unable to derive them, so the reader asks for layer_types);
- the MLP: where ``mlp_layer_types`` says dense (absent: the first ``first_k_dense_replace`` layers, 1 by
  default), gate, up, down of ``intermediate_size``; where sparse, the router ``mlp.gate`` (a bare float32
  weight E × d; its ``e_score_correction_bias`` is a buffer, not a parameter), ``num_experts`` experts of
  ``moe_intermediate_size`` (transformers 5's fused tensors; top ``num_experts_per_tok``) and a shared MLP
  ``mlp.shared_experts`` of ``num_shared_experts`` · ``moe_intermediate_size`` (built even at 0 shared
  experts, with no parameters then); no biases;
- two RMSNorms (``input_layernorm``, ``post_attention_layernorm``); untied embeddings by default.

peft 0.21 converts exaone_moe (qwen2_moe's pattern): all-linear puts LoRAs on ``mlp.experts.gate_up_proj``
(2r), ``down_proj`` (r) and the router weight (r, in float32); the dense and shared MLPs lose theirs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from estimator.errors import EstimatorError
from estimator.families import Family, Reader, attention_config, head_dim_or_derived, windowed_sparse_layout
from estimator.families.conventions import Conventions, PeftConventions, TransformersConventions
from estimator.families.exaone4 import PATTERN, WINDOW, _layer_types, pattern
from estimator.families.moe import GATED_NAMES, routed_experts
from estimator.families.schema import LAYER_INDEX, SIZE_OR_ZERO, flag, words
from estimator.families.unbuildable import refuse_null
from estimator.layout import Layout
from estimator.layout.groups import attention_maps, gated_mlp, rms_norms

if TYPE_CHECKING:
    from estimator.layout import LinearMap
    from estimator.layout.moe import MoE
    from estimator.specs import ModelSpec

_DEFAULTS = {  # ExaoneMoeConfig's defaults for absent keys
    "vocab_size": 102400,
    "intermediate_size": 16384,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "max_position_embeddings": 2048,
    "first_k_dense_replace": 1,
    "moe_intermediate_size": 1024,
    "num_experts": 64,
    "num_experts_per_tok": 8,
    "num_shared_experts": 1,
}
FIELDS = {
    "sliding_window_pattern": pattern,
    "first_k_dense_replace": LAYER_INDEX,
    "num_shared_experts": SIZE_OR_ZERO,
    "mlp_layer_types": words("dense", "sparse"),
    "norm_topk_prob": flag,
}


def read(r: Reader) -> dict[str, Any]:
    def field(key: str) -> Any:
        return r.field(key, _DEFAULTS)

    refuse_null(r, "head_dim", "num_experts", "num_experts_per_tok", "num_shared_experts", "first_k_dense_replace")
    hidden, n, heads = r.need("hidden_size"), r.need("num_hidden_layers"), field("num_attention_heads")
    window = r.get("sliding_window", WINDOW, f"{WINDOW:,} (ExaoneMoeConfig default)", null_is_default=False)
    first_dense = field("first_k_dense_replace")
    mlps = r.config.get("mlp_layer_types") or ["dense" if i < first_dense else "sparse" for i in range(n)]
    fields: dict[str, Any] = {
        "num_hidden_layers": n,
        "hidden_size": hidden,
        "intermediate_size": field("intermediate_size"),
        "num_attention_heads": heads,
        "num_key_value_heads": field("num_key_value_heads"),
        "head_dim": head_dim_or_derived(r, hidden, heads),
        "vocab_size": field("vocab_size"),
        "max_position_embeddings": field("max_position_embeddings"),
        "tie_word_embeddings": r.get("tie_word_embeddings", False),
        "n_routed_experts": field("num_experts"),
        "num_experts_per_tok": field("num_experts_per_tok"),
        "moe_intermediate_size": field("moe_intermediate_size"),
        "n_shared_experts": field("num_shared_experts") or None,
        "mlp_layer_types": tuple(mlps),
        "family_fields": (("norm_topk_prob", r.get("norm_topk_prob", True)),),
    }
    types = _layer_types(r, n, window)
    if "sliding_attention" in types:
        if window is None:
            raise EstimatorError(
                f"{r.path}: layer_types has sliding layers but sliding_window is null; give the window, or "
                "full_attention layers only"
            )
        fields.update(sliding_window=window, layer_types=tuple(types))
    return fields


def build(spec: ModelSpec) -> Layout:
    """One group per (window, dense or sparse MLP) kind of layer."""
    d, h, dh = spec.hidden_size, spec.attention_heads, spec.attention_head_dim
    attention = attention_maps(d, h * dh, spec.kv_heads * dh, False, False)
    shared = (spec.n_shared_experts or 0) * (spec.moe_intermediate_size or 0)
    experts = routed_experts(spec, "mlp.experts", GATED_NAMES, "mlp.gate", False)  # a bare weight in v4 too
    mlps: dict[str, tuple[LinearMap | MoE, ...]] = {
        "dense": gated_mlp("mlp", d, spec.mlp_width),
        "sparse": (experts, *(gated_mlp("mlp.shared_experts", d, shared) if shared else ())),
    }
    norms = (
        *rms_norms(dh, ("self_attn.q_norm", "self_attn.k_norm")),
        *rms_norms(d, ("input_layernorm", "post_attention_layernorm")),
    )

    return windowed_sparse_layout(spec, attention, mlps, norms)


def to_config(spec: ModelSpec) -> dict[str, Any]:
    full = ["full_attention"] * spec.num_hidden_layers
    return {
        **attention_config(spec),
        "moe_intermediate_size": spec.moe_intermediate_size,
        "num_experts": spec.n_routed_experts,
        "num_experts_per_tok": spec.num_experts_per_tok,
        "num_shared_experts": spec.n_shared_experts or 0,
        "norm_topk_prob": bool(spec.option("norm_topk_prob", True)),
        "sliding_window": spec.sliding_window or WINDOW,
        "sliding_window_pattern": PATTERN,
        "layer_types": list(spec.layer_types or full),
        "mlp_layer_types": list(spec.mlp_layer_types or ()),
    }


# peft converts its expert names; transformers keeps its router in float32 from 5.24
CONVENTIONS = {
    "exaone_moe": Conventions(
        peft=PeftConventions(converts_experts=True),
        # ExaoneMoeTopkRouter.weight, dtype=torch.float32 (seen on 5.24)
        transformers=TransformersConventions(fp32_weights=("mlp.gate",), fp32_since=(5, 24)),
    )
}

FAMILIES = [Family(("exaone_moe",), read, build, to_config, fields=FIELDS, conventions=CONVENTIONS)]
