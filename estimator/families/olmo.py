"""OLMo 2 and OLMo 3: post-norm decoders with RMSNorm on q and k over the whole projection width.

What transformers' ``Olmo2DecoderLayer`` / ``Olmo3DecoderLayer`` build per layer:

- ``self_attn``: q_proj (d -> H d_h), k_proj and v_proj (d -> K d_h), o_proj (H d_h -> d), biases on
  all four from ``attention_bias``; ``q_norm`` RMSNorm over all H d_h outputs and ``k_norm`` over all
  K d_h (not per head, as Qwen3's): OLMo 2 7B, 4,096 + 4,096 weights.
- ``mlp``: gate_proj, up_proj, down_proj without biases.
- post-norms only: ``post_attention_layernorm`` and ``post_feedforward_layernorm`` (d each); no input norm.

OLMo 3 alternates sliding and full attention by ``layer_types``; absent, three sliding layers to one
full ((i + 1) % 4 == 0 is full), with ``sliding_window`` 4,096 by default. head_dim is
hidden_size / heads unless the config gives it. Embeddings are untied unless the config says so.

OLMo 2 13B: 40 · (4 · 5,120² + 3 · 5,120 · 13,824 + 4 · 5,120) + 2 · 100,352 · 5,120 + 5,120
= 13,716,198,400 parameters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from estimator.errors import EstimatorError
from estimator.families import Family, Reader, attention_config, head_dim_or_derived, windowed_attention_layout
from estimator.families.conventions import Conventions, GgufConventions
from estimator.layout import Layout, LinearMap, ParamTensor
from estimator.layout.groups import attention_maps, embedding_and_final_norm, gated_mlp, rms_norms

if TYPE_CHECKING:
    from estimator.specs import ModelSpec

OLMO3_WINDOW = 4096  # Olmo3Config.sliding_window
OLMO3_PERIOD = 4  # Olmo3Config's default layer_types: every fourth layer full


def _olmo3_layers(r: Reader, n: Any) -> dict[str, Any]:
    """Olmo 3's sliding window and layer types (the config's, else three sliding to one full)."""
    window = r.get("sliding_window", OLMO3_WINDOW, f"{OLMO3_WINDOW:,} (Olmo3Config default)", null_is_default=False)
    types = r.config.get("layer_types")
    if types is None:
        if not isinstance(n, int):
            return {}
        r.note(f"config.json has no layer_types: every {OLMO3_PERIOD}th layer full, the others sliding (Olmo3Config)")
        types = ["full_attention" if (i + 1) % OLMO3_PERIOD == 0 else "sliding_attention" for i in range(n)]
    if "sliding_attention" not in types:
        return {}
    if window is None:
        raise EstimatorError(
            f"{r.path}: layer_types has sliding_attention layers but sliding_window is null; "
            "give the window or make every layer full_attention"
        )
    return {"sliding_window": window, "layer_types": tuple(types)}


def read(r: Reader) -> dict[str, Any]:
    hidden, heads = r.need("hidden_size"), r.need("num_attention_heads")
    n = r.need("num_hidden_layers")
    fields: dict[str, Any] = {
        "num_hidden_layers": n,
        "hidden_size": hidden,
        "intermediate_size": r.need("intermediate_size"),
        "num_attention_heads": heads,
        "num_key_value_heads": r.get("num_key_value_heads", heads, "as many KV heads as query heads (config default)"),
        "head_dim": head_dim_or_derived(r, hidden, heads),
        "vocab_size": r.need("vocab_size"),
        "max_position_embeddings": r.get("max_position_embeddings", 2048, "2,048 (config default)"),
        "tie_word_embeddings": r.get("tie_word_embeddings", False),
        "attention_bias": r.get("attention_bias", False),
    }
    if r.model_type == "olmo3":
        fields.update(_olmo3_layers(r, n))
    return fields


def _maps(spec: ModelSpec) -> tuple[LinearMap, ...]:
    d, bias = spec.hidden_size, spec.attention_bias
    q_out, kv_out = spec.attention_heads * spec.attention_head_dim, spec.kv_heads * spec.attention_head_dim
    return attention_maps(d, q_out, kv_out, bias, bias) + gated_mlp("mlp", d, spec.mlp_width)


def _norms(spec: ModelSpec) -> tuple[ParamTensor, ...]:
    """q_norm (H d_h) and k_norm (K d_h) over the whole projections, then the two post-norms (d each)."""
    return (
        ParamTensor("self_attn.q_norm", spec.attention_heads * spec.attention_head_dim, "norm"),
        ParamTensor("self_attn.k_norm", spec.kv_heads * spec.attention_head_dim, "norm"),
        *rms_norms(spec.hidden_size, ("post_attention_layernorm", "post_feedforward_layernorm")),
    )


def build(spec: ModelSpec) -> Layout:
    """One group per kind of layer (full, or sliding over the window), all with the same maps and norms."""
    maps, norms = _maps(spec), _norms(spec)

    tensors = embedding_and_final_norm(spec.vocab_size, spec.hidden_size, spec.tie_word_embeddings)
    return windowed_attention_layout(spec, maps, norms, tensors)


def to_config(spec: ModelSpec) -> dict[str, Any]:
    config = {**attention_config(spec), "attention_bias": spec.attention_bias}
    if spec.model_type == "olmo3":
        config["sliding_window"] = spec.sliding_window
        config["layer_types"] = list(spec.layer_types or ("full_attention",) * spec.num_hidden_layers)
    return config


# llama.cpp's architecture name (OLMo 3: none mapped)
CONVENTIONS = {"olmo2": Conventions(gguf=GgufConventions(architecture="olmo2"))}

FAMILIES = [Family(("olmo2", "olmo3"), read, build, to_config, conventions=CONVENTIONS)]
