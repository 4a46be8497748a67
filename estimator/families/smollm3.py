"""SmolLM3 (``smollm3``): a Llama layout with NoPE layers and tied embeddings by default.

transformers' ``SmolLM3DecoderLayer``: q, k, v, o (biases from ``attention_bias``), gate, up, down
(biases from ``mlp_bias``), two RMSNorms of d. ``no_rope_layers`` (1 = RoPE, 0 = NoPE; by default every
``no_rope_layer_interval``-th layer is NoPE) only changes the positions a layer rotates: a NoPE layer
caches the same K and V, so the cache is the same as without it.

The cache follows ``layer_types`` (``DynamicCache``); absent, a layer slides only with
``use_sliding_window``, a ``sliding_window`` and NoPE (SmolLM3Config). Defaults: K = 4 (not H),
vocabulary 128,256, max_position_embeddings 32,768, tied embeddings.

SmolLM3-3B: 36 · (2 · 2,048² + 2 · 2,048 · 512 + 3 · 2,048 · 11,008 + 2 · 2,048) + 128,256 · 2,048
+ 2,048 = 3,075,098,624 parameters; the cache 2 · 36 · 4 · 128 · 2 = 73,728 bytes per token in bf16.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from estimator.errors import EstimatorError
from estimator.families import Family, Reader, attention_config, head_dim_or_derived, windowed_attention_layout
from estimator.families.schema import LAYERS, Check, counts, flag
from estimator.layout import Layout
from estimator.layout.groups import attention_maps, embedding_and_final_norm, gated_mlp, rms_norms

if TYPE_CHECKING:
    from estimator.specs import ModelSpec

_DEFAULTS = {"num_attention_heads": 16, "vocab_size": 128256, "max_position_embeddings": 32768}  # SmolLM3Config


def _kv_heads(r: Reader, heads: Any) -> Any:
    """SmolLM3Config: 4 KV heads when the key is absent; null means as many as the query heads."""
    if "num_key_value_heads" not in r.config:
        return r.get("num_key_value_heads", 4, "4 KV heads (SmolLM3Config default)")
    return r.get("num_key_value_heads", heads, "null: as many KV heads as query heads (SmolLM3Config)")


def _default_types(r: Reader, n: int, window: Any) -> list[str]:
    """SmolLM3Config's layer_types: sliding where use_sliding_window, a window and NoPE (no_rope_layers 0)."""
    if not (r.get("use_sliding_window", False) and window is not None):
        return ["full_attention"] * n
    interval = r.get("no_rope_layer_interval", 4, "every 4th layer NoPE (SmolLM3Config default)")
    rope = r.config.get("no_rope_layers") or [int((i + 1) % interval != 0) for i in range(n)]
    if len(rope) < n:
        raise EstimatorError(f"{r.path}: no_rope_layers has {len(rope)} entries for {n} layers; give one per layer")
    return ["full_attention" if rope[i] else "sliding_attention" for i in range(n)]


def _windows(r: Reader, n: Any) -> dict[str, Any]:
    window = r.get("sliding_window", None)
    if not isinstance(n, int):
        return {}
    types = r.config.get("layer_types") or _default_types(r, n, window)
    if "sliding_attention" not in types:
        return {}
    if window is None:
        raise EstimatorError(f"{r.path}: layer_types has sliding_attention layers but no sliding_window; give it")
    if not r.get("use_sliding_window", False):
        r.note(
            "layer_types slides some layers while use_sliding_window is false: transformers' cache still keeps "
            "only the window on them (as counted), though their attention does not"
        )
    return {"sliding_window": window, "layer_types": tuple(types)}


def read(r: Reader) -> dict[str, Any]:
    hidden, heads = r.need("hidden_size"), r.field("num_attention_heads", _DEFAULTS)
    n = r.need("num_hidden_layers")
    return {
        "num_hidden_layers": n,
        "hidden_size": hidden,
        "intermediate_size": r.need("intermediate_size"),
        "num_attention_heads": heads,
        "num_key_value_heads": _kv_heads(r, heads),
        "head_dim": head_dim_or_derived(r, hidden, heads),
        "vocab_size": r.field("vocab_size", _DEFAULTS),
        "max_position_embeddings": r.field("max_position_embeddings", _DEFAULTS),
        "tie_word_embeddings": r.get("tie_word_embeddings", True, "embeddings tied (SmolLM3Config default)"),
        "attention_bias": r.get("attention_bias", False),
        "mlp_bias": r.get("mlp_bias", False),
        **_windows(r, n),
    }


def build(spec: ModelSpec) -> Layout:
    """One group per kind of layer (full, or sliding); NoPE layers are grouped with the others alike."""
    d, bias = spec.hidden_size, spec.attention_bias
    q_out, kv_out = spec.attention_heads * spec.attention_head_dim, spec.kv_heads * spec.attention_head_dim
    maps = attention_maps(d, q_out, kv_out, bias, bias) + gated_mlp("mlp", d, spec.mlp_width, spec.mlp_bias)
    norms = rms_norms(d, ("input_layernorm", "post_attention_layernorm"))

    tensors = embedding_and_final_norm(spec.vocab_size, d, spec.tie_word_embeddings)
    return windowed_attention_layout(spec, maps, norms, tensors)


def to_config(spec: ModelSpec) -> dict[str, Any]:
    windowed = spec.sliding_window is not None
    return {
        **attention_config(spec),
        "attention_bias": spec.attention_bias,
        "mlp_bias": spec.mlp_bias,
        "use_sliding_window": windowed,
        "sliding_window": spec.sliding_window,
        "layer_types": list(spec.layer_types or ("full_attention",) * spec.num_hidden_layers),
    }


FIELDS: dict[str, Check] = {
    "use_sliding_window": flag,
    "no_rope_layers": counts(0, 1),
    "no_rope_layer_interval": LAYERS,
}
FAMILIES = [Family(("smollm3",), read, build, to_config, fields=FIELDS)]
