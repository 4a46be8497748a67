"""Cohere (Command R) and Cohere2 (Command R7B, Command A): parallel blocks with one LayerNorm.

What transformers 5's ``CohereDecoderLayer`` and ``Cohere2DecoderLayer`` build, beyond Llama's
q, k, v, o and gate, up, down:

- one ``input_layernorm`` per layer, read by attention and MLP side by side (a parallel block):
  a ``CohereLayerNorm`` with a weight and no bias (d values); the final ``norm`` likewise;
- ``attention_bias`` puts biases on all four attention maps, never on the MLP;
- embeddings tied by default (``tie_word_embeddings`` true in both configs' defaults);
- cohere: ``use_qk_norm`` adds a LayerNorm over each query head and each key head, weights of
  shape (H, d_h) and (K, d_h): H · d_h + K · d_h values per layer;
- cohere2: sliding-window layers in a pattern (``layer_types``, else three sliding layers to one
  full, ``sliding_window_pattern`` 4); the full layers use no RoPE, which changes no count.
  ``sliding_window`` is 4,096 by default; null means no window at all.

head_dim is config.json's ``head_dim`` where given (both configs keep it), else hidden / heads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from estimator.families import Family, Reader, attention_config, head_dim_or_derived, windowed_attention_layout
from estimator.families.schema import flag
from estimator.layout import Layout, ParamTensor
from estimator.layout.groups import attention_maps, embedding_and_final_norm, gated_mlp, rms_norms

if TYPE_CHECKING:
    from estimator.specs import ModelSpec

_PATTERN = 4  # Cohere2Config: sliding_window_pattern's default, three sliding layers to one full


def read(r: Reader) -> dict[str, Any]:
    hidden, heads = r.need("hidden_size"), r.need("num_attention_heads")
    fields: dict[str, Any] = {
        "num_hidden_layers": r.need("num_hidden_layers"),
        "hidden_size": hidden,
        "intermediate_size": r.need("intermediate_size"),
        "num_attention_heads": heads,
        "num_key_value_heads": r.get("num_key_value_heads", heads, "as many KV heads as query heads (config default)"),
        "head_dim": head_dim_or_derived(r, hidden, heads),
        "vocab_size": r.get("vocab_size", 256000, "256,000 (config default)"),
        "max_position_embeddings": r.get("max_position_embeddings", 8192, "8,192 (config default)"),
        "tie_word_embeddings": r.get("tie_word_embeddings", True, f"tied embeddings ({r.model_type} default)"),
        "attention_bias": r.get("attention_bias", False),
    }
    if r.model_type == "cohere":
        fields["family_fields"] = (("use_qk_norm", bool(r.get("use_qk_norm", False))),)
        return fields
    window = r.get("sliding_window", 4096, "4,096 (Cohere2Config default)", null_is_default=False)
    types = r.config.get("layer_types")
    if types is None:
        pattern = r.get("sliding_window_pattern", _PATTERN, "4: three sliding layers to one full (config default)")
        n = fields["num_hidden_layers"]
        types = ["sliding_attention" if (i + 1) % pattern else "full_attention" for i in range(n)]
    if window is None:
        r.note("sliding_window is null: every layer attends to all tokens, as transformers does")
    elif "sliding_attention" in types:
        fields.update(sliding_window=window, layer_types=tuple(types))
    return fields


def _qk_norm(spec: ModelSpec) -> bool:
    return bool(spec.option("use_qk_norm", False))


def build(spec: ModelSpec) -> Layout:
    """One group per window: q, k, v, o (biases from ``attention_bias``), gate, up, down, one LayerNorm
    of d weights; per-head q and k norms where ``use_qk_norm``.

    Per layer: (H + 2K) · d_h · d + H · d_h · d + 3 · d · F + d, plus (H + 2K) · d_h + d biases with
    ``attention_bias`` and (H + K) · d_h norm weights with ``use_qk_norm``; d = 256, F = 512, H = 8, K = 2,
    d_h = 32, both options on: 557,312 + 640 + 320 = 558,272 (tests/test_family_dense_b.py).
    """
    d, h, k, dh = spec.hidden_size, spec.attention_heads, spec.kv_heads, spec.attention_head_dim
    bias = spec.attention_bias
    maps = attention_maps(d, h * dh, k * dh, bias, bias) + gated_mlp("mlp", d, spec.mlp_width)
    norms = rms_norms(d, ("input_layernorm",))  # LayerNorm without bias: d weights, as an RMSNorm
    if _qk_norm(spec):
        norms += (ParamTensor("self_attn.q_norm", h * dh, "norm"), ParamTensor("self_attn.k_norm", k * dh, "norm"))

    tensors = embedding_and_final_norm(spec.vocab_size, d, spec.tie_word_embeddings)
    return windowed_attention_layout(spec, maps, norms, tensors)


def to_config(spec: ModelSpec) -> dict[str, Any]:
    config = {**attention_config(spec), "attention_bias": spec.attention_bias}
    if spec.model_type == "cohere":
        config["use_qk_norm"] = _qk_norm(spec)
        return config
    full = ("full_attention",) * spec.num_hidden_layers
    config.update(sliding_window=spec.sliding_window, layer_types=list(spec.layer_types or full))
    return config


FAMILIES = [Family(("cohere", "cohere2"), read, build, to_config, fields={"use_qk_norm": flag})]
