"""DeepSeek V3.2 (``deepseek_v32``): DeepSeek-V3's MLA and experts, plus the sparse-attention indexer.

transformers 5's ``DeepseekV32Attention`` always projects queries through ``q_a_proj``,
``q_a_layernorm`` and ``q_b_proj`` (no ``q_lora_rank``-less form), and every layer holds a
``DeepseekV32Indexer`` of ``index_n_heads`` heads of ``index_head_dim``:

- ``wq_b`` (q_lora_rank -> index_n_heads · index_head_dim), ``wk`` (d -> index_head_dim),
  ``weights_proj`` (d -> index_n_heads), all ``nn.Linear`` without bias, and ``k_norm``, a LayerNorm
  of index_head_dim (weight and bias);
- its cache: one key of index_head_dim per token and layer, beside MLA's latent (transformers'
  ``DynamicIndexedLayer.indexer_keys``, [batch, tokens, index_head_dim] in the model's dtype).

MLP: ``mlp_layer_types`` where given, else the first ``first_k_dense_replace`` layers dense; sparse
layers as DeepSeek-V3's (a float32 router weight, fused experts, shared experts). The router's
``e_score_correction_bias`` is a buffer, not a parameter.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

from estimator.errors import EstimatorError
from estimator.families import Family, Reader
from estimator.families.conventions import Conventions, PeftConventions, TransformersConventions
from estimator.families.deepseek import _attention, mixer
from estimator.families.deepseek import to_config as deepseek_to_config
from estimator.families.moe import GATED_NAMES, routed_experts
from estimator.families.schema import SIZE, words
from estimator.layout import LayerGroup, Layout, LinearMap, ParamTensor
from estimator.layout.groups import embedding_and_final_norm, gated_mlp, grouped, rms_norms, roles

if TYPE_CHECKING:
    from collections.abc import Hashable

    from estimator.layout.moe import MoE
    from estimator.specs import ModelSpec

_DEFAULTS = {  # DeepseekV32Config's defaults for absent keys
    "n_routed_experts": 256,
    "moe_intermediate_size": 2048,
    "n_shared_experts": 1,
    "first_k_dense_replace": 3,
    "max_position_embeddings": 163840,
    "num_experts_per_tok": 8,
    "num_key_value_heads": 128,
    "index_n_heads": 64,
    "index_head_dim": 128,
    "index_topk": 2048,
    "kv_lora_rank": 512,
    "q_lora_rank": 1536,
    "qk_rope_head_dim": 64,
    "qk_nope_head_dim": 128,
    "v_head_dim": 128,
}
FIELDS = {
    "index_n_heads": SIZE,
    "index_head_dim": SIZE,
    "index_topk": SIZE,
    "mlp_layer_types": words("dense", "sparse"),
    "layer_types": words("indexed_attention"),  # as DeepseekV32Config writes it: every layer indexed
}


def _mlp_types(r: Reader, n: int) -> tuple[str, ...]:
    given = r.config.get("mlp_layer_types")
    if given:
        if len(given) != n:
            raise EstimatorError(
                f"{r.path}: mlp_layer_types has {len(given)} entries for {n} layers; fix the config.json"
            )
        return tuple(str(t) for t in given)
    first_dense: int = min(r.field("first_k_dense_replace", _DEFAULTS), n)
    return ("dense",) * first_dense + ("sparse",) * (n - first_dense)


def read(r: Reader) -> dict[str, Any]:
    def field(key: str) -> Any:
        return r.field(key, _DEFAULTS)

    n = r.need("num_hidden_layers")
    if (types := r.config.get("layer_types")) is not None and len(types) != n:
        raise EstimatorError(f"{r.path}: layer_types lists {len(types)} layers, not num_hidden_layers ({n}); fix it")
    rope, nope = field("qk_rope_head_dim"), field("qk_nope_head_dim")
    if r.config.get("num_nextn_predict_layers"):
        r.note(
            f"the checkpoint's {r.config['num_nextn_predict_layers']} multi-token-prediction layer(s) are not part "
            "of the transformers model and are not counted"
        )
    return {
        "num_hidden_layers": n,
        "hidden_size": r.need("hidden_size"),
        "intermediate_size": r.need("intermediate_size"),
        "num_attention_heads": r.need("num_attention_heads"),
        "num_key_value_heads": field("num_key_value_heads"),
        "head_dim": nope + rope,
        "vocab_size": r.need("vocab_size"),
        "max_position_embeddings": field("max_position_embeddings"),
        "tie_word_embeddings": r.get("tie_word_embeddings", False),
        "attention_bias": r.get("attention_bias", False),
        "kv_lora_rank": field("kv_lora_rank"),
        "q_lora_rank": field("q_lora_rank"),
        "qk_rope_head_dim": rope,
        "qk_nope_head_dim": nope,
        "v_head_dim": field("v_head_dim"),
        "n_routed_experts": field("n_routed_experts"),
        "num_experts_per_tok": field("num_experts_per_tok"),
        "moe_intermediate_size": field("moe_intermediate_size"),
        "n_shared_experts": field("n_shared_experts"),
        "mlp_layer_types": _mlp_types(r, n),
        "index_n_heads": field("index_n_heads"),
        "index_head_dim": field("index_head_dim"),
        "index_topk": field("index_topk"),
    }


def _indexer(spec: ModelSpec) -> tuple[LinearMap, ...]:
    """The indexer's three maps: wq_b (q_lora_rank -> H_i · d_i), wk (d -> d_i), weights_proj (d -> H_i)."""
    d, heads, dim = spec.hidden_size, spec.need("index_n_heads"), spec.need("index_head_dim")
    return (
        LinearMap("self_attn.indexer.wq_b", spec.need("q_lora_rank"), heads * dim, False, roles("q"), "attention"),
        LinearMap("self_attn.indexer.wk", d, dim, False, roles("k"), "attention"),
        LinearMap("self_attn.indexer.weights_proj", d, heads, False, roles("q"), "attention"),
    )


