"""Arcee AFMoE (model type afmoe): gated attention with q/k norms, local and global layers, shared experts.

What transformers 5.24's ``AfmoeForCausalLM`` builds, per layer:

- attention: q, k, v, o (biases on all four from ``attention_bias``, default false), H query and K KV heads
  (KV heads default to H) of ``head_dim`` (128 by default; null is refused: transformers cannot build it);
  ``q_norm`` and ``k_norm``, RMSNorms of head_dim; and ``self_attn.gate_proj`` (d -> H · d_h, no bias), a
  sigmoid gate on the attention output;
- ``layer_types``: absent, full attention on every ``global_attn_every_n_layers``-th layer (4 by default)
  and sliding windows of ``sliding_window`` (1,024 by default) on the others; transformers keeps w − 1
  tokens in a full window;
- four RMSNorms of d (``input_layernorm``, ``post_attention_layernorm``, ``pre_mlp_layernorm``,
  ``post_mlp_layernorm``);
- the first ``num_dense_layers`` layers (1 by default) a dense MLP of ``intermediate_size``; the others
  the router ``mlp.router.gate`` (an ``nn.Linear`` d -> E), ``mlp.expert_bias`` (E values, a parameter that
  is never trained: counted here as the router's bias), ``num_experts`` experts of ``moe_intermediate_size``
  (transformers 5's fused tensors; top ``num_experts_per_tok``) and a shared MLP ``mlp.shared_experts`` of
  ``num_shared_experts`` · ``moe_intermediate_size``; no MLP biases;
- untied embeddings by default; ``mup_enabled`` and ``route_scale`` scale activations and hold nothing.

peft 0.21 converts afmoe (qwen2_moe's pattern): all-linear puts LoRAs on ``mlp.experts.gate_up_proj`` (2r),
``down_proj`` (r) and the router ``mlp.router.gate`` (r, an ``nn.Linear``); every module named gate_proj,
up_proj or down_proj loses its adapter: the dense and shared MLPs, and the attention's ``gate_proj`` too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from estimator.errors import EstimatorError
from estimator.families import Family, Reader, attention_config, windowed_sparse_layout
from estimator.families.conventions import Conventions, PeftConventions
from estimator.families.named_experts import NamedMoE, named_moe
from estimator.families.schema import LAYER_INDEX, LAYERS, SIZE_OR_ZERO
from estimator.families.unbuildable import refuse_null
from estimator.layout import Layout, LinearMap
from estimator.layout.groups import attention_maps, gated_mlp, rms_norms, roles

if TYPE_CHECKING:
    from estimator.layout.moe import MoE
    from estimator.specs import ModelSpec

_DEFAULTS = {  # AfmoeConfig's defaults for absent keys
    "vocab_size": 200192,
    "intermediate_size": 6144,
    "moe_intermediate_size": 1408,
    "num_dense_layers": 1,
    "num_attention_heads": 16,
    "head_dim": 128,
    "max_position_embeddings": 16384,
    "num_experts": 64,
    "num_experts_per_tok": 6,
    "num_shared_experts": 2,
    "global_attn_every_n_layers": 4,
    "sliding_window": 1024,
}
FIELDS = {"num_dense_layers": LAYER_INDEX, "num_shared_experts": SIZE_OR_ZERO, "global_attn_every_n_layers": LAYERS}
_NORMS = ("input_layernorm", "post_attention_layernorm", "pre_mlp_layernorm", "post_mlp_layernorm")


def _not_null(r: Reader, key: str) -> Any:
    """``key``, or its class default where absent; null is refused (transformers' code cannot build it)."""
    refuse_null(r, key)
    return r.field(key, _DEFAULTS)


def read(r: Reader) -> dict[str, Any]:
    hidden, n, heads = r.need("hidden_size"), r.need("num_hidden_layers"), _not_null(r, "num_attention_heads")
    first_sparse = _not_null(r, "num_dense_layers")
    every = _not_null(r, "global_attn_every_n_layers")
    types = r.config.get("layer_types") or [
        "sliding_attention" if (i + 1) % every else "full_attention" for i in range(n)
    ]
    fields: dict[str, Any] = {
        "num_hidden_layers": n,
        "hidden_size": hidden,
        "intermediate_size": _not_null(r, "intermediate_size"),
        "num_attention_heads": heads,
        "num_key_value_heads": r.get("num_key_value_heads", heads, "as many KV heads as query heads (config default)"),
        "head_dim": _not_null(r, "head_dim"),
        "vocab_size": _not_null(r, "vocab_size"),
        "max_position_embeddings": r.field("max_position_embeddings", _DEFAULTS),
        "tie_word_embeddings": r.get("tie_word_embeddings", False),
        "attention_bias": r.get("attention_bias", False),
        "n_routed_experts": _not_null(r, "num_experts"),
        "num_experts_per_tok": _not_null(r, "num_experts_per_tok"),
        "moe_intermediate_size": _not_null(r, "moe_intermediate_size"),
        "n_shared_experts": _not_null(r, "num_shared_experts") or None,
        "mlp_layer_types": tuple("dense" if i < first_sparse else "sparse" for i in range(n)),
    }
    if "sliding_attention" in types:
        fields.update(sliding_window=_not_null(r, "sliding_window"), layer_types=tuple(types))
    return fields


def experts(spec: ModelSpec) -> NamedMoE:
    """Routed experts; the router ``mlp.router.gate`` is an ``nn.Linear``, its ``expert_bias`` counted as its bias."""
    return named_moe(
        spec,
        router="mlp.router.gate",
        router_linear=True,
        fused_router="mlp.router.gate",
        fused_router_linear=True,
        router_bias=True,
    )


def build(spec: ModelSpec) -> Layout:
    """One group per (window, dense or sparse MLP) kind of layer.

    Per layer: (H + 2K) · d_h · d + H · d_h · d (q, k, v, o) + d · H · d_h (the output gate) + 2 · d_h + 4 · d,
    plus 3 · d · F (dense), or d · E + E + E · 3 · d · F_e + 3 · d · S · F_e (sparse).
    """
    d, h, dh, bias = spec.hidden_size, spec.attention_heads, spec.attention_head_dim, spec.attention_bias
    attention = (
        *attention_maps(d, h * dh, spec.kv_heads * dh, bias, bias),
        LinearMap("self_attn.gate_proj", d, h * dh, False, roles("gate"), "attention"),
    )
    shared = (spec.n_shared_experts or 0) * (spec.moe_intermediate_size or 0)
    mlps: dict[str, tuple[LinearMap | MoE, ...]] = {
        "dense": gated_mlp("mlp", d, spec.mlp_width),
        "sparse": (experts(spec), *(gated_mlp("mlp.shared_experts", d, shared) if shared else ())),
    }
    norms = (*rms_norms(dh, ("self_attn.q_norm", "self_attn.k_norm")), *rms_norms(d, _NORMS))

    return windowed_sparse_layout(spec, attention, mlps, norms)


def to_config(spec: ModelSpec) -> dict[str, Any]:
    types = spec.mlp_layer_types or ()
    dense = types.index("sparse") if "sparse" in types else len(types)
    if tuple(types) != ("dense",) * dense + ("sparse",) * (len(types) - dense):
        raise EstimatorError(f"{spec.name}: afmoe's dense layers are the first ones; fix mlp_layer_types")
    full = ["full_attention"] * spec.num_hidden_layers
    return {
        **attention_config(spec),
        "attention_bias": spec.attention_bias,
        "num_dense_layers": dense,
        "moe_intermediate_size": spec.moe_intermediate_size,
        "num_experts": spec.n_routed_experts,
        "num_experts_per_tok": spec.num_experts_per_tok,
        "num_shared_experts": spec.n_shared_experts or 0,
        "sliding_window": spec.sliding_window or _DEFAULTS["sliding_window"],
        "layer_types": list(spec.layer_types or full),
    }


# peft converts its expert and router names to transformers 5's fused tensors
CONVENTIONS = {"afmoe": Conventions(peft=PeftConventions(converts_experts=True))}

FAMILIES = [Family(("afmoe",), read, build, to_config, fields=FIELDS, conventions=CONVENTIONS)]
