"""Xiaomi MiMo-V2-Flash (``mimo_v2_flash``): sliding-window layers with twice the KV heads and attention sinks,
values narrower than keys, and DeepSeek-style routed experts without shared ones.

What transformers 5.24's ``MiMoV2FlashDecoderLayer`` builds, by ``layer_types`` (absent: full attention on layer 0
and every 6th layer, sliding the others) and ``mlp_layer_types`` (absent: layer 0 dense, the others sparse):

- attention: q_proj (d -> H d_h), k_proj (d -> K_l d_h), v_proj (d -> K_l d_v), biases from ``attention_bias``;
  o_proj (H d_v -> d) without bias. K_l = K on full layers, 2 K on sliding ones; sliding layers also hold
  ``self_attn.sinks`` (H logits) and keep W − 1 tokens in transformers (W = ``sliding_window``, or
  ``sliding_window_size`` + 1 where given: ``__post_init__`` reads it so). Keys of d_h and values of d_v are cached.
- MLP: dense gate/up/down of ``intermediate_size``, or ``n_routed_experts`` (alias ``num_local_experts``) experts of
  ``moe_intermediate_size``, top ``num_experts_per_tok``: fused ``mlp.experts`` tensors and the router ``mlp.gate``,
  a bare float32 weight E × d (its ``e_score_correction_bias`` is a buffer, not a parameter). No shared expert.
- Two RMSNorms per layer, the final norm; embeddings untied by default.

The checkpoint's config also carries its remote code's fields (``hybrid_layer_pattern`` 0 full / 1 sliding,
``moe_layer_freq``, ``swa_num_key_value_heads``, ``swa_head_dim``, ``swa_v_head_dim``, the sink flags,
``n_shared_experts``), which transformers does not read: each must agree with what transformers builds, else the
config is refused in one line.

peft 0.21 does not convert its fused experts: all-linear adapts the attention maps and the dense MLP only (the
experts and the bare router keep no adapter).

Defaults (d 4,096, H 64, K 4, d_h 192, d_v 128), one sliding layer's attention: 4,096 · 64 · 192 +
4,096 · 8 · 192 + 4,096 · 8 · 128 + 64 · 128 · 4,096 + 64 = 94,371,904 parameters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from estimator.errors import EstimatorError
from estimator.families import Family, Reader
from estimator.families.conventions import Conventions, PeftConventions, TransformersConventions
from estimator.families.moe import GATED_NAMES, routed_experts
from estimator.families.schema import SIZE, words
from estimator.layout import Attention, Layout, LinearMap, ParamTensor
from estimator.layout.groups import embedding_and_final_norm, gated_mlp, rms_norms, roles, typed_layers

if TYPE_CHECKING:
    from estimator.layout.moe import MoE
    from estimator.specs import ModelSpec

_DEFAULTS = {  # MiMoV2FlashConfig's defaults for absent keys
    "vocab_size": 152576,
    "hidden_size": 4096,
    "intermediate_size": 16384,
    "num_hidden_layers": 48,
    "num_attention_heads": 64,
    "num_key_value_heads": 4,
    "max_position_embeddings": 131072,
    "moe_intermediate_size": 2048,
    "num_experts_per_tok": 8,
    "n_routed_experts": 256,  # num_local_experts is its alias
    "head_dim": 192,
    "v_head_dim": 128,
    "sliding_window": 129,
}
SLIDING, FULL = "sliding_attention", "full_attention"
FIELDS = {
    "layer_types": words(FULL, SLIDING),
    "mlp_layer_types": words("dense", "sparse"),
    "sliding_window_size": SIZE,
    "v_head_dim": SIZE,
}


def _per_layer(r: Reader, key: str, n: int, default: list[str]) -> tuple[str, ...]:
    values = r.config.get(key) or default
    if len(values) != n:
        raise EstimatorError(f"{r.path}: {key} has {len(values)} entries for {n} layers; fix the config.json")
    return tuple(values)


def _window(r: Reader) -> int:
    """sliding_window, or sliding_window_size + 1 where given (``__post_init__`` overrides with it)."""
    size = r.config.get("sliding_window_size")
    if size is None:
        return cast(int, r.field("sliding_window", _DEFAULTS))
    r.note(f"sliding_window is sliding_window_size + 1 = {size + 1}, as MiMoV2FlashConfig reads it")
    return cast(int, size) + 1


def _hub_fields_agree(r: Reader, built: dict[str, Any]) -> None:
    """The checkpoint's own fields (its remote code's), which transformers 5.24 does not read, must say what
    transformers builds; one line naming the first that does not."""
    for key, expected in built.items():
        value = r.config.get(key)
        if value is not None and value != expected:
            raise EstimatorError(
                f"{r.path}: {key} is {str(value)[:40]}, but transformers' MiMo-V2-Flash (which does not read it) "
                f"builds {str(expected)[:40]}; not modelled: make the config agree"
            )


def read(r: Reader) -> dict[str, Any]:
    n = r.field("num_hidden_layers", _DEFAULTS)
    types = _per_layer(r, "layer_types", n, [FULL if i == 0 or not (i + 1) % 6 else SLIDING for i in range(n)])
    mlps = _per_layer(r, "mlp_layer_types", n, ["dense"] + ["sparse"] * (n - 1))
    sparse = "sparse" in mlps
    heads, kv = r.field("num_attention_heads", _DEFAULTS), r.field("num_key_value_heads", _DEFAULTS)
    head, v_head = r.field("head_dim", _DEFAULTS), r.field("v_head_dim", _DEFAULTS)
    built = {  # the checkpoint's names for what transformers builds
        "hybrid_layer_pattern": [0 if t == FULL else 1 for t in types],
        "moe_layer_freq": [1 if m == "sparse" else 0 for m in mlps],
        "swa_num_attention_heads": heads,
        "swa_num_key_value_heads": 2 * kv if isinstance(kv, int) else kv,
        "swa_head_dim": head,
        "swa_v_head_dim": v_head,
        "add_swa_attention_sink_bias": True,
        "add_full_attention_sink_bias": False,
        "n_shared_experts": 0,
    }
    _hub_fields_agree(r, built)
    return {
        "num_hidden_layers": n,
        "hidden_size": r.field("hidden_size", _DEFAULTS),
        "intermediate_size": r.field("intermediate_size", _DEFAULTS),
        "num_attention_heads": heads,
        "num_key_value_heads": kv,
        "head_dim": head,
        "v_head_dim": v_head,
        "vocab_size": r.field("vocab_size", _DEFAULTS),
        "max_position_embeddings": r.field("max_position_embeddings", _DEFAULTS),
        "tie_word_embeddings": r.get("tie_word_embeddings", False),
        "attention_bias": r.get("attention_bias", False),
        "sliding_window": _window(r) if SLIDING in types else None,
        "layer_types": types,
        **(
            {
                "n_routed_experts": r.field("n_routed_experts", _DEFAULTS),
                "num_experts_per_tok": r.field("num_experts_per_tok", _DEFAULTS),
                "moe_intermediate_size": r.field("moe_intermediate_size", _DEFAULTS),
                "mlp_layer_types": mlps,
            }
            if sparse
            else {}
        ),
    }


def _attention(spec: ModelSpec, layer_type: str) -> tuple[Attention, tuple[LinearMap, ...], tuple[ParamTensor, ...]]:
    d, h, dk, dv, bias = (
        spec.hidden_size,
        spec.attention_heads,
        spec.attention_head_dim,
        spec.need("v_head_dim"),
        (spec.attention_bias),
    )
    sliding = layer_type == SLIDING
    kv = spec.kv_heads * (2 if sliding else 1)
    maps = (
        LinearMap("self_attn.q_proj", d, h * dk, bias, roles("q"), "attention"),
        LinearMap("self_attn.k_proj", d, kv * dk, bias, roles("k"), "attention"),
        LinearMap("self_attn.v_proj", d, kv * dv, bias, roles("v"), "attention"),
        LinearMap("self_attn.o_proj", h * dv, d, False, roles("o"), "attention"),
    )
    sinks = (ParamTensor("self_attn.sinks", h, "attention"),) if sliding else ()
    mixer = Attention(h, kv, dk, spec.sliding_window if sliding else None, v_head_dim=dv)
    return mixer, maps, sinks


def build(spec: ModelSpec) -> Layout:
    """One group per (attention type, dense or sparse MLP) kind of layer."""
    d = spec.hidden_size
    mlps: dict[str, tuple[LinearMap | MoE, ...]] = {"dense": gated_mlp("mlp", d, spec.mlp_width)}
    if spec.is_moe:
        mlps["sparse"] = (routed_experts(spec, "mlp.experts", GATED_NAMES, "mlp.gate", False),)
    norms = rms_norms(d, ("input_layernorm", "post_attention_layernorm"))

    n = spec.num_hidden_layers
    kinds = list(zip(spec.layer_types or (FULL,) * n, spec.mlp_layer_types or ("dense",) * n, strict=True))
    groups = typed_layers(kinds, lambda layer_type: _attention(spec, layer_type), mlps, norms)
    return Layout(groups, embedding_and_final_norm(spec.vocab_size, d, spec.tie_word_embeddings))


def to_config(spec: ModelSpec) -> dict[str, Any]:
    n = spec.num_hidden_layers
    return {
        "hidden_size": spec.hidden_size,
        "intermediate_size": spec.intermediate_size,
        "num_attention_heads": spec.num_attention_heads,
        "num_key_value_heads": spec.num_key_value_heads,
        "head_dim": spec.head_dim,
        "v_head_dim": spec.v_head_dim,
        "max_position_embeddings": spec.max_position_embeddings,
        "attention_bias": spec.attention_bias,
        "sliding_window": spec.sliding_window or _DEFAULTS["sliding_window"],
        "layer_types": list(spec.layer_types or ()),
        "mlp_layer_types": list(spec.mlp_layer_types or ("dense",) * n),
        "n_routed_experts": spec.n_routed_experts or 1,
        "num_experts_per_tok": spec.num_experts_per_tok or 1,
        "moe_intermediate_size": spec.moe_intermediate_size or 1,
    }


def peft_prefix(spec: ModelSpec, virtual_tokens: int) -> tuple[int, str] | None:
    """peft sizes the prefix from config.json's KV heads and head_dim on every layer: n · 2 · L · K · d_h."""
    why = (
        "peft sizes the prefix from config.json's KV heads and head_dim on every layer; MiMo-V2-Flash's sliding "
        "layers have twice the KV heads and its values are v_head_dim wide; the estimate is the cache of n tokens"
    )
    return virtual_tokens * 2 * spec.num_hidden_layers * spec.kv_heads * spec.attention_head_dim, why


# peft sizes its prefix from config.json's heads; transformers keeps its router in float32 from 5.24
CONVENTIONS = {
    "mimo_v2_flash": Conventions(
        peft=PeftConventions(prefix=peft_prefix),
        # MiMoV2FlashTopkRouter.weight, dtype=torch.float32
        transformers=TransformersConventions(fp32_weights=("mlp.gate",), fp32_since=(5, 24)),
    )
}

FAMILIES = [Family(("mimo_v2_flash",), read, build, to_config, fields=FIELDS, conventions=CONVENTIONS)]
