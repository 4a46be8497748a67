"""Baidu ERNIE 4.5 (model types ernie4_5 and ernie4_5_moe): Llama's shape, one bias switch, a tied head.

What transformers 5.24's ``Ernie4_5ForCausalLM`` and ``Ernie4_5_MoeForCausalLM`` build, per layer:

- attention: q, k, v, o; ``use_bias`` (default false) puts biases on all four and on every MLP map;
  ``head_dim`` 128 where absent (ernie4_5's config class; null: hidden / heads), hidden / heads for
  ernie4_5_moe (its class has no such field; a given one is read); KV heads 2 (ernie4_5; null: as many
  as query heads) or 4 (ernie4_5_moe);
- gate, up, down of ``intermediate_size``; two RMSNorms; embeddings tied by default; the output head
  of ernie4_5_moe carries a bias of V when ``use_bias`` (ernie4_5's never does);
- ernie4_5_moe: layer i routes to experts when (i + 1) is a multiple of ``moe_layer_interval`` and
  ``moe_layer_start_index`` <= i <= ``moe_layer_end_index`` (-1: the last layer); else the dense MLP.
  A sparse layer holds the router ``mlp.gate`` (a bare float32 weight E × d), its
  ``moe_statics.e_score_correction_bias`` (E values, a parameter that is never trained: counted here as
  the router's bias), ``moe_num_experts`` experts of ``moe_intermediate_size`` (transformers 5's fused
  tensors, never biased; top ``moe_k``) and, with ``moe_num_shared_experts`` S > 0, a shared MLP
  ``mlp.shared_experts`` of S · ``moe_intermediate_size`` (biased with ``use_bias``).
  transformers' attribute map: ``num_experts`` is ``moe_num_experts``, ``num_experts_per_tok`` ``moe_k``.

A checkpoint's ``num_nextn_predict_layers`` multi-token-prediction layers are not built by transformers and
not counted (a note says so).

peft 0.21 converts ernie4_5_moe (qwen2_moe's pattern): all-linear puts LoRAs on ``mlp.experts.gate_up_proj``
(2r), ``down_proj`` (r) and the router weight (r); the dense and shared MLPs, named gate_proj, up_proj
and down_proj too, lose theirs.

ERNIE-4.5-0.3B (d 1,024, 18 layers, 16 heads, 2 KV heads of 128, F 3,072, V 103,424, tied): 18 ·
(1,024 · 2,048 + 2 · 1,024 · 256 + 2,048 · 1,024 + 3 · 1,024 · 3,072 + 2 · 1,024) + 103,424 · 1,024 +
1,024 = 360,748,032 parameters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from estimator.errors import EstimatorError
from estimator.families import Family, Reader, attention_config
from estimator.families.conventions import Conventions, PeftConventions, TransformersConventions
from estimator.families.named_experts import NamedMoE, named_moe
from estimator.families.schema import LAYER_INDEX, LAYERS, SIZE_OR_ZERO, count, flag
from estimator.families.unbuildable import refuse_null
from estimator.layout import Attention, LayerGroup, Layout, LinearMap, ParamTensor
from estimator.layout.groups import attention_maps, embedding_and_final_norm, gated_mlp, grouped, rms_norms

if TYPE_CHECKING:
    from collections.abc import Hashable

    from estimator.layout.moe import MoE
    from estimator.specs import ModelSpec

_DEFAULTS: dict[str, dict[str, Any]] = {  # the config classes' defaults for absent keys
    "ernie4_5": {
        "vocab_size": 103424,
        "intermediate_size": 3072,
        "num_attention_heads": 16,
        "num_key_value_heads": 2,
        "max_position_embeddings": 131072,
    },
    "ernie4_5_moe": {
        "vocab_size": 103424,
        "intermediate_size": 12288,
        "num_attention_heads": 20,
        "num_key_value_heads": 4,
        "max_position_embeddings": 131072,
        "moe_intermediate_size": 1536,
        "moe_num_experts": 64,
        "moe_k": 6,
        "moe_num_shared_experts": 2,
        "moe_layer_start_index": 1,
        "moe_layer_end_index": -1,
        "moe_layer_interval": 1,
    },
}
FIELDS = {
    "use_bias": flag,
    "moe_num_experts": count(),
    "moe_k": count(),
    "moe_num_shared_experts": SIZE_OR_ZERO,
    "moe_layer_start_index": LAYER_INDEX,
    "moe_layer_end_index": count(-1, 100_000),
    "moe_layer_interval": LAYERS,
}


def _not_null(r: Reader, key: str) -> Any:
    """``key``, or its class default where absent; null is refused (transformers' code cannot build it)."""
    refuse_null(r, key)
    return r.field(key, _DEFAULTS[r.model_type])


def _head_dim(r: Reader, hidden: Any, heads: Any) -> Any:
    """ernie4_5: 128 where absent, hidden / heads where null (its __post_init__); ernie4_5_moe: the
    config's, else hidden / heads (the attention's getattr default; null is refused: it cannot build)."""
    derived = hidden // heads
    if r.model_type == "ernie4_5" and "head_dim" not in r.config:
        return r.get("head_dim", 128, "128 (ernie4_5 config default)")
    if r.model_type == "ernie4_5_moe":
        refuse_null(r, "head_dim")  # the attention reads it as given
    return r.get("head_dim", derived, "head_dim = hidden_size / num_attention_heads, as transformers does")


def sparse_layers(n: int, start: int, end: int, interval: int) -> tuple[str, ...]:
    """Ernie4_5_MoeDecoderLayer's choice: sparse where (i + 1) % interval == 0 and start <= i <= end, end -1
    meaning the last layer. 28 layers, start 1, end -1, interval 1: layer 0 dense, 27 sparse."""
    last = n - 1 if end == -1 else end
    return tuple("sparse" if (i + 1) % interval == 0 and start <= i <= last else "dense" for i in range(n))


def read(r: Reader) -> dict[str, Any]:
    defaults = _DEFAULTS[r.model_type]
    hidden, n = r.need("hidden_size"), r.need("num_hidden_layers")
    heads = _not_null(r, "num_attention_heads")
    if r.model_type == "ernie4_5" and "num_key_value_heads" in r.config and r.config["num_key_value_heads"] is None:
        r.note("num_key_value_heads is null: as many KV heads as query heads, as Ernie4_5Config does")
        kv = heads
    else:
        kv = _not_null(r, "num_key_value_heads")
    fields: dict[str, Any] = {
        "num_hidden_layers": n,
        "hidden_size": hidden,
        "intermediate_size": _not_null(r, "intermediate_size"),
        "num_attention_heads": heads,
        "num_key_value_heads": kv,
        "head_dim": _head_dim(r, hidden, heads),
        "vocab_size": _not_null(r, "vocab_size"),
        "max_position_embeddings": r.field("max_position_embeddings", defaults),
        "tie_word_embeddings": r.get("tie_word_embeddings", True, f"tied embeddings ({r.model_type} default)"),
        "attention_bias": r.get("use_bias", False),
    }
    if r.model_type == "ernie4_5":
        return fields
    if r.config.get("num_nextn_predict_layers"):
        r.note(
            f"the checkpoint's {r.config['num_nextn_predict_layers']} multi-token-prediction layer(s) are not part "
            "of the transformers model and are not counted"
        )
    start, end, interval = (
        _not_null(r, k) for k in ("moe_layer_start_index", "moe_layer_end_index", "moe_layer_interval")
    )
    shared = _not_null(r, "moe_num_shared_experts")
    fields.update(
        n_routed_experts=_not_null(r, "moe_num_experts"),
        num_experts_per_tok=_not_null(r, "moe_k"),
        moe_intermediate_size=_not_null(r, "moe_intermediate_size"),
        n_shared_experts=shared or None,
        mlp_layer_types=sparse_layers(n, start, end, interval),
    )
    return fields


def experts(spec: ModelSpec) -> NamedMoE:
    """The routed experts and the router ``mlp.gate`` (a bare weight in transformers 5, an ``nn.Linear`` in the
    checkpoint's code), whose E-wide ``e_score_correction_bias`` is counted as the router's bias."""
    return named_moe(
        spec,
        router="mlp.gate",
        router_linear=True,
        renormalised=True,
        router_bias=True,
    )


def build(spec: ModelSpec) -> Layout:
    """One group per kind of MLP (dense, sparse); every layer full attention.

    Per sparse layer beyond attention and norms: d · E + E (router and its correction bias), E · 3 · d · F_e
    (experts), 3 · d · S · F_e (shared MLP), plus S · F_e · 2 + d of shared biases with ``use_bias``.
    """
    d, h, dh, bias = spec.hidden_size, spec.attention_heads, spec.attention_head_dim, spec.attention_bias
    attention = attention_maps(d, h * dh, spec.kv_heads * dh, bias, bias)
    shared = (spec.n_shared_experts or 0) * (spec.moe_intermediate_size or 0)
    mlps: dict[str, tuple[LinearMap | MoE, ...]] = {"dense": gated_mlp("mlp", d, spec.mlp_width, bias)}
    if spec.is_moe:
        mlps["sparse"] = (experts(spec), *(gated_mlp("mlp.shared_experts", d, shared, bias) if shared else ()))
    norms = rms_norms(d, ("input_layernorm", "post_attention_layernorm"))

    def group(kind: Hashable, layers: int) -> LayerGroup:
        return LayerGroup(layers, Attention(h, spec.kv_heads, dh), (*attention, *mlps[cast(str, kind)]), norms)

    kinds = spec.mlp_layer_types or ("dense",) * spec.num_hidden_layers
    tensors = embedding_and_final_norm(spec.vocab_size, d, spec.tie_word_embeddings)
    if bias and spec.model_type == "ernie4_5_moe":
        tensors += (ParamTensor("lm_head.bias", spec.vocab_size, "lm_head"),)
    return Layout(grouped(kinds, group), tensors)


def to_config(spec: ModelSpec) -> dict[str, Any]:
    config = {**attention_config(spec), "use_bias": spec.attention_bias}
    if not spec.is_moe:
        return config
    n, types = spec.num_hidden_layers, spec.mlp_layer_types or ()
    sparse = [i for i, t in enumerate(types) if t == "sparse"]
    start, end = (sparse[0], sparse[-1]) if sparse else (n, n)
    interval = sparse[1] - sparse[0] if len(sparse) > 1 else start + 1
    if sparse_layers(n, start, end, interval) != tuple(types):
        raise EstimatorError(
            f"{spec.name}: ernie4_5_moe routes every moe_layer_interval-th layer between two indices; "
            "mlp_layer_types lists another pattern: fix it"
        )
    config.update(
        moe_num_experts=spec.n_routed_experts,
        moe_k=spec.num_experts_per_tok,
        moe_intermediate_size=spec.moe_intermediate_size,
        moe_num_shared_experts=spec.n_shared_experts or 0,
        moe_layer_start_index=start,
        moe_layer_end_index=end,
        moe_layer_interval=interval,
    )
    return config


# ERNIE 4.5 MoE: peft converts its expert names; transformers keeps its router in float32 (the dense one: none)
CONVENTIONS = {
    "ernie4_5_moe": Conventions(
        peft=PeftConventions(converts_experts=True),
        # Ernie4_5_MoeTopKRouter.weight, dtype=torch.float32 (seen on 5.24)
        transformers=TransformersConventions(fp32_weights=("mlp.gate",), fp32_since=(5, 24)),
    )
}

FAMILIES = [Family(("ernie4_5", "ernie4_5_moe"), read, build, to_config, fields=FIELDS, conventions=CONVENTIONS)]
