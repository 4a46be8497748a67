"""IBM Granite MoE with sliding windows and sinks (model type granitemoe_swa): GraniteMoE plus gpt-oss's sinks.

What transformers 5.24's ``GraniteMoeSWAForCausalLM`` builds, per layer:

- attention: q, k, v, o (biases on all four from ``attention_bias``, default false), H query and K KV heads
  (KV heads default to H) of ``head_dim`` (read where given; hidden / H otherwise), and ``self_attn.sinks``:
  one learned logit per query head (H parameters; weights, not cache);
- ``layer_types``: absent, full attention on every fourth layer from the first (i % 4 == 0) and sliding
  windows of ``sliding_window`` (128 by default) on the others (a null window is refused:
  transformers cannot run it); transformers keeps w − 1 tokens in a full window.
  ``layer_rope_theta`` (0: no RoPE on that layer) and the µP multipliers hold no parameters;
- every MLP is sparse, under ``block_sparse_moe``: the router ``router`` (a bare weight E × d) and
  ``num_local_experts`` experts of ``intermediate_size`` (transformers 5's fused tensors), top
  ``num_experts_per_tok``; beside it, when ``shared_intermediate_size`` S > 0, ``shared_mlp``:
  ``input_linear`` (d -> 2S) and ``output_linear`` (S -> d), no biases;
- two RMSNorms; untied embeddings by default.

peft 0.21 does not convert granitemoe_swa: all-linear adapts q, k, v, o and the shared MLP only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from estimator.errors import EstimatorError
from estimator.families import Family, Reader, all_sparse_fields, attention_config, windowed_attention_layout
from estimator.families.granitemoe import experts
from estimator.families.schema import SIZE_OR_ZERO
from estimator.families.unbuildable import refuse_null
from estimator.layout import Layout, LinearMap, ParamTensor
from estimator.layout.groups import Group, attention_maps, embedding_and_final_norm, rms_norms, roles

if TYPE_CHECKING:
    from estimator.layout.moe import MoE
    from estimator.specs import ModelSpec

_DEFAULTS = {  # GraniteMoeSWAConfig's defaults for absent keys
    "num_attention_heads": 32,
    "vocab_size": 32000,
    "max_position_embeddings": 2048,
    "intermediate_size": 11008,
}
_WINDOW = 128  # GraniteMoeSWAConfig's sliding_window
_FULL_EVERY = 4  # its layer_types: full attention where i % 4 == 0
ATTENTION_GROUP: Group = "attention"  # sinks belong to attention in the breakdown


def read(r: Reader) -> dict[str, Any]:
    refuse_null(r, "head_dim", "num_local_experts", "num_experts_per_tok")
    fields = all_sparse_fields(r, _DEFAULTS, "num_local_experts", 8, 2)
    n = fields["num_hidden_layers"]
    shared = r.get("shared_intermediate_size", 0)
    if shared:
        fields["shared_expert_intermediate_size"] = shared
    window = r.get("sliding_window", _WINDOW, f"{_WINDOW} (granitemoe_swa config default)", null_is_default=False)
    if window is None:
        raise EstimatorError(
            f"{r.path}: sliding_window is null, which transformers 5.24's granitemoe_swa cannot run (its cache and "
            "sliding layers need a window); give the window"
        )
    types = r.config.get("layer_types") or [
        "full_attention" if i % _FULL_EVERY == 0 else "sliding_attention" for i in range(n)
    ]
    if "sliding_attention" in types:
        fields.update(sliding_window=window, layer_types=tuple(types))
    return fields


def build(spec: ModelSpec) -> Layout:
    """One group per window: attention and its sinks (H), routed experts, the shared MLP, two RMSNorms.

    Per layer: (H + 2K) · d_h · d + H · d_h · d + H + d · E + E · 3 · d · F + 3 · d · S + 2 · d
    (+ (H + 2K) · d_h + d biases with ``attention_bias``).
    """
    d, h, dh, bias = spec.hidden_size, spec.attention_heads, spec.attention_head_dim, spec.attention_bias
    maps: tuple[LinearMap | MoE, ...] = (*attention_maps(d, h * dh, spec.kv_heads * dh, bias, bias), experts(spec))
    if shared := spec.shared_expert_intermediate_size:
        maps += (
            LinearMap("shared_mlp.input_linear", d, 2 * shared, False, roles("gate", "up"), "mlp"),
            LinearMap("shared_mlp.output_linear", shared, d, False, roles("down"), "mlp"),
        )
    norms = (
        ParamTensor("self_attn.sinks", h, ATTENTION_GROUP),
        *rms_norms(d, ("input_layernorm", "post_attention_layernorm")),
    )
    tensors = embedding_and_final_norm(spec.vocab_size, d, spec.tie_word_embeddings)
    return windowed_attention_layout(spec, maps, norms, tensors)


def to_config(spec: ModelSpec) -> dict[str, Any]:
    full = ["full_attention"] * spec.num_hidden_layers
    return {
        **attention_config(spec),
        "intermediate_size": spec.moe_intermediate_size,
        "num_local_experts": spec.n_routed_experts,
        "num_experts_per_tok": spec.num_experts_per_tok,
        "attention_bias": spec.attention_bias,
        "shared_intermediate_size": spec.shared_expert_intermediate_size or 0,
        "sliding_window": spec.sliding_window,
        "layer_types": list(spec.layer_types or full),
    }


FAMILIES = [Family(("granitemoe_swa",), read, build, to_config, fields={"shared_intermediate_size": SIZE_OR_ZERO})]
