"""Cohere2 MoE (model type cohere2_moe): Cohere2's parallel block and windows, with routed and shared experts.

What transformers 5.24's ``Cohere2MoeForCausalLM`` builds, per layer:

- one ``input_layernorm`` read by attention and MLP side by side: an RMSNorm where ``rms_norm_eps`` is set,
  else a LayerNorm without bias: d weights either way; the final ``norm`` likewise;
- attention: q, k, v, o (biases on all four from ``attention_bias``), H query and K KV heads (KV heads
  default to H) of ``head_dim`` (128 by default); sliding windows of ``sliding_window`` (4,096 by
  default) on the layers ``layer_types`` marks (absent: the first ``first_k_dense_replace`` layers by
  ``prefix_dense_sliding_window_pattern``, the rest three sliding to one full by ``sliding_window_pattern``);
- the MLP: where ``mlp_layer_types`` says dense (absent: the first ``first_k_dense_replace`` layers),
  gate, up, down of ``prefix_dense_intermediate_size`` (null: ``intermediate_size``); where sparse, the
  router ``mlp.gate`` (a bare weight E × d), ``num_experts`` experts of ``intermediate_size`` (transformers
  5's fused tensors; top ``num_experts_per_tok``) and, with ``num_shared_experts`` S > 0, a shared MLP
  ``mlp.shared_experts`` of S · ``intermediate_size``; no biases in any MLP;
- embeddings tied by default; a head without bias.

peft 0.21 converts cohere2_moe (qwen2_moe's pattern): all-linear puts LoRAs on ``mlp.experts.gate_up_proj``
(2r), ``down_proj`` (r) and the router weight (r); the dense and shared MLPs, named gate_proj, up_proj and
down_proj too, lose theirs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from estimator.errors import EstimatorError
from estimator.families import Family, Reader, windowed_sparse_layout
from estimator.families.conventions import Conventions, PeftConventions
from estimator.families.moe import GATED_NAMES, routed_experts
from estimator.families.schema import LAYER_INDEX, LAYERS, SIZE, SIZE_OR_ZERO, flag, words
from estimator.families.unbuildable import refuse_null
from estimator.layout import Layout
from estimator.layout.groups import attention_maps, gated_mlp, rms_norms

if TYPE_CHECKING:
    from estimator.layout import LinearMap
    from estimator.layout.moe import MoE
    from estimator.specs import ModelSpec

_DEFAULTS = {  # Cohere2MoeConfig's defaults for absent keys
    "vocab_size": 256000,
    "intermediate_size": 22528,
    "num_attention_heads": 64,
    "head_dim": 128,
    "max_position_embeddings": 8192,
    "num_experts": 8,
    "num_experts_per_tok": 2,
    "num_shared_experts": 0,
    "sliding_window_pattern": 4,
    "prefix_dense_sliding_window_pattern": 1,
}
FIELDS = {
    "num_shared_experts": SIZE_OR_ZERO,
    "first_k_dense_replace": LAYER_INDEX,
    "prefix_dense_intermediate_size": SIZE,
    "prefix_dense_sliding_window_pattern": LAYERS,
    "mlp_layer_types": words("dense", "sparse"),
    "norm_topk_prob": flag,
}


def layer_types(n: int, first_dense: int, prefix_pattern: int, pattern: int) -> list[str]:
    """Cohere2MoeConfig's layer_types where absent: the first k layers slide unless (i + 1) % prefix_pattern
    is 0, the others unless (j + 1) % pattern is 0, j counted from the first of them. n = 6, k = 1, patterns 1
    and 4: full, then sliding, sliding, sliding, full, sliding."""
    prefix = ["sliding_attention" if (i + 1) % prefix_pattern else "full_attention" for i in range(first_dense)]
    rest = ["sliding_attention" if (j + 1) % pattern else "full_attention" for j in range(n - first_dense)]
    return prefix + rest


def read(r: Reader) -> dict[str, Any]:
    def field(key: str) -> Any:
        return r.field(key, _DEFAULTS)

    refuse_null(r, "head_dim", "num_experts", "num_experts_per_tok", "num_shared_experts", "intermediate_size")
    hidden, n, heads = r.need("hidden_size"), r.need("num_hidden_layers"), field("num_attention_heads")
    width = field("intermediate_size")
    first_dense = r.get("first_k_dense_replace", 0)
    types = r.config.get("layer_types") or layer_types(
        n, first_dense, field("prefix_dense_sliding_window_pattern"), field("sliding_window_pattern")
    )
    mlps = r.config.get("mlp_layer_types") or ["dense" if i < first_dense else "sparse" for i in range(n)]
    fields: dict[str, Any] = {
        "num_hidden_layers": n,
        "hidden_size": hidden,
        "intermediate_size": r.get("prefix_dense_intermediate_size", width),
        "num_attention_heads": heads,
        "num_key_value_heads": r.get("num_key_value_heads", heads, "as many KV heads as query heads (config default)"),
        "head_dim": field("head_dim"),
        "vocab_size": field("vocab_size"),
        "max_position_embeddings": field("max_position_embeddings"),
        "tie_word_embeddings": r.get("tie_word_embeddings", True, "tied embeddings (cohere2_moe default)"),
        "attention_bias": r.get("attention_bias", False),
        "n_routed_experts": field("num_experts"),
        "num_experts_per_tok": field("num_experts_per_tok"),
        "moe_intermediate_size": width,
        "n_shared_experts": field("num_shared_experts") or None,
        "mlp_layer_types": tuple(mlps),
        "family_fields": (("norm_topk_prob", r.get("norm_topk_prob", True)),),
    }
    if "sliding_attention" in types:
        window = r.get("sliding_window", 4096, "4,096 (Cohere2MoeConfig default)", null_is_default=False)
        if window is None:
            raise EstimatorError(
                f"{r.path}: sliding_window is null but layer_types has sliding layers; give the window, or "
                "full_attention layers only"
            )
        fields.update(sliding_window=window, layer_types=tuple(types))
    return fields


def build(spec: ModelSpec) -> Layout:
    """One group per (window, dense or sparse MLP) kind of layer, with one norm of d per layer."""
    d, h, dh, bias = spec.hidden_size, spec.attention_heads, spec.attention_head_dim, spec.attention_bias
    attention = attention_maps(d, h * dh, spec.kv_heads * dh, bias, bias)
    shared = (spec.n_shared_experts or 0) * (spec.moe_intermediate_size or 0)
    experts = routed_experts(spec, "mlp.experts", GATED_NAMES, "mlp.gate", True)
    mlps: dict[str, tuple[LinearMap | MoE, ...]] = {
        "dense": gated_mlp("mlp", d, spec.mlp_width),
        "sparse": (experts, *(gated_mlp("mlp.shared_experts", d, shared) if shared else ())),
    }
    norms = rms_norms(d, ("input_layernorm",))  # an RMSNorm or a bias-free LayerNorm: d weights

    return windowed_sparse_layout(spec, attention, mlps, norms)


def to_config(spec: ModelSpec) -> dict[str, Any]:
    full = ["full_attention"] * spec.num_hidden_layers
    return {
        "hidden_size": spec.hidden_size,
        "num_attention_heads": spec.num_attention_heads,
        "num_key_value_heads": spec.num_key_value_heads,
        "head_dim": spec.head_dim,
        "max_position_embeddings": spec.max_position_embeddings,
        "attention_bias": spec.attention_bias,
        "intermediate_size": spec.moe_intermediate_size,
        "prefix_dense_intermediate_size": spec.intermediate_size,
        "num_experts": spec.n_routed_experts,
        "num_experts_per_tok": spec.num_experts_per_tok,
        "num_shared_experts": spec.n_shared_experts or 0,
        "norm_topk_prob": bool(spec.option("norm_topk_prob", True)),
        "sliding_window": spec.sliding_window,
        "layer_types": list(spec.layer_types or full),
        "mlp_layer_types": list(spec.mlp_layer_types or ()),
    }


# peft converts its expert and router names to transformers 5's fused tensors
CONVENTIONS = {"cohere2_moe": Conventions(peft=PeftConventions(converts_experts=True))}

FAMILIES = [Family(("cohere2_moe",), read, build, to_config, fields=FIELDS, conventions=CONVENTIONS)]