def build(spec: ModelSpec) -> Layout:
    """Dense and sparse groups as DeepSeek-V3's, every layer with MLA, its latent norms and the indexer.

    DeepSeek-V3.2-Exp's indexer per layer: 1536 · 64 · 128 + 7168 · 128 + 7168 · 64 + 2 · 128 (k_norm)
    = 13,959,424 parameters; its cache adds 128 values per token and layer to MLA's 576.
    """
    d = spec.hidden_size
    attention = (*_attention(spec), *_indexer(spec))
    shared = (spec.n_shared_experts or 0) * (spec.moe_intermediate_size or 0)
    experts = routed_experts(spec, "mlp.experts", GATED_NAMES, "mlp.gate", False)  # the router is a bare weight
    mlps: dict[str, tuple[LinearMap | MoE, ...]] = {
        "dense": gated_mlp("mlp", d, spec.mlp_width),
        "sparse": (experts, *(gated_mlp("mlp.shared_experts", d, shared) if shared else ())),
    }
    norms = rms_norms(d, ("input_layernorm", "post_attention_layernorm"))
    norms += rms_norms(spec.need("kv_lora_rank"), ("self_attn.kv_a_layernorm",))
    norms += rms_norms(spec.need("q_lora_rank"), ("self_attn.q_a_layernorm",))
    norms += (ParamTensor("self_attn.indexer.k_norm", 2 * spec.need("index_head_dim"), "norm"),)  # LayerNorm
    latent = replace(
        mixer(spec),
        index_head_dim=spec.need("index_head_dim"),
        index_heads=spec.need("index_n_heads"),
        index_topk=spec.need("index_topk"),
    )

    def group(kind: Hashable, layers: int) -> LayerGroup:
        return LayerGroup(layers, latent, (*attention, *mlps[cast(str, kind)]), norms)

    tensors = embedding_and_final_norm(spec.vocab_size, d, spec.tie_word_embeddings)
    return Layout(grouped(spec.mlp_layer_types or (), group), tensors)


def to_config(spec: ModelSpec) -> dict[str, Any]:
    config = deepseek_to_config(spec)
    config.update(
        mlp_layer_types=list(spec.mlp_layer_types or ()),
        index_n_heads=spec.index_n_heads,
        index_head_dim=spec.index_head_dim,
        index_topk=spec.index_topk,
    )
    return config


# peft converts its expert names; transformers keeps its router in float32 from 5.24
CONVENTIONS = {
    "deepseek_v32": Conventions(
        peft=PeftConventions(converts_experts=True),
        # DeepseekV32TopkRouter.weight, dtype=torch.float32
        transformers=TransformersConventions(fp32_weights=("mlp.gate",), fp32_since=(5, 24)),
    )
}

FAMILIES = [Family(("deepseek_v32",), read, build, to_config, fields=FIELDS, conventions=CONVENTIONS)]
